"""PNG plots of aggregated sweeps: MPJPE against iterations (Table 3) and against the degree
of occlusion (Fig. 6), mean ± 95 % CI over seeds."""

from __future__ import annotations

import math
import re
from pathlib import Path

from hkmr.io import atomic_path

from .aggregate import OCCLUSIONS, _columns, cell


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def plot_iterations(spec: dict, rows: list[dict], out_dir: Path) -> Path:
    plt = _pyplot()
    metric = spec.get("metric", "mpjpe")
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    cols = _columns(spec)
    x = [float(label) for label, _ in cols]
    for protocol in ("P1", "P2"):
        cells = [cell(rows, name, f"{protocol}_standard_{metric}") for _, name in cols]
        ax.errorbar(x, [c[0] for c in cells],
                    yerr=[c[1] if math.isfinite(c[1]) else 0 for c in cells],
                    marker="o", capsize=3, label=protocol)
    ax.set_xlabel(spec["plot"])
    ax.set_ylabel(f"{metric.upper().replace('_', '-')} (mm)")
    ax.set_xticks(x)
    ax.legend()
    ax.grid(alpha=0.3)
    path = _save(fig, out_dir / f"{_slug(spec['plot'])}.png")
    plt.close(fig)
    return path


def plot_degrees(exp, rows: list[dict], out_dir: Path) -> Path:
    plt = _pyplot()
    kinds = OCCLUSIONS[1:]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.2), sharey=True)
    degrees = range(1, 6)
    for ax, kind in zip(axes, kinds):
        for name in exp.configurations:
            cells = [cell(rows, name, f"degree_{kind}_{d}_mpjpe") for d in degrees]
            if all(c[2] == 0 for c in cells):
                continue
            ax.errorbar(list(degrees), [c[0] for c in cells],
                        yerr=[c[1] if math.isfinite(c[1]) else 0 for c in cells],
                        marker="o", capsize=3, label=name)
        ax.set_title(kind)
        ax.set_xlabel("degree of occlusion")
        ax.set_xticks(list(degrees))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MPJPE (mm), P1")
    axes[-1].legend()
    path = _save(fig, out_dir / "degree_of_occlusion.png")
    plt.close(fig)
    return path
