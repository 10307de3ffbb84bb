"""Body model (SMPL through smplx), kinematic chains and rotations (paper Sec. 3.1-3.2)."""

from .joints import CHAIN_NAMES, CHAINS, JOINT_NAMES, LSP14, PARENTS
from .model import BodyModel, BodyOutput
from .smpl_file import BodyModelFileError, load_smpl_file

__all__ = ["BodyModel", "BodyOutput", "BodyModelFileError", "load_smpl_file", "CHAINS",
           "CHAIN_NAMES", "JOINT_NAMES", "LSP14", "PARENTS"]
