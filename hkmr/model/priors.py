"""Pose priors: the VAE of Sec. 3.2 ("Pose Prior") and HMR's discriminator (Table 2).

* :class:`PoseVAE` encodes the 69-D body pose (23 joints, axis-angle, no global orientation)
  to a latent z. It is trained on a pose corpus (the paper used MoSh; we use
  :func:`pose_corpus`, or ``hkmr synth poses``) with the standard ELBO (:func:`default_vae`:
  trained once and cached); afterwards the decoder is dropped and the
  regressor's prior loss is L_KL = KL(q(z | Θ̂) || N(0, I)) through the frozen encoder.
* :class:`PoseDiscriminator` is HMR's adversarial prior: per-joint discriminators on rotation
  matrices (a shared 1x1 conv embedding, then one output per joint), one on the whole pose and
  one on the shape, trained with least-squares GAN losses against real corpus poses.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..data import sampler
from ..digest import file_digest
from ..io import atomic_path, cache_dir
from ..safe_load import safe_torch_load


class PoseVAE(nn.Module):
    def __init__(self, hidden: int = 256, latent: int = 32, pose_dim: int = 69):
        super().__init__()
        self.config = dict(hidden=hidden, latent=latent, pose_dim=pose_dim)
        self.encoder = nn.Sequential(nn.Linear(pose_dim, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, 2 * latent))
        self.decoder: nn.Module | None = nn.Sequential(
            nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2), nn.Linear(hidden, pose_dim))

    def encode(self, body_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 69) axis-angle -> mean and log-variance of q(z | Θ), each (B, latent)."""
        mu, logvar = self.encoder(body_pose).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per sample, (B,)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)

    def prior_loss(self, pose: torch.Tensor) -> torch.Tensor:
        """L_KL for predicted poses: rotation matrices (B, 24, 3, 3) or axis-angle (B, 24, 3);
        the global orientation (joint 0) is left out. Mean over the batch."""
        if pose.shape[-2:] == (3, 3):
            pose = matrix_to_axis_angle(pose)
        return self.kl(*self.encode(pose[:, 1:].flatten(1))).mean()

    def elbo_loss(self, body_pose: torch.Tensor, kl_weight: float) -> torch.Tensor:
        """Training objective: reconstruction on rotation matrices + weighted KL."""
        mu, logvar = self.encode(body_pose)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.decoder(z)
        rec = F.mse_loss(axis_angle_to_matrix(recon.view(-1, 23, 3)),
                         axis_angle_to_matrix(body_pose.view(-1, 23, 3)), reduction="none")
        return rec.sum((1, 2, 3)).mean() + kl_weight * self.kl(mu, logvar).mean()

    def drop_decoder(self) -> "PoseVAE":
        self.decoder = None
        return self

    def freeze(self) -> "PoseVAE":
        """Drop the decoder and stop training the encoder (gradients still reach Θ̂)."""
        self.drop_decoder()
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def save(self, path: str | Path) -> None:
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("decoder.")}
        with atomic_path(path) as tmp:
            torch.save({"config": self.config, "encoder_state": state}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "PoseVAE":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"VAE prior checkpoint not found: {path} (train one with "
                                    "'hkmr prior train-vae --corpus POSES.parquet --out DIR', "
                                    "then model.vae_checkpoint=DIR/vae.pt)")
        blob = safe_torch_load(path, what="VAE prior")
        if not isinstance(blob, dict) or "encoder_state" not in blob or "config" not in blob:
            raise ValueError(f"{path} is not a VAE prior checkpoint (needs 'encoder_state' and "
                             "'config')")
        vae = cls(**blob["config"]).drop_decoder()
        vae.load_state_dict(blob["encoder_state"])
        return vae.freeze()


def train_vae(body_poses: torch.Tensor, epochs: int = 20, batch_size: int = 256,
              lr: float = 1e-3, kl_weight: float = 0.05, seed: int = 0,
              device: torch.device | str = "cpu", **vae_kwargs) -> PoseVAE:
    """Fit a :class:`PoseVAE` to (N, 69) axis-angle body poses on ``device``; returns it
    frozen (on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = PoseVAE(**vae_kwargs).to(device)
    body_poses = body_poses.to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(body_poses), generator=gen).split(batch_size):
            loss = vae.elbo_loss(body_poses[idx], kl_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return vae.cpu().freeze()


def pose_corpus(n: int, seed: int = 12345) -> torch.Tensor:
    """(n, 72) axis-angle poses from the data sampler: our stand-in for MoSh."""
    poses, _ = sampler.sample_poses(n, seed=seed)
    return torch.from_numpy(poses)


def default_vae_path(corpus_size: int) -> Path:
    """Where :func:`default_vae` caches the VAE of ``corpus_size`` poses."""
    return cache_dir() / f"vae_prior_{corpus_size}_{file_digest(sampler.__file__, length=10)}.pt"


def default_vae(corpus_size: int) -> PoseVAE:
    """The VAE trained on ``corpus_size`` sampled poses, cached in ``$HKMR_CACHE`` by the
    sampler's code and the corpus size. Training it leaves the global RNG as it was, so a run
    that builds it draws the same numbers as a run that finds it cached."""
    path = default_vae_path(corpus_size)
    if not path.exists():
        with torch.random.fork_rng():
            train_vae(pose_corpus(corpus_size)[:, 3:], epochs=20, seed=0).save(path)
    return PoseVAE.load(path)


class PoseDiscriminator(nn.Module):
    """HMR's factorised adversarial prior on (rotation matrices of 23 joints, β)."""

    def __init__(self, num_betas: int = 10, joint_embed: int = 32, hidden: int = 1024):
        super().__init__()
        self.joint_embed = nn.Sequential(nn.Conv1d(9, joint_embed, 1), nn.ReLU(),
                                         nn.Conv1d(joint_embed, joint_embed, 1), nn.ReLU())
        self.per_joint = nn.Parameter(torch.randn(23, joint_embed) * 0.05)
        self.per_joint_bias = nn.Parameter(torch.zeros(23))
        self.full_pose = nn.Sequential(nn.Linear(23 * joint_embed, hidden), nn.ReLU(),
                                       nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.shape = nn.Sequential(nn.Linear(num_betas, 10), nn.ReLU(), nn.Linear(10, 5),
                                   nn.ReLU(), nn.Linear(5, 1))

    def forward(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """pose (B, 24, 3, 3) or (B, 23, 3, 3) rotation matrices -> logits (B, 23 + 1 + 1)."""
        if pose.shape[1] == 24:
            pose = pose[:, 1:]
        h = self.joint_embed(pose.flatten(2).transpose(1, 2))  # (B, E, 23)
        per_joint = torch.einsum("bej,je->bj", h, self.per_joint) + self.per_joint_bias
        return torch.cat([per_joint, self.full_pose(h.flatten(1)), self.shape(betas)], dim=1)

    def generator_loss(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """The regressor's prior term: least-squares GAN, fake -> 1."""
        return (self(pose, betas) - 1).pow(2).mean()

    def discriminator_loss(self, real_pose, real_betas, fake_pose, fake_betas) -> torch.Tensor:
        real = self(real_pose, real_betas)
        fake = self(fake_pose.detach(), fake_betas.detach())
        return (real - 1).pow(2).mean() + fake.pow(2).mean()
