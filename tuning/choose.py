"""``hkmr choose-iterations``: pick the outer (T) and inner (P) iteration counts by evidence.

The paper chose T = 3, P = 4 by hand (Table 3). Here:

1. **Search**: Optuna (through Ray Tune's ``OptunaSearch``) samples (T, P) and ASHA stops
   poor trials early (``tuning/experiments/choose_iterations.yaml``).
2. **Confirm**: the ``candidates`` best (T, P) of the search are trained again with several
   seeds as a grid.
3. **Cost**: the HKMR regressor's latency is measured for each candidate on this machine
   (median over repeats, batch 1 and 64).
4. **Decide**: the best candidate has the lowest mean P1 MPJPE; a candidate is *not worse* when
   a one-sided Welch t-test cannot say (p >= 0.05) that its MPJPE is higher than the best's.
   The cheapest (batch-1 latency) candidate that is not worse is chosen.

Writes ``decision.md``, ``candidates.parquet`` and ``mpjpe_vs_latency.png`` under
``results/choose_iterations/<preset>/``.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from hkmr.config import make_config
from hkmr.digest import git_revision
from hkmr.eval.figures import pyplot, save_png
from hkmr.io import atomic_path
from hkmr.model import MeanParams, build_regressor

from .aggregate import trials_table, write_results
from .cells import mean_ci
from .space import load_experiment
from .sweep import run_sweep

METRIC = "P1_standard_mpjpe"


def regressor_latency(outer: int, inner: int, batch: int, repeats: int = 30) -> float:
    """Milliseconds of one HKMR regressor forward pass (Φ: 2048-d, as ResNet50's): the
    fastest of ``repeats``, which is robust to other work on the machine (trials running)."""
    cfg = make_config({"model": {"outer_iters": outer, "inner_iters": inner}})
    reg = build_regressor(cfg.model, 2048, MeanParams.default()).eval()
    phi = torch.randn(batch, 2048)
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            start = time.perf_counter()
            reg(phi)[-1].pose
            if i >= 3:
                times.append(time.perf_counter() - start)
    return 1000 * min(times)


def _values(table: pa.Table, configuration: str) -> list[float]:
    return [r[METRIC] for r in table.to_pylist()
            if r["configuration"] == configuration and r["status"] == "ok"
            and r.get(METRIC) is not None and math.isfinite(r[METRIC])]


def _candidates(search: pa.Table, k: int) -> list[tuple[int, int]]:
    """The k most promising (T, P): finished trials by their test P1 MPJPE first, then trials
    the scheduler stopped early by their last validation MPJPE."""
    score: dict[tuple[int, int], tuple[int, float]] = {}
    for r in search.to_pylist():
        if r["status"] == "ok" and r.get(METRIC) is not None:
            rank = (0, r[METRIC])
        elif r["status"] == "stopped" and r.get("val_mpjpe") is not None:
            rank = (1, r["val_mpjpe"])
        else:
            continue
        values = json.loads(r["search"])
        key = (int(values["model.outer_iters"]), int(values["model.inner_iters"]))
        score[key] = min(score.get(key, (2, math.inf)), rank)
    return sorted(score, key=score.get)[:k]


def decide(rows: list[dict]) -> tuple[dict, list[dict]]:
    """rows: {name, T, P, values, latency_b1, latency_b64}; returns (chosen, annotated rows)."""
    from scipy import stats

    for r in rows:
        r["mean"] = statistics.fmean(r["values"]) if r["values"] else math.nan
    valid = [r for r in rows if r["values"]]
    if not valid:
        raise RuntimeError("no candidate finished; nothing to choose from")
    best = min(valid, key=lambda r: r["mean"])
    for r in rows:
        if r is best:
            r["p_worse"], r["not_worse"] = math.nan, True
        elif len(r["values"]) >= 2 and len(best["values"]) >= 2:
            test = stats.ttest_ind(r["values"], best["values"], equal_var=False,
                                   alternative="greater")
            r["p_worse"] = float(test.pvalue)
            r["not_worse"] = bool(test.pvalue >= 0.05)
        else:  # one seed: no test possible; only the best counts
            r["p_worse"], r["not_worse"] = math.nan, False
    chosen = min((r for r in rows if r["not_worse"]), key=lambda r: r["latency_b1"])
    return chosen, rows


def choose_iterations(preset: str = "smoke", seeds: int | None = None,
                      address: str | None = None, storage: str | None = None,
                      max_concurrent: int | None = None, overrides: list[str] = (),
                      results_dir: str | Path = "results", command: str = "") -> Path:
    exp = load_experiment("choose_iterations")
    p = exp.preset(preset)
    out = Path(results_dir) / "choose_iterations" / preset
    grid, _ = run_sweep(exp.path, preset, 1, address, storage, max_concurrent,
                        overrides=overrides, name=f"choose_iterations-{preset}-search",
                        results_dir=None, command=command)
    search = trials_table(grid, exp)
    write_results(search, exp, preset, out / "search",
                  {"experiment": exp.name, "preset": preset, "command": command, "seeds": 1,
                   "git_revision": git_revision(), "experiment_yaml": exp.path.read_text()})
    picks = _candidates(search, p.candidates)
    if not picks:
        raise RuntimeError("the search produced no finished trial")
    confirm_yaml = out / "confirm_experiment.yaml"
    spec = yaml.safe_load(exp.path.read_text())
    spec.pop("search")
    spec.update(name="choose_iterations_confirm", title="Choosing T and P: confirmation runs",
                configurations={f"T{t} P{q}": {"model.outer_iters": t, "model.inner_iters": q}
                                for t, q in picks})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(confirm_yaml) as tmp:
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False))
    n_seeds = seeds if seeds is not None else p.seeds
    grid, _ = run_sweep(confirm_yaml, preset, n_seeds, address, storage, max_concurrent,
                        overrides=overrides, name=f"choose_iterations-{preset}-confirm",
                        results_dir=out.parent.parent, command=command)
    confirm = trials_table(grid, load_experiment(confirm_yaml))
    rows = [{"name": f"T{t} P{q}", "T": t, "P": q, "values": _values(confirm, f"T{t} P{q}"),
             "latency_b1": regressor_latency(t, q, 1), "latency_b64": regressor_latency(t, q, 64)}
            for t, q in picks]
    chosen, rows = decide(rows)
    return _write_decision(out, chosen, rows, preset, n_seeds, command)


def _write_decision(out: Path, chosen: dict, rows: list[dict], preset: str, seeds: int,
                    command: str) -> Path:
    table = pa.Table.from_pylist([{k: v for k, v in r.items()} for r in rows])
    with atomic_path(out / "candidates.parquet") as tmp:
        pq.write_table(table, tmp)
    lines = [f"# Choosing T and P (preset `{preset}`, {seeds} seeds)", "",
             f"Made by `{command or 'hkmr choose-iterations'}` at git revision "
             f"`{git_revision()}` on {datetime.date.today().isoformat()}; the search is in "
             f"`search/`, the confirmation runs in `../../choose_iterations_confirm/{preset}/`.",
             "",
             f"**Chosen: T = {chosen['T']}, P = {chosen['P']}** — the cheapest candidate whose "
             f"P1 MPJPE is not statistically worse than the best's (one-sided Welch t-test, "
             f"p >= 0.05). The paper chose T = 3, P = 4 by hand.", "",
             "| candidate | P1 MPJPE (mm), mean ± 95 % CI | p (worse than best) | not worse "
             "| latency batch 1 (ms) | latency batch 64 (ms) |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["mean"]):
        mean, half, n = mean_ci(r["values"])
        ci = f"{mean:.2f} ± {half:.2f} (n={n})" if math.isfinite(half) else f"{mean:.2f} (n={n})"
        p = "best" if math.isnan(r["p_worse"]) and r["not_worse"] else (
            "—" if math.isnan(r["p_worse"]) else f"{r['p_worse']:.3f}")
        lines.append(f"| {r['name']} | {ci} | {p} | {'yes' if r['not_worse'] else 'no'} "
                     f"| {r['latency_b1']:.2f} | {r['latency_b64']:.2f} |")
    lines += ["", "![MPJPE against latency](mpjpe_vs_latency.png)", ""]
    with atomic_path(out / "decision.md") as tmp:
        tmp.write_text("\n".join(lines))
    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    for r in rows:
        mean, half, _ = mean_ci(r["values"])
        ax.errorbar(r["latency_b1"], mean, yerr=half if math.isfinite(half) else 0,
                    marker="o", capsize=3, color="C3" if r is chosen else "C0")
        ax.annotate(r["name"], (r["latency_b1"], mean), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("HKMR regressor latency, batch 1 (ms)")
    ax.set_ylabel("P1 MPJPE (mm)")
    ax.grid(alpha=0.3)
    save_png(fig, out / "mpjpe_vs_latency.png")
    return out / "decision.md"
