"""SMPL's kinematic tree and the paper's six kinematic chains (Sec. 3.2, Fig. 3a).

Everything here is data: joint names and parents in SMPL order, the six chains in the
paper's order Θ = [θ_root, θ_head, θ_R.arm, θ_L.arm, θ_R.leg, θ_L.leg], index maps between
chain order and SMPL order, the left/right swap used for horizontal flips, and the 14
LSP-style evaluation joints.

Conventions (those of SMPL): +y is up, +z is the direction the body faces, +x is the
body's left. Joint 0 (pelvis) carries the global orientation.
"""

from __future__ import annotations

import numpy as np
import torch

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
NUM_JOINTS = len(JOINT_NAMES)  # K = 24
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

#: parent of each joint in SMPL order (-1 for the root); parents precede children.
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)


def _ids(*names: str) -> tuple[int, ...]:
    return tuple(JOINT_INDEX[n] for n in names)


#: The six chains of Sec. 3.2, in the paper's order; each lists its joints from the one
#: nearest the root to the end effector (the order of a forward pass, Eq. 1).
CHAINS: dict[str, tuple[int, ...]] = {
    "root": _ids("pelvis", "spine1", "spine2", "spine3"),
    "head": _ids("neck", "head"),
    "right_arm": _ids("right_collar", "right_shoulder", "right_elbow", "right_wrist", "right_hand"),
    "left_arm": _ids("left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_hand"),
    "right_leg": _ids("right_hip", "right_knee", "right_ankle", "right_foot"),
    "left_leg": _ids("left_hip", "left_knee", "left_ankle", "left_foot"),
}
CHAIN_NAMES: tuple[str, ...] = tuple(CHAINS)
#: each chain's end effector: its last joint (spine3, head, the hands, the feet)
END_EFFECTORS: dict[str, int] = {c: joints[-1] for c, joints in CHAINS.items()}
CHILD_CHAINS: tuple[str, ...] = CHAIN_NAMES[1:]

#: CHAIN_TO_SMPL[k] is the SMPL joint at position k of Θ in chain order.
CHAIN_TO_SMPL: tuple[int, ...] = tuple(j for c in CHAIN_NAMES for j in CHAINS[c])
#: SMPL_TO_CHAIN[j] is the position of SMPL joint j in chain order.
SMPL_TO_CHAIN: tuple[int, ...] = tuple(int(i) for i in np.argsort(CHAIN_TO_SMPL))
#: slice of each chain inside Θ in chain order.
CHAIN_SLICES: dict[str, slice] = {}
_start = 0
for _c in CHAIN_NAMES:
    CHAIN_SLICES[_c] = slice(_start, _start + len(CHAINS[_c]))
    _start += len(CHAINS[_c])
del _start, _c

#: joint j maps to FLIP_PERMUTATION[j] under a left/right mirror.
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    JOINT_INDEX[n.replace("left_", "@").replace("right_", "left_").replace("@", "right_")]
    for n in JOINT_NAMES
)

#: The 14 LSP-style joints SPIN evaluates on, mapped to the nearest SMPL joint. SPIN regresses
#: them from the mesh with an H3.6M regressor; here they are SMPL joints, so "head top" is the
#: SMPL head joint and "neck" the SMPL neck joint. Order: R ankle, R knee, R hip, L hip, L knee,
#: L ankle, R wrist, R elbow, R shoulder, L shoulder, L elbow, L wrist, neck, head.
LSP14: tuple[int, ...] = _ids(
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "neck", "head",
)


def smpl_to_chain_order(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Reorder a per-joint tensor (joints along ``dim``) from SMPL order to chain order."""
    return x.index_select(dim, torch.as_tensor(CHAIN_TO_SMPL, device=x.device))


def flip_pose(pose: torch.Tensor) -> torch.Tensor:
    """Mirror axis-angle poses ``(..., 24, 3)`` in SMPL order across the x = 0 plane.

    A reflection x -> -x maps a rotation about axis (a, b, c) by angle φ to a rotation about
    (a, -b, -c) by φ; the left and right joints swap.
    """
    flipped = pose.index_select(-2, torch.as_tensor(FLIP_PERMUTATION, device=pose.device))
    return flipped * flipped.new_tensor([1.0, -1.0, -1.0])
