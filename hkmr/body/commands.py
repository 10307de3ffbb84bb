"""``hkmr body``: inspect the body model and write posed examples (OBJ + PNG preview).

:func:`register` needs only argparse (``hkmr --help`` builds every parser): torch, numpy and the
body model are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    body = sub.add_parser("body", help="inspect the body model; write posed examples")
    body_sub = body.add_subparsers(dest="body_command", metavar="ACTION", required=True)
    info = body_sub.add_parser("info", help="print the body model's source, sizes and chains")
    info.add_argument("--model", help="SMPL .pkl/.npz (default: the procedural model)")
    info.set_defaults(func=_info)
    show = body_sub.add_parser("show", help="write randomly posed bodies as OBJ and a PNG")
    show.add_argument("--model", help="SMPL .pkl/.npz (default: the procedural model)")
    show.add_argument("--n", type=int, default=4, help="how many bodies")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--out", type=Path, default=Path("demo_output"))
    show.set_defaults(func=_show)


def _info(args: argparse.Namespace) -> None:
    from .joints import CHAINS, JOINT_NAMES
    from .model import BodyModel
    from .procedural import SHAPE_DIRECTIONS

    model = BodyModel(args.model)
    print(f"source: {model.source}  digest: {model.digest}")
    print(f"vertices: {model.num_vertices}  faces: {len(model.faces)}  joints: 24  "
          f"betas: {model.num_betas}")
    for name, joints in CHAINS.items():
        print(f"chain {name:10s} {', '.join(JOINT_NAMES[j] for j in joints)}")
    if model.source == "procedural":
        for k, doc in enumerate(SHAPE_DIRECTIONS):
            print(f"beta {k}: {doc}")


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.writelines(f"v {x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in vertices)
            fh.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)


def _show(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from matplotlib.collections import PolyCollection

    from ..io import atomic_path
    from .model import BodyModel

    model = BodyModel(args.model)
    gen = torch.Generator().manual_seed(args.seed)
    pose = 0.35 * torch.randn(args.n, 24, 3, generator=gen)
    pose[:, 0] = 0.0
    betas = torch.randn(args.n, model.num_betas, generator=gen)
    with torch.no_grad():
        out = model.forward_pose(pose, betas)
    faces = model.faces.numpy()
    fig, axes = plt.subplots(1, args.n, figsize=(3 * args.n, 4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        v = out.vertices[i].numpy()
        _write_obj(args.out / f"body_{i}.obj", v, faces)
        tri = v[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
        order = np.argsort(tri[:, :, 2].mean(1))  # painter's algorithm, camera on +z
        order = order[normal[order, 2] > 0]
        ax.add_collection(PolyCollection(tri[order, :, :2], edgecolors="none",
                                         facecolors=plt.cm.bone(0.3 + 0.6 * normal[order, 2])))
        joints = out.joints[i].numpy()
        ax.plot(joints[:, 0], joints[:, 1], "r.", ms=4)
        ax.set_xlim(-1, 1), ax.set_ylim(-1.4, 0.9), ax.set_aspect("equal"), ax.axis("off")
        ax.set_title(f"body {i}")
    png = args.out / "bodies.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    print(f"wrote {args.n} OBJ files and {png} ({model.source} body model)")
