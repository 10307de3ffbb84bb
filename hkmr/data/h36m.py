"""Human3.6M as SPIN preprocesses and evaluates it (the setup HMR, SPIN and the paper's Table 1
follow): the 17-joint H36M regressor ``J_regressor_h36m.npy`` (17 x V, applied to a mesh) and
the joint orders that connect it with SPIN's J24 ground truth ``S``.

Facts (SPIN's ``constants.py``, ``eval.py``, ``datasets/preprocess/h36m.py``; not checked here
against the real files, which this repository cannot hold):

* H36M's 17 joints in the regressor's order are :data:`H36M17_NAMES`.
* :data:`H36M_TO_J17` picks from them SPIN's 17 evaluation joints (LSP 14 first), and
  :data:`H36M_TO_J14` = its first 14; the pelvis is H36M joint 0.
* The preprocessing root-centres the 17 joints on the H36M pelvis (``S17 -= S17[0]``) and puts
  them into J24 slots :data:`H36M_TO_J24` (metres, 4th column a confidence), so ``S`` needs no
  further centring. :data:`J24_TO_J14` = ``J24_TO_J17[:14]`` reads the 14 back: J24 0..12 and
  J24 18 (H36M's head; LSP's head top, J24 13, is empty in Human3.6M).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

H36M17_NAMES: tuple[str, ...] = (
    "pelvis", "L hip", "L knee", "L ankle", "R hip", "R knee", "R ankle", "spine", "thorax",
    "neck/nose", "head", "L shoulder", "L elbow", "L wrist", "R shoulder", "R elbow",
    "R wrist",
)
H36M_TO_J17: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14: tuple[int, ...] = H36M_TO_J17[:14]
J24_TO_J17: tuple[int, ...] = (*range(13), 18, 14, 16, 17)
J24_TO_J14: tuple[int, ...] = J24_TO_J17[:14]
#: J24 slot of each H36M joint (SPIN's ``global_idx`` in its Human3.6M preprocessing)
H36M_TO_J24: tuple[int, ...] = (14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)
PELVIS = 0
REGRESSOR_FILE = "J_regressor_h36m.npy"
REGRESSOR_SOURCE = ("SPIN's data bundle (nkolot/SPIN, fetch_data.sh: data/J_regressor_h36m.npy)")


def load_regressor(path: str | Path, num_vertices: int) -> np.ndarray:
    """Read and check ``J_regressor_h36m.npy``: a float (17, ``num_vertices``) array."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such H36M joint regressor (get {REGRESSOR_FILE} "
                                f"from {REGRESSOR_SOURCE})")
    try:
        reg = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a plain .npy array ({err})") from None
    if reg.dtype.kind not in "fiu" or reg.shape != (len(H36M17_NAMES), num_vertices):
        raise ValueError(f"{path}: H36M regressor has shape {reg.shape} ({reg.dtype}), expected "
                         f"({len(H36M17_NAMES)}, {num_vertices}) floats for a "
                         f"{num_vertices}-vertex body")
    return reg.astype(np.float32)


def s24_from_h36m17(joints17: np.ndarray) -> np.ndarray:
    """(17, 3) H36M joints in metres -> SPIN's ``S`` row (24, 4): root-centred on the pelvis,
    in J24 slots, confidence 1 on the 17 filled slots (as SPIN's preprocessing writes it)."""
    s = np.zeros((24, 4))
    s[list(H36M_TO_J24), :3] = joints17 - joints17[PELVIS]
    s[list(H36M_TO_J24), 3] = 1.0
    return s


def find_regressor(*folders: str | Path) -> Path | None:
    """``J_regressor_h36m.npy`` in the first of ``folders`` (or their parents) that has it:
    SPIN keeps it in ``data/`` beside ``data/dataset_extras/*.npz``."""
    for folder in folders:
        folder = Path(folder)
        for place in (folder, folder.parent):
            if (place / REGRESSOR_FILE).is_file():
                return place / REGRESSOR_FILE
    return None
