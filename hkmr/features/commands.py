"""``hkmr features``: extract and inspect the feature caches of the frozen-features regime.

:func:`register` needs only argparse (``hkmr --help`` builds every parser): the checkpoint,
data and cache modules (torch) are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_batch_size, add_device, add_out


def register(sub: argparse._SubParsersAction) -> None:
    features = sub.add_parser("features", help="encoder feature caches (frozen-features regime)")
    fsub = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    ex = fsub.add_parser(
        "extract", help="compute a checkpoint's encoder features of a whole dataset",
        description="Runs the encoder of CKPT (an hkmr training checkpoint, e.g. of an HMR or "
        "HKMR cpu/paper run) over every train, val and test image of the synthetic dataset, "
        "the mirrored training images and the occluded test sets of the evaluation suites, "
        "and stores the features (float16 shards), the ground truth and the encoder in --out "
        "with a manifest naming the encoder's and the dataset's hashes. Train with "
        "model.freeze_encoder=true data.features=OUT (and model.encoder_checkpoint=CKPT to "
        "have the cache checked against it). Re-running resumes.")
    ex.add_argument("--checkpoint", type=Path, required=True,
                    help="checkpoint.pt or the training folder holding it")
    ex.add_argument("--data", type=Path, help="synthetic dataset folder (default: the one of "
                    "the checkpoint's config, generated into the cache if missing)")
    add_out(ex, required=True, what="the cache")
    add_batch_size(ex, default=256, what="encoder batch size")
    ex.add_argument("--workers", type=int, default=0, help="image decoding processes")
    add_device(ex)
    ex.set_defaults(func=_extract)

    info = fsub.add_parser("info", help="describe a feature cache")
    info.add_argument("cache", type=Path)
    info.set_defaults(func=_info)


def _extract(args: argparse.Namespace) -> None:
    from ..checkpoint import checkpoint_config, checkpoint_file, load_encoder, read_checkpoint
    from ..data.synthetic import ensure_synthetic
    from ..device import pick_device
    from .cache import extract

    encoder = load_encoder(args.checkpoint)
    data = args.data
    if data is None:
        ckpt = checkpoint_file(args.checkpoint)
        data = ensure_synthetic(checkpoint_config(ckpt, read_checkpoint(ckpt)).data)
    cache = extract(encoder, data, args.out, batch_size=args.batch_size,
                    device=pick_device(args.device), workers=args.workers)
    print(f"feature cache {cache.path}: encoder {cache.encoder_hash} ({encoder.name}, "
          f"{cache.feat_dim}-d), dataset {cache.dataset_hash}")


def _info(args: argparse.Namespace) -> None:
    from .cache import FeatureCache

    cache = FeatureCache(args.cache)
    m = cache.manifest
    enc, data = m["encoder"], m["dataset"]
    print(f"{cache.path}: {m['format']} v{m['format_version']}, {m['dtype']}, "
          f"extracted {m.get('date')} in {m.get('extract_seconds')} s")
    print(f"encoder {enc['hash']}: {enc['name']}, {enc['feat_dim']}-d, {enc['image_size']} px, "
          f"from {enc['checkpoint']}")
    print(f"dataset {data['hash']}: {data['root']} ({data['settings']['size']} px, "
          f"counts {data['settings']['counts']})")
    for name, v in m["variants"].items():
        occ = f", occlusion {v['occlusion']}" if v["occlusion"] else ""
        print(f"  {name:20s} {v['rows']:8d} rows{', flipped' if v['flip'] else ''}{occ}")
