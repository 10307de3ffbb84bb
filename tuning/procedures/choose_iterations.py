"""``hkmr choose-iterations``: pick the outer (T) and inner (P) iteration counts by evidence.

The paper chose T = 3, P = 4 by hand (Table 3). Here:

1. **Search** (validation split): the finite (T, P) space of
   ``tuning/experiments/choose_iterations.yaml`` is enumerated by Optuna's grid sampler
   (:mod:`tuning.run.search_algorithm`) up to the preset's ``samples``, one seed a point; ASHA stops poor
   points early, and never a finished one (its last epoch and final metrics are one report).
2. **Confirm** (validation split): the ``candidates`` best points by validation MPJPE are
   trained again as a grid on **fresh seeds** (``CONFIRM_SEED`` on, never the search's
   seed 0), so a candidate's search result cannot favour it twice.
3. **Decide** (:func:`decide`): the best candidate has the lowest mean validation MPJPE. A
   candidate is *acceptable* when, per seed, Δ = candidate - best is shown below the margin
   δ (the experiment's ``margin``): the one-sided paired t-test of H0: Δ >= δ rejects at 5 %
   after Holm's adjustment over the candidates (equivalently, the upper bound of the
   one-sided 95 % paired interval is below δ at the Holm-stepped level). The cheapest
   acceptable candidate by measured regressor latency (``torch.utils.benchmark``, on the
   device the trials used, fastest of repeated measurements) is chosen; the best is always
   acceptable.
4. **Report**: the test split, once, for the chosen and the best candidate, after the
   decision (:mod:`tuning.procedures.iteration_decision` writes ``decision.md``, ``candidates.parquet`` and
   ``mpjpe_vs_latency.png`` under ``results/choose_iterations/<preset>/``).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pyarrow as pa
import torch
import yaml
from torch.utils import benchmark

from hkmr.config import make_config
from hkmr.digest import provenance
from hkmr.io import atomic_path
from hkmr.model import MeanParams, build_regressor

from ..analysis.aggregate import trials_table, write_results
from ..experiment.schema import load_experiment
from ..stats.paired import ALPHA, holm, noninferior
from ..run.driver import run_sweep
from ..run.request import SweepRequest

METRIC = "val_mpjpe"  # the decision's endpoint: validation split
TEST_METRIC = "P1_standard_mpjpe"  # reported once, after the decision
CONFIRM_SEED = 1000  # the first confirmation seed: fresh, never a search seed


def regressor_latency(outer: int, inner: int, batch: int, device: str = "cpu",
                      repeats: int = 20, number: int = 5) -> float:
    """Milliseconds of one HKMR regressor forward pass (Φ: 2048-d, as ResNet50's) on
    ``device``, timed by ``torch.utils.benchmark`` (which synchronises CUDA): the fastest of
    ``repeats`` measurements of ``number`` passes each, one thread on a CPU — on a machine
    shared with running trials the median moves with their load (measured 2-100x), the
    fastest does not."""
    cfg = make_config({"model": {"outer_iters": outer, "inner_iters": inner}})
    reg = build_regressor(cfg.model, 2048, MeanParams.default()).eval().to(device)
    phi = torch.randn(batch, 2048, device=device)
    timer = benchmark.Timer(stmt="reg(phi)[-1].pose", globals={"reg": reg, "phi": phi},
                            num_threads=1 if device == "cpu" else torch.get_num_threads())
    with torch.no_grad():
        timer.timeit(number)  # warm-up
        return 1000 * min(timer.timeit(number).mean for _ in range(repeats))


def per_seed(table: pa.Table, configuration: str, key: str = METRIC) -> dict[int, float]:
    return {int(r["seed"]): float(r[key]) for r in table.to_pylist()
            if r["configuration"] == configuration and r["status"] == "ok"
            and r.get(key) is not None and math.isfinite(r[key])}


def _candidates(search: pa.Table, k: int) -> list[tuple[int, int]]:
    """The k most promising (T, P) by validation MPJPE: finished trials first, then trials
    the scheduler stopped early (their last validation MPJPE, after fewer epochs)."""
    score: dict[tuple[int, int], tuple[int, float]] = {}
    for r in search.to_pylist():
        if r.get(METRIC) is None or not math.isfinite(r[METRIC]):
            continue
        if r["status"] not in ("ok", "stopped"):
            continue
        rank = (0 if r["status"] == "ok" else 1, r[METRIC])
        values = json.loads(r["search"])
        key = (int(values["model.outer_iters"]), int(values["model.inner_iters"]))
        score[key] = min(score.get(key, (2, math.inf)), rank)
    return sorted(score, key=score.get)[:k]


def decide(rows: list[dict], margin: float) -> tuple[dict, list[dict]]:
    """rows: {name, values: {seed: validation MPJPE}, latency_b1, ...}; returns (chosen,
    rows annotated with mean, diff, upper, p, p_holm, acceptable)."""
    for r in rows:
        r["mean"] = statistics.fmean(r["values"].values()) if r["values"] else math.nan
    valid = [r for r in rows if r["values"]]
    if not valid:
        raise RuntimeError("no candidate finished; nothing to choose from")
    best = min(valid, key=lambda r: r["mean"])
    others = [r for r in rows if r is not best]
    for r in others:
        seeds = sorted(set(r["values"]) & set(best["values"]))
        test = noninferior([r["values"][s] - best["values"][s] for s in seeds], margin)
        r.update(diff=test.mean, upper=test.upper, p=test.p, n_paired=test.n)
    for r, p in zip(others, holm([r["p"] for r in others])):
        r["p_holm"] = p
        r["acceptable"] = bool(math.isfinite(p) and p < ALPHA)
    best.update(diff=0.0, upper=math.nan, p=math.nan, p_holm=math.nan, acceptable=True,
                n_paired=len(best["values"]), best=True)
    chosen = min((r for r in rows if r["acceptable"]), key=lambda r: r["latency_b1"])
    return chosen, rows


def choose_iterations(preset: str = "smoke", seeds: int | None = None,
                      address: str | None = None, storage: str | None = None,
                      max_concurrent: int | None = None, overrides: list[str] = (),
                      results_dir: str | Path = "results", command: str = "") -> Path:
    from .iteration_decision import write_decision

    exp = load_experiment("choose_iterations")
    p = exp.preset(preset)
    out = Path(results_dir) / "choose_iterations" / preset
    request = SweepRequest(exp.path, preset, 1, overrides=overrides, address=address,
                           storage=storage, max_concurrent=max_concurrent, command=command)
    grid, _ = run_sweep(request.but(name=f"choose_iterations-{preset}-search",
                                    results_dir=None))
    search = trials_table(grid, exp)
    write_results(search, exp, preset, out / "search",
                  provenance(experiment=exp.name, preset=preset, command=command, seeds=1,
                             experiment_yaml=exp.recorded_yaml()))
    picks = _candidates(search, p.candidates)
    if not picks:
        raise RuntimeError("the search produced no trial with a validation MPJPE")
    confirm_yaml = out / "confirm_experiment.yaml"
    spec = yaml.safe_load(exp.recorded_yaml())  # every preset complete
    spec.pop("search")
    spec.update(name="choose_iterations_confirm", title="Choosing T and P: confirmation runs",
                configurations={f"T{t} P{q}": {"model.outer_iters": t, "model.inner_iters": q}
                                for t, q in picks})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(confirm_yaml) as tmp:
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False))
    n_seeds = seeds if seeds is not None else p.seeds
    grid, _ = run_sweep(request.but(experiment=confirm_yaml, seeds=n_seeds,
                                    name=f"choose_iterations-{preset}-confirm",
                                    results_dir=out.parent.parent, first_seed=CONFIRM_SEED))
    confirm = trials_table(grid, load_experiment(confirm_yaml))
    device = "cuda" if p.use_gpu and torch.cuda.is_available() else "cpu"
    rows = [{"name": f"T{t} P{q}", "T": t, "P": q, "values": per_seed(confirm, f"T{t} P{q}"),
             "test": per_seed(confirm, f"T{t} P{q}", TEST_METRIC),
             "latency_b1": regressor_latency(t, q, 1, device),
             "latency_b64": regressor_latency(t, q, 64, device)} for t, q in picks]
    chosen, rows = decide(rows, exp.margin)
    return write_decision(out, chosen, rows, preset, n_seeds, exp.margin, device, command)
