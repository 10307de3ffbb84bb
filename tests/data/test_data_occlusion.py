"""Test-time occluders (paper Sec. 4, Fig. 5-6): nominal areas, joint coverage, determinism."""

import numpy as np
import pytest

from hkmr.data.occlusion import (BAR_LENGTH, KINDS, apply_occluder, joint_occluder,
                                 make_occluder, nominal_area, occluder_mask, standard_occluder)


def _keypoints(rng, n=24, extent=1 / 1.2):
    """Joints where synthetic test crops put them (within the 1.2x box), corners included."""
    kp = np.ones((n, 3))
    kp[:, :2] = rng.uniform(-extent, extent, (n, 2))
    e = extent
    kp[:6, :2] = [[-e, -e], [e, e], [-e, e], [e, -e], [-e, 0.1], [0.3, e]]
    return kp


@pytest.mark.parametrize("size", [128, 224])
@pytest.mark.parametrize("kind", KINDS)
def test_every_occluder_covers_its_area_and_its_joint(kind, size):
    kp = _keypoints(np.random.default_rng(0))
    for degree in range(1, 6):
        for joint in range(24):
            occ = joint_occluder(kind, degree, joint, kp, size, image_id=joint)
            mask = occluder_mask(occ, size)
            area = nominal_area(kind, degree, size)
            assert abs(mask.sum() - area) <= 0.1 * area, (kind, degree, joint, mask.sum(), area)
            u, v = np.floor((kp[joint, :2] + 1) * size / 2).astype(int).clip(0, size - 1)
            assert mask[v, u], (kind, degree, joint)


@pytest.mark.parametrize("kind", KINDS)
def test_joints_at_the_crop_corner_are_still_covered(kind):
    kp = _keypoints(np.random.default_rng(1), extent=1.0)  # joints on the crop border
    for degree in range(1, 6):
        for joint in range(6):
            occ = joint_occluder(kind, degree, joint, kp, 128, image_id=joint)
            mask = occluder_mask(occ, 128)
            u, v = np.floor((kp[joint, :2] + 1) * 64).astype(int).clip(0, 127)
            assert mask[v, u], (kind, degree, joint)
            # a small circle round a corner pixel loses up to ~30 % of its disc; bars and
            # rectangles turn or reshape until they fit
            floor = 0.7 if kind == "circle" else 0.9
            assert mask.sum() >= floor * nominal_area(kind, degree, 128), (degree, joint)


def test_degrees_follow_the_paper_at_224_and_scale_with_the_crop():
    assert nominal_area("bar", 1, 224) == pytest.approx(10 * BAR_LENGTH)
    assert nominal_area("bar", 5, 224) == pytest.approx(50 * BAR_LENGTH)
    assert nominal_area("circle", 3, 224) == pytest.approx(np.pi * 30 ** 2)
    assert nominal_area("rectangle", 1, 224) == 3000 and nominal_area("rectangle", 5, 224) == 15000
    assert nominal_area("rectangle", 5, 112) == pytest.approx(15000 / 4)
    rng = np.random.default_rng(0)
    bar = make_occluder("bar", 4, (100.0, 100.0), 224, rng)
    assert bar.width == pytest.approx(40) and bar.height == pytest.approx(BAR_LENGTH)
    circle = make_occluder("circle", 2, (100.0, 100.0), 112, rng)
    assert circle.width == pytest.approx(10)  # 20 px at 224 is 10 px at 112


def test_occluders_are_centred_on_the_joint_away_from_the_border():
    occ = make_occluder("circle", 2, (60.5, 70.25), 128, np.random.default_rng(0))
    assert occ.center == (60.5, 70.25)


def test_occluders_are_deterministic_for_a_seed():
    kp = _keypoints(np.random.default_rng(1))
    for kind in KINDS:
        a = standard_occluder(kind, kp, 128, image_id=17, seed=3)
        assert a == standard_occluder(kind, kp, 128, image_id=17, seed=3)
        others = {standard_occluder(kind, kp, 128, image_id=i, seed=3) for i in range(20)}
        assert len(others) == 20
        assert a != standard_occluder(kind, kp, 128, image_id=17, seed=4)


def test_standard_set_spreads_degrees_and_joints_over_visible_joints():
    kp = _keypoints(np.random.default_rng(2))
    kp[10:, 2] = 0  # only the first 10 joints are annotated
    occs = [standard_occluder("rectangle", kp, 128, image_id=i) for i in range(300)]
    assert {o.degree for o in occs} == {1, 2, 3, 4, 5}
    for o in occs[:50]:
        covered = [j for j in range(24)
                   if occluder_mask(o, 128)[tuple(np.floor((kp[j, 1::-1] + 1) * 64)
                                                  .astype(int).clip(0, 127))]]
        assert any(j < 10 for j in covered)


def test_bars_take_every_orientation():
    kp = _keypoints(np.random.default_rng(3))
    angles = [standard_occluder("bar", kp, 128, image_id=i).angle for i in range(200)]
    assert 0 <= min(angles) < 0.2 and np.pi - 0.2 < max(angles) < np.pi


def test_apply_paints_only_the_mask():
    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    occ = make_occluder("bar", 3, (64.0, 64.0), 128, np.random.default_rng(1))
    out, mask = apply_occluder(img, occ)
    assert (out[~mask] == img[~mask]).all()
    assert (out[mask] == occ.colour).all() and mask.any()


@pytest.mark.parametrize("args,match", [(("square", 1), "square"), (("bar", 0), "1..5"),
                                        (("circle", 6), "1..5")])
def test_bad_kind_or_degree_is_an_error(args, match):
    with pytest.raises(ValueError, match=match):
        make_occluder(*args, (10.0, 10.0), 128, np.random.default_rng(0))
