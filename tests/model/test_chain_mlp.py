"""``model.chain_layer=mlp``: per-joint 2-layer MLPs f_i, b_i (Sec. 3.2, Eq. 1-2), their
dependency structure per ``joint_dependency`` and pass direction, and that they train."""

import pytest
import torch
import torch.nn.functional as F

from hkmr.config import make_config
from hkmr.model import MeanParams, build_regressor
from hkmr.model.chain import BACKWARD, FORWARD, ChainGroup

FEAT, D, H = 24, 8, 16
LENGTHS = [2, 5, 4]  # padded to K = 5: padding joints in chains 0 and 2


def group_of(layer, dependency="all", lengths=LENGTHS):
    torch.manual_seed(0)
    group = ChainGroup(lengths, FEAT, D, 0, dependency, chain_layer=layer,
                       chain_hidden=H).double()
    with torch.no_grad():  # couplings large enough that dependencies show in gradients
        for name, p in group.named_parameters():
            if not name.startswith("emb"):
                p.normal_()
    return group


def expected_inputs(i, k, direction, dependency):
    """Eq. 1-2 written out: f_i reads every earlier joint of the pass, or only the one before."""
    if i >= k:
        return set()  # padding joints read (and output) nothing
    earlier = set(range(i)) if direction == FORWARD else set(range(i + 1, k))
    if dependency == "previous":
        earlier &= {i - 1} if direction == FORWARD else {i + 1}
    return earlier


def inputs_read(group, layer, direction, i, seed=0):
    """{chain: joints whose residual perturbation moves f_i's (or b_i's) output}, by autograd."""
    gen = torch.Generator().manual_seed(seed)
    C, K = group.num_chains, group.max_joints
    psi = torch.randn(C, 16, D, generator=gen, dtype=torch.float64).relu()
    residuals = torch.randn(C, 16, 3 * K, generator=gen, dtype=torch.float64,
                            requires_grad=True)
    read = {}
    for c, k in enumerate(group.lengths):
        if layer == "mlp":
            out = group.mlp(direction).joint_residual(i, psi, residuals)[c]
        elif i < k:  # the linear reference: f_i on its literal concatenated input
            res = {j: residuals[c, :, 3 * j:3 * j + 3] for j in range(k) if j != i}
            out = group.joint_residual(c, i, direction, psi[c], res)
        else:
            continue
        grad = torch.autograd.grad(out.sum(), residuals, allow_unused=True)[0]
        grad = torch.zeros_like(residuals) if grad is None else grad
        assert grad[[x for x in range(C) if x != c]].abs().sum() == 0, "chains mix"
        per_joint = grad[c].abs().sum(0).view(K, 3).sum(1)
        read[c] = {j for j in range(K) if per_joint[j] > 0}
    return read


@pytest.mark.parametrize("layer", ["mlp", "linear"])
@pytest.mark.parametrize("dependency", ["all", "previous"])
@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_each_joint_layer_reads_exactly_its_input_residuals(layer, dependency, direction):
    group = group_of(layer, dependency)
    for i in range(group.max_joints):
        read = inputs_read(group, layer, direction, i)
        for c, k in enumerate(group.lengths):
            if c in read:
                assert read[c] == expected_inputs(i, k, direction, dependency), (c, i, read[c])


def test_the_dependency_check_catches_a_wrong_mask():
    """The test above can fail: with the mask of 'all' applied to 'previous', or no mask,
    joints outside Eq. 1's inputs are read."""
    group = group_of("mlp", "previous")
    group.fwd_mlp.res_mask.copy_(group_of("mlp", "all").fwd_mlp.res_mask)
    assert inputs_read(group, "mlp", FORWARD, 3)[1] == {0, 1, 2}
    group.bwd_mlp.res_mask.fill_(1)
    assert inputs_read(group, "mlp", BACKWARD, 1)[1] == {0, 1, 2, 3, 4}  # even its own


@pytest.mark.parametrize("dependency", ["all", "previous"])
@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_mlp_pass_is_eq1_joint_by_joint(dependency, direction):
    """The batched, masked pass equals f_i = Linear-ReLU-Linear on [ψ, Δ_inputs], literally
    concatenated, applied chain by chain in pass order; padding stays zero."""
    group = group_of("mlp", dependency)
    mlp = group.mlp(direction)
    psi = torch.randn(3, 7, D, dtype=torch.float64).relu()
    out = mlp.run_pass(psi).view(3, 7, -1, 3)
    for c, k in enumerate(group.lengths):
        done = {}
        for i in (range(k) if direction == FORWARD else range(k - 1, -1, -1)):
            inputs = group.residual_inputs(i, k, direction)
            w1 = torch.cat([mlp.in_psi[c, :, i].T]
                           + [mlp.in_res[c, i, 3 * j:3 * j + 3].T for j in inputs], 1)
            x = torch.cat([psi[c]] + [done[j] for j in inputs], 1)
            hidden = F.relu(F.linear(x, w1, mlp.in_bias[c, i]))
            done[i] = F.linear(hidden, mlp.out_w[c, i].T, mlp.out_bias[c, i])
            torch.testing.assert_close(out[c, :, i], done[i])
        assert out[c, :, k:].abs().sum() == 0  # padding (empty for the longest chain)


@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_mlp_pass_order_through_the_chain(direction):
    """Through a whole pass (the ``perturb`` pattern of ``pass_reference``), Δ_i moves with
    joint j's residual iff j comes earlier in the pass or is i."""
    group = group_of("mlp", "previous")
    psi = torch.randn(3, 6, D, dtype=torch.float64).relu()
    K = group.max_joints
    for c, k in enumerate(group.lengths):
        for i in range(k):
            perturb = torch.zeros(3, 6, 3 * K, dtype=torch.float64, requires_grad=True)
            out = group.mlp(direction).run_pass(psi, perturb).view(3, 6, K, 3)
            grad = torch.autograd.grad(out[c, :, i].sum(), perturb)[0].view(3, 6, K, 3)
            for j in range(k):
                moved = bool(grad[c, :, j].abs().sum() > 0)
                assert moved == (j <= i if direction == FORWARD else j >= i), (c, i, j)


def small(**model):
    cfg = make_config({"model": {"embed_dim": 16, "head_hidden": 16, "chain_hidden": H,
                                 **model}})
    torch.manual_seed(0)
    return build_regressor(cfg.model, FEAT, MeanParams.default())


def test_mlp_ignores_chain_impl_and_has_no_linear_layers():
    fast, ref = small(chain_layer="mlp", chain_impl="fast"), small(chain_layer="mlp",
                                                                   chain_impl="reference")
    names = [n for n, _ in fast.named_parameters()]
    assert not [n for n in names if "_psi" in n and "mlp" not in n], "no linear f_i to solve"
    assert any("fwd_mlp" in n for n in names) and any("bwd_mlp" in n for n in names)
    phi = torch.randn(4, FEAT)
    for a, b in zip(fast(phi), ref(phi)):
        assert torch.equal(a.pose_aa, b.pose_aa)


def test_mlp_starts_near_the_mean_and_learns_a_fixed_batch():
    reg = small(chain_layer="mlp", outer_iters=2, inner_iters=2)
    mean = MeanParams.default()
    gen = torch.Generator().manual_seed(1)
    phi = torch.randn(8, FEAT, generator=gen)
    target = mean.pose + 0.3 * torch.randn(8, 72, generator=gen)
    assert (reg(phi)[-1].pose_aa.flatten(1) - mean.pose).abs().max() < 0.1
    opt = torch.optim.Adam(reg.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = ((reg(phi)[-1].pose_aa.flatten(1) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
