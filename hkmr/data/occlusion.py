"""Test-time synthetic occluders (paper Sec. 4 "Occlusions", Fig. 5, Fig. 6; following
Sárándi et al.): oriented bars, circles and rectangles.

Degree of occlusion (DoC) 1..5, defined on a 224 px crop and scaled with the crop side S
(lengths by S/224, areas by (S/224)^2):

* **bar**: width 10·DoC px, length :data:`BAR_LENGTH` = 160 px (5/7 of the crop side),
  orientation uniform in [0°, 180°) (redrawn, up to 32 times, while the bar cannot both cover
  its joint and fit in the crop — near a border only some orientations fit);
* **circle**: radius 10·DoC px;
* **rectangle**: area 3000·DoC px, axis-aligned, aspect ratio (width/height) log-uniform in
  [1/2, 2] (redrawn like the bar's orientation).

Every occluder is a solid fill of one uniformly random RGB colour. It is centred on a chosen
joint; when that would push it across the crop border it slides back inside (a thin bar along
its own length first) but never so far that it uncovers the joint. So it always covers its
joint, and its full nominal area unless no placement covering the joint fits in the crop (a
joint within about a radius of a crop corner, where a circle can lose up to ~30 % of its disc;
never for the synthetic test images, whose joints stay 1/12 of the crop from the border). A pixel is covered when its centre lies inside.

*Standard occlusion sets* (Table 1/4 columns "Bar", "Circle", "Rectangle"): one occluder of
the given kind per test image, with DoC uniform in 1..5 and the joint uniform among the joints
in the crop; *curves* (Fig. 6): a given (kind, DoC, joint). Both are deterministic functions of
(seed, image id, kind, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS: tuple[str, ...] = ("bar", "circle", "rectangle")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
REFERENCE_SIZE = 224
BAR_LENGTH = 160.0  # px at 224
DEGREES = (1, 2, 3, 4, 5)
#: the protocols of Fig. 6's curves: P1 (all views) and P2 (the frontal camera's images of
#: the same passes)
DEGREE_PROTOCOLS = ("P1", "P2")


def degree_key(protocol: str, kind: str, degree: int, metric: str = "mpjpe") -> str:
    """The metric key of a Fig. 6 point: ``degree_{kind}_{degree}_{metric}`` for P1 (the
    key every results folder has), ``P2_degree_...`` for P2."""
    key = f"degree_{kind}_{degree}_{metric}"
    return key if protocol == "P1" else f"{protocol}_{key}"


_ATTEMPTS = 32


@dataclass(frozen=True)
class Occluder:
    kind: str
    degree: int
    center: tuple[float, float]  # continuous pixel coordinates (pixel i spans [i, i+1))
    width: float  # bar: width; circle: radius; rectangle: width
    height: float  # bar: length; circle: radius; rectangle: height
    angle: float  # radians, bar only (direction of its length; 0 = along +x)
    colour: tuple[int, int, int]


def check(kind: str, degree: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown occluder {kind!r}; expected one of {KINDS}")
    if int(degree) not in DEGREES:
        raise ValueError(f"degree of occlusion must be 1..5, got {degree}")


def nominal_area(kind: str, degree: int, size: int) -> float:
    """Pixels the occluder covers at crop size ``size``."""
    check(kind, degree)
    k = size / REFERENCE_SIZE
    if kind == "bar":
        return 10.0 * degree * k * BAR_LENGTH * k
    if kind == "circle":
        return np.pi * (10.0 * degree * k) ** 2
    return 3000.0 * degree * k * k


def _axes(o: Occluder) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the shape's first and second side (bar: along, across)."""
    c, s = np.cos(o.angle), np.sin(o.angle)
    return np.array([c, s]), np.array([-s, c])


def _local(o: Occluder, d: np.ndarray) -> np.ndarray:
    """Offsets ``d (N, 2)`` from the centre in the shape's own axes."""
    if o.kind != "bar":
        return d
    a, b = _axes(o)
    return np.stack([d @ a, d @ b], 1)


def _side_halves(o: Occluder) -> tuple[float, float]:
    """Half sizes along the shape's own axes (circle: the radius twice)."""
    return (o.height / 2, o.width / 2) if o.kind == "bar" else (
        (o.width, o.width) if o.kind == "circle" else (o.width / 2, o.height / 2))


def _place(o: Occluder, target: np.ndarray, size: int,
           margin: float = 0.75) -> tuple[np.ndarray, float]:
    """Centre for ``o``: of the placements that keep ``target`` at least ``margin`` px inside
    the shape (a grid over the shape's own axes), the one reaching least beyond the crop,
    then the one nearest ``target``. Fully inside whenever such a placement exists (up to
    the grid step)."""
    ha, hb = _side_halves(o)
    a, b = _axes(o)
    ga = np.linspace(-1.0, 1.0, 65) * max(ha - margin, 0.0)
    gb = np.linspace(-1.0, 1.0, 65 if o.kind == "circle" else 17) * max(hb - margin, 0.0)
    oa, ob = (g.reshape(-1) for g in np.meshgrid(ga, gb))
    if o.kind == "circle":
        keep = oa**2 + ob**2 <= max(o.width - margin, 0.0) ** 2
        oa, ob = oa[keep], ob[keep]
    centres = target - oa[:, None] * a - ob[:, None] * b  # target = centre + offset
    if o.kind == "circle":
        ext = np.stack([centres - o.width, centres + o.width], 1)  # (N, 2 points, 2)
    else:
        corners = np.array([[sa * ha, sb * hb] for sa in (-1, 1) for sb in (-1, 1)])
        ext = centres[:, None] + corners[:, :1] * a + corners[:, 1:] * b  # (N, 4, 2)
    over = (np.maximum(-ext, 0) + np.maximum(ext - size, 0)).sum((1, 2))
    best = np.lexsort((oa**2 + ob**2, np.round(over, 6)))[0]
    return centres[best], float(over[best])


def make_occluder(kind: str, degree: int, target: tuple[float, float], size: int,
                  rng: np.random.Generator) -> Occluder:
    """An occluder of ``kind`` and ``degree`` centred on ``target`` (pixel coordinates)."""
    check(kind, degree)
    k = size / REFERENCE_SIZE
    target = np.clip(np.asarray(target, float), 0.0, size)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    best = None
    for _ in range(_ATTEMPTS):  # redraw angle / aspect until the occluder fits in the crop
        angle = float(rng.uniform(0, np.pi)) if kind == "bar" else 0.0
        if kind == "bar":
            width, height = 10.0 * degree * k, BAR_LENGTH * k
        elif kind == "circle":
            width = height = 10.0 * degree * k
        else:
            aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
            area = nominal_area(kind, degree, size)
            width, height = np.sqrt(area * aspect), np.sqrt(area / aspect)
        occ = Occluder(kind, int(degree), tuple(target), float(width), float(height), angle,
                       colour)
        centre, over = _place(occ, target, size)
        if best is None or over < best[1]:
            best = (occ, over, centre)
        if over == 0.0 or kind == "circle":
            break
    occ, _, centre = best
    return Occluder(kind, int(degree), (float(centre[0]), float(centre[1])), occ.width,
                    occ.height, occ.angle, colour)


def covers(o: Occluder, points: np.ndarray) -> np.ndarray:
    """(N,) bool: which points ``(N, 2)`` (continuous pixel coordinates) lie inside ``o``."""
    d = np.asarray(points, float).reshape(-1, 2) - np.asarray(o.center)
    if o.kind == "circle":
        return (d ** 2).sum(1) <= o.width ** 2
    ha, hb = _side_halves(o)
    a = np.abs(_local(o, d))
    return (a[:, 0] <= ha) & (a[:, 1] <= hb)


def occluder_mask(o: Occluder, size: int) -> np.ndarray:
    """(S, S) bool: pixels whose centre lies inside the occluder."""
    g = np.arange(size) + 0.5
    d = np.stack(np.broadcast_arrays(g[None, :], g[:, None]), -1)
    return covers(o, d.reshape(-1, 2)).reshape(size, size)


def apply_occluder(img: np.ndarray, o: Occluder) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``o`` on a copy of the uint8 RGB crop; returns (image, mask)."""
    mask = occluder_mask(o, img.shape[0])
    out = img.copy()
    out[mask] = o.colour
    return out, mask


def pixels(keypoints: np.ndarray, size: int) -> np.ndarray:
    """Crop coordinates in [-1, 1] (``(N, 2+)``) -> continuous pixel coordinates ``(N, 2)``."""
    return (np.asarray(keypoints)[:, :2] + 1.0) * size / 2


def standard_occluder(kind: str, keypoints: np.ndarray, size: int, image_id: int,
                      seed: int = 0) -> Occluder:
    """The standard-set occluder of an image: DoC uniform in 1..5, centred on a joint chosen
    uniformly among those in the crop (``keypoints (24, 3)`` in [-1, 1] with confidence)."""
    check(kind, 1)
    rng = np.random.default_rng([seed, int(image_id), _KIND_CODE[kind]])
    degree = int(rng.integers(1, 6))
    kp = np.asarray(keypoints)
    ok = np.nonzero((kp[:, 2] > 0) & (np.abs(kp[:, :2]) <= 1).all(1))[0]
    target = pixels(kp, size)[rng.choice(ok)] if len(ok) else (size / 2, size / 2)
    return make_occluder(kind, degree, target, size, rng)


def joint_occluder(kind: str, degree: int, joint: int, keypoints: np.ndarray, size: int,
                   image_id: int, seed: int = 0) -> Occluder:
    """The occluder of a Fig. 6 curve point: ``kind`` at ``degree`` on ``joint``."""
    check(kind, degree)
    if not 0 <= int(joint) < len(keypoints):
        raise ValueError(f"joint must be 0..{len(keypoints) - 1}, got {joint}")
    rng = np.random.default_rng([seed, int(image_id), _KIND_CODE[kind], int(degree), int(joint)])
    return make_occluder(kind, degree, pixels(keypoints, size)[int(joint)], size, rng)


def occluder_of(occlusion: tuple, keypoints: np.ndarray, size: int, image_id: int,
                seed: int = 0) -> Occluder:
    """The occluder a parsed test-time ``occlusion`` puts on an image: ``(kind,)`` its
    standard-set occluder, ``(kind, degree, joint)`` a Fig. 6 curve point."""
    if len(occlusion) == 1:
        return standard_occluder(occlusion[0], keypoints, size, image_id, seed)
    return joint_occluder(*occlusion, keypoints, size, image_id, seed)
