"""The paper's evaluation suites on the synthetic test split (Sec. 4, Tables 1-5, Fig. 6).

A *suite* is one of :data:`SUITES`; the *protocols* are Human3.6M's P1 and P2:

* **P1 / P2**: all four views vs the frontal view (camera 3), as Human3.6M's protocols.
* **Table 1 columns**: Standard, Bar, Circle, Rectangle — the test set without occluders and
  with one random occluder of each kind per image (the data layer's standard occlusion sets).
* **Fig. 6**: MPJPE against degree of occlusion 1..5 per occluder kind. The paper occludes one
  joint at a time and averages over joints; here sample i of the test set is occluded on joint
  ``LSP14[i mod 14]``, so one pass per (kind, degree) averages over the 14 evaluation joints.
  The P2 points (``P2_degree_...`` keys) read the frontal images of the same passes, which
  under that rule cover only 7 of the 14 joints, so a P2 point averages over those 7.
* **Table 4 (right)**: 2D MPJPE in pixels and PCK on the joints the renderer marks as
  self-occluded ("invisible joints").
* **Table 5 (left)**: foreground/background and part segmentation accuracy and F1, rendering
  the predicted mesh with the data layer's part renderer (:mod:`hkmr.eval.segmentation`).

MPJPE and PA-MPJPE are reported on the 14 evaluation joints (and MPJPE on all 24), in mm.

Cost: an occluder depends only on (seed, image id, kind, ...), so an image of P2 (the frontal
camera) is occluded identically in P1; each Table 1 column is therefore one pass over the
P1 images and P2 is read off its frontal subset. With ``limit`` the pass covers the first
``limit`` images of P1 and the first ``limit`` images of P2 (so P2 keeps ``limit`` images).
Invisible joints and segmentation come from the Standard column's pass (the P1 images).

The test split comes as :class:`hkmr.data.source.TestSets`: image-backed, the occluders are
drawn onto the stored images; feature-backed (the frozen-features regime, :mod:`hkmr.features`),
every pass reads the cached features of the same images — the test split, its three standard
occluder sets and the 15 Fig. 6 sets — instead of drawing occluders and running the encoder.
Features are float16, so scores differ from the image path by rounding only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..body.joints import END_EFFECTORS
from ..body.kinematics import JointKinematics
from ..data.datasets import SpinDataset
from ..data.occlusion import DEGREES, KINDS, degree_key
from ..data.render import PartRenderer
from ..data.source import TestSets
from ..data.views import FRONTAL_VIEW
from ..model.estimator import MeshEstimator, weak_perspective
from .h36m import h36m_pass
from .predict import predict, predicted_vertices
from .metrics import joint_errors, mpjpe, mpjpe_2d, pa_mpjpe, pck, select_eval_joints
from .segmentation import SegmentationAccumulator

SUITES: tuple[str, ...] = ("table1", "degrees", "invisible", "segmentation")
PROTOCOLS: tuple[str, ...] = ("P1", "P2")
#: Table 1 columns: no occluder, then the standard set of each occluder kind
COLUMNS: tuple[str, ...] = ("standard",) + KINDS
#: PCK threshold as a fraction of the crop side. A body fills ~1/1.2 of the crop, so at
#: ~1.7 m stature 0.05 of the crop is ~10 cm: about MPII's PCKh@0.5 (half a head size).
PCK_FRACTION = 0.05


def parse_suites(text: str) -> tuple[str, ...]:
    """``"table1,degrees"`` or ``"all"`` -> the suites in :data:`SUITES` order."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return SUITES
    bad = [s for s in names if s not in SUITES]
    if bad or not names:
        raise ValueError(f"unknown suite(s) {', '.join(bad) or repr(text)}; choose from "
                         f"{', '.join(SUITES)} or all")
    return tuple(s for s in SUITES if s in names)


#: the suites a training regime cannot evaluate, and why
UNSUPPORTED = {"keypoints": {"segmentation": "the keypoint regime renders no images, so it "
                                             "has no part maps to compare a mesh with"}}


def suites_for_regime(text: str, regime: str) -> tuple[str, ...]:
    """:func:`parse_suites` for a model of ``regime``: ``all`` means every suite the regime
    can evaluate; a suite named that it cannot is a ValueError (before training, not after)."""
    suites = parse_suites(text)
    unsupported = UNSUPPORTED.get(regime, {})
    if [s.strip() for s in text.split(",") if s.strip()] == ["all"]:
        return tuple(s for s in suites if s not in unsupported)
    for suite in suites:
        if suite in unsupported:
            raise ValueError(f"--suites {suite}: {unsupported[suite]}; drop it")
    return suites


@torch.no_grad()
def evaluate_joints(model: MeshEstimator, kinematics: JointKinematics, dataset,
                    device: torch.device, batch_size: int = 64, limit: int = 0,
                    prefix: str = "") -> dict[str, float]:
    """Mean MPJPE (14 and 24 joints) and PA-MPJPE (14 joints) in mm over a dataset."""
    errors = {"mpjpe": [], "pa_mpjpe": [], "mpjpe_24": []}
    for batch, out in predict(model, dataset, device, batch_size, limit):
        pred = kinematics.joints_of(out).float().cpu()
        gt = batch["joints3d"][..., :3]
        errors["mpjpe"].append(mpjpe(select_eval_joints(pred), select_eval_joints(gt)))
        errors["pa_mpjpe"].append(pa_mpjpe(select_eval_joints(pred), select_eval_joints(gt)))
        errors["mpjpe_24"].append(mpjpe(pred, gt))
    return {f"{prefix}{k}": torch.cat(v).mean().item() if v else math.nan
            for k, v in errors.items()}


# -- one pass over a set of images ------------------------------------------------------------
@dataclasses.dataclass
class _Pass:
    """Per-image results of one pass: dataset positions, joint errors (mm; NaN where the
    ground truth lacks the joints) and, when asked for, pooled 2D errors and segmentation."""

    index: torch.Tensor
    frontal: torch.Tensor
    errors: dict[str, torch.Tensor]
    points2d: dict[str, torch.Tensor] | None = None
    segmentation: dict[str, float] | None = None


def _joint_errors(pred: torch.Tensor, joints3d: torch.Tensor, has3d: torch.Tensor,
                  occluded: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image errors (mm; NaN where the ground truth lacks the joints): MPJPE and
    PA-MPJPE on the 14 evaluation joints, MPJPE on all 24; ``occluded_mpjpe``, the mean error
    of the evaluation joints under the occluder (hip-centred as MPJPE; NaN when none is), since
    averaging over all 14 dilutes one occluded joint's error ~14x; ``ee_<chain>``, the error
    of each chain's end effector (pelvis-aligned, as the 24-joint MPJPE)."""
    gt, conf = joints3d[..., :3], joints3d[..., 3]
    ok14 = (has3d > 0) & (select_eval_joints(conf[..., None])[..., 0] > 0).all(-1)
    ok24 = (has3d > 0) & (conf > 0).all(-1)
    p14, g14 = select_eval_joints(pred), select_eval_joints(gt)
    nan = torch.tensor(math.nan)
    out = {"mpjpe": torch.where(ok14, mpjpe(p14, g14), nan),
           "pa_mpjpe": torch.where(ok14, pa_mpjpe(p14, g14), nan),
           "mpjpe_24": torch.where(ok24, mpjpe(pred, gt), nan)}
    if occluded is not None:
        per_joint = joint_errors(p14, g14)
        hidden = select_eval_joints(occluded[..., None])[..., 0] > 0
        mean = (per_joint * hidden).sum(-1) / hidden.sum(-1)
        out["occluded_mpjpe"] = torch.where(ok14 & hidden.any(-1), mean, nan)
    per_joint = joint_errors(pred, gt)
    for chain, joint in END_EFFECTORS.items():
        out[f"ee_{chain}"] = torch.where(ok24, per_joint[:, joint], nan)
    return out


def _run(model, kinematics, dataset: Dataset, indices, device, *, batch_size: int,
         size: int | None, image_size: int, with_2d: bool = False, body=None,
         seg_keep: np.ndarray | None = None) -> _Pass:
    """Run the model on ``dataset[indices]``. ``with_2d``: keep projected and ground-truth
    joints in pixels; ``body`` + ``seg_keep``: render the predicted meshes of the images at
    those positions and score them against the rendered ground-truth part maps."""
    index, frontal, errors = [], [], {}
    pts: dict[str, list] = {"pred": [], "gt": [], "inside": [], "visible": []}
    seg = renderer = None
    if body is not None and seg_keep is not None and len(seg_keep):
        seg = SegmentationAccumulator()
        renderer = PartRenderer(body.faces.cpu(), body.smpl.lbs_weights.cpu(), image_size)
    for batch, out in predict(model, Subset(dataset, [int(i) for i in indices]), device,
                              batch_size, size=size):
        pred = kinematics.joints_of(out).float().cpu()
        index.append(batch["index"])
        frontal.append(batch["view"] == FRONTAL_VIEW)
        for k, v in _joint_errors(pred, batch["joints3d"], batch["has_joints3d"],
                                  batch.get("occluded")).items():
            errors.setdefault(k, []).append(v)
        cam = out.cam.float().cpu()
        if with_2d:
            kp = batch["keypoints"]
            pts["pred"].append((weak_perspective(pred, cam) + 1) * image_size / 2)
            pts["gt"].append((kp[..., :2] + 1) * image_size / 2)
            pts["inside"].append((kp[..., 2] > 0) & (kp[..., :2].abs() < 1).all(-1))
            pts["visible"].append(batch["visible"] > 0)
        if seg is not None:
            keep = torch.from_numpy(np.isin(batch["index"].numpy(), seg_keep))
            if keep.any():
                k = keep.to(out.betas.device)
                verts = predicted_vertices(out, body)[k]
                seg.update(torch.from_numpy(renderer(verts.float(), cam[keep])),
                           batch["parts"][keep])
    return _Pass(torch.cat(index), torch.cat(frontal),
                 {k: torch.cat(v) for k, v in errors.items()},
                 {k: torch.cat(v) for k, v in pts.items()} if with_2d else None,
                 seg.result() if seg is not None else None)


def _mean(values: torch.Tensor) -> float:
    values = values[~values.isnan()]
    return values.mean().item() if len(values) else math.nan


def _first(positions: np.ndarray, limit: int) -> np.ndarray:
    return positions[:limit] if limit else positions


# -- the suites -------------------------------------------------------------------------------
#: the columns of the per-image errors (:func:`evaluate_suites_per_image`)
IMAGE_COLUMNS = ("image", "protocol", "occlusion", "degree", "mpjpe", "pa_mpjpe")


def _keep_images(images: dict | None, res: _Pass, sel: torch.Tensor, protocol: str,
                 occlusion: str, degree: int) -> None:
    if images is None:
        return
    n = int(sel.sum())
    images["image"] += res.index[sel].tolist()
    images["protocol"] += [protocol] * n
    images["occlusion"] += [occlusion] * n
    images["degree"] += [degree] * n
    images["mpjpe"] += res.errors["mpjpe"][sel].tolist()
    images["pa_mpjpe"] += res.errors["pa_mpjpe"][sel].tolist()


def _table1_pass(dataset, run_idx, p1_idx, p2_idx, column, images=None,
                 **kw) -> tuple[dict, _Pass]:
    res = _run(dataset=dataset, indices=run_idx, **kw)
    out = {}
    for protocol, members in (("P1", p1_idx), ("P2", p2_idx)):
        sel = torch.from_numpy(np.isin(res.index.numpy(), members))
        for name, values in res.errors.items():
            if name == "occluded_mpjpe" and column == "standard":
                continue  # no occluder, no occluded joints
            out[f"{protocol}_{column}_{name}"] = _mean(values[sel])
        out[f"{protocol}_{column}_images"] = float(sel.sum())
        _keep_images(images, res, sel, protocol, column, 0)
    return out, res


def _invisible(res: _Pass, p1_idx: np.ndarray, image_size: int) -> dict[str, float]:
    """Table 4 (right): pooled over every in-crop joint the renderer marks self-occluded."""
    keep = torch.from_numpy(np.isin(res.index.numpy(), p1_idx))
    p = {k: v[keep] for k, v in res.points2d.items()}
    pred, gt = p["pred"].reshape(1, -1, 2), p["gt"].reshape(1, -1, 2)
    threshold = PCK_FRACTION * image_size
    out = {}
    for name, mask in (("invisible", p["inside"] & ~p["visible"]), ("all", p["inside"])):
        m = mask.reshape(1, -1).float()
        out[f"{name}_mpjpe_2d_px"] = mpjpe_2d(pred, gt, m).item()
        out[f"{name}_pck"] = 100 * pck(pred, gt, m, threshold).item()
        out[f"{name}_joints"] = m.sum().item()
    out["pck_threshold_px"] = threshold
    return out


def evaluate_suites(model: MeshEstimator, body, kinematics: JointKinematics,
                    test_sets: TestSets, device: torch.device, *, size: int | None = None,
                    batch_size: int = 64, limit: int = 0, suites=SUITES,
                    degree_limit: int = 0) -> dict[str, float]:
    """The evaluation ``suites`` of Sec. 4 on a test split (:class:`TestSets`).

    ``size``: the model's input side (test images are resized to it; None = as stored);
    ``limit``: test images per suite (0 = all); ``degree_limit``: images per (kind, degree)
    pass of Fig. 6 (0 = all). Returns flat keys (MPJPE in mm, 2D errors in pixels of the
    stored crop, accuracy and PCK in %, F1 in 0..1):

    * table1: ``{P1,P2}_{standard,bar,circle,rectangle}_{mpjpe,pa_mpjpe,mpjpe_24,images}``,
      ``{P1,P2}_{standard,...}_ee_<chain>`` (each chain's end effector) and, for the occluded
      columns, ``{P1,P2}_{bar,circle,rectangle}_occluded_mpjpe`` (the occluded joints' own
      error, see :func:`_joint_errors`)
    * degrees: ``degree_{bar,circle,rectangle}_{1..5}_{mpjpe,occluded_mpjpe}`` (P1) and the
      same with a ``P2_`` prefix (the frontal images of the same passes)
    * invisible: ``invisible_mpjpe_2d_px``, ``invisible_pck``, ``invisible_joints`` and the
      same for ``all`` in-crop joints; ``pck_threshold_px``
    * segmentation: ``seg_{fb,part,part24}_{acc,f1}``, ``seg_images``

    """
    return evaluate_suites_per_image(model, body, kinematics, test_sets, device, size=size,
                                     batch_size=batch_size, limit=limit, suites=suites,
                                     degree_limit=degree_limit, collect=False)[0]


def evaluate_suites_per_image(model: MeshEstimator, body, kinematics: JointKinematics,
                              test_sets: TestSets, device: torch.device, *,
                              size: int | None = None, batch_size: int = 64, limit: int = 0,
                              suites=SUITES, degree_limit: int = 0, collect: bool = True
                              ) -> tuple[dict[str, float], dict[str, list]]:
    """:func:`evaluate_suites`' metrics and the per-image joint errors behind them, as
    columns :data:`IMAGE_COLUMNS`: the test image's id, protocol, occlusion (a Table 1
    column, or the occluder kind of a Fig. 6 pass), degree (0 in Table 1, 1..5 in Fig. 6),
    MPJPE and PA-MPJPE (mm, NaN where the ground truth lacks joints). The means of these
    rows are the metrics; ``collect=False`` skips collecting them."""
    images = {c: [] for c in IMAGE_COLUMNS} if collect else None
    unknown = set(suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown evaluation suite(s) {sorted(unknown)}; choose from {SUITES}")
    p1_set = test_sets.standard("P1", with_parts="segmentation" in suites)
    p2_rows = test_sets.standard("P2").rows
    image_size = test_sets.image_size
    p1_idx = _first(np.arange(len(p1_set)), limit)
    p2_idx = _first(np.searchsorted(p1_set.rows, p2_rows), limit)
    kw = dict(model=model, kinematics=kinematics, device=device, batch_size=batch_size,
              size=size, image_size=image_size)
    was_training = model.training
    out: dict[str, float] = {}
    try:
        wants = set(suites)
        if wants & {"table1", "invisible", "segmentation"}:
            run_idx = np.union1d(p1_idx, p2_idx) if "table1" in wants else p1_idx
            seg = p1_idx if "segmentation" in wants else None
            metrics, res = _table1_pass(p1_set, run_idx, p1_idx, p2_idx, "standard",
                                        images if "table1" in wants else None,
                                        with_2d="invisible" in wants, body=body, seg_keep=seg,
                                        **kw)
            if "table1" in wants:
                out.update(metrics)
            if "invisible" in wants:
                out.update(_invisible(res, p1_idx, image_size))
            if res.segmentation is not None:
                out.update(res.segmentation)
        if "table1" in wants:
            for column in KINDS:
                out.update(_table1_pass(test_sets.occluded(column), run_idx, p1_idx, p2_idx,
                                        column, images, **kw)[0])
        if "degrees" in wants:
            n = len(_first(_first(p1_idx, degree_limit), limit))
            for kind in KINDS:
                for degree in DEGREES:
                    res = _run(dataset=test_sets.joint_cycle(kind, degree),
                               indices=np.arange(n), **kw)
                    for protocol, sel in (("P1", slice(None)), ("P2", res.frontal)):
                        if protocol == "P2" and not res.frontal.any():
                            continue  # a degree_limit with no frontal image among its first
                        for metric in ("mpjpe", "occluded_mpjpe"):
                            if metric in res.errors:
                                out[degree_key(protocol, kind, degree, metric)] = _mean(
                                    res.errors[metric][sel])
                    _keep_images(images, res, torch.ones(len(res.index), dtype=torch.bool),
                                 "P1", kind, degree)
    finally:
        model.train(was_training)
    return out, images or {}


def evaluate_spin(model: MeshEstimator, kinematics: JointKinematics, npz: str | Path,
                  img_root: str | Path, device: torch.device, *, size: int,
                  batch_size: int = 64, limit: int = 0, columns=COLUMNS, body=None,
                  regressor: torch.Tensor | None = None) -> dict[str, float]:
    """Table 1 on a SPIN-format real test set (e.g. SPIN's ``h36m_valid_protocol1.npz``),
    cropped to ``size`` px. Human3.6M images (camera serial in the name) give P1 and P2;
    other sets one row ``all``. Keys ``spin_{P1,P2|all}_{column}_{mpjpe,pa_mpjpe,images}``;
    MPJPE on the 14 joints, only images whose 3D joints have all 14 (SPIN's ``S``).

    ``regressor`` (17 x V, with ``body``): the joints are SPIN's, regressed from the predicted
    mesh (:mod:`hkmr.eval.h36m`), as Table 1's numbers were made; without it they are SMPL's
    kinematic joints against ``S`` mapped to SMPL order (not comparable with the paper)."""
    base = SpinDataset(npz, img_root, size=size)
    view = base.view[base.rows]
    if (view >= 0).any():
        groups = {"P1": np.nonzero(view >= 0)[0], "P2": np.nonzero(view == FRONTAL_VIEW)[0]}
    else:
        groups = {"all": np.arange(len(base))}
    groups = {k: _first(v, limit) for k, v in groups.items()}
    run_idx = np.unique(np.concatenate(list(groups.values())))
    was_training = model.training
    out = {}
    try:
        for column in columns:
            dataset = base if column == "standard" else base.with_occlusion(column)
            if regressor is not None:
                index, errors = h36m_pass(model, body, regressor, dataset, run_idx, device,
                                          batch_size=batch_size, size=size)
            else:
                res = _run(model, kinematics, dataset, run_idx, device, batch_size=batch_size,
                           size=size, image_size=size)
                index, errors = res.index, res.errors
            for name, members in groups.items():
                sel = torch.from_numpy(np.isin(index.numpy(), members))
                for metric in ("mpjpe", "pa_mpjpe"):
                    out[f"spin_{name}_{column}_{metric}"] = _mean(errors[metric][sel])
                out[f"spin_{name}_{column}_images"] = float(
                    (sel & ~errors["mpjpe"].isnan()).sum())
    finally:
        model.train(was_training)
    return out
