"""``hkmr prior train-vae``: fit the VAE pose prior (Sec. 3.2) to a pose corpus.

:func:`register` needs only argparse (``hkmr --help`` builds every parser): torch and the prior
are imported by the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import add_batch_size, add_device, add_out

if TYPE_CHECKING:
    import torch

VAE_FILE = "vae.pt"


def load_pose_corpus(path: str | Path) -> torch.Tensor:
    """(N, 72) axis-angle poses from a Parquet file with a 72-value ``pose`` column
    (as written by ``hkmr synth poses``)."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pose corpus not found: {path} (make one with "
                                "'hkmr synth poses --n 100000 --out DIR', then --corpus DIR/poses.parquet)")
    table = pq.read_table(path)
    if "pose" not in table.column_names:
        raise ValueError(f"{path} has no 'pose' column (columns: {table.column_names})")
    poses = np.asarray(table.column("pose").to_pylist(), dtype=np.float32)
    if poses.ndim != 2 or poses.shape[1] != 72:
        raise ValueError(f"{path}: column 'pose' must hold 72 values a row, got {poses.shape}")
    return torch.from_numpy(poses)


def register(sub: argparse._SubParsersAction) -> None:
    prior = sub.add_parser("prior", help="train pose priors")
    prior_sub = prior.add_subparsers(dest="prior_command", metavar="ACTION", required=True)
    vae = prior_sub.add_parser("train-vae", help="fit the VAE prior to a pose corpus")
    vae.add_argument("--corpus", required=True, type=Path, help="Parquet from 'hkmr synth poses'")
    add_out(vae, required=True, what=f"the VAE is written to OUT/{VAE_FILE} (use it as "
            f"model.vae_checkpoint=OUT/{VAE_FILE})")
    vae.add_argument("--epochs", type=int, default=20)
    add_batch_size(vae, default=256, what="training batch size")
    add_device(vae)
    vae.add_argument("--kl-weight", type=float, default=0.05)
    vae.add_argument("--seed", type=int, default=0)
    vae.set_defaults(func=_train_vae)


def _train_vae(args: argparse.Namespace) -> None:
    if args.out.suffix == ".pt":
        raise ValueError(f"--out {args.out}: --out is an output folder (the VAE goes to "
                         f"OUT/{VAE_FILE}), as in every hkmr command")
    import torch

    from ..device import pick_device
    from .priors import train_vae

    poses = load_pose_corpus(args.corpus)
    held = max(1, len(poses) // 10)
    vae = train_vae(poses[held:, 3:], epochs=args.epochs, kl_weight=args.kl_weight,
                    seed=args.seed, batch_size=args.batch_size, device=pick_device(args.device))
    with torch.no_grad():
        kl = vae.prior_loss(poses[:held].view(-1, 24, 3)).item()
    path = args.out / VAE_FILE
    vae.save(path)
    print(f"trained on {len(poses) - held} poses; KL on {held} held-out poses {kl:.3f}; "
          f"wrote {path} (model.vae_checkpoint={path})")
