"""The six chains, index maps and left/right flips (paper Sec. 3.2)."""

import torch

from hkmr.body import joints as K


def test_chains_partition_the_24_joints_in_paper_order():
    assert K.CHAIN_NAMES == ("root", "head", "right_arm", "left_arm", "right_leg", "left_leg")
    joints = [j for c in K.CHAIN_NAMES for j in K.CHAINS[c]]
    assert sorted(joints) == list(range(24))
    assert [len(K.CHAINS[c]) for c in K.CHAIN_NAMES] == [4, 2, 5, 5, 4, 4]
    assert [K.JOINT_NAMES[j] for j in K.CHAINS["root"]] == ["pelvis", "spine1", "spine2", "spine3"]


def test_each_chain_parent_lies_in_the_chain_or_the_root():
    root = set(K.CHAINS["root"])
    for name, chain in K.CHAINS.items():
        for k, j in enumerate(chain):
            parent = K.PARENTS[j]
            if k == 0:
                assert parent == -1 if name == "root" else parent in root
            else:
                assert parent == chain[k - 1], (name, K.JOINT_NAMES[j])


def test_parents_precede_children():
    assert K.PARENTS[0] == -1
    assert all(0 <= K.PARENTS[j] < j for j in range(1, 24))


def test_chain_order_maps_are_inverse():
    x = torch.randn(3, 24, 3)
    chain = K.smpl_to_chain_order(x)
    assert torch.equal(chain[:, list(K.SMPL_TO_CHAIN)], x)
    assert torch.equal(chain[:, K.CHAIN_SLICES["head"]], x[:, [12, 15]])


def test_flip_permutation_swaps_left_and_right():
    perm = K.FLIP_PERMUTATION
    assert all(perm[perm[j]] == j for j in range(24))
    for j, name in enumerate(K.JOINT_NAMES):
        other = K.JOINT_NAMES[perm[j]]
        if "left" in name:
            assert other == name.replace("left", "right")
        elif "right" not in name:
            assert other == name
    pose = torch.randn(5, 24, 3)
    assert torch.equal(K.flip_pose(K.flip_pose(pose)), pose)


def test_lsp14_names():
    names = [K.JOINT_NAMES[j] for j in K.LSP14]
    assert names[:3] == ["right_ankle", "right_knee", "right_hip"]
    assert names[-2:] == ["neck", "head"]
    assert len(set(names)) == 14
