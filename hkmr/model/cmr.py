"""The CMR baseline (Convolutional Mesh Regression, Kolotouros et al., CVPR 2019) of Table 1.

CMR regresses the mesh itself, not SMPL parameters (its Sec. 3):

* **Graph CNN** (Sec. 3.1-3.2): the image feature vector Φ is attached to the 3D template
  coordinates of every vertex of a coarse copy of the body mesh
  (:mod:`hkmr.body.mesh_sampling`); a per-vertex linear layer, graph residual blocks
  (GroupNorm, ReLU, per-vertex linear layers around a graph convolution Â X W with the
  normalised adjacency Â) and two heads follow: 3D vertex positions (upsampled to the full
  mesh by the fixed matrix U) and a weak-perspective camera (s, tx, ty) from a per-vertex
  scalar and a linear layer over the vertices.
* **SMPL from the regressed mesh** (Sec. 3.3): an MLP on the coarse regressed mesh (with the
  coarse template beside it) regresses the SMPL pose as rotation matrices and the shape β.
  Its input is detached: the parameter losses train the MLP alone and the mesh is learned from
  the mesh and joint losses. CMR's reported numbers, and ours, use the regressed mesh.

Sizes follow CMR: 256 channels (``model.cmr_channels``), five residual blocks after the first,
the GCN on 1/4 of the vertices (``model.cmr_downsample=4``: 1723 of 6890), a 1024-wide MLP
with two residual blocks. The CPU presets use 64 channels on 1/16 of the vertices (431) for
speed. Differences from CMR (besides the sampling itself, see its module): the first layer's
image part ``W_Φ Φ`` is computed once a sample instead of once a vertex (the same function as
CMR's per-vertex linear layer on [template, Φ], with the same parameters); the MLP outputs the
pose in the continuous 6D form (made into rotation matrices by Gram-Schmidt, as our HMR does)
instead of 9 numbers a joint orthogonalised by SVD at test time; the MLP starts from the mean
pose and shape and the camera from the mean camera (as HMR's regressor does), which CMR does not.

Layout (for CPU speed; the same function, parameter count and initialisation as 1x1 Conv1d
layers on (B, C, n)): features are vertex-major (B, n, C) throughout, so the per-vertex layers
are nn.Linear (a (out, in) weight, drawn as Conv1d's (out, in, 1) one from the same seed);
GroupNorm reads them as a channels-last (B, C, n, 1) view (:class:`GroupNorm`, nn.GroupNorm's
parameters and statistics, no transposing copies); Â acts on all samples at once as the
block-diagonal CSR matrix diag(Â, ..., Â) on the (B n, C) view (:class:`Adjacency`; Â is
symmetric, so the backward reuses it). A dense Â matmul broadcast over the batch was measured
~4x slower than the sparse product at n=431 and 12x at n=1723; COO products (of Â on a
transposed (n, B C) copy, or block-diagonal) and index_select/index_add were slower than CSR. Measured against the Conv1d layout (one thread, loaded 2-core machine, median of
interleaved fwd+bwd steps): 1.5x faster at batch 128 and 32 on 431 vertices with 64 channels,
1.5x on 1723 vertices (batch 32), 1.6x at CMR's size (256 channels); a keypoint-regime training
step (benchmarks/bench_keypoints.py) went from 21.8x to 13.7x HKMR's. What is left is mostly the
Linear GEMMs, GroupNorm and the elementwise ReLU/add passes, which the layout cannot remove.
Checkpoints of the Conv1d layout (weights (out, in, 1)) do not load.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..body.mesh_sampling import MeshSampling, sparse_tensor
from ..body.rotations import axis_angle_to_matrix, matrix_to_sixd
from ..config import ModelConfig
from .output import MeanParams, RegressorOutput


class SparseMatrix(nn.Module):
    """A constant sparse matrix kept as dense index and value buffers (so it moves with
    ``.to()``, stays out of checkpoints and DDP can broadcast it); ``self(x, dim)`` = M @ x
    along dimension ``dim`` of x, in float32."""

    def __init__(self, matrix):
        super().__init__()
        indices, values, self.shape = sparse_tensor(matrix)
        self.register_buffer("indices", indices, persistent=False)
        self.register_buffer("values", values, persistent=False)

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        m = torch.sparse_coo_tensor(self.indices, self.values, self.shape, is_coalesced=True,
                                    check_invariants=False)
        x = x.float().movedim(dim, 0)  # float32 also under autocast
        rest = x.shape[1:]
        y = torch.sparse.mm(m, x.reshape(x.shape[0], -1)).reshape(self.shape[0], *rest)
        return y.movedim(0, dim)


class _SymmetricMM(torch.autograd.Function):
    """M @ x with the gradient M @ g (M symmetric: no transposed copy of M per backward)."""

    @staticmethod
    def forward(ctx, m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.m = m
        return torch.sparse.mm(m, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.m, grad.contiguous())


class Adjacency(SparseMatrix):
    """The symmetric normalised adjacency Â applied along the vertices of (B, n, C) features
    as one block-diagonal CSR matrix diag(Â, ..., Â) @ (B n, C): no transposing copies, and
    CSR products are 1.3-2.6x faster than COO ones here (rebuilt when B or the device changes)."""

    def __init__(self, matrix):
        if (matrix != matrix.T).nnz:
            raise ValueError("the graph adjacency must be symmetric")
        super().__init__(matrix)
        self._blocks: tuple | None = None

    def __getstate__(self):  # copies and pickles rebuild the cached matrix
        return dict(super().__getstate__(), _blocks=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        key = (b, self.values.device, self.values.data_ptr())
        if self._blocks is None or self._blocks[0] != key:
            nnz = self.values.numel()
            offset = torch.arange(b, device=x.device).repeat_interleave(nnz) * n
            m = torch.sparse_coo_tensor(self.indices.repeat(1, b) + offset, self.values.repeat(b),
                                        (b * n, b * n), is_coalesced=True,
                                        check_invariants=False)
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                self._blocks = (key, m.to_sparse_csr())
        y = _SymmetricMM.apply(self._blocks[1], x.float().reshape(b * n, -1))
        return y.view(b, n, -1)  # float32 also under autocast


class GraphConv(nn.Module):
    """Â X W + b on vertex-major (B, n, C) features (Kipf and Welling; CMR Sec. 3.2)."""

    def __init__(self, c_in: int, c_out: int, adjacency: Adjacency):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out)
        self.adjacency = adjacency

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjacency(self.linear(x))


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters and statistics) on vertex-major (B, n, C) features: they
    are handed to it as a (B, C, n, 1) channels-last view, which its kernel normalises in
    place of layout, without the transposing copies of a (B, C, n) round trip."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.group_norm(x.unsqueeze(2).permute(0, 3, 1, 2), self.num_groups, self.weight,
                         self.bias, self.eps)
        return y.permute(0, 2, 3, 1).squeeze(2)


def _norm(channels: int) -> GroupNorm:
    return GroupNorm(max(channels // 8, 1), channels)


class GraphResBlock(nn.Module):
    """CMR's graph residual block: GN-ReLU-linear(c_in -> c_out/2), GN-ReLU-graph conv,
    GN-ReLU-linear(-> c_out), plus the input (through a linear layer when sizes differ)."""

    def __init__(self, c_in: int, c_out: int, adjacency: Adjacency):
        super().__init__()
        mid = c_out // 2
        self.body = nn.Sequential(_norm(c_in), nn.ReLU(), nn.Linear(c_in, mid),
                                  _norm(mid), nn.ReLU(), GraphConv(mid, mid, adjacency),
                                  _norm(mid), nn.ReLU(), nn.Linear(mid, c_out))
        self.skip = nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class _FCResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.fc2(F.relu(self.fc1(x))))


class SMPLFromMesh(nn.Module):
    """CMR Sec. 3.3: (coarse regressed mesh, coarse template) -> (pose 6D, β), residuals on
    the mean pose and shape."""

    def __init__(self, num_vertices: int, mean: MeanParams, width: int = 1024,
                 num_betas: int = 10):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6 * num_vertices, width), nn.ReLU(),
                                    _FCResBlock(width), _FCResBlock(width))
        self.out = nn.Linear(width, 24 * 6 + num_betas)
        nn.init.xavier_uniform_(self.out.weight, gain=0.01)
        nn.init.zeros_(self.out.bias)
        init_pose = matrix_to_sixd(axis_angle_to_matrix(mean.pose.reshape(24, 3))).flatten()
        self.register_buffer("init", torch.cat([init_pose, mean.betas]))

    def forward(self, mesh: torch.Tensor, template: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """mesh (B, n, 3), template (n, 3) -> pose_6d (B, 24, 6), betas (B, num_betas)."""
        x = torch.cat([mesh, template.expand_as(mesh)], dim=2).flatten(1)
        y = self.init + self.out(self.layers(x))
        return y[:, :24 * 6].reshape(-1, 24, 6), y[:, 24 * 6:]


class CMRRegressor(nn.Module):
    """Φ -> one :class:`RegressorOutput` with the regressed full mesh in ``vertices``."""

    def __init__(self, feat_dim: int, cfg: ModelConfig, mean: MeanParams,
                 sampling: MeshSampling, blocks: int = 5):
        super().__init__()
        c = cfg.cmr_channels
        adjacency = Adjacency(sampling.adjacency)
        self.upsample = SparseMatrix(sampling.up)
        self.register_buffer("template", torch.as_tensor(sampling.template, dtype=torch.float32),
                             persistent=False)
        # CMR's per-vertex linear layer on [template xyz, Φ], split into its two parts
        self.embed_template = nn.Linear(3, 2 * c)
        self.embed_features = nn.Linear(feat_dim, 2 * c, bias=False)
        self.trunk = nn.Sequential(GraphResBlock(2 * c, c, adjacency),
                                   *[GraphResBlock(c, c, adjacency) for _ in range(blocks)])
        self.shape_head = nn.Sequential(GraphResBlock(c, 64, adjacency),
                                        GraphResBlock(64, 32, adjacency), _norm(32), nn.ReLU(),
                                        nn.Linear(32, 3))
        self.cam_head = nn.Sequential(_norm(c), nn.ReLU(), nn.Linear(c, 1), nn.ReLU(),
                                      nn.Flatten(), nn.Linear(sampling.num_coarse, 3))
        self.register_buffer("init_cam", mean.cam.clone())
        # which fine vertices the graph kept: saved with the weights, so a checkpoint is never
        # loaded onto a graph built from another body mesh (_load_from_state_dict)
        self.register_buffer("graph_vertices", torch.as_tensor(sampling.keep, dtype=torch.int64))
        self.smpl = SMPLFromMesh(sampling.num_coarse, mean)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "graph_vertices")
        if saved is not None and not torch.equal(saved.cpu(), self.graph_vertices.cpu()):
            raise ValueError(f"CMR weights ({len(saved)} graph vertices) were trained on a mesh "
                             f"graph other than this body model's ({self.graph_vertices.numel()} "
                             "vertices): load them with the body model (body.model_path) and "
                             "model.cmr_downsample they were trained with")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, phi: torch.Tensor) -> list[RegressorOutput]:
        # (B, n, C) features throughout: per-vertex layers are nn.Linear on the last dimension
        x = self.embed_template(self.template) + self.embed_features(phi)[:, None]
        x = self.trunk(x)
        coarse = self.shape_head(x)  # (B, n, 3)
        cam = self.init_cam + self.cam_head(x)
        pose_6d, betas = self.smpl(coarse.detach(), self.template)
        vertices = self.upsample(coarse, dim=1)  # (B, V, 3)
        return [RegressorOutput(betas=betas, cam=cam, pose_6d=pose_6d, vertices=vertices)]
