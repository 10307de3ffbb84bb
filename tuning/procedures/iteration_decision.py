"""``decision.md`` of ``hkmr choose-iterations`` (:mod:`tuning.procedures.choose_iterations`): the margin, the
test, each candidate's paired difference to the best with its one-sided interval and
Holm-adjusted p-value, its latency, the reason for the choice, and — once, after the decision
— the test split of the chosen and the best candidate. Also ``candidates.parquet`` and the
MPJPE-against-latency plot."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hkmr.digest import git_revision
from hkmr.eval.figures import pyplot, save_png
from hkmr.eval.results import format_value, markdown_table
from hkmr.io import atomic_path

from ..stats.intervals import mean_ci
from ..stats.paired import format_p


def _num(value: float, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _reason(chosen: dict, rows: list[dict], margin: float) -> str:
    best = next(r for r in rows if r.get("best"))
    if chosen is best:
        cheaper = [r for r in rows if r["latency_b1"] < best["latency_b1"]]
        if not cheaper:
            return f"{best['name']} is both the most accurate and the cheapest candidate."
        return (f"{best['name']} has the lowest validation MPJPE, and no cheaper candidate "
                f"({', '.join(r['name'] for r in cheaper)}) is shown to be within δ = "
                f"{margin:g} mm of it.")
    return (f"{chosen['name']} is the cheapest candidate shown to be within δ = {margin:g} mm "
            f"of the best, {best['name']} (paired Δ = {chosen['diff']:+.2f} mm, one-sided 95 % "
            f"upper bound {chosen['upper']:.2f} mm, Holm-adjusted {format_p(chosen['p_holm'])})"
            f", at {chosen['latency_b1']:.2f} ms against {best['latency_b1']:.2f} ms.")


def write_decision(out: Path, chosen: dict, rows: list[dict], preset: str, seeds: int,
                   margin: float, device: str, command: str) -> Path:
    flat = [{k: v for k, v in r.items() if k not in ("values", "test")}
            | {"seeds": sorted(r["values"]), "val_mpjpe": [r["values"][s]
                                                         for s in sorted(r["values"])]}
            for r in rows]
    with atomic_path(out / "candidates.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(flat), tmp)
    best = next(r for r in rows if r.get("best"))
    body = []
    for r in sorted(rows, key=lambda r: r["mean"]):
        body.append([r["name"], format_value(mean_ci(list(r["values"].values()))),
                     "best" if r is best else _num(r["diff"]),
                     "—" if r is best else _num(r["upper"]),
                     "—" if r is best or not math.isfinite(r["p_holm"]) else format_p(r["p_holm"]),
                     "yes" if r["acceptable"] else "no",
                     f"{r['latency_b1']:.3f}", f"{r['latency_b64']:.3f}"])
    table = markdown_table(["candidate", "validation MPJPE (mm)", "Δ to best (mm)",
                            "one-sided 95 % upper bound of Δ", "Holm p (H0: Δ ≥ δ)",
                            "acceptable", "latency batch 1 (ms)", "latency batch 64 (ms)"],
                           body)
    tests = [[r["name"] + (" (chosen)" if r is chosen else "") + (" (best)" if r is best else ""),
              format_value(mean_ci(list(r["test"].values())))]
             for r in ([chosen] if chosen is best else [chosen, best])]
    lines = [f"# Choosing T and P (preset `{preset}`, {seeds} confirmation seeds)", "",
             f"Made by `{command or 'hkmr choose-iterations'}` at git revision "
             f"`{git_revision()}` on {datetime.date.today().isoformat()}; the search is in "
             f"`search/`, the confirmation runs in `../../choose_iterations_confirm/{preset}/`.",
             "",
             f"**Chosen: T = {chosen['T']}, P = {chosen['P']}.** {_reason(chosen, rows, margin)}"
             " The paper chose T = 3, P = 4 by hand.", "",
             f"**Test.** Decided on the validation split (validation MPJPE, mm), on fresh "
             f"confirmation seeds paired by seed. Margin δ = {margin:g} mm. A candidate is "
             f"acceptable when the one-sided paired t-test of H0: Δ ≥ δ (Δ = candidate − best, "
             f"per seed) rejects at 5 % after Holm's adjustment over the "
             f"{len(rows) - 1} non-best candidates; the cheapest acceptable one by batch-1 "
             f"latency (`torch.utils.benchmark`, fastest of 20 measurements of 5 passes, one "
             f"thread, on {device}) is chosen. With "
             f"{seeds} seeds an interval needs a small paired spread to fall below δ; when "
             "none does, the best is kept.", "", table,
             "Test split, reported once after the decision (P1 MPJPE, mm, mean ± 95 % CI "
             "over the confirmation seeds):", "",
             markdown_table(["candidate", "test P1 MPJPE (mm)"], tests),
             "![MPJPE against latency](mpjpe_vs_latency.png)", ""]
    with atomic_path(out / "decision.md") as tmp:
        tmp.write_text("\n".join(lines))
    _plot(out, chosen, rows)
    return out / "decision.md"


def _plot(out: Path, chosen: dict, rows: list[dict]) -> None:
    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    for r in rows:
        mean, half, _ = mean_ci(list(r["values"].values()))
        ax.errorbar(r["latency_b1"], mean, yerr=half if math.isfinite(half) else 0,
                    marker="o", capsize=3, color="C3" if r is chosen else "C0")
        ax.annotate(r["name"], (r["latency_b1"], mean), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("HKMR regressor latency, batch 1 (ms)")
    ax.set_ylabel("validation MPJPE (mm)")
    ax.grid(alpha=0.3)
    save_png(fig, out / "mpjpe_vs_latency.png")
