"""The confirmatory family's section of ``tables.md``: the tests a claim rests on.

For each comparison of the experiment's declared family (:mod:`tuning.experiment.confirmatory`)
it shows the paired difference, its 95 % and simultaneous (Bonferroni α/m) intervals, the
t and sign-flip p-values Holm-adjusted over the family, whether it is resolved (both tests),
and its own minimal detectable difference at α/m (:mod:`tuning.stats.family`); then, generated
from the same numbers, what the error covers (seeds, or seeds x test images), the fewest seeds
at which the sign-flip test can pass, the worst MDE and, for seeds sized sequentially
(``--target-mde``), the simulated type I error of that rule (:mod:`tuning.stats.sequential`).
"""

from __future__ import annotations

import math

from hkmr.eval.results import markdown_table

from ..experiment.confirmatory import Confirmatory
from ..stats.crossed import SEEDS
from ..stats.family import OPEN, RESOLVED, family_size, family_tests, signflip_floor
from ..stats.paired import ALPHA, POWER, format_p
from ..stats.sequential import simulate
from ..stats.signflip import EXACT_UP_TO, RESAMPLES


def _label(metric_key: str) -> str:
    return metric_key.split("_", 1)[0]


def _outcome(t) -> str:
    if t.outcome == OPEN:
        return "not resolved"
    side = "higher" if t.difference.mean > 0 else "lower"
    return f"**{RESOLVED}**: {side}" if t.outcome == RESOLVED else f"{t.outcome}: {side}"


def _interval(bounds) -> str:
    low, high = bounds
    return "—" if not math.isfinite(low) else f"[{low:+.2f}, {high:+.2f}]"


def tested_family(family: Confirmatory, estimate) -> tuple[dict, dict]:
    """(key -> Tested, key -> per-seed differences) for (configuration, metric key) keys."""
    differences, per_seed = {}, {}
    for name, key in family.members():
        differences[name, key], per_seed[name, key] = estimate(name, key)
    return family_tests(differences, per_seed), per_seed


def confirmatory_section(family: Confirmatory, estimate, power: dict | None = None,
                         first_seeds: int | None = None) -> str:
    """Markdown for the family; ``estimate``: (configuration, key) -> (Difference, per seed);
    ``power``: the ``--target-mde`` record of a sequentially sized sweep."""
    tested, per_seed = tested_family(family, estimate)
    m = family_size(tested)
    title = f"### Confirmatory family: {family.describe()}\n\n"
    if m == 0:
        return title + ("Fewer than two seeds per comparison: no interval, no test; every "
                        "table below is descriptive.\n\n")
    level = ALPHA / m
    body = []
    for (name, key), t in tested.items():
        d = t.difference
        if not d.testable:
            body.append([f"{name} − {family.reference}", _label(key)] + ["—"] * 8)
            continue
        se = (f"{d.se_seeds:.3f} → {d.se:.3f}" if d.sources != SEEDS else f"{d.se:.3f}")
        body.append([f"{name} − {family.reference}", _label(key), f"{d.mean:+.2f} (n={d.n})",
                     _interval(d.interval()), _interval(t.simultaneous), se,
                     format_p(t.p_t_holm), format_p(t.p_signflip_holm), _outcome(t),
                     f"{t.mde:.2f}"])
    header = ["comparison", "protocol", "difference (mm)", "95 % interval",
              f"simultaneous interval (α/{m})", "SE (mm)", "t p (Holm)", "sign-flip p (Holm)",
              "result", f"MDE at α/{m} (mm)"]
    text = title + markdown_table(header, body)
    notes = _notes(family, tested, per_seed, m, level, power, first_seeds)
    return text + "\n" + "".join(f"- {note}\n" for note in notes) + "\n"


def _notes(family, tested, per_seed, m, level, power, first_seeds) -> list[str]:
    ds = [t.difference for t in tested.values() if t.difference.testable]
    n_min = min(d.n for d in ds)
    notes = [f"The family: the {m} comparisons above, declared in the experiment file before "
             f"the data. Both p-values are Holm-adjusted over the family at α = {ALPHA:.0%}; "
             "**resolved**: the t test and the sign-flip test both reject (\"t only\": the t "
             "test alone, resting on normality at these seeds). Every other table is "
             "descriptive: intervals, no tests."]
    crossed = [d for d in ds if d.sources != SEEDS]
    if crossed:
        worst = max(crossed, key=lambda d: d.se / d.se_seeds if d.se_seeds else 0)
        at = next(f"{name}, {_label(key)}" for (name, key), t in tested.items()
                  if t.difference is worst)
        notes.append(
            "Error: seeds × test images (two-way random-effects ANOVA of the per-image errors "
            "in `images.parquet`, Satterthwaite degrees of freedom; SE column: seeds only → "
            "seeds × images), so a resolved difference generalises to other test images drawn "
            "like these, not only to this test set. The image term widens a standard error "
            f"most for {at} ({worst.images} images): {worst.se_seeds:.3f} → {worst.se:.3f} mm. "
            "The sign-flip test permutes seeds only: it is conditional on these test images.")
    else:
        notes.append("Error: seeds only (this folder has no per-image errors: made before "
                     "trials wrote them, or without them); the intervals and tests treat the "
                     "test images as fixed and describe this test set, not test images in "
                     "general.")
    floor = signflip_floor(m)
    notes.append(f"Sign-flip test: exact over all 2^n sign patterns of the per-seed "
                 f"differences up to n = {EXACT_UP_TO} (beyond: {RESAMPLES:,} patterns drawn "
                 f"with a fixed seed); its smallest p is 2 / 2^n, so in a family of {m} it can "
                 f"pass Holm only with at least {floor} seeds (here: {n_min}"
                 f"{'' if n_min >= floor else ', too few: nothing can be resolved'}).")
    worst = max(tested.items(), key=lambda kv: kv[1].mde if math.isfinite(kv[1].mde) else -1)
    (name, key), t = worst
    notes.append(f"Power: each MDE is the true difference its two-sided t test detects with "
                 f"{POWER:.0%} power at α/{m} = {level:.4f} (the level of Holm's first step, "
                 f"so conservative for the later ones), from the comparison's own standard "
                 f"error. The worst: {t.mde:.2f} mm ({name}, {_label(key)}).")
    widest = max(t.excludes_beyond for t in tested.values() if t.difference.testable)
    notes.append(f"Simultaneous intervals: Bonferroni at α/{m}, so all {m} hold together with "
                 f"at least {1 - ALPHA:.0%} confidence: a true difference outside a "
                 f"comparison's simultaneous interval is excluded family-wise (the widest "
                 f"bound: ±{widest:.2f} mm).")
    if power:
        notes.append(_sequential_note(family, tested, per_seed, m, power, first_seeds))
    return notes


def _sequential_note(family, tested, per_seed, m, power, first_seeds) -> str:
    """The simulated family-wise type I error of the rule that sized these seeds."""
    sds = [float(per_seed[k].std(ddof=1)) if len(per_seed[k]) >= 2 else math.nan
           for k in tested]
    n = max(t.difference.n for t in tested.values())
    first = first_seeds or n
    keys = list(tested)
    if power.get("rule") == "worst":
        rule, sizing = "worst", None
        how = f"the worst comparison's MDE at α/{m}"
    else:
        rule = "pooled"
        sizing = [i for i, (_, key) in enumerate(keys) if key == power.get("endpoint")]
        how = ("the paired SD pooled over the primary endpoint's comparisons, MDE at an "
               "unadjusted 5 % (the rule before confirmatory families)")
    if not all(math.isfinite(s) and s > 0 for s in sds) or not (sizing is None or sizing):
        return "Seeds sized sequentially: the simulated error of the rule is not computable here."
    sim = simulate(sds, first, power["target_mde"], power["max_seeds"], rule, sizing)
    return (f"Seeds were sized sequentially (`--target-mde {power['target_mde']:g}`, first "
            f"{first} seeds, at most {power['max_seeds']}; the rule looked at {how}). "
            f"Simulated under the null at each comparison's observed seed SD (normal, "
            f"independent comparisons, {sim.repetitions:,} repetitions), that rule gives this "
            f"family's Holm t tests a family-wise type I error of {sim.fwer:.2%} ± "
            f"{sim.mc_error:.2%} (Monte Carlo SE; mean {sim.mean_seeds:.1f} seeds), against "
            f"{sim.fixed_fwer:.2%} for a fixed number of seeds.")
