"""One group of kinematic chain networks Q_c: embedding E_c and per-joint layers f_i, b_i.

Sec. 3.2, Eq. 1-2, Fig. 4. For chain c with joints 0..K_c-1 (root-most first):

* **Embedding** ψ = E_c(Φ, β, θ_c[, θ_root]) = ReLU(W [Φ, β, θ_c, θ_root] + b) ∈ R^d.
* **Forward pass** (Eq. 1): Δθ_i = f_i([ψ, Δθ_{i-1}, ..., Δθ_0]), i = 0..K_c-1, each f_i one
  fully-connected layer with 3 outputs (f_0 sees [ψ, 0], i.e. ψ alone).
* **Backward pass** (Eq. 2): the same from the last joint to the first; b_i sees ψ and the
  residuals of the joints after i. After each pass θ_c ← θ_c + Δθ and ψ is re-embedded.
* ``joint_dependency="previous"`` (Table 2, "No joint hierarchy"): f_i sees only the
  residual of the joint immediately before it in the pass.
* ``chain_layer="mlp"``: each f_i, b_i is a 2-layer MLP instead (:mod:`hkmr.model.chain_mlp`,
  which explains why: with one linear layer the dependency structure and the pass direction
  are reparameterisations of the same affine maps of ψ).

Chains are stored *stacked*: a group holds C chains padded to K = max K_c joints, so the five
child chains run as one batched operation. Padding is masked out of every weight.

Two implementations of a *linear* pass share the same parameters:

* ``reference``: joint by joint, literally Eq. 1-2 (each f_i applied to its concatenated input).
* ``fast`` (default): because every f_i is linear, a pass solves Δ = a + LΔ with a = W_ψ ψ + b
  and L strictly block-triangular; so Δ = (I - L)^{-1} a, and (I - L)^{-1} W_ψ is one d -> 3K
  matrix per chain and direction, computed once per forward call by a unit-triangular solve.
  The Φ part of every embedding is computed once per image.

The MLP pass has one implementation, joint by joint and batched over chains
(:meth:`JointMLPs.run_pass`); it runs inside :meth:`ChainGroup.run_fast` whatever
``model.chain_impl`` says, so ``fast`` never applies the linear solve to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .chain_mlp import JointMLPs

FORWARD, BACKWARD = "forward", "backward"


class ChainGroup(nn.Module):
    """Q_c for a group of chains that run at the same time (the root alone, or the children).

    ``cond_dim`` is the size of the conditioning pose θ_root (12 for child chains with the
    chain hierarchy, 0 otherwise)."""

    def __init__(self, chain_lengths: list[int], feat_dim: int, embed_dim: int,
                 cond_dim: int, joint_dependency: str, num_betas: int = 10,
                 chain_layer: str = "linear", chain_hidden: int = 64):
        super().__init__()
        self.lengths = list(chain_lengths)
        C, K, d = len(chain_lengths), max(chain_lengths), embed_dim
        self.num_chains, self.max_joints, self.embed_dim = C, K, d
        self.num_betas = num_betas
        self.cond_dim, self.joint_dependency = cond_dim, joint_dependency
        if chain_layer not in ("linear", "mlp"):
            raise ValueError(f"chain_layer={chain_layer!r}: choose 'linear' or 'mlp'")
        self.chain_layer = chain_layer
        in_rest = num_betas + 3 * K + cond_dim
        # E_c: weights for [Φ | β, θ_c (padded to 3K), θ_root]
        self.emb_phi = nn.Parameter(torch.empty(C, d, feat_dim))
        self.emb_rest = nn.Parameter(torch.empty(C, d, in_rest))
        self.emb_bias = nn.Parameter(torch.zeros(C, d))
        real = torch.zeros(C, K)
        for c, k in enumerate(chain_lengths):
            real[c, :k] = 1
        joint_mask = real.repeat_interleave(3, dim=1)  # (C, 3K)
        rest_mask = torch.cat([torch.ones(C, num_betas), joint_mask, torch.ones(C, cond_dim)], 1)
        self.register_buffer("out_mask", joint_mask, persistent=False)
        self.register_buffer("rest_mask", rest_mask[:, None, :], persistent=False)
        deps = {}  # (C, K, K): 1 where joint i of chain c reads joint j's residual
        for direction in (FORWARD, BACKWARD):
            deps[direction] = torch.zeros(C, K, K)
            for c, k in enumerate(chain_lengths):
                for i in range(k):
                    deps[direction][c, i, self.residual_inputs(i, k, direction)] = 1
        if chain_layer == "mlp":
            self.fwd_mlp = JointMLPs(deps[FORWARD], real, d, chain_hidden, reverse=False)
            self.bwd_mlp = JointMLPs(deps[BACKWARD], real, d, chain_hidden, reverse=True)
        else:
            # f_i (forward), b_i (backward): ψ weights, residual weights, bias; rows 3i..3i+2
            self.fwd_psi = nn.Parameter(torch.empty(C, 3 * K, d))
            self.fwd_res = nn.Parameter(torch.empty(C, 3 * K, 3 * K))
            self.fwd_bias = nn.Parameter(torch.zeros(C, 3 * K))
            self.bwd_psi = nn.Parameter(torch.empty(C, 3 * K, d))
            self.bwd_res = nn.Parameter(torch.empty(C, 3 * K, 3 * K))
            self.bwd_bias = nn.Parameter(torch.zeros(C, 3 * K))
            for direction, dep in deps.items():
                dep = dep.repeat_interleave(3, dim=1).repeat_interleave(3, dim=2)
                self.register_buffer(f"{direction}_dep", dep, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.emb_phi, self.emb_rest):
            nn.init.kaiming_uniform_(p.view(-1, p.shape[-1]), a=5 ** 0.5)
        if self.chain_layer == "mlp":
            self.fwd_mlp.reset_parameters(), self.bwd_mlp.reset_parameters()
            return
        for p in (self.fwd_psi, self.bwd_psi, self.fwd_res, self.bwd_res):
            nn.init.xavier_uniform_(p.view(-1, p.shape[-1]), gain=0.01)  # start near θ^0

    def residual_inputs(self, i: int, length: int, direction: str) -> list[int]:
        """Joints whose residuals f_i (forward) or b_i (backward) take as input, in pass order."""
        earlier = list(range(i)) if direction == FORWARD else list(range(length - 1, i, -1))
        if self.joint_dependency == "previous":
            earlier = earlier[-1:]
        return earlier

    def mlp(self, direction: str) -> JointMLPs:
        """f_i (forward) or b_i (backward) of every joint, ``chain_layer=mlp``."""
        return self.fwd_mlp if direction == FORWARD else self.bwd_mlp

    # -- parameters with padding and dependency masks applied ------------------------------
    def _rest_weight(self) -> torch.Tensor:
        return self.emb_rest * self.rest_mask

    def _layers(self, direction: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        psi_w, res_w, bias = ((self.fwd_psi, self.fwd_res, self.fwd_bias) if direction == FORWARD
                              else (self.bwd_psi, self.bwd_res, self.bwd_bias))
        mask = self.out_mask
        return psi_w * mask[..., None], res_w * getattr(self, f"{direction}_dep"), bias * mask

    # -- reference (linear only): Eq. 1-2 joint by joint, E_c on its full input -----------------
    def embed_reference(self, phi: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        """ψ for every chain from the full input [Φ, β, θ_c, θ_root]: (B, C, d)."""
        weight = torch.cat([self.emb_phi, self._rest_weight()], dim=2)  # (C, d, F + rest)
        return torch.stack([F.relu(F.linear(torch.cat([phi, rest[:, c]], 1), weight[c],
                                            self.emb_bias[c]))
                            for c in range(self.num_chains)], dim=1)

    def joint_residual(self, c: int, i: int, direction: str, psi: torch.Tensor,
                       residuals: dict[int, torch.Tensor]) -> torch.Tensor:
        """Eq. 1/2 for one joint: f_i or b_i applied to [ψ, residuals of its input joints]."""
        psi_w, res_w, bias = self._layers(direction)
        rows = slice(3 * i, 3 * i + 3)
        inputs = self.residual_inputs(i, self.lengths[c], direction)
        weight = torch.cat([psi_w[c, rows]] + [res_w[c, rows, 3 * j:3 * j + 3] for j in inputs], 1)
        x = torch.cat([psi] + [residuals[j] for j in inputs], dim=1)
        return F.linear(x, weight, bias[c, rows])

    def pass_reference(self, psi: torch.Tensor, direction: str,
                       perturb: torch.Tensor | None = None) -> torch.Tensor:
        """Joint-by-joint pass: residuals (B, C, K, 3), padding zero. ``perturb`` (B, C, K, 3)
        is added to each residual as soon as it is computed (tests use it to trace order)."""
        zero = psi.new_zeros(psi.shape[0], 3)
        out = [[zero] * self.max_joints for _ in range(self.num_chains)]
        for c, k in enumerate(self.lengths):
            residuals: dict[int, torch.Tensor] = {}
            for i in (range(k) if direction == FORWARD else range(k - 1, -1, -1)):
                residuals[i] = self.joint_residual(c, i, direction, psi[:, c], residuals)
                if perturb is not None:
                    residuals[i] = residuals[i] + perturb[:, c, i]
                out[c][i] = residuals[i]
        return torch.stack([torch.stack(o, 1) for o in out], 1)

    def run_reference(self, phi: torch.Tensor, theta: torch.Tensor, beta: torch.Tensor,
                      cond: torch.Tensor | None, schedule: list[str]) -> torch.Tensor:
        """All inner passes: θ_c (B, C, K, 3) -> refined θ_c, ψ re-embedded after each pass."""
        B, C = theta.shape[:2]

        def rest(th):
            parts = [beta[:, None].expand(B, C, -1), th.flatten(2)]
            return torch.cat(parts + ([cond[:, None].expand(B, C, -1)] if cond is not None
                                      else []), dim=2)

        psi = self.embed_reference(phi, rest(theta))
        for p, direction in enumerate(schedule):
            theta = theta + self.pass_reference(psi, direction)
            if p + 1 < len(schedule):  # the last ψ would not be used
                psi = self.embed_reference(phi, rest(theta))
        return theta

    # -- fast: Φ part once per image; one linear map per pass, or the MLP pass ------------------
    def solved_layers(self, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(I - L)^{-1} W_ψ and (I - L)^{-1} b for every chain: (C, 3K, d), (C, 3K)."""
        psi_w, res_w, bias = self._layers(direction)
        eye = torch.eye(res_w.shape[-1], dtype=res_w.dtype, device=res_w.device)
        stacked = torch.cat([psi_w, bias[..., None]], dim=2)
        solved = torch.linalg.solve_triangular(eye - res_w, stacked,
                                               upper=direction == BACKWARD, unitriangular=True)
        return solved[..., :-1], solved[..., -1]

    def prepare_fast(self, phi: torch.Tensor, schedule: list[str]) -> dict:
        """Everything that depends only on Φ and the weights, once per forward call; tensors are
        laid out chain-major, (C, B, ·), for batched matrix products."""
        rest_w = self._rest_weight().transpose(1, 2)  # (C, rest, d)
        nb, nk = self.num_betas, 3 * self.max_joints
        solved = {}
        for direction in set(schedule):
            if self.chain_layer == "mlp":  # masked MLP weights; no solve for a nonlinear f_i
                solved[direction] = self.mlp(direction).masked()
                continue
            weight, bias = self.solved_layers(direction)
            solved[direction] = (weight.transpose(1, 2), bias[:, None])
        return dict(phi_part=torch.matmul(phi, self.emb_phi.transpose(1, 2))
                    + self.emb_bias[:, None], w_beta=rest_w[:, :nb], w_theta=rest_w[:, nb:nb + nk],
                    w_cond=rest_w[:, nb + nk:], solved=solved)

    def run_fast(self, prep: dict, theta: torch.Tensor, beta: torch.Tensor,
                 cond: torch.Tensor | None, schedule: list[str]) -> torch.Tensor:
        """Same result as :meth:`run_reference`, a few batched products per pass (linear); with
        ``chain_layer=mlp`` each pass is :meth:`JointMLPs.run_pass`."""
        B, C, K, _ = theta.shape
        th = theta.flatten(2).transpose(0, 1)  # (C, B, 3K)
        pre = prep["phi_part"] + torch.matmul(beta, prep["w_beta"])  # fixed during the passes
        if cond is not None:
            pre = pre + torch.matmul(cond, prep["w_cond"])
        psi = torch.baddbmm(pre, th, prep["w_theta"]).relu()
        for p, direction in enumerate(schedule):
            if self.chain_layer == "mlp":
                th = th + self.mlp(direction).run_pass(psi, weights=prep["solved"][direction])
            else:
                weight, bias = prep["solved"][direction]
                th = th + torch.baddbmm(bias, psi, weight)
            if p + 1 < len(schedule):
                psi = torch.baddbmm(pre, th, prep["w_theta"]).relu()
        return th.transpose(0, 1).reshape(B, C, K, 3)
