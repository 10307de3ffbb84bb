"""``hkmr sweep EXP --target-mde MM --extend``: more seeds for a results folder whose Ray
storage is gone (a new machine, a folder committed to the repository).

The folder's trials become the first batch of :func:`tuning.procedures.seed_sizing.run_to_target`, and only the
seeds after them run. Pooling them with new trials is valid only if both come from the same
sweep and the same code, so, before anything runs:

1. **identity**: the folder's recorded sweep (``trials.parquet``'s ``hkmr_sweep`` metadata)
   must have the plan's experiment, preset, configurations, trial spec (but for the storage,
   the experiment file's path and the fault markers' folder: paths of a machine) and, per
   configuration, the same resolved config (the *effective* overrides: an override equal to
   the preset's value is no difference; ``data.features``, the shared feature cache's path,
   is derived from compared keys and skipped);
2. **completeness**: its trials are seeds ``0 .. n-1`` of every configuration, all ``ok``;

and, before the first new seed runs,

3. **reproduction**: the reference configuration's seed 0 is trained again (a Tune run of its
   own) and must give the kept trial's primary endpoint and ``val_mpjpe`` to within
   :data:`TOLERANCE_MM` (training is deterministic per seed on CPU).

Any failure refuses the extension (:class:`ExtensionRefused`) with what differs; nothing is
written. The check's numbers and both revisions are recorded (``extensions`` in the sweep
info) and stated in ``tables.md``'s header.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from hkmr.config import flatten, to_dict
from hkmr.digest import git_revision

from ..experiment.schema import Experiment

#: trial-spec fields that are paths of a machine (or, ``overrides``, compared as resolved
#: configs), not part of what a trial computes
#: spec fields that do not change what a trial computes (the callbacks; the fault-injection
#: fields older sweeps recorded)
IGNORED_SPEC = ("storage", "experiment_path", "overrides", "callbacks", "marker_dir",
                "fail_once_at_epoch", "faults")
#: config keys that are machine paths derived from compared keys
IGNORED_CONFIG = ("data.features",)
#: the largest difference (mm) of a reproduced metric from the kept one
TOLERANCE_MM = 1e-3


class ExtensionRefused(ValueError):
    """A results folder that cannot be extended by this sweep; the message says why."""


@dataclass
class Kept:
    """The trials an extension keeps: seeds ``0 .. seeds-1`` of every configuration."""

    folder: Path
    trials: pa.Table
    info: dict
    seeds: int

    def row(self, configuration: str, seed: int) -> dict:
        return next(r for r in self.trials.to_pylist()
                    if r["configuration"] == configuration and int(r["seed"]) == seed)


def _plain(value: Any) -> Any:
    """A value as the sweep info's JSON holds it (tuples as lists, ...; None as an empty
    container: older sweeps recorded an unset ``faults`` as None)."""
    value = json.loads(json.dumps(value, default=str))
    return None if value in ({}, []) else value


def _spec_defaults(spec) -> dict:
    """The default of every trial-spec field (a field newer than a recorded sweep has it)."""
    return {f.name: _plain(f.default if f.default is not dataclasses.MISSING
                           else f.default_factory())
            for f in dataclasses.fields(spec) if f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING}


def identity_differences(info: dict, recorded: Experiment, plan) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, this plan's value) of every way the recorded sweep ``info``
    (whose experiment is ``recorded``) differs from the :class:`tuning.run.driver.SweepPlan`."""
    exp = plan.experiment
    diffs = [(key, info.get(key), now) for key, now in
             (("experiment", exp.name), ("preset", plan.preset)) if info.get(key) != now]
    if diffs:
        return diffs
    spec_was = info.get("spec") or info.get("run") or {}
    spec_now = dataclasses.asdict(plan.spec)
    defaults = _spec_defaults(plan.spec)
    for key in sorted((set(spec_was) | set(spec_now)) - set(IGNORED_SPEC)):
        was = _plain(spec_was[key]) if key in spec_was else defaults.get(key)
        if was != _plain(spec_now.get(key)):
            diffs.append((f"spec.{key}", spec_was.get(key), spec_now.get(key)))
    was, now = list(recorded.configurations), list(exp.configurations)
    if sorted(was) != sorted(now):
        return diffs + [("configurations", sorted(was), sorted(now))]
    where: dict[tuple[str, str, str], list[str]] = {}  # (key, was, now) -> configurations
    for name in now:
        old = flatten(to_dict(recorded.resolve(plan.preset, name,
                                               overrides=spec_was.get("overrides") or {})))
        new = flatten(to_dict(exp.resolve(plan.preset, name, overrides=plan.spec.overrides)))
        for key in sorted((set(old) | set(new)) - set(IGNORED_CONFIG)):
            if _plain(old.get(key)) != _plain(new.get(key)):
                where.setdefault((key, repr(old.get(key)), repr(new.get(key))), []).append(name)
    for (key, was, new), names in where.items():
        scope = "every configuration" if len(names) == len(now) else \
            "configuration " + ", ".join(repr(n) for n in names)
        diffs.append((f"{key} ({scope}'s resolved config)", _Shown(was), _Shown(new)))
    return diffs


class _Shown(str):
    """A value already shown as its repr."""

    def __repr__(self) -> str:
        return str(self)


def check_identity(folder: Path, info: dict, recorded: Experiment, plan) -> None:
    diffs = identity_differences(info, recorded, plan)
    if diffs:
        lines = "; ".join(f"{key} is {was!r} there, {now!r} in this sweep"
                          for key, was, now in diffs[:5])
        more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
        raise ExtensionRefused(f"--extend: {folder} was made by another sweep: {lines}{more}; "
                               "extend it with the experiment, preset and overrides it was "
                               "made with, or run a fresh sweep")


def kept_seeds(folder: Path, rows: list[dict], exp: Experiment, info: dict) -> int:
    """The n of a folder whose trials are seeds 0..n-1 of every configuration, all ok."""
    seeds = [int(r["seed"]) for r in rows]
    n = int(info.get("seeds") or (max(seeds) + 1 if seeds else 0))
    want = {(c, s) for c in exp.configurations for s in range(n)}
    have: dict[tuple[str, int], list[str]] = {}
    for r in rows:
        have.setdefault((r["configuration"], int(r["seed"])), []).append(r["status"])
    problems = []
    missing = sorted(want - set(have))
    if missing:
        problems.append("no trial of " + ", ".join(f"{c!r} seed {s}" for c, s in missing))
    bad = sorted((k, st) for k, st in have.items() if k in want and st != ["ok"])
    if bad:
        problems.append(", ".join(f"{c!r} seed {s} is {'/'.join(st)}" for (c, s), st in bad))
    extra = sorted(set(have) - want)
    if extra:
        problems.append("trials outside seeds 0.." + f"{n - 1}: "
                        + ", ".join(f"{c!r} seed {s}" for c, s in extra))
    if n < 1 or problems:
        raise ExtensionRefused(f"--extend: {folder} does not hold seeds 0..{n - 1} of every "
                               f"configuration, all ok: {'; '.join(problems) or 'no trials'}")
    return n


def load_kept(folder: str | Path, plan) -> Kept:
    """The trials of ``folder`` an extension of ``plan`` keeps, after the identity and
    completeness checks (no Ray involved)."""
    from ..analysis.aggregate import upgrade_trials
    from ..run.report import read_recorded, recorded_experiment

    folder = Path(folder)
    if not (folder / "trials.parquet").exists():
        raise ExtensionRefused(f"--extend: {folder / 'trials.parquet'} is missing: no results "
                               "to extend")
    table, info = read_recorded(folder)
    check_identity(folder, info, recorded_experiment(info, folder), plan)
    table = upgrade_trials(table.replace_schema_metadata(None))
    return Kept(folder, table, info, kept_seeds(folder, table.to_pylist(), plan.experiment,
                                                info))


def check_reproduction(kept: Kept, exp: Experiment, rerun: dict,
                       revision: str | None = None) -> dict:
    """The reproduction record of the re-trained reference seed 0 (``rerun``: its trial row;
    ``revision``: the git revision its Tune run recorded, default this checkout's); raises
    :class:`ExtensionRefused` when a metric moved by more than the tolerance."""
    old = kept.row(exp.reference, 0)
    keys = list(dict.fromkeys([exp.primary, "val_mpjpe"]))
    was = {k: old.get(k) for k in keys}
    now = {k: rerun.get(k) for k in keys}
    revision = revision or git_revision()
    moved = [k for k in keys if not (isinstance(was[k], float) and isinstance(now[k], float)
                                     and math.isfinite(now[k])
                                     and abs(was[k] - now[k]) <= TOLERANCE_MM)]
    if rerun.get("status") != "ok" or moved:
        shown = "; ".join(f"{k}: kept {was[k]!r}, now {now[k]!r}" for k in moved or keys)
        raise ExtensionRefused(
            f"--extend: the reproduction of {exp.reference!r} seed 0 "
            f"({rerun.get('status')}) does not match the kept trial of {kept.folder} to "
            f"{TOLERANCE_MM:g} mm: {shown}. The kept trials were made at git revision "
            f"{kept.info.get('git_revision')}, this run is at {revision}: pooling their seeds "
            "would mix two trainings; nothing was written. Rerun every seed instead (without "
            "--extend)")
    return {"configuration": exp.reference, "seed": 0, "kept": was, "reproduced": now,
            "tolerance_mm": TOLERANCE_MM, "kept_revision": kept.info.get("git_revision"),
            "revision": revision, "trial_id": rerun.get("trial_id")}


def extension_record(kept: Kept, seeds: int, reproduction: dict | None, command: str) -> dict:
    return {"seeds_kept": kept.seeds, "seeds": seeds, "command": command,
            "git_revision": git_revision(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "reproduction": reproduction}
