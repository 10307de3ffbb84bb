"""HKMR's chains, passes and hierarchy (Sec. 3.2, Eq. 1-2, Table 2 switches)."""

import itertools

import pytest
import torch

from hkmr.config import make_config
from hkmr.model import MeanParams, build_regressor
from hkmr.model.chain import BACKWARD, FORWARD, ChainGroup

FEAT = 24


def small(overrides=(), **model):
    cfg = make_config({"model": {"embed_dim": 12, "head_hidden": 8, **model}}, list(overrides))
    torch.manual_seed(0)
    return build_regressor(cfg.model, FEAT, MeanParams.default()).double()


def _boost(group: ChainGroup):
    """Make residual couplings large enough that dependencies show clearly in gradients."""
    with torch.no_grad():
        for p in (group.fwd_res, group.bwd_res, group.fwd_psi, group.bwd_psi):
            p.normal_()


@pytest.mark.parametrize("dependency", ["all", "previous"])
@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_joint_residual_reads_exactly_the_allowed_joints(dependency, direction):
    group = ChainGroup([5], FEAT, 8, 0, dependency).double()
    _boost(group)
    psi = torch.randn(3, 8, dtype=torch.float64)
    for i in range(5):
        residuals = {j: torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
                     for j in range(5) if j != i}
        out = group.joint_residual(0, i, direction, psi, residuals)
        out.sum().backward()
        used = {j for j, r in residuals.items() if r.grad is not None and r.grad.abs().sum() > 0}
        before = set(range(i)) if direction == FORWARD else set(range(i + 1, 5))
        if dependency == "previous":
            before = {i - 1} & before if direction == FORWARD else {i + 1} & before
        assert used == before, (i, used)


@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_pass_order_forward_first_to_last_backward_last_to_first(direction):
    group = ChainGroup([2, 5, 4], FEAT, 8, 0, "all").double()
    _boost(group)
    psi = torch.randn(2, 3, 8, dtype=torch.float64)
    for c, k in enumerate(group.lengths):
        for i in range(k):
            perturb = torch.zeros(2, 3, 5, 3, dtype=torch.float64, requires_grad=True)
            out = group.pass_reference(psi, direction, perturb)
            grads = torch.autograd.grad(out[:, c, i].sum(), perturb)[0]
            for j in range(k):
                # Δ_i moves with joint j's residual iff j comes earlier in the pass (or is i)
                moved = bool(grads[:, c, j].abs().sum() > 0)
                assert moved == (j <= i if direction == FORWARD else j >= i), (c, i, j)
            assert grads[:, [x for x in range(3) if x != c]].abs().sum() == 0, "chains mix"


def test_padding_never_leaks():
    group = ChainGroup([2, 5], FEAT, 8, 0, "all").double()
    _boost(group)
    phi = torch.randn(2, FEAT, dtype=torch.float64)
    theta = torch.zeros(2, 2, 5, 3, dtype=torch.float64)
    beta = torch.randn(2, 10, dtype=torch.float64)
    schedule = [FORWARD, BACKWARD, FORWARD]
    ref = group.run_reference(phi, theta, beta, None, schedule)
    fast = group.run_fast(group.prepare_fast(phi, schedule), theta, beta, None, schedule)
    assert ref[:, 0, 2:].abs().max() == 0 and fast[:, 0, 2:].abs().max() == 0
    assert ref[:, 0, :2].abs().min() > 0
    torch.testing.assert_close(ref, fast)


def test_forward_only_never_uses_backward_layers():
    for passes, used in (("forward_only", False), ("forward_backward", True)):
        for impl in ("reference", "fast"):
            reg = small(passes=passes, chain_impl=impl)
            outs = reg(torch.randn(2, FEAT, dtype=torch.float64))
            sum(o.pose.sum() + o.betas.sum() for o in outs).backward()
            grads = [g.abs().sum() for g in (reg.root.bwd_psi.grad, reg.child_chains.bwd_psi.grad)
                     if g is not None]
            assert (len(grads) == 2 and all(g > 0 for g in grads)) == used, (passes, impl)


@pytest.mark.parametrize("hierarchy", [True, False])
def test_child_chains_depend_on_root_only_with_hierarchy(hierarchy):
    reg = small(outer_iters=1, chain_hierarchy=hierarchy)
    phi = torch.randn(3, FEAT, dtype=torch.float64)
    before = reg(phi)[0].pose_aa
    with torch.no_grad():  # change only what the root chain predicts
        reg.root.fwd_bias.add_(0.3)
    after = reg(phi)[0].pose_aa
    root = [0, 3, 6, 9]
    children = [j for j in range(24) if j not in root]
    assert (after[:, root] - before[:, root]).abs().max() > 1e-3
    changed = (after[:, children] - before[:, children]).abs().max()
    assert (changed > 1e-6) == hierarchy, changed


def test_outer_iterations_and_inner_passes_schedule():
    reg = small(outer_iters=4, inner_iters=3)
    assert reg.schedule == [FORWARD, BACKWARD, FORWARD]
    assert small(inner_iters=3, passes="forward_only").schedule == [FORWARD] * 3
    outs = reg(torch.randn(5, FEAT, dtype=torch.float64))
    assert len(outs) == 4
    assert outs[-1].pose.shape == (5, 24, 3, 3) and outs[-1].betas.shape == (5, 10)
    assert outs[-1].cam.shape == (5, 3)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_each_outer_iteration_reads_what_the_docstring_says(impl):
    """The order within outer iteration t (Sec. 3.2): root chain from (Φ, β^{t-1}); child
    chains conditioned on θ_root^t; β^t = β^{t-1} + S(Φ, Θ^t, β^{t-1}); the camera from
    (Φ, Θ^t, β^t). The heads' inputs are recorded by forward hooks, the chains' by wrapping
    their run method; each is compared with the returned Θ^t, β^t, cam^t."""
    reg = small(outer_iters=3, inner_iters=2, chain_impl=impl)
    seen = {"shape": [], "camera": [], "root": [], "children": []}

    def hook(name):
        def record(module, inputs, output):
            seen[name].append((inputs[1].detach().clone(), output.detach().clone()))
        return record

    reg.shape_net.register_forward_hook(hook("shape"))
    reg.camera_net.register_forward_hook(hook("camera"))
    run = "run_fast" if impl == "fast" else "run_reference"
    for name, group in (("root", reg.root), ("children", reg.child_chains)):
        original = getattr(group, run)

        def wrapped(prep, theta, beta, cond, schedule, original=original, name=name):
            out = original(prep, theta, beta, cond, schedule)
            seen[name].append((beta.detach().clone(), cond, out.detach().clone()))
            return out
        setattr(group, run, wrapped)
    outs = reg(torch.randn(2, FEAT, dtype=torch.float64))
    assert all(len(v) == 3 for v in seen.values()), {k: len(v) for k, v in seen.items()}
    beta_prev = reg.init_betas.expand(2, -1)
    for t, out in enumerate(outs):
        theta_t, beta_t = out.pose_aa.flatten(1), out.betas
        assert not torch.allclose(beta_t, beta_prev), t  # β moves, so the checks can fail
        shape_in, shape_out = seen["shape"][t]
        torch.testing.assert_close(shape_in, torch.cat([theta_t, beta_prev], 1))
        torch.testing.assert_close(beta_t, beta_prev + shape_out)
        camera_in, camera_out = seen["camera"][t]
        torch.testing.assert_close(camera_in, torch.cat([theta_t, beta_t], 1))
        torch.testing.assert_close(out.cam, reg.init_cam + camera_out)
        root_beta, _, root_theta = seen["root"][t]
        child_beta, cond, _ = seen["children"][t]
        torch.testing.assert_close(root_beta, beta_prev)
        torch.testing.assert_close(child_beta, beta_prev)
        torch.testing.assert_close(cond, root_theta.flatten(1))  # θ_root^t, not θ_root^{t-1}
        torch.testing.assert_close(theta_t[:, [0, 1, 2, 9, 10, 11, 18, 19, 20, 27, 28, 29]],
                                   root_theta.flatten(1))  # SMPL joints 0, 3, 6, 9
        beta_prev = beta_t


def test_starts_near_the_mean_parameters():
    reg = small()
    out = reg(torch.zeros(2, FEAT, dtype=torch.float64))[-1]
    mean = MeanParams.default()
    assert (out.pose_aa.flatten(1) - mean.pose.double()).abs().max() < 0.1
    assert (out.cam - mean.cam.double()).abs().max() < 0.05


SWITCHES = list(itertools.product(["forward_backward", "forward_only"], ["all", "previous"],
                                  [True, False], [3, 4]))


@pytest.mark.parametrize("passes,dependency,hierarchy,inner", SWITCHES)
def test_fast_equals_reference_outputs_and_gradients(passes, dependency, hierarchy, inner):
    kwargs = dict(passes=passes, joint_dependency=dependency, chain_hierarchy=hierarchy,
                  inner_iters=inner, outer_iters=2)
    ref, fast = small(chain_impl="reference", **kwargs), small(chain_impl="fast", **kwargs)
    for group in (ref.root, ref.child_chains):
        _boost(group)
        group.fwd_res.data.mul_(0.3), group.bwd_res.data.mul_(0.3)
        group.fwd_psi.data.mul_(0.05), group.bwd_psi.data.mul_(0.05)
    fast.load_state_dict(ref.state_dict())
    phi = torch.randn(4, FEAT, dtype=torch.float64)
    outs = {}
    for name, reg in (("ref", ref), ("fast", fast)):
        reg.zero_grad()
        o = reg(phi)
        loss = sum((x.pose ** 2).sum() + x.betas.sum() + x.cam.sum() for x in o)
        loss.backward()
        outs[name] = (o, {k: p.grad.clone() for k, p in reg.named_parameters()
                          if p.grad is not None})
    (o_ref, g_ref), (o_fast, g_fast) = outs["ref"], outs["fast"]
    for a, b in zip(o_ref, o_fast):
        torch.testing.assert_close(a.pose_aa, b.pose_aa, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.betas, b.betas, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.cam, b.cam, atol=1e-5, rtol=0)
    assert g_ref.keys() == g_fast.keys()
    for k in g_ref:
        torch.testing.assert_close(g_ref[k], g_fast[k], atol=1e-5, rtol=1e-5, msg=k)
