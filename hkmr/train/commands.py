"""``hkmr train``, ``hkmr eval``, ``hkmr compare`` and ``hkmr demo``: train a model (Sec. 3.3),
evaluate it under the paper's protocols (Sec. 4: Tables 1, 4, 5 and Fig. 6), compare trained
models in Table 4's shape and look at a model's output."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from pathlib import Path

import yaml

from ..io import atomic_path

SUITE_HELP = "comma-separated evaluation suites: table1, degrees, invisible, segmentation, or all"


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train", help="train a model, then evaluate it on the test split",
        description="Trains with a preset (smoke, cpu, paper) or YAML file plus key=value "
        "overrides; prints a line per epoch and writes TensorBoard scalars to OUT/tensorboard. "
        "Re-running with the same --out resumes from OUT/checkpoint.pt. At the end it runs "
        "every evaluation protocol on the test split and writes OUT/metrics.json, "
        "metrics.parquet, summary.md and degrees.png.")
    train.add_argument("--config", required=True, help="preset name (smoke, cpu, paper) or YAML")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="config overrides, e.g. train.epochs=2 model.outer_iters=2")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.add_argument("--suites", default="all", help=SUITE_HELP + " (after training)")
    train.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    _limits(train)
    train.set_defaults(func=_train)

    ev = sub.add_parser(
        "eval", help="evaluate a checkpoint under the paper's protocols",
        description="Runs the evaluation suites on the synthetic test split the checkpoint "
        "was trained with (or --data) and, with --spin-npz, Table 1 on a SPIN-format set. "
        "Writes metrics.json, metrics.parquet, summary.md (and degrees.png) to --out "
        "(default: the checkpoint's folder) and prints the Table 1 MPJPE table.")
    ev.add_argument("--checkpoint", type=Path, required=True,
                    help="checkpoint.pt or the training folder holding it")
    ev.add_argument("--protocol", default="all", help=SUITE_HELP)
    ev.add_argument("--data", type=Path, help="synthetic dataset folder (default: the one of "
                    "the checkpoint's config, generated into the cache if missing)")
    ev.add_argument("--spin-npz", type=Path, help="SPIN-format .npz to evaluate Table 1 on")
    ev.add_argument("--spin-images", type=Path, help="image folder of --spin-npz")
    ev.add_argument("--out", type=Path, help="output folder (default: next to the checkpoint)")
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    _limits(ev)
    ev.set_defaults(func=_eval)

    cmp = sub.add_parser(
        "compare", help="evaluate trained checkpoints side by side in Table 4's shape",
        description="Evaluates each NAME=PATH checkpoint on one synthetic test split (the "
        "checkpoints' own, which must be the same, or --data) with the suites of --protocol, "
        "writes each one's metrics to OUT/NAME/ as hkmr eval does, and OUT/table4.md and "
        "OUT/table4.json: a row per checkpoint, MPJPE on the standard and occluded sets (P1, "
        "P2) and the invisible joints' 2D error and PCK. E.g. hkmr compare --checkpoint "
        "SPIN=runs/spin --checkpoint HKMR_MF=runs/hkmr_mf --out results/table4.")
    cmp.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                     help="a row of the table: its name and checkpoint (file or training "
                     "folder); give it once per model")
    cmp.add_argument("--out", type=Path, required=True, help="output folder")
    cmp.add_argument("--protocol", default="table1,invisible", help=SUITE_HELP)
    cmp.add_argument("--data", type=Path, help="synthetic dataset folder to evaluate on")
    cmp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    _limits(cmp)
    cmp.set_defaults(func=_compare)

    demo = sub.add_parser(
        "demo", help="recover the mesh of one image: an .obj and an overlay PNG",
        description="With IMAGE, its largest centred square is resized to the model's input; "
        "without, test image --index of the checkpoint's synthetic dataset is used. Writes "
        "OUT/mesh.obj (y up) and OUT/demo.png (input, mesh and joints over it, side view).")
    demo.add_argument("image", nargs="?", type=Path, help="image file (default: a test render)")
    demo.add_argument("--checkpoint", type=Path, required=True,
                      help="checkpoint.pt or training folder (hkmr train --config smoke makes "
                      "one in a few minutes)")
    demo.add_argument("--out", type=Path, default=Path("demo_output"))
    demo.add_argument("--index", type=int, default=0, help="test image when no IMAGE is given")
    demo.add_argument("--data", type=Path, help="synthetic dataset folder for the test image")
    demo.add_argument("--display", type=int, default=384, help="side of each panel in px")
    demo.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    demo.set_defaults(func=_demo)


def _limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=0,
                        help="test images per suite (0 = all; P1 and P2 each keep this many)")
    parser.add_argument("--degree-limit", type=int, default=0,
                        help="images per (occluder, degree) pass of Fig. 6 (0 = all)")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")


def parse_suites(text: str) -> tuple[str, ...]:
    from ..eval.protocols import SUITES

    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return SUITES
    bad = [s for s in names if s not in SUITES]
    if bad or not names:
        raise ValueError(f"unknown suite(s) {', '.join(bad) or repr(text)}; choose from "
                         f"{', '.join(SUITES)} or all")
    return tuple(s for s in SUITES if s in names)


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=5,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _meta(**extra) -> dict:
    from .. import __version__

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "hkmr": __version__, "git_revision": git_revision()}
    meta.update(extra)
    return meta


def _evaluate_and_write(cfg, model, body, device, data_root, out_dir, args, suites, meta,
                        title):
    from ..body.joints import JointKinematics
    from ..eval.protocols import evaluate_protocols, evaluate_spin
    from ..eval.report import table1_markdown, write_results

    kin = JointKinematics(body).to(device)
    start = time.perf_counter()
    metrics = evaluate_protocols(model, body, kin, data_root, device,
                                 size=cfg.data.synth_size, batch_size=args.batch_size,
                                 limit=args.limit, suites=suites,
                                 degree_limit=args.degree_limit)
    if getattr(args, "spin_npz", None):
        if not args.spin_images:
            raise ValueError("--spin-npz needs --spin-images (the folder of its images)")
        metrics.update(evaluate_spin(model, kin, args.spin_npz, args.spin_images, device,
                                     size=cfg.data.synth_size, batch_size=args.batch_size,
                                     limit=args.limit))
    meta.update(data=str(data_root), suites=",".join(suites), limit=args.limit,
                degree_limit=args.degree_limit,
                eval_seconds=round(time.perf_counter() - start, 1))
    paths = write_results(out_dir, metrics, meta, title)
    if "table1" in suites:
        print("\nMPJPE (mm), synthetic test split:\n" + table1_markdown(metrics))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return metrics


def _train(args: argparse.Namespace) -> None:
    from tensorboardX import SummaryWriter

    from ..config import load_config, to_dict
    from .data import ensure_synthetic
    from .trainer import CHECKPOINT, Trainer, TrainerHooks

    cfg = load_config(args.config, args.overrides)
    suites = parse_suites(args.suites)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    writer = SummaryWriter(str(args.out / "tensorboard"))

    def report(metrics: dict, checkpoint) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and key != "epoch":
                writer.add_scalar(key, value, metrics["epoch"])
        writer.flush()

    def log(msg: str) -> None:
        print(msg, flush=True)

    start = time.perf_counter()
    try:
        trainer = Trainer(cfg, args.out, TrainerHooks(report=report, log=log))
        print(f"training {cfg.model.regressor} ({cfg.model.encoder}, {cfg.data.synth_size} px) "
              f"on {trainer.device} for {cfg.train.epochs} epochs; {len(trainer.train_set)} "
              f"training images -> {args.out}", flush=True)
        last = trainer.fit()
        seconds = time.perf_counter() - start
        print(f"trained in {seconds:.0f} s; checkpoint {args.out / CHECKPOINT}", flush=True)
        if args.no_eval:
            return
        meta = _meta(checkpoint=str(args.out / CHECKPOINT), config=str(args.config),
                     overrides=" ".join(args.overrides), epochs=trainer.epoch,
                     train_seconds=round(seconds, 1), val_mpjpe=round(last.get(
                         "val_mpjpe", float("nan")), 2))
        metrics = _evaluate_and_write(cfg, trainer.module, trainer.body, trainer.device,
                                      ensure_synthetic(cfg.data), args.out, args, suites, meta,
                                      f"hkmr train --config {args.config}")
        for key, value in metrics.items():
            writer.add_scalar(f"test/{key}", value, trainer.epoch)
    finally:
        writer.close()


def _eval(args: argparse.Namespace) -> None:
    from ..eval.protocols import load_checkpoint
    from .data import ensure_synthetic
    from .trainer import pick_device

    suites = parse_suites(args.protocol)
    device = pick_device(args.device)
    cfg, model, body = load_checkpoint(args.checkpoint, device)
    ckpt = args.checkpoint if args.checkpoint.is_file() else args.checkpoint / "checkpoint.pt"
    data_root = args.data or ensure_synthetic(cfg.data)
    if args.data:
        from ..data.shards import load_manifest

        load_manifest(args.data)  # a clear error when --data is not a dataset
    meta = _meta(checkpoint=str(ckpt), regressor=cfg.model.regressor,
                 encoder=cfg.model.encoder, image_size=cfg.data.synth_size)
    _evaluate_and_write(cfg, model, body, device, data_root, args.out or ckpt.parent, args,
                        suites, meta, f"hkmr eval {ckpt}")


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
    import json

    from ..eval.protocols import load_checkpoint
    from ..eval.report import _json_ready, table4_markdown
    from .data import ensure_synthetic
    from .trainer import pick_device

    suites = parse_suites(args.protocol)
    device = pick_device(args.device)
    named = _named_checkpoints(args.checkpoint)
    loaded = {name: load_checkpoint(path, device) for name, path in named.items()}
    roots = {name: args.data or ensure_synthetic(cfg.data) for name, (cfg, _, _) in loaded.items()}
    if len(set(roots.values())) > 1:
        raise ValueError("the checkpoints were trained on different synthetic datasets ("
                         + ", ".join(f"{n}: {r}" for n, r in roots.items())
                         + "); pass --data to evaluate them on one")
    runs, meta = {}, _meta(suites=",".join(suites), limit=args.limit)
    for name, (cfg, model, body) in loaded.items():
        path = named[name]
        run_meta = _meta(checkpoint=str(path), regressor=cfg.model.regressor,
                         in_the_loop=cfg.train.in_the_loop, encoder=cfg.model.encoder)
        meta[name] = f"{path} ({cfg.model.regressor}, in_the_loop={cfg.train.in_the_loop})"
        runs[name] = _evaluate_and_write(cfg, model, body, device, roots[name], args.out / name,
                                         args, suites, run_meta, f"hkmr compare: {name}")
    text = "# Table 4: " + " vs ".join(runs) + "\n\n"
    text += "\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n\n"
    text += "MPJPE (mm, 14 joints):\n\n" + table4_markdown(runs)
    text += "\nPA-MPJPE (mm, 14 joints):\n\n" + table4_markdown(runs, "pa_mpjpe")
    with atomic_path(args.out / "table4.md") as tmp:
        tmp.write_text(text)
    with atomic_path(args.out / "table4.json") as tmp:
        blob = {"meta": meta, "runs": {n: _json_ready(m) for n, m in runs.items()}}
        tmp.write_text(json.dumps(blob, indent=2, default=str) + "\n")
    print("\n" + table4_markdown(runs) + f"\nwrote {args.out / 'table4.md'}")


def _demo(args: argparse.Namespace) -> None:
    from ..demo import denormalize, load_image, overlay, predict_image, write_obj, write_png
    from ..eval.protocols import load_checkpoint
    from .trainer import pick_device

    device = pick_device(args.device)
    cfg, model, body = load_checkpoint(args.checkpoint, device)
    size = cfg.data.synth_size
    gt = None
    if args.image is not None:
        image, source = load_image(args.image, size), str(args.image)
    else:
        from ..data.datasets import SyntheticDataset
        from .data import ensure_synthetic

        test = SyntheticDataset(args.data or ensure_synthetic(cfg.data), "test", "P1")
        if not 0 <= args.index < len(test):
            raise ValueError(f"--index {args.index} is outside the test split (0..{len(test) - 1})")
        item = test[args.index]
        image, gt = denormalize(item["img"]), item["keypoints"].numpy()
        source = f"test image {args.index} (view {int(item['view'])})"
    pred = predict_image(model, body, image, device)
    faces = body.faces.cpu().numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    write_obj(args.out / "mesh.obj", pred["vertices"], faces)
    write_png(args.out / "demo.png", overlay(image, pred, faces, args.display, gt))
    print(f"{source}: wrote {args.out / 'mesh.obj'} and {args.out / 'demo.png'} "
          f"(cam s={pred['cam'][0]:.3f}, t=({pred['cam'][1]:.3f}, {pred['cam'][2]:.3f}))")
