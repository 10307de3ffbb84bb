"""Mesh downsampling/upsampling for CMR: counts, reconstruction, adjacency, cache."""

import math

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull

from hkmr.body.mesh_sampling import (body_mesh_sampling, compute_sampling, mesh_sampling,
                                     sampling_key)


@pytest.fixture(scope="module")
def template(body_model):
    smpl = body_model.smpl
    return smpl.v_template.double().numpy(), body_model.faces.numpy()


@pytest.fixture(scope="module")
def level4(template):
    return compute_sampling(*template, factor=4)


def test_downsampling_keeps_a_quarter_of_the_vertices_as_cmr(template, level4):
    v, _ = template
    assert level4.num_coarse == 1723 == math.ceil(6890 / 4)  # CMR's coarse mesh size
    assert compute_sampling(*template, factor=16).num_coarse == 431  # CMR's next level
    assert len(np.unique(level4.keep)) == 1723
    # D selects the kept vertices
    assert level4.down.shape == (1723, 6890) and level4.down.nnz == 1723
    np.testing.assert_array_equal(level4.down @ v, v[level4.keep])
    np.testing.assert_array_equal(level4.template, v[level4.keep])


def test_up_after_down_reconstructs_the_template(template, level4):
    """Measured on the procedural body: mean 2.3 mm, 99th percentile 14 mm, max 28 mm at
    1/4 (the coarse surface cuts the 5 cm-radius tubes along ~4 cm chords)."""
    v, _ = template
    up = level4.up
    assert up.shape == (6890, 1723)
    assert (up.data >= 0).all()
    np.testing.assert_allclose(np.asarray(up.sum(1)).ravel(), 1, atol=1e-12)
    error = np.linalg.norm(up @ (level4.down @ v) - v, axis=1)
    assert error[level4.keep].max() < 1e-12  # kept vertices come back exactly
    assert error.mean() < 0.003 and np.percentile(error, 99) < 0.02 and error.max() < 0.035
    # a smooth field on the mesh (not only the template) survives the round trip too
    field = np.sin(4 * v[:, 1]) + v[:, 0]
    assert np.abs(up @ (level4.down @ field) - field).mean() < 0.01


def test_coarse_adjacency_is_symmetric_normalised_and_follows_the_surface(template, level4):
    v, f = template
    adj = level4.adjacency
    assert abs(adj - adj.T).max() < 1e-15
    degree = np.diff((adj != 0).tocsr().indptr)  # neighbours + self
    assert degree.min() >= 3  # every coarse vertex has neighbours
    # Â = D^-1/2 (A + I) D^-1/2: sqrt(degree) is its eigenvector of eigenvalue 1
    np.testing.assert_allclose(adj @ np.sqrt(degree), np.sqrt(degree), rtol=1e-12)
    eig = np.linalg.eigvalsh(adj.toarray())
    assert eig.max() == pytest.approx(1.0) and eig.min() > -1
    # geodesic cells: no coarse edge joins two separate pieces of the mesh (the procedural
    # body is 28 tubes, some touching in the template)
    _, piece = connected_components(compute_graph(f, len(v)), directed=False)
    rows, cols = adj.nonzero()
    assert (piece[level4.keep[rows]] == piece[level4.keep[cols]]).all()
    assert len(np.unique(piece[level4.keep])) == piece.max() + 1  # every piece has vertices


def compute_graph(faces, n):
    import scipy.sparse as sp

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()


def test_a_mesh_of_one_piece_like_real_smpl():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    faces = ConvexHull(points).simplices
    s = compute_sampling(points, faces, factor=4)
    assert s.num_coarse == 500
    error = np.linalg.norm(s.up @ (s.down @ points) - points, axis=1)
    assert error.mean() < 0.02  # unit sphere, coarse spacing ~0.16
    assert connected_components(s.adjacency, directed=False)[0] == 1


def test_cache_is_keyed_by_content_and_reused(template, tmp_path):
    v, f = template
    a = mesh_sampling(v, f, 16, cache=tmp_path)
    files = list((tmp_path / "mesh_sampling").glob("*.npz"))
    assert [p.stem for p in files] == [sampling_key(v, f, 16)]
    b = mesh_sampling(v, f, 16, cache=tmp_path)
    np.testing.assert_array_equal(a.keep, b.keep)
    assert abs(a.up - b.up).max() == 0 and abs(a.adjacency - b.adjacency).max() == 0
    assert sampling_key(v, f, 4) != sampling_key(v, f, 16)
    assert sampling_key(v * 1.01, f, 16) != sampling_key(v, f, 16)
    assert sampling_key(v, f[::-1], 16) != sampling_key(v, f, 16)
    # reused, not recomputed: a file planted under the key is what comes back
    with np.load(files[0]) as arrays:
        changed = dict(arrays)
    changed["keep"] = changed["keep"] + 1
    np.savez(files[0], **changed)
    np.testing.assert_array_equal(mesh_sampling(v, f, 16, cache=tmp_path).keep, a.keep + 1)
    assert not list((tmp_path / "mesh_sampling").glob(".*tmp*"))


def test_body_mesh_sampling_reads_the_loaded_body_model(template):
    s = body_mesh_sampling(None, 16)  # the procedural body (cached in the session's cache)
    np.testing.assert_allclose(s.template, template[0][s.keep], atol=1e-6)  # smplx: float32
