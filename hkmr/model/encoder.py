"""Image encoders producing the feature vector Φ (Sec. 3.2: "the same ResNet50 as HMR").

``resnet50``: torchvision's ResNet50 without its classifier, 2048-d pooled features; ImageNet
weights optional (``model.pretrained``). ``small_cnn``: a 5-stage CNN (~1.6M parameters,
512-d features) for the CPU presets. ``keypoints`` (the keypoint regime,
:mod:`hkmr.data.keypoint_dataset`): a 2-layer MLP on the 24 keypoints and visibility flags
(24 x 3 inputs), 512-d features, the same for every regressor and trained with it.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class SmallCNN(nn.Module):
    """Conv-BN-ReLU stages with stride 2, then global average pooling."""

    def __init__(self, widths=(32, 64, 128, 256, 512)):
        super().__init__()
        layers, c_in = [], 3
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.features(img).mean(dim=(2, 3))


class KeypointEncoder(nn.Module):
    """Φ = ReLU(W2 ReLU(W1 k + b1) + b2) of the flattened keypoint input k (B, 24, 3)."""

    def __init__(self, joints: int = 24, width: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * joints, width), nn.ReLU(),
                                 nn.Linear(width, width), nn.ReLU())
        self.out_dim = width

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.net(keypoints)


class EncoderWeightsError(RuntimeError):
    """Pretrained weights were asked for but cannot be loaded."""


def build_encoder(name: str, pretrained: bool = False) -> tuple[nn.Module, int]:
    """Return (encoder, feature size)."""
    if name == "small_cnn":
        if pretrained:
            raise EncoderWeightsError("model.pretrained=true needs model.encoder=resnet50; "
                                      "small_cnn has no pretrained weights")
        net = SmallCNN()
        return net, net.out_dim
    if name == "keypoints":
        if pretrained:
            raise EncoderWeightsError("model.pretrained=true needs model.encoder=resnet50")
        net = KeypointEncoder()
        return net, net.out_dim
    if name == "resnet50":
        weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1 if pretrained else None
        try:
            net = torchvision.models.resnet50(weights=weights)
        except Exception as err:  # download or cache failure: say what to do
            raise EncoderWeightsError(
                f"cannot load ImageNet weights for resnet50 ({type(err).__name__}: {err}). "
                "Download them once with network access (they are cached under "
                f"{torch.hub.get_dir()}) or set model.pretrained=false.") from err
        net.fc = nn.Identity()
        return net, 2048
    raise ValueError(f"model.encoder={name!r}: choose resnet50, small_cnn or keypoints")
