"""Body model (SMPL through smplx), kinematic chains and rotations (paper Sec. 3.1-3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: the names the package exports, by the module that defines them, imported on first use
_EXPORTS = {
    ".joints": ("CHAIN_NAMES", "CHAINS", "JOINT_NAMES", "LSP14", "PARENTS"),
    ".model": ("BodyModel", "BodyOutput"),
    ".smpl_file": ("BodyModelFileError", "load_smpl_file"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from .joints import CHAIN_NAMES, CHAINS, JOINT_NAMES, LSP14, PARENTS
    from .model import BodyModel, BodyOutput
    from .smpl_file import BodyModelFileError, load_smpl_file
