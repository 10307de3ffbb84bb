"""A Gaussian-mixture pose prior for SMPLify, fitted by EM to the pose corpus.

SMPLify (Bogo et al., ECCV 2016) and SPIN (Kolotouros et al., ICCV 2019) penalise the body
pose (69-D axis-angle, no global orientation) with a mixture of 8 full-covariance Gaussians
fitted to motion-capture poses, scored by the best component ("max-mixture"):

    E_θ(θ) = min_k [ ½ (θ - μ_k)ᵀ Σ_k⁻¹ (θ - μ_k) + ½ log det Σ_k - log w_k ]

(the constant ½·69·log 2π dropped). The paper's data came from MoSh; ours is the data
sampler's corpus (:func:`hkmr.model.priors.pose_corpus`), fitted here with plain EM in torch
(no scikit-learn) and cached in ``$HKMR_CACHE`` like the VAE prior.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..data import sampler
from ..digest import file_digest
from ..io import atomic_path, cache_dir
from ..model.priors import pose_corpus
from ..safe_load import safe_torch_load


class PoseGMM(nn.Module):
    def __init__(self, means: torch.Tensor, covariances: torch.Tensor, weights: torch.Tensor):
        super().__init__()
        chol = torch.linalg.cholesky(covariances.double())
        precision_chol = torch.linalg.solve_triangular(
            chol, torch.eye(means.shape[1], dtype=torch.float64).expand_as(chol), upper=False)
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        self.register_buffer("means", means.float())
        self.register_buffer("covariances", covariances.float())
        self.register_buffer("weights", weights.float())
        # L⁻¹ with Σ = L Lᵀ, so the Mahalanobis term is |L⁻¹ (θ - μ)|²
        self.register_buffer("precision_chol", precision_chol.float())
        self.register_buffer("offset", (0.5 * log_det - weights.double().log()).float())

    def component_energies(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) -> (B, K): ½ Mahalanobis² + ½ log det Σ_k - log w_k."""
        diff = body_pose[:, None, :] - self.means  # (B, K, D)
        z = torch.einsum("kij,bkj->bki", self.precision_chol, diff)
        return 0.5 * z.pow(2).sum(-1) + self.offset

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Max-mixture energy per sample, (B,)."""
        return self.component_energies(body_pose).min(dim=1).values

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"means": self.means, "covariances": self.covariances,
                        "weights": self.weights}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "PoseGMM":
        blob = safe_torch_load(path, what="GMM pose prior")
        if not isinstance(blob, dict) or not {"means", "covariances", "weights"} <= set(blob):
            raise ValueError(f"{path} is not a GMM pose prior (needs means, covariances, "
                             "weights)")
        return cls(blob["means"], blob["covariances"], blob["weights"])


def fit_gmm(data: torch.Tensor, components: int = 8, iters: int = 100, reg: float = 1e-3,
            seed: int = 0) -> PoseGMM:
    """EM for a full-covariance mixture on (N, D) data (float64 inside). Means start at
    ``components`` distinct random samples; ``reg`` is added to every covariance's diagonal
    (rad², it keeps joints that barely move in the corpus from making Σ singular)."""
    x = data.double()
    n, d = x.shape
    gen = torch.Generator().manual_seed(seed)
    means = x[torch.randperm(n, generator=gen)[:components]].clone()
    cov = (torch.cov(x.T) + reg * torch.eye(d, dtype=x.dtype)).expand(components, d, d).clone()
    weights = torch.full((components,), 1.0 / components, dtype=x.dtype)
    eye = torch.eye(d, dtype=x.dtype)
    for _ in range(iters):
        chol = torch.linalg.cholesky(cov)
        diff = x[:, None, :] - means  # (N, K, D)
        z = torch.linalg.solve_triangular(chol, diff.permute(1, 2, 0), upper=False)  # (K, D, N)
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_p = (-0.5 * z.pow(2).sum(1).T - 0.5 * log_det - 0.5 * d * math.log(2 * math.pi)
                 + weights.log())  # (N, K)
        resp = (log_p - log_p.logsumexp(1, keepdim=True)).exp()
        nk = resp.sum(0) + 1e-10
        weights = nk / n
        means = resp.T @ x / nk[:, None]
        diff = x[:, None, :] - means
        cov = torch.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None] + reg * eye
    return PoseGMM(means, cov, weights)


def default_gmm(corpus_size: int) -> PoseGMM:
    """The mixture fitted to ``corpus_size`` sampled body poses, cached by sampler code and
    size (as :func:`hkmr.model.priors.default_vae`)."""
    path = cache_dir() / f"gmm_prior_{corpus_size}_{file_digest(sampler.__file__, length=10)}.pt"
    if not path.exists():
        fit_gmm(pose_corpus(corpus_size)[:, 3:]).save(path)
    return PoseGMM.load(path)
