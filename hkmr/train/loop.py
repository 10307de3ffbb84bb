"""The in-the-loop optimisation of a training step (``train.in_the_loop``; paper Sec. 3.4,
Table 4: SPIN's encoder-regressor-optimizer with the HKMR regressor, "HKMR_MF").

Each step, as SPIN (Kolotouros et al., ICCV 2019) does:

1. read the stored fits of the batch's samples (:class:`~hkmr.train.fits.FitsStore`, in the
   frame of this step's augmentation) and score them on this step's keypoints, with the camera
   translation that explains them best (:func:`~hkmr.train.smplify.estimate_translation`) —
   the keypoints move with the augmentation, so an old loss is not comparable;
2. run SMPLify from the detached final regressor output (batched, samples without SMPL
   ground truth only);
3. keep the better of the two per sample, store it (un-augmented) where it is new; shapes with
   any |β| > 3 are reset to 0 (SPIN);
4. supervise the regressor with it: the batch's ``pose``/``betas`` targets become the fits and
   ``has_smpl`` is set where the fit's loss is below ``train.fit_threshold``. Ground-truth
   SMPL always wins.

``data.smpl_fraction`` < 1 hides SMPL and 3D ground truth of a fixed subset of the training
samples (:func:`kept_ground_truth`), making them 2D-only like SPIN's in-the-wild sets — with
all-synthetic data the loop would otherwise never supervise anything.

A sample's store key is its position in the training set (in a mixture: the dataset's offset
plus the item's position), so fits survive epochs and resumes (:func:`sample_keys`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..config import Config
from .fits import FITS, FitsStore
from .smplify import SMPLify, estimate_translation, make_pose_prior, reprojection_loss

KeyFn = Callable[[dict], torch.Tensor]


def _axis_angle(out) -> torch.Tensor:
    """(B, 72) axis-angle pose of a regressor output (HMR predicts 6D, HKMR axis-angle)."""
    from ..body.rotations import matrix_to_axis_angle

    aa = out.pose_aa if out.pose_aa is not None else matrix_to_axis_angle(out.pose)
    return aa.detach().reshape(-1, 72)


def sample_keys(dataset) -> tuple[int, KeyFn]:
    """(number of keys, batch -> (B,) int64 keys) for a training set."""
    from ..data.datasets import MixtureDataset

    if isinstance(dataset, MixtureDataset):
        sizes = torch.tensor([0] + [len(d) for d in dataset.datasets])
        offsets = sizes.cumsum(0)
        return int(sizes.sum()), lambda batch: (offsets.to(batch["index"].device)[
            batch["dataset"]] + batch["index"])
    return len(dataset), lambda batch: batch["index"]


def kept_ground_truth(n: int, fraction: float) -> torch.Tensor | None:
    """Which of ``n`` samples keep their SMPL and 3D ground truth: a fixed subset (seeded by
    nothing but n) of round(fraction * n); None when all do."""
    if fraction >= 1.0:
        return None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(20_190_723))
    kept = torch.zeros(n, dtype=torch.bool)
    kept[order[: round(fraction * n)]] = True
    return kept


def hide_ground_truth(batch: dict, kept: torch.Tensor | None, keys: torch.Tensor) -> dict:
    """The batch with ``has_smpl`` and ``has_joints3d`` zeroed where ground truth is hidden."""
    if kept is None:
        return batch
    keep = kept.to(keys.device)[keys].to(batch["has_smpl"].dtype)
    return {**batch, "has_smpl": batch["has_smpl"] * keep,
            "has_joints3d": batch["has_joints3d"] * keep}


class InTheLoop:
    def __init__(self, cfg: Config, kinematics, n: int, mean_pose: torch.Tensor,
                 device: torch.device, world_size: int = 1):
        if world_size > 1:
            raise ValueError("train.in_the_loop=true trains in one process only: each of "
                             f"{world_size} DDP workers would keep its own fits store; use "
                             "workers_per_trial <= 1")
        t = cfg.train
        self.smplify = SMPLify(kinematics, make_pose_prior(t.smplify_prior, cfg, device),
                               iters=t.smplify_iters, lr=t.smplify_lr)
        self.store = FitsStore(n, mean_pose)
        self.threshold = t.fit_threshold

    def step(self, batch: dict, keys: torch.Tensor, out) -> tuple[dict, dict[str, float]]:
        """Steps 1-4 of the module docstring: (batch with fit targets, statistics)."""
        flip, rot, kp = batch["flip"], batch["rot_deg"], batch["keypoints"]
        has_smpl = batch["has_smpl"] > 0
        todo = ~has_smpl
        pose, betas, loss = self.store.read(keys, flip, rot)
        stored = todo & ~torch.isinf(loss)
        if stored.any():  # score the stored fits on this step's keypoints
            joints = self.smplify.kinematics(pose[stored], betas[stored])
            transl = estimate_translation(joints, kp[stored])
            loss[stored] = reprojection_loss(joints, transl, kp[stored], reduce="mean")
        scored = loss.clone()
        better = torch.zeros_like(todo)
        if todo.any():
            fit = self.smplify(_axis_angle(out)[todo], out.betas[todo], out.cam[todo], kp[todo])
            fit.betas[(fit.betas.abs() > 3).any(1)] = 0.0
            wins = fit.loss < loss[todo]
            rows = todo.nonzero()[:, 0][wins]
            better[rows] = True
            pose[rows], betas[rows], loss[rows] = fit.pose[wins], fit.betas[wins], fit.loss[wins]
        write = better | has_smpl
        if write.any():
            gt = has_smpl[:, None]
            self.store.update(keys[write], torch.where(gt, batch["pose"], pose)[write],
                              torch.where(gt, batch["betas"], betas)[write], loss[write],
                              flip[write], rot[write], has_smpl=has_smpl[write],
                              against=scored[write])
        valid = todo & (loss < self.threshold)
        targets = {**batch, "pose": torch.where(valid[:, None], pose, batch["pose"]),
                   "betas": torch.where(valid[:, None], betas, batch["betas"]),
                   "has_smpl": (has_smpl | valid).to(batch["has_smpl"].dtype)}
        n = max(int(todo.sum()), 1)
        return targets, {"fit_valid": valid.sum().item() / n,
                         "fit_improved": better.sum().item() / n,
                         "fit_loss": loss[todo].clamp(max=1e6).mean().item() if todo.any()
                         else 0.0}

    def save(self, out_dir: Path, step: int) -> Path:
        return self.store.save(Path(out_dir) / FITS, step)

    def load(self, out_dir: Path, step: int, log=print, required: bool = True) -> None:
        """Read the store saved beside a checkpoint. ``required``: the checkpoint was made in
        the loop (else a run switching the loop on starts with an empty store)."""
        path = Path(out_dir) / FITS
        if not path.exists():
            if not required:
                log(f"{path}: no fits yet (the checkpoint was trained without the loop)")
                return
            raise FileNotFoundError(f"{path}: the checkpoint was written with train.in_the_loop "
                                    "but its fits store is missing")
        saved = self.store.load(path)
        if saved != step:
            log(f"{path}: fits saved at step {saved}, checkpoint at step {step}; keeping the "
                "fits (they only ever improve)")
