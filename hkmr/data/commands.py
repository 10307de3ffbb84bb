"""``hkmr synth``: the pose corpus (stand-in for MoSh, paper Sec. 3.2 "Pose Prior"), the
rendered multi-view benchmark (stand-in for Human3.6M, Sec. 4) and previews of it.

:func:`register` needs only argparse (``hkmr --help`` builds every parser): numpy, the renderer
and the datasets are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..options import add_out

POSES_FILE, PREVIEW_FILE = "poses.parquet", "preview.png"


def register(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="generate synthetic poses and rendered datasets")
    synth_sub = synth.add_subparsers(dest="synth_command", metavar="ACTION", required=True)

    poses = synth_sub.add_parser("poses", help="write a pose corpus (Parquet) for the VAE prior")
    poses.add_argument("--n", type=int, required=True, help="number of poses")
    add_out(poses, required=True, what=f"the corpus is written to OUT/{POSES_FILE}")
    poses.add_argument("--seed", type=int, default=0)
    poses.set_defaults(func=_poses)

    ds = synth_sub.add_parser(
        "dataset", help="render the 4-camera benchmark into Parquet shards (resumable)",
        description="Renders --n train subject-poses (and --val/--test more), each from the 4 "
        "cameras, so a split holds 4x as many images. Re-running with the same arguments "
        "resumes: finished shards are kept.")
    ds.add_argument("--n", type=int, required=True, help="train subject-poses")
    ds.add_argument("--val", type=int, help="val subject-poses (default n/10, at least 1)")
    ds.add_argument("--test", type=int, help="test subject-poses (default n/10, at least 1)")
    ds.add_argument("--size", type=int, default=128, help="crop side in pixels")
    ds.add_argument("--seed", type=int, default=0)
    add_out(ds, required=True, what="the dataset (manifest.json and shards)")
    ds.add_argument("--subjects", default="24,6,6",
                    help="subjects (shapes) in train,val,test (default 24,6,6)")
    ds.add_argument("--shard-size", type=int, default=32, help="subject-poses per shard")
    ds.add_argument("--workers", type=int,
                    help="processes (default: all cores, at most one per ~300 images)")
    ds.set_defaults(func=_dataset)

    show = synth_sub.add_parser("preview", help="draw images with keypoints and part masks")
    show.add_argument("root", type=Path, help="dataset folder")
    show.add_argument("--split", default="train")
    show.add_argument("--n", type=int, default=2, help="subject-poses (rows of 4 views)")
    show.add_argument("--first", type=int, default=0, help="first subject-pose")
    show.add_argument("--occlusion", help="bar | circle | rectangle (standard set)")
    add_out(show, required=True, what=f"the grid is written to OUT/{PREVIEW_FILE}")
    show.set_defaults(func=_preview)


def _poses(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io import atomic_path
    from .sampler import SamplerSettings, sample_poses

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    poses, styles = sample_poses(args.n, args.seed)
    table = pa.table({"pose": pa.FixedSizeListArray.from_arrays(pa.array(poses.reshape(-1)), 72),
                      "style": pa.array(styles)})
    meta = {"seed": str(args.seed), "sampler": repr(SamplerSettings().to_dict()),
            "description": "SMPL axis-angle (72): global orientation in the world frame "
                           "(y up), then 23 body joints; hkmr.data.sampler"}
    table = table.replace_schema_metadata(meta)
    path = args.out / POSES_FILE
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    counts = {s: styles.count(s) for s in sorted(set(styles))}
    print(f"wrote {args.n} poses to {path} ({counts})")


def _dataset(args: argparse.Namespace) -> None:
    from .shards import DatasetSpec, generate

    try:
        subjects = dict(zip(("train", "val", "test"), (int(s) for s in args.subjects.split(","))))
    except ValueError:
        raise ValueError(f"--subjects must be three integers like 24,6,6, got {args.subjects!r}")
    if len(subjects) != 3 or args.n < 1:
        raise ValueError("need --n >= 1 and --subjects train,val,test")
    default = max(1, args.n // 10)
    counts = {"train": args.n, "val": default if args.val is None else args.val,
              "test": default if args.test is None else args.test}
    spec = DatasetSpec(counts=counts, size=args.size, seed=args.seed, subjects=subjects,
                       shard_size=args.shard_size)
    start = time.perf_counter()
    manifest = generate(args.out, spec, workers=args.workers)
    run = manifest["last_run"]
    total = sum(manifest["images"].values())
    rate = f", {run['images_per_second']} images/s" if run["images_per_second"] else ""
    print(f"{args.out}: {total} images ({manifest['images']}) at {args.size} px; rendered "
          f"{run['images_rendered']} in {time.perf_counter() - start:.1f} s with "
          f"{run['workers']} worker{'s' if run['workers'] != 1 else ''}{rate}")


def draw_preview(dataset, indices, path: Path) -> None:
    """A PNG grid: per sample the image with keypoints (green visible, red self-occluded,
    blue under a test-time occluder) above its part mask (``dataset``: a SyntheticDataset)."""
    import cv2
    import numpy as np

    from ..io import atomic_path
    from .datasets import IMAGENET_MEAN, IMAGENET_STD

    cells = []
    for i in indices:
        item = dataset[i]
        img = (item["img"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
        img = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        size = img.shape[0]
        parts = item["parts"].numpy()
        colours = cv2.applyColorMap(np.uint8(np.arange(256) * 10 % 256)[:, None],
                                    cv2.COLORMAP_TURBO)[:, 0]
        mask = colours[parts]
        mask[parts == 0] = 0
        for (x, y, c), v, o in zip(item["keypoints"].numpy(), item["visible"].numpy(),
                                   item["occluded"].numpy()):
            if c > 0:
                centre = (int((x + 1) * size / 2), int((y + 1) * size / 2))
                colour = (255, 60, 0) if o else (0, 200, 0) if v else (0, 0, 255)
                cv2.circle(img, centre, max(1, size // 64), colour, -1)
        cells.append(np.concatenate([img, mask], 0))
    cols = 4
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.concatenate(cells[r:r + cols], 1) for r in range(0, len(cells), cols)]
    ok, buf = cv2.imencode(".png", np.concatenate(rows, 0), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _preview(args: argparse.Namespace) -> None:
    from .datasets import SyntheticDataset

    ds = SyntheticDataset(args.root, args.split, "P1", occlusion=args.occlusion)
    first = 4 * args.first
    indices = range(first, min(first + 4 * args.n, len(ds)))
    path = args.out / PREVIEW_FILE
    draw_preview(ds, indices, path)
    print(f"wrote {path} ({len(indices)} images of {args.root}/{args.split})")
