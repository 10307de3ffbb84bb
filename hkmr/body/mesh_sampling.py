"""Mesh downsampling and upsampling of a body model's template (for the CMR baseline).

CMR (Kolotouros et al., CVPR 2019, Sec. 3) runs its graph network on a coarse copy of the SMPL
mesh (1723 of 6890 vertices, made with the quadric-collapse sampling of COMA) and maps the
result back to the full mesh with a fixed upsampling matrix. Here the matrices are computed by
our own code from whichever body model is loaded (the procedural one or real SMPL):

* **Coarse vertices** ``keep``: ``ceil(V / factor)`` vertices picked by farthest-point sampling
  (Euclidean, on the template), shared out between the mesh's connected components in
  proportion to their size (the procedural body is 28 separate tubes; SMPL is one piece), at
  least one a component. The coarse vertices are a subset of the fine ones, so the
  downsampling matrix D (n x V) just selects them, as COMA's does.
* **Cells and coarse connectivity**: every fine vertex joins the coarse vertex nearest to it
  *along the mesh edges* (a multi-source Dijkstra, ``scipy.sparse.csgraph``), so cells follow
  the surface and never jump between touching body parts. Two coarse vertices are adjacent
  when a fine edge joins their cells; a fine face whose three vertices lie in three different
  cells gives a coarse triangle (the dual of the cells).
* **Upsampling** U (V x n): a fine vertex takes the barycentric weights of its closest point on
  the coarse triangles at its own and its neighbours' cells (clamped to be non-negative), as
  COMA's upsampling uses barycentric coordinates on the closest coarse face; a vertex with no
  coarse triangle there copies its cell's vertex. Kept vertices map to themselves exactly.
* **Adjacency** of the coarse graph, normalised as Kipf and Welling's graph convolution
  (which CMR's builds on): Â = D^-1/2 (A + I) D^-1/2, symmetric, largest eigenvalue 1.

Differences from CMR: farthest-point sampling and geodesic cells instead of quadric edge
collapse (no mesh-processing dependency; the coarse mesh is a subset of the fine vertices
either way), and symmetric instead of row normalisation of the adjacency.

The arrays are cached in ``$HKMR_CACHE/mesh_sampling/`` keyed by a hash of the template, the
faces, the factor and :data:`VERSION`; they are never committed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components, dijkstra

from ..digest import digest
from ..io import atomic_path, cache_dir

VERSION = 1


@dataclass
class MeshSampling:
    """Sparse matrices of one downsampling level, as scipy CSR matrices."""

    keep: np.ndarray  # (n,) fine-vertex index of every coarse vertex
    down: sp.csr_matrix  # D (n, V): coarse = D @ fine
    up: sp.csr_matrix  # U (V, n): fine ≈ U @ coarse
    adjacency: sp.csr_matrix  # Â (n, n), normalised with self-loops
    template: np.ndarray  # (n, 3) the coarse template, D @ v_template

    @property
    def num_coarse(self) -> int:
        return len(self.keep)


def _edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def _farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` points, each the farthest from those picked before; the first is
    the point farthest from the centroid (deterministic)."""
    picked = [int(np.argmax(((points - points.mean(0)) ** 2).sum(1)))]
    dist = ((points - points[picked[0]]) ** 2).sum(1)
    for _ in range(count - 1):
        picked.append(int(np.argmax(dist)))
        dist = np.minimum(dist, ((points - points[picked[-1]]) ** 2).sum(1))
    return np.array(picked)


def _shares(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` between components in proportion to ``sizes`` (largest remainder), at
    least one each."""
    exact = sizes * total / sizes.sum()
    out = np.maximum(np.floor(exact).astype(int), 1)
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while out.sum() < total:
        out[order[i % len(out)]] += 1
        i += 1
    while out.sum() > total:
        out[np.argmax(out)] -= 1
    return out


def _closest_barycentric(p: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clamped barycentric weights (..., 3) of points p (..., 3) on triangles tri (..., 3, 3)
    and the distance from p to the point they give (inf for degenerate triangles)."""
    a, e0, e1 = tri[..., 0, :], tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :]
    w = p - a
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (w * e0).sum(-1), (w * e1).sum(-1)
    denom = d00 * d11 - d01 ** 2
    ok = denom > 1e-12 * np.maximum(d00 * d11, 1e-30)
    denom = np.where(ok, denom, 1.0)
    v = (d11 * d20 - d01 * d21) / denom
    u = (d00 * d21 - d01 * d20) / denom
    bary = np.clip(np.stack([1 - v - u, v, u], -1), 0, None)
    bary /= np.maximum(bary.sum(-1, keepdims=True), 1e-12)
    dist = np.linalg.norm((bary[..., None] * tri).sum(-2) - p, axis=-1)
    return bary, np.where(ok, dist, np.inf)


def _cells(vertices: np.ndarray, edges: np.ndarray, n: int):
    """The fine edge graph (edge lengths), the ``n`` kept vertices and the cell (coarse vertex
    index) of every fine vertex."""
    V = len(vertices)
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    graph = sp.coo_matrix((np.maximum(lengths, 1e-12), (edges[:, 0], edges[:, 1])),
                          shape=(V, V)).tocsr()
    ncomp, label = connected_components(graph, directed=False)
    keep = []
    for comp, count in enumerate(_shares(np.bincount(label, minlength=ncomp), n)):
        members = np.nonzero(label == comp)[0]
        keep.append(members[_farthest_points(vertices[members], count)])
    keep = np.sort(np.concatenate(keep))
    _, _, source = dijkstra(graph, directed=False, indices=keep, min_only=True,
                            return_predecessors=True)
    coarse_of = np.full(V, -1)
    coarse_of[keep] = np.arange(n)
    return graph, keep, coarse_of[source]


def _normalised_adjacency(edges: np.ndarray, cell: np.ndarray, n: int) -> sp.csr_matrix:
    """Coarse vertices joined where a fine edge crosses their cells; D^-1/2 (A + I) D^-1/2."""
    ce = cell[edges]
    ce = ce[ce[:, 0] != ce[:, 1]]
    adj = sp.coo_matrix((np.ones(len(ce)), (ce[:, 0], ce[:, 1])), shape=(n, n))
    adj = ((adj + adj.T) > 0).astype(np.float64) + sp.eye(n)
    inv_sqrt = sp.diags(1 / np.sqrt(np.asarray(adj.sum(1)).ravel()))
    return (inv_sqrt @ adj @ inv_sqrt).tocsr()


def _upsampling(vertices, faces, graph, keep, cell) -> sp.csr_matrix:
    """U: barycentric weights on the closest coarse triangle (fine faces spanning three cells)
    among those at the cells of the vertex and of its fine neighbours; kept vertices, and any
    vertex without a coarse triangle nearby, copy their cell's vertex."""
    V, n = len(vertices), len(keep)
    rows, cols, vals = np.arange(V), cell, np.ones(V)
    cf = cell[faces]
    cf = cf[(cf[:, 0] != cf[:, 1]) & (cf[:, 1] != cf[:, 2]) & (cf[:, 0] != cf[:, 2])]
    cf = np.unique(np.sort(cf, 1), axis=0)  # orientation does not matter for weights
    if len(cf):
        incident = sp.coo_matrix((np.ones(cf.size), (cf.ravel(), np.repeat(np.arange(len(cf)), 3))),
                                 shape=(n, len(cf)))
        in_cell = sp.coo_matrix((np.ones(V), (np.arange(V), cell)), shape=(V, n))
        near = ((graph + graph.T + sp.eye(V)) > 0).astype(np.float64)
        pairs = (near @ in_cell.tocsr() @ incident.tocsr()).tocoo()  # (vertex, triangle)
        bary, dist = _closest_barycentric(vertices[pairs.row], vertices[keep][cf[pairs.col]])
        order = np.lexsort((dist, pairs.row))
        first = order[np.r_[True, np.diff(pairs.row[order]) != 0]]  # best triangle a vertex
        has = np.zeros(V, bool)
        has[pairs.row[first]] = np.isfinite(dist[first])
        has[keep] = False
        first = first[has[pairs.row[first]]]
        rows = np.concatenate([rows[~has], np.repeat(pairs.row[first], 3)])
        cols = np.concatenate([cols[~has], cf[pairs.col[first]].ravel()])
        vals = np.concatenate([vals[~has], bary[first].ravel()])
    return sp.coo_matrix((vals, (rows, cols)), shape=(V, n)).tocsr()


def compute_sampling(vertices: np.ndarray, faces: np.ndarray, factor: int) -> MeshSampling:
    """D, U and Â for a mesh with ``ceil(V / factor)`` coarse vertices (see the module doc)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    V, n = len(vertices), math.ceil(len(vertices) / factor)
    edges = _edges(faces)
    graph, keep, cell = _cells(vertices, edges, n)
    return MeshSampling(keep=keep,
                        down=sp.coo_matrix((np.ones(n), (np.arange(n), keep)),
                                           shape=(n, V)).tocsr(),
                        up=_upsampling(vertices, faces, graph, keep, cell),
                        adjacency=_normalised_adjacency(edges, cell, n),
                        template=vertices[keep])


def sampling_key(vertices: np.ndarray, faces: np.ndarray, factor: int) -> str:
    return digest(f"v{VERSION}-factor{factor}".encode(),
                  np.ascontiguousarray(vertices, dtype=np.float64).tobytes(),
                  np.ascontiguousarray(faces, dtype=np.int64).tobytes())


def _to_arrays(s: MeshSampling) -> dict[str, np.ndarray]:
    out = {"keep": s.keep, "template": s.template}
    for name in ("down", "up", "adjacency"):
        m = getattr(s, name).tocoo()
        out.update({f"{name}_row": m.row, f"{name}_col": m.col, f"{name}_val": m.data,
                    f"{name}_shape": np.array(m.shape)})
    return out


def _from_arrays(a) -> MeshSampling:
    mats = {name: sp.coo_matrix((a[f"{name}_val"], (a[f"{name}_row"], a[f"{name}_col"])),
                                shape=tuple(a[f"{name}_shape"])).tocsr()
            for name in ("down", "up", "adjacency")}
    return MeshSampling(keep=a["keep"], template=a["template"], **mats)


def mesh_sampling(vertices: np.ndarray, faces: np.ndarray, factor: int,
                  cache: Path | None = None) -> MeshSampling:
    """:func:`compute_sampling`, cached under ``$HKMR_CACHE/mesh_sampling/`` by content."""
    path = (cache or cache_dir()) / "mesh_sampling" / \
        f"{sampling_key(vertices, faces, factor)}.npz"
    if path.exists():
        with np.load(path) as a:
            return _from_arrays(a)
    result = compute_sampling(vertices, faces, factor)
    with atomic_path(path) as tmp:
        np.savez(tmp, **_to_arrays(result))
    return result


def body_mesh_sampling(model_path: str | Path | None, factor: int) -> MeshSampling:
    """The sampling of a body model's template (``None``: the procedural body model)."""
    from .procedural import procedural_model_path
    from .smpl_file import load_smpl_file

    arrays = load_smpl_file(model_path or procedural_model_path())
    return mesh_sampling(arrays["v_template"], arrays["f"], factor)


def sparse_tensor(matrix: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(indices (2, nnz) int64, values (nnz,) float32, shape) of a scipy sparse matrix, ready
    for dense buffers (they move with ``.to()`` and DDP broadcasts them)."""
    m = matrix.tocoo()
    order = np.lexsort((m.col, m.row))  # coalesced order
    idx = torch.as_tensor(np.stack([m.row[order], m.col[order]]).astype(np.int64))
    return idx, torch.as_tensor(m.data[order], dtype=torch.float32), tuple(m.shape)
