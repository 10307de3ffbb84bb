"""The search algorithm of a search experiment (``search:`` in its YAML).

A space of ``choice`` keys only is finite, such as choose_iterations' (T, P): it is
enumerated with Optuna's ``GridSampler`` — every point once, in a seeded random order, so a
budget (``samples``) smaller than the grid visits distinct points and a larger one no more
than the grid. A space with continuous keys is sampled by Optuna's default TPE sampler.
"""

from __future__ import annotations

import math

from ..experiment.schema import Experiment


def grid_points(exp: Experiment) -> int | None:
    """The number of points of a finite (all-``choice``) space, else None."""
    kinds = [next(iter(dist.items())) for dist in exp.search.values()]
    if not kinds or any(kind != "choice" for kind, _ in kinds):
        return None
    return math.prod(len(values) for _, values in kinds)


def search_budget(exp: Experiment, samples: int) -> int:
    points = grid_points(exp)
    return samples if points is None else min(samples, points)


def search_algorithm(exp: Experiment, **study):
    """Ray Tune's ``OptunaSearch`` for ``exp``; ``study``: its ``study_name`` and ``storage``
    (:mod:`tuning.run.optuna_storage`)."""
    from optuna.samplers import GridSampler
    from ray.tune.search.optuna import OptunaSearch

    if grid_points(exp) is None:
        return OptunaSearch(seed=0, **study)
    grid = {key: next(iter(dist.values())) for key, dist in exp.search.items()}
    return OptunaSearch(sampler=GridSampler(grid, seed=0), **study)
