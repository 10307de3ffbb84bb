"""``decision.md`` of ``hkmr choose`` (:mod:`tuning.procedures.choose`): the reference, δ and
the sequential boundary, the seeds used, each candidate's outcome, paired difference and cost;
the outcome (decided or inconclusive, with the seeds that would decide the open candidates);
a replay of the procedure at the observed differences and spreads (how often fresh seeds would
give the same choice, "inconclusive", or a contradicting one); and, last, the test split of
the chosen and the reference configuration, evaluated once after the decision. Also
``candidates.parquet`` and the MPJPE-against-cost plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from hkmr.digest import git_revision
from hkmr.eval.figures import pyplot, save_png
from hkmr.eval.results import format_value, markdown_table
from hkmr.io import atomic_path

from ..stats.intervals import mean_ci
from ..stats.sequential_choice import (NONINFERIOR, OPEN, SUPERIOR, Candidate, Design,
                                       seeds_to_decide, simulate, still_open)

REPLAYS = 2000


@dataclass
class DecisionInputs:
    experiment: str
    preset: str
    points: dict[str, dict]
    reference_values: dict[str, Any]
    candidates: list[Candidate]
    chosen: Candidate | None
    costs: dict[str, float]
    cost_what: str
    design: Design
    seeds: int
    source: str
    trials: pa.Table  # the confirmation trials (validation only)
    test: pa.Table  # the test run after the decision
    command: str


def _val(trials: list[dict], name: str, key: str = "val_mpjpe") -> list[float]:
    return [r[key] for r in trials if r["configuration"] == name and r["status"] == "ok"
            and r.get(key) is not None and math.isfinite(r[key])]


def _row(c: Candidate, inputs: DecisionInputs, trials: list[dict]) -> list[str]:
    d = c.differences()
    mean = f"{d.mean():+.2f}" if len(d) else "—"
    interval = "—"
    if len(d) >= 2:
        half = float(np.std(d, ddof=1) / math.sqrt(len(d)))
        q = stats.t.ppf(1 - inputs.design.level, len(d) - 1)
        interval = f"[{d.mean() - q * half:+.2f}, {d.mean() + q * half:+.2f}]"
    outcome = c.status + (" (also better by more than δ)" if c.superior
                          and c.status != SUPERIOR else "")
    if c.look:
        outcome += f", look {c.look}"
    return [c.name, f"{inputs.costs[c.name]:.3f}",
            "cheaper" if c.cost < inputs.costs["reference"] else "not cheaper",
            format_value(mean_ci(_val(trials, c.name))), f"{mean} (n={len(d)})", interval,
            outcome]


def _replay(inputs: DecisionInputs) -> str:
    """The procedure replayed at the observed means and spreads (independent candidates)."""
    cands = [c for c in inputs.candidates if len(c.values) >= 2]
    means = [float(c.differences().mean()) for c in cands]
    sds = [max(float(c.differences().std(ddof=1)), 1e-9) for c in cands]
    sim = simulate(means, sds, [c.cost for c in cands], inputs.costs["reference"],
                   inputs.design, REPLAYS, seed=0)
    names = {str(i): c.name for i, c in enumerate(cands)} | {"reference": "the reference"}
    ours = next((k for k, v in names.items() if inputs.chosen and v == inputs.chosen.name),
                "reference")
    contradicting = sim.contradicting(ours)
    shares = ", ".join(f"{names[k]} {p:.1%}" for k, p in sorted(sim.chosen.items(),
                                                                  key=lambda kv: -kv[1]))
    return (f"**Replay.** The procedure replayed {sim.repetitions:,} times on fresh normal "
            f"paired differences with each candidate's observed mean and spread (independent "
            f"candidates): the choice is {shares}; \"inconclusive at the cap\" "
            f"{sim.inconclusive:.1%}; a decided choice other than this one {contradicting:.1%} "
            f"(the same choice or \"inconclusive\": {1 - contradicting:.1%}).")


def write_decision(out: Path, inputs: DecisionInputs) -> Path:
    trials = inputs.trials.to_pylist()
    design, cands = inputs.design, inputs.candidates
    open_ = still_open(cands)
    decided = not open_
    chosen = inputs.chosen
    with atomic_path(out / "candidates.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist([
            {"name": c.name, "cost": c.cost, "status": c.status, "look": c.look,
             "superior": c.superior, "seeds": sorted(c.values),
             "difference": [c.values[s] for s in sorted(c.values)]} for c in cands]), tmp)
    body = [_row(c, inputs, trials) for c in sorted(cands, key=lambda c: c.cost)]
    ref = inputs.costs["reference"]
    head = [f"# Choosing a configuration of `{inputs.experiment}` (preset `{inputs.preset}`)",
            "", f"Made by `{inputs.command or 'hkmr choose'}` at git revision "
            f"`{git_revision()}`; the confirmation trials are in "
            f"`../../{inputs.experiment}_confirm/{inputs.preset}/` (validation only), the "
            "test run in `test/`.", ""]
    name = chosen.name if chosen else "the reference"
    if decided:
        verdict = f"**Decided: {name}.**"
    else:
        verdict = (f"**Inconclusive at {inputs.seeds} seeds**: still open "
                   + ", ".join(f"{c.name} (about {n} seeds would decide it)" if n else
                               f"{c.name} (more than 10,000 seeds at this spread)"
                               for c, n in ((c, seeds_to_decide(c, design, len(open_)))
                                            for c in open_))
                   + f". The choice so far: **{name}**.")
    superior = [c.name for c in cands if c.superior]
    lines = head + [
        verdict + (f" Shown better than the reference by more than δ: {', '.join(superior)}."
                   if superior else " No candidate is shown better than the reference by "
                   "more than δ."), "",
        f"**Reference**, fixed before the data: {inputs.reference_values} (cost "
        f"{ref:.3f}). **Candidates**: {inputs.source}. **Cost**: {inputs.cost_what}.", "",
        f"**Rule** ({design.describe()}): a candidate cheaper than the reference is "
        "non-inferior when the one-sided paired t-test of H0: Δ ≥ δ (Δ = candidate − "
        "reference, validation MPJPE, per seed) rejects; worse than δ (dropped, non-binding "
        "futility) when the one-sided 95 % lower bound of Δ exceeds δ; candidates not cheaper "
        "than the reference are tested for being better by more than δ at the first look "
        "only. The choice is the cheapest non-inferior candidate, else the reference.", "",
        markdown_table(["candidate", "cost", "", "validation MPJPE (mm)", "Δ to reference (mm)",
                        f"two-sided interval at α/K", "outcome"], body),
        f"Reference validation MPJPE: {format_value(mean_ci(_val(trials, 'reference')))}; "
        f"confirmation seeds {1000}–{1000 + inputs.seeds - 1}.", "",
        _replay(inputs), "", _test_section(inputs), "",
        "![validation MPJPE against cost](mpjpe_vs_cost.png)", ""]
    with atomic_path(out / "decision.md") as tmp:
        tmp.write_text("\n".join(lines))
    _plot(out, inputs, trials)
    return out / "decision.md"


def _test_section(inputs: DecisionInputs) -> str:
    test = inputs.test.to_pylist()
    confirm = {(r["configuration"], r["seed"]): r.get("val_mpjpe")
               for r in inputs.trials.to_pylist() if r["status"] == "ok"}
    moved = [abs(r["val_mpjpe"] - confirm[(r["configuration"], r["seed"])])
             for r in test if r["status"] == "ok" and (r["configuration"], r["seed"]) in confirm
             and r.get("val_mpjpe") is not None]
    names = ["reference"] + ([inputs.chosen.name] if inputs.chosen else [])
    body = [[n, format_value(mean_ci(_val(test, n, "P1_standard_mpjpe"))),
             format_value(mean_ci(_val(test, n, "P2_standard_mpjpe")))] for n in names]
    same = (f"their validation MPJPE equals the confirmation's to {max(moved):.1e} mm"
            if moved else "no trial matched a confirmation trial")
    return ("**Test split, once, after the decision** (the chosen and the reference "
            f"configuration retrained on the same seeds with the test suites; {same}):\n\n"
            + markdown_table(["configuration", "test P1 MPJPE (mm)", "test P2 MPJPE (mm)"],
                             body))


def _plot(out: Path, inputs: DecisionInputs, trials: list[dict]) -> None:
    fig, ax = pyplot().subplots(figsize=(4.8, 3.4))
    chosen = inputs.chosen.name if inputs.chosen else "reference"
    for name, cost in inputs.costs.items():
        mean, half, _ = mean_ci(_val(trials, name))
        if not math.isfinite(mean):
            continue
        color = "C3" if name == chosen else "C2" if name == "reference" else "C0"
        ax.errorbar(cost, mean, yerr=half if math.isfinite(half) else 0, marker="o",
                    capsize=3, color=color)
        ax.annotate(name, (cost, mean), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(inputs.cost_what.split(" (")[0])
    ax.set_ylabel("validation MPJPE (mm), mean ± 95 % CI")
    ax.grid(alpha=0.3)
    save_png(fig, out / "mpjpe_vs_cost.png")
