"""The HKMR regressor: hierarchical chains, inner passes, outer iterations (Sec. 3.2, Fig. 3b).

Starting from the mean pose, shape and camera (Θ^0, β^0, cam^0), each **outer iteration** t:

1. the root chain runs its P **inner passes** from θ_root^{t-1} (inputs Φ, β^{t-1});
2. the five child chains run theirs from θ_c^{t-1}, conditioned on the *current* θ_root^t
   (unless ``chain_hierarchy`` is off), as one batched operation;
3. the **shape network** re-estimates β^t = β^{t-1} + S(Φ, Θ^t, β^{t-1});
4. the **camera network** predicts the weak-perspective camera (s, tx, ty) from (Φ, Θ^t, β^t).

Every outer iteration's (Θ^t, β^t, cam^t) is returned, since the loss sums over t (Eq. 3).
Inner passes alternate forward and backward (``forward_backward``; P counts both) or are all
forward (``forward_only``). The per-joint layers f_i, b_i are one FC layer (``chain_layer=linear``,
the paper) or 2-layer MLPs (``mlp``, :mod:`hkmr.model.chain_mlp`, which always runs joint by
joint and ignores ``chain_impl``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..body.joints import CHAIN_NAMES, CHAIN_TO_SMPL, CHAINS, SMPL_TO_CHAIN
from ..config import ModelConfig
from .chain import BACKWARD, FORWARD, ChainGroup
from .output import MeanParams, RegressorOutput


class HeadNet(nn.Module):
    """The shape or camera network: a 2-layer MLP on [Φ, Θ, β] whose Φ part is computed once."""

    def __init__(self, feat_dim: int, rest_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.phi = nn.Linear(feat_dim, hidden)
        self.rest = nn.Linear(rest_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, out_dim)
        nn.init.xavier_uniform_(self.out.weight, gain=0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, phi_part: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(phi_part + self.rest(rest)))


class HKMRRegressor(nn.Module):
    def __init__(self, feat_dim: int, cfg: ModelConfig, mean: MeanParams, num_betas: int = 10):
        super().__init__()
        self.outer_iters = cfg.outer_iters
        # the MLP pass has one implementation, run by run_fast (chain_impl is for linear f_i)
        self.impl = "fast" if cfg.chain_layer == "mlp" else cfg.chain_impl
        self.chain_hierarchy = cfg.chain_hierarchy
        cycle = [FORWARD, BACKWARD] if cfg.passes == "forward_backward" else [FORWARD]
        self.schedule = [cycle[p % len(cycle)] for p in range(cfg.inner_iters)]
        lengths = [len(CHAINS[c]) for c in CHAIN_NAMES]
        layer = dict(chain_layer=cfg.chain_layer, chain_hidden=cfg.chain_hidden)
        self.root = ChainGroup(lengths[:1], feat_dim, cfg.embed_dim, 0, cfg.joint_dependency,
                               num_betas, **layer)
        self.child_chains = ChainGroup(lengths[1:], feat_dim, cfg.embed_dim,
                                       3 * lengths[0] if cfg.chain_hierarchy else 0,
                                       cfg.joint_dependency, num_betas, **layer)
        self.shape_net = HeadNet(feat_dim, 72 + num_betas, cfg.head_hidden, num_betas)
        self.camera_net = HeadNet(feat_dim, 72 + num_betas, cfg.head_hidden, 3)
        # Θ in chain order; child chains padded to (5, K) via a gather index (24 = a zero row)
        k_max, n_root = max(lengths[1:]), lengths[0]
        pad = torch.full((len(lengths) - 1, k_max), 24, dtype=torch.long)
        position = {}  # chain-order joint -> row of [root joints, padded child joints]
        start = n_root
        for c, k in enumerate(lengths[1:]):
            pad[c, :k] = torch.arange(start, start + k)
            position.update({start + i: n_root + c * k_max + i for i in range(k)})
            start += k
        position.update({i: i for i in range(n_root)})
        gather = [position[SMPL_TO_CHAIN[j]] for j in range(24)]
        self.register_buffer("pad_index", pad.flatten(), persistent=False)
        self.register_buffer("gather_smpl", torch.tensor(gather), persistent=False)
        self.register_buffer("init_theta", mean.pose.reshape(24, 3)[list(CHAIN_TO_SMPL)].clone())
        self.register_buffer("init_betas", mean.betas.clone())
        self.register_buffer("init_cam", mean.cam.clone())
        self.n_root = n_root

    def _run(self, group: ChainGroup, phi, prep, theta, beta, cond):
        if self.impl == "fast":
            return group.run_fast(prep, theta, beta, cond, self.schedule)
        return group.run_reference(phi, theta, beta, cond, self.schedule)

    def forward(self, phi: torch.Tensor) -> list[RegressorOutput]:
        B = phi.shape[0]
        init = torch.cat([self.init_theta, self.init_theta.new_zeros(1, 3)])  # row 24 = padding
        root = init[: self.n_root].expand(B, 1, self.n_root, 3)
        children = init[self.pad_index].view(1, self.child_chains.num_chains, -1, 3)
        children = children.expand(B, -1, -1, -1)
        beta = self.init_betas.expand(B, -1)
        prep = {}
        if self.impl == "fast":
            prep = {"root": self.root.prepare_fast(phi, self.schedule),
                    "children": self.child_chains.prepare_fast(phi, self.schedule)}
        shape_phi, camera_phi = self.shape_net.phi(phi), self.camera_net.phi(phi)
        outputs = []
        for _ in range(self.outer_iters):
            root = self._run(self.root, phi, prep.get("root"), root, beta, None)
            cond = root.flatten(1) if self.chain_hierarchy else None
            children = self._run(self.child_chains, phi, prep.get("children"), children, beta,
                                 cond)
            # SMPL-order Θ^t from [root joints, padded child joints] in one gather
            pose = torch.cat([root.flatten(1, 2), children.flatten(1, 2)], 1)[:, self.gather_smpl]
            flat = pose.flatten(1)
            beta = beta + self.shape_net(shape_phi, torch.cat([flat, beta], 1))
            cam = self.init_cam + self.camera_net(camera_phi, torch.cat([flat, beta], 1))
            outputs.append(RegressorOutput(betas=beta, cam=cam, pose_aa=pose))
        return outputs
