"""The device-agnostic PyTorch trainer: the unit Ray Train wraps (Sec. 3.3, Eq. 3).

A plain loop: Adam on Eq. 3 over the training set of a :class:`~hkmr.data.source.DataSource`,
evaluation every epoch, an atomic checkpoint every epoch (:mod:`hkmr.checkpoint`), and an
``on_epoch`` hook that receives the epoch's metrics and the checkpoint path. Nothing here
imports Ray: :class:`TrainerHooks` are the seams the Ray layer (``tuning/``) replaces — how the
model and loaders are prepared for DDP, which rank writes, where metrics go.

The trainer is given its data; it builds none. :func:`hkmr.train.source.prepare_source` makes
the source before a Trainer exists (for the frozen-features regime that may mean training the
shared encoder and extracting the feature cache first).

Determinism: given ``seed``, epoch e visits the samples in the order of
``torch.utils.data.DistributedSampler`` seeded with ``seed * 100003`` (a permutation seeded by
(seed, e), each rank taking every world-size-th index) and augments sample i with a generator
drawn from the seeded torch RNG; checkpoints hold the RNG states. So two runs with a seed give
the same metrics, and a run resumed from the checkpoint of epoch e ends exactly where the
uninterrupted run ends.

Data parallel (``hooks.world_size`` N > 1, a Ray Train trial of N workers): ``train.batch_size``
is the global batch, each rank takes its 1/N share of the one-process batch of every step, the
losses and the discriminator's gradients are averaged so that the N ranks take the
one-process optimiser steps, the epoch's metrics are reduced over the ranks and validation
runs on rank 0 only (:mod:`hkmr.train.distributed`). The image regimes' random augmentation
draws from each rank's own RNG stream, so there the N-rank run is the same training in
distribution, not bit for bit; the keypoint regime's inputs depend on (seed, epoch, sample)
only.

Learning rate (``train.lr_schedule``): ``constant`` (default) keeps ``train.lr``; ``cosine``
anneals it to 0 over the run's total steps (``train.epochs`` x steps per epoch) after an
optional linear warm-up of ``train.warmup_steps``, stepped after every optimisation step, so
the last batches' noise does not set the spread between seeds. The scheduler's state is in the
checkpoint; a resumed run follows the same schedule (a resume with more ``train.epochs``
re-plans the cosine over the new total from the current step). Every epoch's metrics hold
``train_lr``, the mean learning rate of its steps.

Frozen-features regime (``model.freeze_encoder``, :mod:`hkmr.features`): the source's encoder
weights are loaded into the model and frozen, and the regressor trains alone on the cached
features (in memory, so no loader workers). Every epoch's metrics name the ``regime`` and,
when frozen, the ``encoder_hash``.

In-the-loop optimisation (``train.in_the_loop``, :mod:`hkmr.train.loop`): after the forward
pass SMPLify fits the batch from the detached prediction and the best fits so far become the
SMPL targets of samples without ground truth; the fits store is saved next to every checkpoint
(``fits.npz``). ``data.smpl_fraction`` < 1 hides SMPL and 3D ground truth of a fixed subset.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..body.kinematics import JointKinematics
from ..body.model import BodyModel
from ..checkpoint import (CHECKPOINT, build_estimator, mean_params_for, read_checkpoint,
                          save_checkpoint)
from ..config import Config, to_dict
from ..data.batches import loader as batch_loader
from ..data.source import DataSource
from ..device import pick_device
from ..digest import state_digest
from ..eval.suites import evaluate_joints
from ..features.cache import StaleCacheError
from ..model.estimator import encoder_input, pose_body
from .distributed import Ranks, rank_batch_size
from .losses import total_loss
from .optim import load_optimizer_state, make_optimizer
from .speed import batch_to, pin_batches, prepare_for_speed
from .loop import InTheLoop, hide_ground_truth, kept_ground_truth, sample_keys
from .prior_term import PriorTerm

class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the step and the term."""


def _identity(x):
    return x


@dataclass
class TrainerHooks:
    """Seams for distributed runs. The defaults train in one process."""

    prepare_model: Callable[[nn.Module], nn.Module] = _identity
    prepare_loader: Callable[[DataLoader], DataLoader] = _identity
    on_epoch: Callable[[dict, Path | None], None] = lambda metrics, checkpoint: None
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    log: Callable[[str], None] = print

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``cfg``'s model on ``source`` into ``out_dir`` (resuming from its checkpoint)."""

    def __init__(self, cfg: Config, out_dir: str | Path, source: DataSource,
                 hooks: TrainerHooks | None = None):
        self.cfg, self.out_dir, self.source = cfg, Path(out_dir), source
        self.hooks = hooks or TrainerHooks()
        if source.regime != cfg.regime:
            raise ValueError(f"regime={cfg.regime} but the data source is {source.regime}; "
                             "make it with prepare_source(cfg)")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.seed)
        self.device = self.hooks.device or pick_device(cfg.train.device)
        self.ranks = Ranks(self.hooks.rank, self.hooks.world_size, self.device)
        self.body = BodyModel(cfg.body.model_path).to(self.device)
        self.kinematics = JointKinematics(self.body).to(self.device)
        self.train_set, self.val_set = source.train, source.val
        model = build_estimator(cfg)
        if source.frozen:
            model.freeze_encoder(source.encoder_state)
        model = model.to(self.device)
        self.model = prepare_for_speed(self.hooks.prepare_model(model), cfg.train, self.device)
        self.module = model  # unwrapped, for checkpoints
        self.prior = PriorTerm(cfg, self.device, self.ranks)
        # data.smpl_fraction and train.in_the_loop (SMPLify in the loop, hkmr/train/loop.py)
        self.sample_count, self.sample_key = sample_keys(self.train_set)
        self.gt_kept = kept_ground_truth(self.sample_count, cfg.data.smpl_fraction)
        self.loop = (InTheLoop(cfg, self.kinematics, self.sample_count,
                               mean_params_for(cfg).pose, self.device, self.hooks.world_size)
                     if cfg.train.in_the_loop else None)
        self.optimizer = make_optimizer((p for p in model.parameters() if p.requires_grad),
                                        cfg.train)
        self.amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # each rank's share of the global batch train.batch_size (hkmr/train/distributed.py)
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.hooks.world_size,
                                          rank=self.hooks.rank, shuffle=True,
                                          seed=cfg.seed * 100_003, drop_last=True)
        self.train_loader = self.hooks.prepare_loader(batch_loader(
            self.train_set, rank_batch_size(cfg.train.batch_size, self.hooks.world_size),
            self.sampler,
            drop_last=len(self.train_set) > cfg.train.batch_size,
            num_workers=source.loader_workers, pin_memory=pin_batches(cfg.train, self.device)))
        self.epoch, self.step, self.images_seen = 0, 0, 0
        self.history: list[dict] = []
        self.scheduler = self._lr_scheduler()
        if (self.out_dir / CHECKPOINT).exists():
            self.load(self.out_dir / CHECKPOINT)

    def steps_per_epoch(self) -> int:
        return min(len(self.train_loader), self.cfg.train.steps_per_epoch or math.inf)

    def _lr_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        """None for ``constant`` (the optimiser is untouched); else a closed-form factor of
        ``train.lr`` per step: linear warm-up, then cosine from 1 to 0 at the last step."""
        train = self.cfg.train
        if train.lr_schedule == "constant":
            return None
        total, warmup = train.epochs * self.steps_per_epoch(), train.warmup_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            done = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * done))
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    # -- one optimisation step ------------------------------------------------------------------
    def joints_of(self, out):
        if self.cfg.train.joints == "mesh" and out.vertices is None:
            return pose_body(self.body, out).joints
        return self.kinematics.joints_of(out)

    def train_step(self, batch: dict) -> dict[str, float]:
        batch = batch_to(batch, self.device, self.cfg.train)
        keys = self.sample_key(batch)
        batch = hide_ground_truth(batch, self.gt_kept, keys)
        with torch.autocast(self.device.type, enabled=self.amp):
            outputs = (self.model(features=batch["features"]) if "features" in batch
                       else self.model(encoder_input(batch)))
        if self.amp:  # the body model and losses run in float32
            outputs = [o.float() for o in outputs]
        fit_stats = {}
        if self.loop is not None:  # SMPLify fits become the SMPL targets (SPIN)
            batch, fit_stats = self.loop.step(batch, keys, outputs[-1])
        if outputs[0].vertices is not None:  # a regressed mesh (CMR): its (fitted) targets' mesh
            with torch.no_grad():
                batch["vertices"] = self.body.forward_pose(batch["pose"], batch["betas"]).vertices
        loss, terms = total_loss(outputs, batch, self.joints_of, self.cfg.loss, self.prior.module,
                                 self.ranks.loss_denominators if self.ranks.distributed else None)
        bad = [name for name, value in terms.items() if not torch.isfinite(value)]
        if bad or not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.epoch} step {self.step}: "
                + ", ".join(f"term '{n}' = {terms[n].item()}" for n in bad or terms))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        logged = {"lr": self.optimizer.param_groups[0]["lr"]}  # the lr of this step
        if self.scheduler is not None:
            self.scheduler.step()
        prior_loss = self.prior.step(outputs[-1])
        self.step += 1
        self.images_seen += batch["index"].shape[0] * self.hooks.world_size
        logged.update({f"loss_{k}": v.item() for k, v in terms.items()})
        logged["loss"] = loss.item()
        logged.update(fit_stats)
        if prior_loss is not None:
            logged["loss_discriminator"] = prior_loss
        return logged

    def train_epoch(self) -> dict[str, float]:
        """One epoch; its metrics are means over the samples of all ranks, its throughput
        all ranks' images per second of the slowest rank (hkmr/train/distributed.py)."""
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        self.source.set_epoch(self.epoch)
        sums: dict[str, float] = {}
        samples, start = 0, time.perf_counter()
        steps, limit = 0, self.cfg.train.steps_per_epoch or math.inf
        for batch in self.train_loader:
            n = batch["index"].shape[0]
            for k, v in self.train_step(batch).items():
                sums[k] = sums.get(k, 0.0) + v * n
            samples += n
            steps += 1
            if steps >= limit:
                break
        means, samples, seconds = self.ranks.reduce_epoch(sums, samples,
                                                          time.perf_counter() - start)
        metrics = {f"train_{k}": v for k, v in means.items()}
        metrics["train_seconds"] = seconds
        metrics["train_workers"] = self.ranks.world_size
        metrics["images_per_second"] = samples / max(seconds, 1e-9)
        return metrics

    def validate(self) -> dict[str, float]:
        """The validation metrics, computed once: on rank 0, the other ranks wait for them;
        ``val_evaluations`` counts the ranks that evaluated (1)."""
        ran = []

        def evaluate_here() -> dict[str, float]:
            ran.append(self.ranks.rank)
            return self.evaluate()

        metrics = self.ranks.from_main(evaluate_here)
        count = self.ranks.sum(torch.tensor([float(len(ran))], device=self.device))
        return {**metrics, "val_evaluations": int(count.item())}

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        return evaluate_joints(self.module, self.kinematics, self.val_set, self.device,
                               batch_size=self.cfg.train.batch_size,
                               limit=self.cfg.train.eval_samples, prefix="val_")

    def fit(self) -> dict:
        """Train until ``train.epochs``; returns the last epoch's metrics."""
        while self.epoch < self.cfg.train.epochs:
            metrics = {"epoch": self.epoch + 1}
            metrics.update(self.train_epoch())
            self.epoch += 1
            metrics.update(self.validate())
            metrics.update(step=self.step, images_seen=self.images_seen)
            metrics.update(self.source.describe())
            self.history.append(metrics)
            path = self.save() if self.hooks.is_main else None
            self.hooks.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in metrics.items()
                                    if k in ("epoch", "train_loss", "val_mpjpe", "val_pa_mpjpe",
                                             "images_per_second")))
            self.hooks.on_epoch(metrics, path)
        return self.history[-1] if self.history else {}

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "prior": self.prior.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "epoch": self.epoch, "step": self.step, "images_seen": self.images_seen,
                "history": self.history, "config": to_dict(self.cfg),
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                        "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                        else []}}

    def save(self) -> Path:
        """Write the checkpoint atomically (temporary name, then rename)."""
        if self.loop is not None:  # first: a checkpoint never refers to missing fits
            self.loop.save(self.out_dir, self.step)
        return save_checkpoint(self.out_dir / CHECKPOINT, self.state())

    def load(self, path: Path) -> None:
        blob = read_checkpoint(path, self.device)
        # keys added to the config since the checkpoint was written are not compared
        stored, current = blob.get("config", {}).get("model", {}), to_dict(self.cfg)["model"]
        if not stored or any(current.get(k) != v for k, v in stored.items()):
            raise ValueError(f"{path}: checkpoint was made with another model config; use a "
                             "new output folder or the same config")
        self.module.load_state_dict(blob["model"])
        if self.source.frozen and \
                state_digest(self.module.encoder.state_dict()) != self.source.encoder_hash:
            raise StaleCacheError(f"{path}: the checkpoint's frozen encoder is not the encoder "
                                  f"{self.source.encoder_hash} of the feature cache")
        load_optimizer_state(self.optimizer, blob["optimizer"], self.cfg.train)
        self.scaler.load_state_dict(blob["scaler"])
        if self.scheduler is not None:
            if blob.get("scheduler") is not None:
                self.scheduler.load_state_dict(blob["scheduler"])
            else:  # a checkpoint of a constant-lr run: the schedule continues from its step
                self.scheduler.last_epoch = blob["step"]
            factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)  # this config's
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * factor
        self.prior.load_state_dict(blob["prior"])
        self.epoch, self.step = blob["epoch"], blob["step"]
        self.images_seen, self.history = blob["images_seen"], blob["history"]
        if self.loop is not None:
            self.loop.load(path.parent, self.step, self.hooks.log,
                           required=blob["config"]["train"].get("in_the_loop", False))
        rng = blob["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.hooks.log(f"resumed from {path} at epoch {self.epoch}")
