"""The prior term of Eq. 3 during training (``model.prior``): VAE, discriminator or none.

* ``vae``: the frozen VAE encoder from ``model.vae_checkpoint``; when that is empty, one is
  trained on a sampled pose corpus on first use and cached in ``$HKMR_CACHE`` (a few seconds).
* ``discriminator``: HMR's discriminator, trained alongside the regressor with its own Adam
  (``train.disc_lr``) against real poses from the sampled corpus; in a DDP run its gradients
  are averaged over the ranks (:mod:`hkmr.train.distributed`).
"""

from __future__ import annotations

import torch

from ..body.rotations import axis_angle_to_matrix
from ..config import Config
from ..model.output import RegressorOutput
from ..model.priors import PoseDiscriminator, PoseVAE, default_vae, pose_corpus
from .distributed import Ranks


class PriorTerm:
    """The prior of a run: the prior module and, for the discriminator, its optimiser and
    real poses."""

    def __init__(self, cfg: Config, device: torch.device, ranks: Ranks | None = None):
        self.kind = cfg.model.prior
        self.ranks = ranks or Ranks()
        self.module: PoseVAE | PoseDiscriminator | None = None
        self.optimizer = None
        if self.kind == "vae":
            vae = (PoseVAE.load(cfg.model.vae_checkpoint) if cfg.model.vae_checkpoint
                   else default_vae(cfg.train.prior_corpus))
            self.module = vae.to(device)
        elif self.kind == "discriminator":
            gen = torch.Generator().manual_seed(cfg.seed)
            torch.manual_seed(cfg.seed)
            self.module = PoseDiscriminator().to(device)
            self.optimizer = torch.optim.Adam(self.module.parameters(), lr=cfg.train.disc_lr)
            corpus = pose_corpus(cfg.train.prior_corpus)
            self.real_pose = axis_angle_to_matrix(corpus.view(-1, 24, 3)).to(device)
            self.real_betas = torch.randn(len(corpus), 10, generator=gen).to(device)
            self.generator = gen

    def step(self, fake: RegressorOutput) -> float | None:
        """One discriminator update against the latest predictions (no-op for other priors)."""
        if self.optimizer is None:
            return None
        # one draw for the global batch; each DDP rank takes its share (its own fakes)
        idx = self.ranks.share(torch.randint(
            0, len(self.real_pose), (fake.betas.shape[0] * self.ranks.world_size,),
            generator=self.generator))
        loss = self.module.discriminator_loss(self.real_pose[idx], self.real_betas[idx],
                                              fake.pose, fake.betas)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ranks.average_gradients(self.module.parameters())
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict:
        if self.optimizer is None:
            return {}
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if self.optimizer is not None and state:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"])
