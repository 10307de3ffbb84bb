"""Choose a configuration of a search experiment by evidence: ``hkmr choose EXPERIMENT``
(``hkmr choose-iterations`` for the (T, P) grid).

1. **Candidates**: a finite grid (every key a ``choice``) with the preset's ``candidates`` 0
   confirms every grid point; otherwise a **search** on the validation split (Optuna with
   ASHA, one seed a sample, ``search/``) proposes the ``candidates`` best by validation MPJPE.
2. **Reference**: the experiment's ``baseline`` values (the configuration the user would
   otherwise run: T = 3, P = 4 for the iteration counts; the config's own weights for the loss
   weights), or ``--reference KEY=VALUE ...``; fixed before any data.
3. **Sequential confirmation** on fresh seeds (``CONFIRM_SEED`` on), a batch of seeds a look:
   every look is one Tune run of the open candidates and the reference, and
   :mod:`tuning.stats.sequential_choice` decides what it can (non-inferior within δ, worse
   than δ, better by more than δ) until nothing cheaper than the current choice is open or the
   cap is reached ("inconclusive at N seeds"). Search and confirmation trials run no test
   suite: their folders hold validation metrics only.
4. **Test split, once, after the decision**: the chosen and the reference configuration are
   retrained on the chosen one's seeds with the test suites (the same trials, bit for bit on
   the same machine: the decision records that their validation MPJPE equals the
   confirmation's), into ``test/``.
5. :mod:`tuning.procedures.choice_report` writes ``decision.md``.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from hkmr.config import ConfigError
from hkmr.digest import provenance
from hkmr.io import atomic_path

from ..analysis.aggregate import trials_table, write_results
from ..experiment.schema import Experiment, load_experiment
from ..run.driver import plan_sweep, run_sweep, sweep_exists
from ..run.request import SweepRequest
from ..stats.paired import paired_by_seed
from ..stats.sequential_choice import Candidate, Design, choice, look, still_open

METRIC = "val_mpjpe"  # the decision's endpoint: validation split
CONFIRM_SEED = 1000  # the first confirmation seed: fresh, never a search seed
REFERENCE = "reference"


def label(values: dict[str, Any]) -> str:
    """``T3 P4`` for the iteration counts, else ``key=value`` with 3 significant digits."""
    if set(values) == {"model.outer_iters", "model.inner_iters"}:
        return f"T{values['model.outer_iters']} P{values['model.inner_iters']}"
    return " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else
                    f"{k.split('.')[-1]}={v}" for k, v in sorted(values.items()))


def grid_points(exp: Experiment) -> list[dict[str, Any]] | None:
    """Every point of a finite search space (None when a key is not a ``choice``)."""
    keys, options = [], []
    for key, dist in exp.search.items():
        kind, args = next(iter(dist.items()))
        if kind != "choice":
            return None
        keys.append(key)
        options.append(args)
    return [dict(zip(keys, combo)) for combo in itertools.product(*options)]


def reference_values(exp: Experiment, given: dict[str, Any] | None) -> dict[str, Any]:
    values = dict(exp.baseline if given is None else given)
    unknown = sorted(set(values) - set(exp.search))
    if unknown:
        raise ConfigError(f"--reference: {unknown} are not searched keys of {exp.name} "
                          f"({sorted(exp.search)})")
    return values


def _search_candidates(exp, request, p, out) -> list[dict[str, Any]]:
    """The ``candidates`` best search points by validation MPJPE (finished trials first)."""
    grid, _ = run_sweep(request.but(name=f"{exp.name}-{request.preset}-search",
                                    results_dir=None, seeds=1))
    search = trials_table(grid, exp)
    write_results(search, exp, request.preset, out / "search",
                  provenance(experiment=exp.name, preset=request.preset, seeds=1,
                             command=request.command, experiment_yaml=exp.recorded_yaml()))
    return best_points(search.to_pylist(), p.candidates)


def best_points(rows: list[dict], k: int) -> list[dict[str, Any]]:
    """The k best distinct searched points by validation MPJPE: finished trials first, then
    those the scheduler stopped early (their last validation MPJPE, after fewer epochs)."""
    scored = []
    for r in rows:
        if r["status"] in ("ok", "stopped") and r.get(METRIC) is not None \
                and math.isfinite(r[METRIC]):
            scored.append(((r["status"] != "ok", r[METRIC]), json.loads(r["search"])))
    scored.sort(key=lambda x: x[0])
    picks, seen = [], set()
    for _, values in scored:
        key = json.dumps(values, sort_keys=True)
        if key not in seen:
            seen.add(key)
            picks.append(values)
    return picks[:k]


def grid_experiment(exp: Experiment, name: str, title: str, points: dict[str, dict],
                    path: Path, suites: list[str] | None = None) -> Path:
    """``exp`` (every preset complete) as a grid experiment of ``points`` against
    :data:`REFERENCE`, written to ``path``; ``suites``: replace every preset's (``[]``: no test
    suite, validation only)."""
    spec = yaml.safe_load(exp.recorded_yaml())
    for key in ("search", "baseline", "confirmatory"):
        spec.pop(key, None)
    spec.update(name=name, title=title, configurations=points, reference=REFERENCE)
    if suites is not None:
        spec["suites"] = suites
        for preset in spec.get("presets", {}).values():
            preset["suites"] = suites
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return path


def paired(trials: list[dict], name: str) -> dict[int, float]:
    """seed -> candidate - reference validation MPJPE, over the seeds both finished."""
    return paired_by_seed(trials, name, REFERENCE, METRIC)


def confirm(request: SweepRequest, confirm_yaml: Path, candidates: list[Candidate],
            reference_cost: float, design: Design) -> tuple[pa.Table, int]:
    """The looks: each a Tune run of the open candidates and the reference on the next batch
    of fresh seeds (resumed when it exists); returns (all trials, seeds run)."""
    tables, seeds, k = [], 0, 0
    base = request.name or f"{Path(confirm_yaml).stem}-{request.preset}"
    while True:
        k += 1
        n = min(design.batch, design.cap - seeds)
        names = [c.name for c in still_open(candidates)] + [REFERENCE]
        batch = request.but(experiment=confirm_yaml, seeds=n, configurations=tuple(names),
                            first_seed=CONFIRM_SEED + seeds, results_dir=None,
                            name=f"{base}-look{k}")
        grid, _ = run_sweep(batch.but(resume=sweep_exists(plan_sweep(batch))))
        tables.append(trials_table(grid, load_experiment(confirm_yaml)))
        seeds += n
        trials = pa.concat_tables(tables, promote_options="default").to_pylist()
        for c in candidates:
            c.values = paired(trials, c.name)
        look(candidates, reference_cost, design, k)
        if not still_open(candidates) or seeds >= design.cap:
            return pa.concat_tables(tables, promote_options="default"), seeds


def costs_of(exp: Experiment, points: dict[str, dict], device: str) -> tuple[dict[str, float], str]:
    """Each configuration's cost and what it measures: the HKMR regressor's batch-1 latency
    when the iteration counts are searched, else one equal cost (no candidate is cheaper)."""
    if {"model.outer_iters", "model.inner_iters"} <= set(exp.search):
        from .latency import regressor_latency

        return ({name: regressor_latency(v.get("model.outer_iters", 3),
                                         v.get("model.inner_iters", 4), 1, device)
                 for name, v in points.items()},
                f"HKMR regressor latency at batch 1 (ms, `torch.utils.benchmark`, {device})")
    return {name: 1.0 for name in points}, "equal (these keys do not change a step's cost)"


def choose(request: SweepRequest, reference: dict[str, Any] | None = None,
           margin: float | None = None, max_seeds: int = 24) -> Path:
    """The whole procedure for the search experiment ``request.experiment``; returns the path
    of ``decision.md`` (under ``request.results_dir/EXPERIMENT/PRESET``)."""
    from .choice_report import DecisionInputs, write_decision

    exp = load_experiment(request.experiment)
    if not exp.is_search:
        raise ConfigError(f"hkmr choose: {exp.name} is not a search experiment (it has "
                          "configurations, not 'search:')")
    p = exp.preset(request.preset)
    out = Path(request.results_dir or "results") / exp.name / request.preset
    ref_values = reference_values(exp, reference)
    grid = grid_points(exp)
    if grid is not None and p.candidates == 0:
        pool, source = grid, f"every point of the {len(grid)}-point grid"
    else:
        pool = _search_candidates(exp, request, p, out)
        source = (f"the {len(pool)} best of {p.samples} search samples by validation MPJPE "
                  "(one seed each: a search, not a result)")
    points = {label(v): v for v in pool if label(v) != label(ref_values)}
    points[REFERENCE] = ref_values
    confirm_yaml = grid_experiment(exp, f"{exp.name}_confirm", f"{exp.title}: confirmation runs",
                                   points, out / "confirm_experiment.yaml", suites=[])
    batch = request.seeds or p.seeds
    design = Design(delta=margin if margin is not None else exp.margin, batch=batch,
                    cap=max(max_seeds, batch))
    device = "cuda" if p.use_gpu else "cpu"
    costs, cost_what = costs_of(exp, points, device)
    candidates = [Candidate(name, costs[name]) for name in points if name != REFERENCE]
    trials, seeds = confirm(request, confirm_yaml, candidates, costs[REFERENCE], design)
    confirm_dir = Path(request.results_dir or "results") / f"{exp.name}_confirm" / request.preset
    confirm_exp = load_experiment(confirm_yaml)
    write_results(trials, confirm_exp, request.preset, confirm_dir,
                  provenance(experiment=confirm_exp.name, preset=request.preset, seeds=seeds,
                             command=request.command,
                             experiment_yaml=confirm_exp.recorded_yaml()))
    chosen = choice(candidates, costs[REFERENCE])
    test = evaluate_after_decision(request, exp, points, chosen, out)
    inputs = DecisionInputs(exp.name, request.preset, points, ref_values, candidates, chosen,
                            costs, cost_what, design, seeds, source, trials, test,
                            request.command or "")
    return write_decision(out, inputs)


def evaluate_after_decision(request: SweepRequest, exp: Experiment, points: dict[str, dict],
                        chosen: Candidate | None, out: Path) -> pa.Table:
    """Retrain the chosen and the reference configuration on the chosen one's confirmation
    seeds, this time with the preset's test suites: the test split's only use."""
    names = [REFERENCE] + ([chosen.name] if chosen else [])
    seeds = sorted(chosen.values) if chosen else None
    path = grid_experiment(exp, f"{exp.name}_test", f"{exp.title}: test split after the decision",
                           {n: points[n] for n in names}, out / "test_experiment.yaml")
    first = min(seeds) if seeds else CONFIRM_SEED
    n = len(seeds) if seeds else exp.preset(request.preset).seeds
    batch = request.but(experiment=path, seeds=n, first_seed=first, configurations=tuple(names),
                        results_dir=None, name=f"{exp.name}-{request.preset}-test")
    grid, _ = run_sweep(batch.but(resume=sweep_exists(plan_sweep(batch))))
    test_exp = load_experiment(path)
    table = trials_table(grid, test_exp)
    write_results(table, test_exp, request.preset, out / "test",
                  provenance(experiment=test_exp.name, preset=request.preset, seeds=n,
                             command=request.command, experiment_yaml=test_exp.recorded_yaml()))
    return table
