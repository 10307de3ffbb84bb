"""Per-joint 2-layer MLPs f_i / b_i of a chain group (``model.chain_layer=mlp``).

Sec. 3.2, Eq. 1-2: Δθ_i = f_i([ψ, residuals of i's input joints]) (b_i for the backward pass).
The paper makes each f_i *one fully-connected layer*. Then a pass is linear in its residuals,
Δ = a + LΔ with a = W_ψ ψ + b and L strictly block-triangular, so Δ = (I - L)^{-1}(W_ψ ψ + b)
with W_ψ free: for *any* strictly triangular L — all previous joints, only the previous one,
or none — the pass ranges over the same set of affine maps of ψ. Table 2's "No joint
hierarchy" (``joint_dependency=previous``) is then a reparameterisation, and forward and
backward passes are both arbitrary affine maps of ψ ("Forward only" only ties the weights of
alternate passes); only the optimisation path differs. With f_i a 2-layer MLP
(Linear -> ReLU -> Linear, 3 outputs) on [ψ, residuals], Δ_i is a nonlinear function of the
residuals it reads, so which residuals those are (``ChainGroup.residual_inputs``: the dependency
structure and the pass direction) changes what the model can express. This switch exists to
make those ablations test something.

Layout: one :class:`JointMLPs` holds f_i (or b_i) of every joint of every chain of a group,
stacked per joint as (C, K, ...) like the linear path's weights; padding joints and
non-input residuals are masked out of the weights (so their gradients are exactly zero). A
pass runs joint by joint along the chain — each f_i needs the residuals before it, and there
is no triangular solve for a nonlinear f — but each joint step is one batched product over
the group's C chains and the batch. ``model.chain_impl`` does not apply (it chooses between
two evaluations of the *linear* pass); ``chain_layer=mlp`` always uses this pass, with the
embedding's Φ part computed once per image as in ``ChainGroup.run_fast``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class JointMLPs(nn.Module):
    """f_i (or b_i) for every joint i of C stacked chains padded to K joints.

    ``dependency`` (C, K, K): 1 where joint i reads joint j's residual; ``real`` (C, K): 1 for
    real (non-padding) joints; ``reverse``: the pass runs from the last joint to the first
    (the backward pass, b_i). Inputs and outputs are chain-major: ψ (C, B, d), residuals
    (C, B, 3K)."""

    def __init__(self, dependency: torch.Tensor, real: torch.Tensor, embed_dim: int,
                 hidden: int, reverse: bool):
        super().__init__()
        C, K = real.shape
        self.reverse, self.num_joints, self.hidden = reverse, K, hidden
        self.in_psi = nn.Parameter(torch.empty(C, embed_dim, K, hidden))
        self.in_res = nn.Parameter(torch.empty(C, K, 3 * K, hidden))
        self.in_bias = nn.Parameter(torch.zeros(C, K, hidden))
        self.out_w = nn.Parameter(torch.empty(C, K, hidden, 3))
        self.out_bias = nn.Parameter(torch.zeros(C, K, 3))
        res_mask = dependency.repeat_interleave(3, dim=2)[..., None]  # (C, K, 3K, 1)
        self.register_buffer("res_mask", res_mask, persistent=False)
        self.register_buffer("out_mask", real[..., None], persistent=False)  # (C, K, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # first layer as nn.Linear on [ψ, 3K residual slots]; last layer small (gain 0.01, as
        # the linear layers) so training starts near θ^0
        bound = 1 / math.sqrt(self.in_psi.shape[1] + self.in_res.shape[2])
        nn.init.uniform_(self.in_psi, -bound, bound)
        nn.init.uniform_(self.in_res, -bound, bound)
        nn.init.xavier_uniform_(self.out_w.view(-1, 3), gain=0.01)

    def order(self) -> range:
        K = self.num_joints
        return range(K - 1, -1, -1) if self.reverse else range(K)

    def masked(self) -> dict:
        """The weights with the dependency and padding masks applied, split per joint (once
        per forward call; one unbind is far cheaper in backward than a select per joint step):
        non-input residual slots and padding joints are exactly zero, so are their gradients.
        ``in_psi`` stays whole (C, d, K, H); the rest are K-tuples, biases (C, 1, ·)."""
        return dict(in_psi=self.in_psi, in_bias=self.in_bias[:, :, None].unbind(1),
                    in_res=(self.in_res * self.res_mask).unbind(1),
                    out_w=(self.out_w * self.out_mask[..., None]).unbind(1),
                    out_bias=(self.out_bias * self.out_mask)[:, :, None].unbind(1))

    def joint_residual(self, i: int, psi: torch.Tensor, residuals: torch.Tensor,
                       psi_hidden: torch.Tensor | None = None,
                       weights: dict | None = None) -> torch.Tensor:
        """Eq. 1/2 for joint i of every chain: f_i([ψ, residuals of its input joints]) (C, B, 3).

        ``residuals`` (C, B, 3K) may hold any value in every slot: the dependency mask
        decides which slots f_i reads. ``psi_hidden`` (ψ's first-layer part) and ``weights``
        (:meth:`masked`) are computed here unless given."""
        w = self.masked() if weights is None else weights
        if psi_hidden is None:
            psi_hidden = torch.matmul(psi, w["in_psi"][:, :, i])  # (C, B, H)
        h = torch.baddbmm(psi_hidden + w["in_bias"][i], residuals, w["in_res"][i]).relu()
        return torch.baddbmm(w["out_bias"][i], h, w["out_w"][i])

    def run_pass(self, psi: torch.Tensor, perturb: torch.Tensor | None = None,
                 weights: dict | None = None) -> torch.Tensor:
        """One pass, joint by joint in pass order: residuals Δ (C, B, 3K), padding zero.
        ``perturb`` (C, B, 3K) is added to each residual as soon as it is computed (tests)."""
        w = self.masked() if weights is None else weights
        C, B, d = psi.shape
        K, H = self.num_joints, self.hidden
        psi_hidden = torch.matmul(psi, w["in_psi"].reshape(C, d, K * H)).view(C, B, K, H)
        psi_hidden = psi_hidden.unbind(2)
        out = [psi.new_zeros(C, B, 3)] * K  # joints not yet computed are 0 and masked anyway
        for i in self.order():
            delta = self.joint_residual(i, psi, torch.cat(out, dim=2), psi_hidden[i], w)
            out[i] = delta if perturb is None else delta + perturb[..., 3 * i:3 * i + 3]
        return torch.cat(out, dim=2)
