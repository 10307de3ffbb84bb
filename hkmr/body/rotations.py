"""Rotation representations used by the regressors, priors and losses.

Thin, named wrappers over roma (a maintained rotation library) so the rest of the code reads
in the paper's terms: axis-angle (SMPL's Θ, Sec. 3.1), rotation matrices (the discriminator
prior and SMPL parameter losses) and the continuous 6D representation of Zhou et al. (the
first two columns of the rotation matrix, as used by SPIN's HMR regressor).
"""

from __future__ import annotations

import roma
import torch


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices."""
    return roma.rotvec_to_rotmat(aa)


def matrix_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, π]."""
    return roma.rotmat_to_rotvec(rotmat)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on two columns (layout [c0x, c1x, c0y, ...])."""
    return roma.special_gramschmidt(sixd.reshape(*sixd.shape[:-1], 3, 2))


def matrix_to_sixd(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, inverse of :func:`sixd_to_matrix`."""
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)
