"""``hkmr data check [DIR]``: what a SPIN-style data folder holds for the paper's real-data
evaluations and training (Sec. 4), file by file: found / missing / malformed (naming the key
or shape), which tables each file enables, and where each missing piece is obtained.

The layout is SPIN's ``data/`` folder: ``dataset_extras/*.npz`` (SPIN's preprocessed
annotations), ``J_regressor_h36m.npy``, ``J_regressor_extra.npy``, ``smpl_mean_params.npz``
and ``smpl/SMPL_NEUTRAL.pkl``. With ``--images DIR`` every ``imgname`` is looked up there.
The exit status is 1 when a file the chosen ``--need`` requires is missing or malformed.
"""

from __future__ import annotations

import argparse
import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from .h36m import H36M17_NAMES, REGRESSOR_FILE, REGRESSOR_SOURCE

_SPIN = "SPIN's data bundle (nkolot/SPIN, fetch_data.sh)"
_SMPL = "https://smpl.is.tue.mpg.de (registration; SMPL_NEUTRAL.pkl via SMPLify's release)"


@dataclasses.dataclass(frozen=True)
class Piece:
    """A file of the folder: where it lives, what it enables, where it comes from."""

    path: str
    enables: str
    source: str
    kind: str  # npz | regressor | mean_params | smpl


PIECES: tuple[Piece, ...] = (
    Piece("dataset_extras/h36m_valid_protocol1.npz", "Table 1 P1 (Human3.6M)", _SPIN, "npz"),
    Piece("dataset_extras/h36m_valid_protocol2.npz", "Table 1 P2 (Human3.6M)", _SPIN, "npz"),
    Piece(REGRESSOR_FILE, "Table 1 as the paper measures it (H36M joints from the mesh)",
          REGRESSOR_SOURCE, "regressor"),
    Piece("J_regressor_extra.npy", "training: SPIN's extra joints", _SPIN, "extra"),
    Piece("smpl_mean_params.npz", "training: the regressors' start (mean pose, shape, camera)",
          _SPIN, "mean_params"),
    Piece("smpl/SMPL_NEUTRAL.pkl", "every real-data table (the SMPL body)", _SMPL, "smpl"),
    Piece("dataset_extras/lsp_dataset_test.npz", "Table 5 left (LSP segmentation)", _SPIN, "npz"),
    Piece("dataset_extras/h36m_train.npz", "training mixture: Human3.6M", _SPIN, "npz"),
    Piece("dataset_extras/lsp_dataset_original_train.npz", "training mixture: LSP", _SPIN, "npz"),
    Piece("dataset_extras/hr-lspet_train.npz", "training mixture: LSP-extended", _SPIN, "npz"),
    Piece("dataset_extras/mpii_train.npz", "training mixture: MPII", _SPIN, "npz"),
    Piece("dataset_extras/coco_2014_train.npz", "training mixture: COCO", _SPIN, "npz"),
    Piece("dataset_extras/mpi_inf_3dhp_train.npz", "training mixture: MPI-INF-3DHP", _SPIN, "npz"),
)
#: --need: the pieces each use requires
NEEDS: dict[str, tuple[str, ...]] = {
    "table1": ("dataset_extras/h36m_valid_protocol1.npz", "dataset_extras/h36m_valid_protocol2.npz",
               REGRESSOR_FILE),
    "train": tuple(p.path for p in PIECES if p.enables.startswith("training")),
    "none": (),
}


def _check_npz(path: Path, images: Path | None) -> str:
    from .spin import load_npz  # imports the body model's joints (torch): not at --help

    data = load_npz(path)
    detail = f"{len(data['imgname'])} rows, keys {', '.join(sorted(data))}"
    if images is not None:
        missing = [n for n in data["imgname"] if not (images / n).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} image(s) missing under {images}, e.g. {missing[0]}")
        detail += f"; all images under {images}"
    return detail


def _check_array(path: Path, rows: int | None) -> str:
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 2 or arr.dtype.kind != "f" or (rows is not None and arr.shape[0] != rows):
        want = f"({rows}, V) floats" if rows else "a 2-D float array"
        raise ValueError(f"shape {arr.shape} ({arr.dtype}), expected {want}")
    return f"shape {arr.shape}"


def _check_mean_params(path: Path) -> str:
    with np.load(path, allow_pickle=False) as npz:
        shapes = {k: npz[k].shape for k in npz.files}
    want = {"pose": (144,), "shape": (10,), "cam": (3,)}
    for key, shape in want.items():
        if shapes.get(key) != shape:
            raise ValueError(f"key {key!r} has shape {shapes.get(key)}, expected {shape}")
    return "pose (144,), shape (10,), cam (3,)"


def check_piece(root: Path, piece: Piece, images: Path | None = None) -> tuple[str, str]:
    """(status, detail) of one piece: found / missing / malformed."""
    path = root / piece.path
    if not path.is_file():
        return "missing", f"get it from {piece.source}"
    try:
        if piece.kind == "npz":
            return "found", _check_npz(path, images)
        if piece.kind in ("regressor", "extra"):
            return "found", _check_array(path, len(H36M17_NAMES) if piece.kind == "regressor"
                                         else None)
        if piece.kind == "mean_params":
            return "found", _check_mean_params(path)
        return "found", f"{path.stat().st_size} bytes"
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        return "malformed", str(err).replace(f"{path}: ", "")


def check_folder(root: Path, images: Path | None = None) -> list[tuple[Piece, str, str]]:
    return [(p, *check_piece(root, p, images)) for p in PIECES]


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="real (SPIN-format) data: check a data folder")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    chk = data_sub.add_parser(
        "check", help="what a SPIN-style data folder holds and which tables it enables",
        description=__doc__.split("\n\n")[0])
    chk.add_argument("root", type=Path, nargs="?", default=Path("data"),
                     help="SPIN-style data folder (default: ./data)")
    chk.add_argument("--images", type=Path, help="image root to look every imgname up in")
    chk.add_argument("--need", choices=sorted(NEEDS), default="table1",
                     help="exit 1 when a file this use needs is missing or malformed "
                     "(default: table1)")
    chk.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise FileNotFoundError(f"{args.root}: no such data folder")
    rows = check_folder(args.root, args.images)
    width = max(len(p.path) for p, _, _ in rows)
    for piece, status, detail in rows:
        print(f"{status:<9} {piece.path:<{width}}  enables: {piece.enables}\n"
              f"{'':<9} {'':<{width}}  {detail}")
    bad = [p.path for p, status, _ in rows if status != "found" and p.path in NEEDS[args.need]]
    if bad:
        print(f"\n--need {args.need}: {len(bad)} file(s) missing or malformed: {', '.join(bad)}")
        return 1
    print(f"\n--need {args.need}: everything it needs is here")
    return 0
