"""Test-time synthetic occluders (paper Sec. 4 "Occlusions", Fig. 5, Fig. 6; following
Sárándi et al.): oriented bars, circles and rectangles.

Degree of occlusion (DoC) 1..5, defined on a 224 px crop and scaled with the crop side S
(lengths by S/224, areas by (S/224)^2):

* **bar**: width 10·DoC px, length :data:`BAR_LENGTH` = 160 px (5/7 of the crop side),
  orientation uniform in [0°, 180°);
* **circle**: radius 10·DoC px;
* **rectangle**: area 3000·DoC px, axis-aligned, aspect ratio (width/height) log-uniform in
  [1/2, 2].

Every occluder is a solid fill of one uniformly random RGB colour. It is centred on a chosen
joint; when that would push it across the crop border it is shifted back inside — no further
than keeps the joint covered — so it always covers its nominal area and its joint. A pixel is
covered when its centre lies inside the shape.

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


def _half_extent(o: Occluder) -> np.ndarray:
    if o.kind == "bar":
        c, s = abs(np.cos(o.angle)), abs(np.sin(o.angle))
        return np.array([c * o.height / 2 + s * o.width / 2, s * o.height / 2 + c * o.width / 2])
    if o.kind == "circle":
        return np.array([o.width, o.width])
    return np.array([o.width / 2, o.height / 2])


def _local(o: Occluder, d: np.ndarray) -> np.ndarray:
    """Offsets ``d (N, 2)`` from the centre in the shape's own axes."""
    if o.kind != "bar":
        return d
    c, s = np.cos(o.angle), np.sin(o.angle)
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], 1)  # along, across


def _max_step(o: Occluder, d: np.ndarray, margin: float) -> float:
    """Largest λ in [0, 1] with the target still ``margin`` px inside after moving the centre
    by λ·d away from it (each constraint is linear in λ)."""
    a = np.abs(_local(o, d[None])[0])
    if o.kind == "circle":
        limits = [(o.width - margin, np.linalg.norm(d))]
    elif o.kind == "bar":
        limits = [(o.height / 2 - margin, a[0]), (o.width / 2 - margin, a[1])]
    else:
        limits = [(o.width / 2 - margin, a[0]), (o.height / 2 - margin, a[1])]
    lam = 1.0
    for bound, step in limits:
        if step > 1e-12:
            lam = min(lam, max(bound, 0.0) / step)
    return lam


def make_occluder(kind: str, degree: int, target: tuple[float, float], size: int,
                  rng: np.random.Generator) -> Occluder:
    """An occluder of ``kind`` and ``degree`` centred on ``target`` (pixel coordinates)."""
    check(kind, degree)
    k = size / REFERENCE_SIZE
    angle = float(rng.uniform(0, np.pi)) if kind == "bar" else 0.0
    if kind == "bar":
        width, height = 10.0 * degree * k, BAR_LENGTH * k
    elif kind == "circle":
        width = height = 10.0 * degree * k
    else:
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        area = nominal_area(kind, degree, size)
        width, height = np.sqrt(area * aspect), np.sqrt(area / aspect)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    target = np.clip(np.asarray(target, float), 0.0, size)
    occ = Occluder(kind, int(degree), tuple(target), float(width), float(height), angle, colour)
    half = np.minimum(_half_extent(occ), size / 2)
    inside = np.clip(target, half, size - half)
    d = inside - target
    centre = target + _max_step(occ, d, margin=0.75) * d
    return Occluder(kind, int(degree), (float(centre[0]), float(centre[1])), occ.width,
                    occ.height, angle, colour)


def occluder_mask(o: Occluder, size: int) -> np.ndarray:
    """(S, S) bool: pixels whose centre lies inside the occluder."""
    g = np.arange(size) + 0.5
    d = np.stack(np.broadcast_arrays(g[None, :] - o.center[0], g[:, None] - o.center[1]), -1)
    d = d.reshape(-1, 2)
    if o.kind == "circle":
        m = (d ** 2).sum(1) <= o.width ** 2
    else:
        a = np.abs(_local(o, d))
        if o.kind == "bar":
            m = (a[:, 0] <= o.height / 2) & (a[:, 1] <= o.width / 2)
        else:
            m = (a[:, 0] <= o.width / 2) & (a[:, 1] <= o.height / 2)
    return m.reshape(size, size)


def apply_occluder(img: np.ndarray, o: Occluder) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``o`` on a copy of the uint8 RGB crop; returns (image, mask)."""
    mask = occluder_mask(o, img.shape[0])
    out = img.copy()
    out[mask] = o.colour
    return out, mask


def _pixels(keypoints: np.ndarray, size: int) -> np.ndarray:
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
    target = _pixels(kp, size)[rng.choice(ok)] if len(ok) else (size / 2, size / 2)
    return make_occluder(kind, degree, target, size, rng)


def joint_occluder(kind: str, degree: int, joint: int, keypoints: np.ndarray, size: int,
                   image_id: int, seed: int = 0) -> Occluder:
    """The occluder of a Fig. 6 curve point: ``kind`` at ``degree`` on ``joint``."""
    check(kind, degree)
    if not 0 <= int(joint) < len(keypoints):
        raise ValueError(f"joint must be 0..{len(keypoints) - 1}, got {joint}")
    rng = np.random.default_rng([seed, int(image_id), _KIND_CODE[kind], int(degree), int(joint)])
    return make_occluder(kind, degree, _pixels(keypoints, size)[int(joint)], size, rng)
