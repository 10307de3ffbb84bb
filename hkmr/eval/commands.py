"""``hkmr eval`` and ``hkmr compare``: a trained model under the paper's evaluation suites
(Sec. 4: Tables 1, 4, 5 and Fig. 6), alone or side by side in Table 4's shape.

:func:`register` needs only argparse (``hkmr --help`` builds every parser): the model, data and
metric code (torch) are imported by the functions that run it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, ConfigError, EvalConfig, make_config, parse_override, to_dict
from ..options import (add_batch_size, add_device, add_eval_limits, add_out, add_overrides,
                       add_suites)

if TYPE_CHECKING:
    import torch

_OVERRIDE_HELP = ("overrides of the checkpoint's config that do not change the model, e.g. "
                  "data.synthetic=DIR or body.model_path=SMPL.pkl (model.* keys are refused)")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval", help="evaluate a checkpoint under the paper's evaluation suites",
        description="Runs the evaluation suites on the synthetic test split the checkpoint "
        "was trained with (or --data) and, with --spin-npz, Table 1 on a SPIN-format set. "
        "Writes metrics.json, metrics.parquet, summary.md (and degrees.png) to --out and "
        "prints the Table 1 MPJPE table.")
    ev.add_argument("--checkpoint", type=Path, required=True,
                    help="checkpoint.pt or the training folder holding it")
    add_suites(ev)
    ev.add_argument("--data", type=Path, help="synthetic dataset folder (default: the one of "
                    "the checkpoint's config, generated into the cache if missing)")
    ev.add_argument("--spin-npz", type=Path, help="SPIN-format .npz to evaluate Table 1 on")
    ev.add_argument("--spin-images", type=Path, help="image folder of --spin-npz")
    ev.add_argument("--h36m-regressor", type=Path, help="J_regressor_h36m.npy: Human3.6M joints "
                    "regressed from the predicted mesh, as the paper's Table 1 (default: the "
                    "file beside --spin-npz or in its parent folder, SPIN's data/ layout)")
    ev.add_argument("--lsp-npz", type=Path, help="SPIN-format LSP test .npz with maskname/"
                    "partname: Table 5 (left) against its masks, in the original images")
    ev.add_argument("--lsp-images", type=Path, help="image folder of --lsp-npz")
    ev.add_argument("--lsp-masks", type=Path, help="folder of its masks (default: --lsp-images)")
    ev.add_argument("--mpii-npz", type=Path, help="SPIN-format MPII-style .npz with "
                    "part_visible: Table 4 (right), the joints annotated invisible")
    ev.add_argument("--mpii-images", type=Path, help="image folder of --mpii-npz")
    add_out(ev, what="default: the checkpoint's folder")
    add_device(ev)
    add_batch_size(ev)
    add_eval_limits(ev)
    add_overrides(ev, _OVERRIDE_HELP)
    ev.set_defaults(func=_eval)

    cmp = sub.add_parser(
        "compare", help="evaluate trained checkpoints side by side in Table 4's shape",
        description="Evaluates each NAME=PATH checkpoint on one synthetic test split (the "
        "checkpoints' own, which must be the same, or --data) with --suites, writes each "
        "one's metrics to OUT/NAME/ as hkmr eval does, and OUT/table4.md and OUT/table4.json: "
        "a row per checkpoint, MPJPE on the standard and occluded sets (P1, P2) and the "
        "invisible joints' 2D error and PCK. E.g. hkmr compare --checkpoint SPIN=runs/spin "
        "--checkpoint HKMR_MF=runs/hkmr_mf --out results/table4.")
    cmp.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                     help="a row of the table: its name and checkpoint (file or training "
                     "folder); give it once per model")
    add_out(cmp, required=True)
    add_suites(cmp, "table1,invisible")
    cmp.add_argument("--data", type=Path, help="synthetic dataset folder to evaluate on")
    add_device(cmp)
    add_batch_size(cmp)
    add_eval_limits(cmp)
    add_overrides(cmp, _OVERRIDE_HELP + "; applied to every checkpoint")
    cmp.set_defaults(func=_compare)


def with_overrides(cfg: Config, overrides: list[str], what: str) -> Config:
    """The checkpoint's config with ``key=value`` overrides that leave the model alone."""
    pairs = [parse_override(text) for text in overrides]
    model_keys = [key for key, _ in pairs if key.startswith("model.")]
    if model_keys:
        raise ConfigError(f"{what}: {', '.join(model_keys)} would change the model its "
                          "weights were trained as; train a new model instead")
    return make_config(to_dict(cfg), dict(pairs))


def evaluate_and_write(model, body, device: torch.device, test_sets, out_dir: Path, args,
                       suites, meta: dict, title: str, size: int,
                       real: EvalConfig | None = None) -> dict[str, float]:
    """The suites on ``test_sets`` and the real-data sets of ``real`` (``eval.*``, overridden
    by ``args``' ``--spin-npz``-style flags), written to ``out_dir`` with ``meta``; prints the
    Table 1 MPJPE table. Shared with ``hkmr train``."""
    from ..body.kinematics import JointKinematics
    from .real import check_real, evaluate_real, with_flags
    from .results import write_results
    from .suites import evaluate_suites

    kin = JointKinematics(body).to(device)
    real = with_flags(real or EvalConfig(), args)
    regressor, joints = check_real(real, body)  # bad real-data input fails before any work
    if joints:
        meta["spin_joints"] = joints
    start = time.perf_counter()
    metrics = evaluate_suites(model, body, kin, test_sets, device, size=size,
                              batch_size=args.batch_size, limit=args.limit, suites=suites,
                              degree_limit=args.degree_limit)
    metrics.update(evaluate_real(model, body, kin, real, device, size=size,
                                 batch_size=args.batch_size, limit=args.limit,
                                 regressor=regressor))
    meta.update(data=test_sets.location, suites=",".join(suites),
                limit=args.limit, degree_limit=args.degree_limit,
                eval_seconds=round(time.perf_counter() - start, 1))
    paths = write_results(out_dir, metrics, meta, title)
    if "table1" in suites:
        from .results import table1_markdown

        print("\nMPJPE (mm), synthetic test split:\n" + table1_markdown(metrics))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return metrics


def _data_root(cfg: Config, data: Path | None) -> Path:
    from ..data.shards import load_manifest
    from ..data.synthetic import ensure_synthetic

    if data is not None:
        load_manifest(data)  # a clear error when --data is not a dataset
        return data
    return ensure_synthetic(cfg.data)


def _eval(args: argparse.Namespace) -> None:
    from ..checkpoint import checkpoint_file, load_estimator
    from ..data.source import ImageTestSets
    from ..device import pick_device
    from ..digest import provenance
    from .suites import suites_for_regime

    device = pick_device(args.device)
    ckpt = checkpoint_file(args.checkpoint)
    cfg, model, body = load_estimator(ckpt, device)
    cfg = with_overrides(cfg, args.overrides, f"hkmr eval {ckpt}")
    regime = cfg.regime or cfg.implied_regime
    suites = suites_for_regime(args.suites, regime)
    meta = provenance(checkpoint=str(ckpt), regressor=cfg.model.regressor,
                      encoder=cfg.model.encoder, image_size=cfg.data.synth_size)
    if regime == "keypoints":  # the model reads 2D keypoints: its pool's test sets
        if args.data is not None:
            raise ValueError(f"--data {args.data}: {ckpt} is a keypoint-regime checkpoint; it "
                             "is evaluated on the keypoint pool of its config (drop --data)")
        from ..data.keypoint_dataset import keypoint_test_sets

        test_sets = keypoint_test_sets(cfg)
    else:
        test_sets = ImageTestSets(_data_root(cfg, args.data))
    evaluate_and_write(model, body, device, test_sets, args.out or ckpt.parent, args, suites,
                       meta, f"hkmr eval {ckpt}", cfg.data.synth_size, cfg.eval)


def _named_checkpoints(items: list[str]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--checkpoint {item!r} must look like NAME=PATH, e.g. "
                             "HKMR_MF=runs/hkmr_mf")
        if name.strip() in named:
            raise ValueError(f"--checkpoint name {name.strip()!r} is given twice")
        named[name.strip()] = Path(path.strip())
    return named


def _compare(args: argparse.Namespace) -> None:
    from ..checkpoint import load_estimator
    from ..data.source import ImageTestSets
    from ..device import pick_device
    from ..digest import provenance
    from ..io import atomic_path
    from .results import json_ready, table4_markdown
    from .suites import parse_suites

    suites = parse_suites(args.suites)
    device = pick_device(args.device)
    named = _named_checkpoints(args.checkpoint)
    loaded = {}
    for name, path in named.items():
        cfg, model, body = load_estimator(path, device)
        if (cfg.regime or cfg.implied_regime) == "keypoints":
            raise ValueError(f"--checkpoint {name}={path}: hkmr compare evaluates image models "
                             "on one rendered test split; evaluate a keypoint-regime "
                             "checkpoint with hkmr eval")
        loaded[name] = (with_overrides(cfg, args.overrides, f"hkmr compare {name}"), model, body)
    roots = {name: _data_root(cfg, args.data) for name, (cfg, _, _) in loaded.items()}
    if len(set(roots.values())) > 1:
        raise ValueError("the checkpoints were trained on different synthetic datasets ("
                         + ", ".join(f"{n}: {r}" for n, r in roots.items())
                         + "); pass --data to evaluate them on one")
    runs, meta = {}, provenance(suites=",".join(suites), limit=args.limit)
    for name, (cfg, model, body) in loaded.items():
        path = named[name]
        run_meta = provenance(checkpoint=str(path), regressor=cfg.model.regressor,
                              in_the_loop=cfg.train.in_the_loop, encoder=cfg.model.encoder)
        meta[name] = f"{path} ({cfg.model.regressor}, in_the_loop={cfg.train.in_the_loop})"
        runs[name] = evaluate_and_write(model, body, device, ImageTestSets(roots[name]),
                                        args.out / name, args, suites, run_meta,
                                        f"hkmr compare: {name}", cfg.data.synth_size,
                                        cfg.eval)
    text = "# Table 4: " + " vs ".join(runs) + "\n\n"
    text += "\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n\n"
    text += "MPJPE (mm, 14 joints):\n\n" + table4_markdown(runs)
    text += "\nPA-MPJPE (mm, 14 joints):\n\n" + table4_markdown(runs, "pa_mpjpe")
    with atomic_path(args.out / "table4.md") as tmp:
        tmp.write_text(text)
    with atomic_path(args.out / "table4.json") as tmp:
        blob = {"meta": meta, "runs": {n: json_ready(m) for n, m in runs.items()}}
        tmp.write_text(json.dumps(blob, indent=2, default=str) + "\n")
    print("\n" + table4_markdown(runs) + f"\nwrote {args.out / 'table4.md'}")
