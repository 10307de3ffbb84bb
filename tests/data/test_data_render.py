"""The numpy renderer: z-buffer, part labels, self-occlusion flags, part maps of predicted
meshes (Table 5 segmentation) and speed."""


import numpy as np
import pytest
import torch

from hkmr.body.joints import JOINT_INDEX as J
from hkmr.data.render import (PartRenderer, face_parts, rasterize, render_view,
                              sample_appearance, sample_background)
from hkmr.data.views import CAMERAS, place_views

SQUARE = np.array([[0, 1, 2], [0, 2, 3]])


def _square(x0, y0, side, z):
    # counter-clockwise seen from the camera in a right-handed, y-down frame
    return (np.array([[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]], float),
            np.full(4, z))


def test_rasterize_covers_exactly_the_pixel_centres_inside():
    pix, z = _square(2.0, 3.0, 10.0, 1.0)
    r = rasterize(pix, z, SQUARE, 32)
    assert (r.face >= 0).sum() == 100
    assert (r.face[3:13, 2:12] >= 0).all()
    np.testing.assert_allclose(r.depth[r.face >= 0], 1.0)
    np.testing.assert_allclose(r.bary[r.face >= 0].sum(1), 1.0, atol=1e-6)
    back = rasterize(pix, z, SQUARE[:, ::-1], 32)  # the same square seen from behind
    assert (back.face < 0).all()
    assert ((rasterize(pix, z, SQUARE[:, ::-1], 32, cull=False).face >= 0).sum()) == 100


def test_zbuffer_keeps_the_nearest_surface():
    near_pix, near_z = _square(0.0, 0.0, 8.0, 1.0)
    far_pix, far_z = _square(4.0, 4.0, 8.0, 2.0)
    pix = np.concatenate([far_pix, near_pix])
    z = np.concatenate([far_z, near_z])
    faces = np.concatenate([SQUARE, SQUARE + 4])  # far square first: order must not matter
    r = rasterize(pix, z, faces, 16)
    assert (r.face[4:8, 4:8] >= 2).all()  # overlap shows the near square (faces 2, 3)
    assert (r.face[10:12, 10:12] < 2).all() and (r.face[10:12, 10:12] >= 0).all()


@pytest.fixture(scope="module")
def body(body_model):
    faces = body_model.faces.numpy()
    return faces, face_parts(faces, body_model.smpl.lbs_weights.numpy())


def _view(model, pose, view):
    with torch.no_grad():
        out = model.forward_pose(torch.as_tensor(pose[None], dtype=torch.float32),
                                 torch.zeros(1, 10))
    return place_views(out.vertices[0].double().numpy(), out.joints[0].double().numpy(),
                       pose[0])[view]


def _arms_down():
    pose = np.zeros((24, 3))
    pose[J["left_shoulder"], 2], pose[J["right_shoulder"], 2] = -1.3, 1.3
    return pose


def test_render_gives_parts_keypoints_and_visibility(body_model, body):
    faces, parts = body
    geo = _view(body_model, _arms_down(), 3)
    look = sample_appearance(np.random.default_rng(0), 128)
    r = render_view(geo.vertices, geo.joints, geo.focal, faces, parts, 128, look)
    assert r.img.shape == (128, 128, 3) and r.img.dtype == np.uint8
    assert r.parts.dtype == np.uint8 and set(np.unique(r.parts)) <= set(range(25))
    assert len(np.unique(r.parts)) > 15  # most of the 24 parts are seen from the front
    np.testing.assert_allclose(r.keypoints, geo.keypoints(), atol=1e-9)
    fg = r.parts > 0
    assert (r.img[~fg] == look.background[~fg]).all() and (r.img[fg] != look.background[fg]).any()
    u, v = ((r.keypoints[J["head"]] + 1) * 64).astype(int)
    assert r.parts[v, u] - 1 in (J["head"], J["neck"])
    assert r.visible.sum() == 24  # facing the camera, arms at the sides: nothing hidden


def test_side_view_hides_the_far_arm(body_model, body):
    faces, parts = body
    geo = _view(body_model, _arms_down(), 0)  # camera 0 sees the body's left side
    r = render_view(geo.vertices, geo.joints, geo.focal, faces, parts, 128,
                    sample_appearance(np.random.default_rng(0), 128))
    for name in ("elbow", "wrist", "shoulder"):
        assert r.visible[J[f"left_{name}"]] == 1 and r.visible[J[f"right_{name}"]] == 0, name


def test_weak_perspective_part_map_matches_the_perspective_render(body_model, body):
    faces, parts = body
    pose = _arms_down()
    geo = _view(body_model, pose, 3)
    r = render_view(geo.vertices, geo.joints, geo.focal, faces, parts, 128,
                    sample_appearance(np.random.default_rng(1), 128))
    # the models' camera: s * X + t with X the body-frame (camera-oriented) vertices; the
    # perspective projection f * (X + transl) / Z linearised at the root's depth
    body_v = geo.vertices - geo.transl
    s = geo.focal / geo.joints[0, 2]
    cam = np.array([s, *(s * geo.transl[:2])])
    renderer = PartRenderer(body_model.faces, body_model.smpl.lbs_weights, 128)
    weak = renderer(torch.as_tensor(body_v[None]), cam=torch.as_tensor(cam[None]))
    assert weak.shape == (1, 128, 128) and weak.dtype == np.uint8
    a, b = weak[0] > 0, r.parts > 0
    assert (a & b).sum() / (a | b).sum() > 0.85
    assert (weak[0][a & b] == r.parts[a & b]).mean() > 0.85
    batch = renderer(np.stack([body_v, body_v]), cam=np.stack([cam, cam * [0.5, 1, 1]]))
    assert (batch[0] == weak[0]).all() and (batch[1] > 0).sum() < 0.4 * (batch[0] > 0).sum()


def test_backgrounds_are_seeded_and_cluttered():
    a = sample_background(np.random.default_rng(4), 96)
    b = sample_background(np.random.default_rng(4), 96)
    c = sample_background(np.random.default_rng(5), 96)
    assert a.shape == (96, 96, 3) and (a == b).all() and (a != c).any()
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 100


def test_all_cameras_render_a_centred_body(body_model, body):
    faces, parts = body
    for cam in CAMERAS:
        geo = _view(body_model, _arms_down(), cam.view)
        r = render_view(geo.vertices, geo.joints, geo.focal, faces, parts, 64,
                        sample_appearance(np.random.default_rng(0), 64))
        ys, xs = np.nonzero(r.parts)
        # SPIN's crop: the 2D box is centred and its longer side is 1/1.2 of the crop
        assert abs(ys.min() + ys.max() + 1 - 64) <= 2 and abs(xs.min() + xs.max() + 1 - 64) <= 2
        assert abs((ys.max() - ys.min() + 1) - 64 / 1.2) <= 2


def test_chunked_rasterisation_is_identical_and_bounds_huge_meshes(body_model, monkeypatch):
    import hkmr.data.render as render

    with torch.no_grad():
        v = body_model.forward_pose(torch.zeros(1, 72), torch.zeros(1, 10)).vertices.numpy()
    renderer = PartRenderer(body_model.faces, body_model.smpl.lbs_weights, 96)
    cam = np.array([[1.0, 0.05, 0.2]])
    whole = renderer(v, cam=cam)
    monkeypatch.setattr(render, "_MAX_CANDIDATES", 300)  # many tiny chunks
    assert (renderer(v, cam=cam) == whole).all()
    monkeypatch.setattr(render, "_MAX_CANDIDATES", 50_000)
    blown_up = renderer(v * 40.0, cam=cam)  # triangles far larger than the image
    assert (blown_up > 0).mean() > 0.9
