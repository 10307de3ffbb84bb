"""PNG figures of evaluation results, shared by ``hkmr eval`` and the sweep tables: Fig. 6
(MPJPE against the degree of occlusion, one panel per occluder kind) and the helpers every
plot uses (a headless pyplot, atomic PNG writes). A curve's points are ``(mean, half-width of
its confidence interval)``; one run has no interval (NaN) and is drawn without error bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.occlusion import DEGREES, KINDS
from ..io import atomic_path

Point = tuple[float, float]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return path


def errorbar(ax, x: Sequence[float], points: Sequence[Point], **kwargs) -> None:
    """Means with their interval as error bars (none where the interval is NaN)."""
    ax.errorbar(list(x), [p[0] for p in points],
                yerr=[p[1] if math.isfinite(p[1]) else 0 for p in points],
                marker="o", capsize=3, **kwargs)


def plot_degree_curves(curves: Mapping[str, Mapping[str, Mapping[str, Sequence[Point]]]],
                       path: Path) -> Path:
    """Fig. 6: ``curves[protocol][label][kind]`` holds one point per degree of occlusion 1..5;
    one row of panels (one per occluder kind) per protocol that has a curve."""
    plt = pyplot()
    rows = [p for p in curves if curves[p]]
    fig, axes = plt.subplots(len(rows), len(KINDS), figsize=(4 * len(KINDS), 3.2 * len(rows)),
                             sharey="row", squeeze=False)
    for row, protocol in zip(axes, rows):
        for ax, kind in zip(row, KINDS):
            for label, by_kind in curves[protocol].items():
                errorbar(ax, DEGREES, by_kind[kind], label=label)
            ax.set_title(f"{kind.capitalize()} ({protocol})")
            ax.set_xticks(list(DEGREES))
            ax.grid(alpha=0.3)
        row[0].set_ylabel(f"MPJPE {protocol} (mm)")
        row[-1].legend()
    for ax in axes[-1]:
        ax.set_xlabel("degree of occlusion")
    fig.tight_layout()
    return save_png(fig, path)
