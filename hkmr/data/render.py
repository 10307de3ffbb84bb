"""A numpy/opencv renderer for the synthetic benchmark (the stand-in for Human3.6M images,
paper Sec. 4) and for the part-segmentation metrics of Table 5 (part labels of a mesh).

No OpenGL. :func:`rasterize` is a vectorised z-buffer: every front-facing triangle proposes
the pixels of its bounding box, barycentric coordinates keep those whose centre lies inside,
and per pixel the nearest proposal wins (``np.lexsort`` on (pixel, depth)). Pixel ``i`` covers
``[i, i+1)``; its centre is ``i + 0.5`` — so crop coordinates ``x = u / (S/2) - 1`` are exactly
mirror-symmetric and a horizontal flip is ``x -> -x``. The winning face id, depth and
barycentrics give Lambert shading (smooth vertex normals), part labels (each face belongs to
the joint with the largest summed skinning weight; label = joint id + 1, 0 = background) and
per-joint self-occlusion flags.

Appearance: clothing colours per body part (left/right symmetric, so a flipped image is again
a valid rendering), one directional light from the camera's side plus ambient light, and a
procedural cluttered background (gradient, low-frequency texture, random shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..body.joints import JOINT_NAMES, NUM_JOINTS, PARENTS


@dataclass
class Raster:
    face: np.ndarray  # (S, S) int32, -1 = background
    depth: np.ndarray  # (S, S) float32, inf = background
    bary: np.ndarray  # (S, S, 3) float32 barycentrics of the winning face


def project(points: np.ndarray, focal: float, size: int) -> np.ndarray:
    """Perspective: camera-frame points (N, 3) -> continuous pixel coordinates (N, 2)."""
    return size / 2 * (1.0 + focal * points[:, :2] / points[:, 2:3])


def weak_perspective(points: np.ndarray, cam: np.ndarray, size: int) -> np.ndarray:
    """The models' camera: crop coordinates ``s * X[:, :2] + (tx, ty)`` -> pixels (N, 2)."""
    return size / 2 * (1.0 + cam[0] * points[:, :2] + np.asarray(cam[1:3]))


_MAX_CANDIDATES = 2_000_000  # pixel proposals per chunk: bounds memory for huge triangles


def rasterize(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: int,
              cull: bool = True) -> Raster:
    """Z-buffer a triangle mesh given its vertices' pixel coordinates (V, 2) and depths (V,).

    With ``cull``, triangles whose image winding is clockwise in (u, v) (i.e. facing away for
    a mesh whose faces wind counter-clockwise seen from outside, as SMPL's) are dropped.
    Faces are processed in chunks of at most ~2M pixel proposals, so even a mesh blown up to
    cover the image many times over (a wild predicted camera) rasterises in bounded memory."""
    tri = pixels[faces].astype(np.float64)  # (F, 3, 2)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    fid = np.nonzero(area < -1e-12 if cull else np.abs(area) > 1e-12)[0]
    t0, t1, t2 = tri[fid, 0], tri[fid, 1], tri[fid, 2]
    lo = np.ceil(np.minimum(np.minimum(t0, t1), t2) - 0.5).astype(np.int64)  # first centre
    hi = np.floor(np.maximum(np.maximum(t0, t1), t2) - 0.5).astype(np.int64)  # >= min
    lo, hi = np.maximum(lo, 0), np.minimum(hi, size - 1)
    w, h = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    ok = (w > 0) & (h > 0)
    fid, lo, w, h = fid[ok], lo[ok], w[ok], h[ok]
    face = np.full(size * size, -1, np.int32)
    zbuf = np.full(size * size, np.inf, np.float64)
    bbuf = np.zeros((size * size, 3), np.float32)
    ends = np.cumsum(w * h)
    start = 0
    while start < len(fid):
        stop = max(int(np.searchsorted(ends, ends[start] - w[start] * h[start] + _MAX_CANDIDATES,
                                       side="right")), start + 1)
        sl = slice(start, stop)
        pix, z, f, bary = _proposals(tri, area, depth, faces, fid[sl], lo[sl], w[sl], h[sl], size)
        better = z < zbuf[pix]
        pix, z, f, bary = pix[better], z[better], f[better], bary[better]
        face[pix], zbuf[pix], bbuf[pix] = f, z, bary
        start = stop
    return Raster(face.reshape(size, size), zbuf.astype(np.float32).reshape(size, size),
                  bbuf.reshape(size, size, 3))


def _proposals(tri, area, depth, faces, fid, lo, w, h, size):
    """Nearest proposal per pixel from faces ``fid``: (pixel, depth, face, barycentrics)."""
    count = w * h
    rep = np.repeat(np.arange(len(fid)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    f = fid[rep]
    px = lo[rep, 0] + k % w[rep]
    py = lo[rep, 1] + k // w[rep]
    t = tri[f]
    cx, cy = px + 0.5, py + 0.5
    b0 = ((t[:, 1, 0] - cx) * (t[:, 2, 1] - cy) - (t[:, 1, 1] - cy) * (t[:, 2, 0] - cx)) / area[f]
    b1 = ((t[:, 2, 0] - cx) * (t[:, 0, 1] - cy) - (t[:, 2, 1] - cy) * (t[:, 0, 0] - cx)) / area[f]
    b2 = 1.0 - b0 - b1
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
    f, px, py = f[inside], px[inside], py[inside]
    bary = np.stack([b0[inside], b1[inside], b2[inside]], 1)
    z = (bary * depth[faces[f]]).sum(1)
    pix = py * size + px
    order = np.lexsort((z, pix))
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    win = order[first]
    return pix[win], z[win], f[win], bary[win]


def face_parts(faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(F,) body part of each face: the joint with the largest summed skinning weight."""
    return np.asarray(weights)[np.asarray(faces)].sum(1).argmax(1)


def part_map(raster: Raster, parts: np.ndarray) -> np.ndarray:
    """(S, S) uint8 part labels: 0 background, joint id + 1 on the body."""
    lab = np.zeros(raster.face.shape, np.uint8)
    fg = raster.face >= 0
    lab[fg] = parts[raster.face[fg]] + 1
    return lab


class PartRenderer:
    """Part-label maps of meshes for segmentation metrics (Table 5): ``(B, V, 3)`` vertices,
    either with weak-perspective cameras ``cam (B, 3)`` = (s, tx, ty) (the models' convention,
    vertices in the camera-oriented body frame) or, with ``cam=None``, as camera-frame points
    under a perspective camera of normalised focal ``focal``. Returns (B, S, S) uint8."""

    def __init__(self, faces, lbs_weights, size: int = 128):
        self.faces = np.asarray(faces, dtype=np.int64)
        self.parts = face_parts(self.faces, np.asarray(lbs_weights))
        self.size = size

    def __call__(self, vertices, cam=None, focal=None) -> np.ndarray:
        v = np.asarray(vertices.detach().cpu() if hasattr(vertices, "detach") else vertices,
                       dtype=np.float64)
        c = None if cam is None else np.asarray(
            cam.detach().cpu() if hasattr(cam, "detach") else cam, dtype=np.float64)
        out = np.zeros((len(v), self.size, self.size), np.uint8)
        for b in range(len(v)):
            if c is not None:
                pix = weak_perspective(v[b], c[b], self.size)
            else:
                pix = project(v[b], float(np.asarray(focal).reshape(-1)[b % np.size(focal)]),
                              self.size)
            out[b] = part_map(rasterize(pix, v[b][:, 2], self.faces, self.size), self.parts)
        return out


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3)."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(vertices)
    for k in range(3):
        for c in range(3):
            vn[:, c] += np.bincount(faces[:, k], fn[:, c], minlength=len(vertices))
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)


def _neighbour_parts() -> list[set[int]]:
    out = [{j} for j in range(NUM_JOINTS)]
    for j in range(1, NUM_JOINTS):
        out[j].add(PARENTS[j])
        out[PARENTS[j]].add(j)
    return out


#: parts whose surface may be seen at a joint's pixel without the joint being occluded
NEIGHBOUR_PARTS: list[set[int]] = _neighbour_parts()


def joint_visibility(raster: Raster, parts: np.ndarray, joint_pixels: np.ndarray) -> np.ndarray:
    """(24,) 1.0 where a joint is not self-occluded: the surface seen at its pixel belongs to
    its own part or a part adjacent in the kinematic tree (or no surface covers it); 0.0 when
    another body part is in front, or the joint is outside the crop."""
    size = raster.face.shape[0]
    vis = np.zeros(len(joint_pixels), np.float32)
    for j, (u, v) in enumerate(joint_pixels):
        iu, iv = int(np.floor(u)), int(np.floor(v))
        if not (0 <= iu < size and 0 <= iv < size):
            continue
        f = raster.face[iv, iu]
        vis[j] = float(f < 0 or int(parts[f]) in NEIGHBOUR_PARTS[j])
    return vis


# --- appearance ------------------------------------------------------------------------------
def _base(name: str) -> str:
    return name.removeprefix("left_").removeprefix("right_")


_BASES = sorted({_base(n) for n in JOINT_NAMES})
#: per-part brightness factor (same on both sides) so neighbouring parts stay distinguishable
_PART_SHADE = np.array([1.0 + 0.06 * ((_BASES.index(_base(n)) * 3) % 5 - 2)
                        for n in JOINT_NAMES])
_SHIRT = ("spine1", "spine2", "spine3", "collar", "shoulder")
_PANTS = ("pelvis", "hip")
_SKIN = ("neck", "head", "wrist", "hand")
_SHOES = ("ankle", "foot")


def _hsv(rng: np.random.Generator, s=(0.2, 0.9), v=(0.25, 0.95)) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), 255 * rng.uniform(*s), 255 * rng.uniform(*v)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def sample_clothing(rng: np.random.Generator) -> np.ndarray:
    """(24, 3) RGB albedo in [0, 1] per body part: shirt, trousers, skin, shoes."""
    t = rng.uniform()
    skin = (1 - t) * np.array([0.95, 0.78, 0.66]) + t * np.array([0.36, 0.23, 0.16])
    shirt, pants, shoes = _hsv(rng), _hsv(rng), _hsv(rng, v=(0.1, 0.6))
    long_sleeves, long_pants = rng.random() < 0.5, rng.random() < 0.7
    colours = np.zeros((NUM_JOINTS, 3))
    for j, name in enumerate(JOINT_NAMES):
        b = _base(name)
        if b in _SHIRT or (b == "elbow" and long_sleeves):
            colours[j] = shirt
        elif b in _PANTS or (b == "knee" and long_pants):
            colours[j] = pants
        elif b in _SHOES:
            colours[j] = shoes
        else:  # _SKIN, bare forearms and shins
            colours[j] = skin
    return np.clip(colours * _PART_SHADE[:, None], 0.0, 1.0)


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(S, S, 3) uint8 RGB clutter: a colour gradient, low-frequency texture, random shapes."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ang = rng.uniform(0, 2 * np.pi)
    g = np.linspace(-1, 1, size)
    t = 0.5 + 0.5 * (np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]) / np.sqrt(2)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    cells = int(rng.integers(3, 9))
    tex = cv2.resize(rng.normal(0, 30, (cells, cells, 3)), (size, size),
                     interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + tex, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(8, 25))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(5)
        p = rng.uniform(-0.2, 1.2, 4) * size
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, max(2, size // 40) + 1))
        r = int(rng.uniform(0.03, 0.25) * size)
        if kind == 0:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, thick)
        elif kind == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), r, colour, thick)
        elif kind == 2:
            axes = (r, int(r * rng.uniform(0.2, 1.0)))
            cv2.ellipse(img, (int(p[0]), int(p[1])), axes, float(rng.uniform(0, 180)), 0, 360,
                        colour, thick)
        elif kind == 3:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, max(thick, 1))
        else:
            pts = (rng.uniform(-0.2, 1.2, (3, 2)) * size).astype(np.int32)
            cv2.fillConvexPoly(img, pts, colour)
    sigma = rng.uniform(0.0, 1.2)
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.3 else img


@dataclass
class Appearance:
    """Everything about a view's look except geometry."""

    colours: np.ndarray  # (24, 3) RGB albedo in [0, 1]
    light: np.ndarray  # (3,) unit vector towards the light, camera frame
    ambient: float
    diffuse: float
    background: np.ndarray  # (S, S, 3) uint8 RGB


def sample_appearance(rng: np.random.Generator, size: int,
                      colours: np.ndarray | None = None) -> Appearance:
    """Random light (from the camera's side, mostly from above) and background; clothing
    ``colours`` are per subject-pose and shared by its views when given."""
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.3), -rng.uniform(0.4, 1.2)])
    return Appearance(
        colours=sample_clothing(rng) if colours is None else colours,
        light=light / np.linalg.norm(light), ambient=float(rng.uniform(0.25, 0.5)),
        diffuse=float(rng.uniform(0.5, 0.8)), background=sample_background(rng, size))


@dataclass
class RenderedView:
    img: np.ndarray  # (S, S, 3) uint8 RGB
    parts: np.ndarray  # (S, S) uint8, 0 background, joint id + 1
    keypoints: np.ndarray  # (24, 2) float, crop coordinates in [-1, 1]
    visible: np.ndarray  # (24,) float32, 1 = not self-occluded


def render_view(vertices: np.ndarray, joints: np.ndarray, focal: float, faces: np.ndarray,
                parts: np.ndarray, size: int, look: Appearance,
                normals: np.ndarray | None = None) -> RenderedView:
    """Render camera-frame ``vertices (V, 3)`` and ``joints (24, 3)`` into an S x S crop.
    ``normals`` (camera frame) are computed from the mesh unless given."""
    pix = project(vertices, focal, size)
    raster = rasterize(pix, vertices[:, 2], faces, size)
    fg = raster.face >= 0
    fid = raster.face[fg]
    if normals is None:
        normals = vertex_normals(vertices, faces)
    n = (raster.bary[fg][:, :, None] * normals[faces[fid]]).sum(1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = look.ambient + look.diffuse * np.clip(n @ look.light, 0.0, None)
    img = look.background.copy()
    img[fg] = np.clip(255.0 * look.colours[parts[fid]] * light[:, None], 0, 255).astype(np.uint8)
    joint_pix = project(joints, focal, size)
    return RenderedView(img=img, parts=part_map(raster, parts),
                        keypoints=joint_pix / (size / 2) - 1.0,
                        visible=joint_visibility(raster, parts, joint_pix))
