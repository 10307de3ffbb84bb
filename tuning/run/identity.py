"""A sweep's identity: what defines it, checked before ``--resume`` continues it, and one
driver at a time on its storage and results folder.

``STORAGE/NAME/hkmr_fingerprint.json`` (:data:`FINGERPRINT_FILE`, written when a sweep starts)
records what defines the sweep: the experiment (its name and the digest of its YAML), the
preset, the effective config overrides, the configurations and seeds of the grid (or a
search's samples) and the code revision. ``--resume`` recomputes it from the command and
refuses a difference, naming it: a resume with another experiment, preset or override would
mix trials of two sweeps in one paired table (sweeps made before the file existed are
compared on what their ``hkmr_sweep.json`` records). Before Ray restores the run, the newest
``experiment_state-*.json`` must exist and parse: Ray's own restore of a damaged state logs a
warning and starts the sweep again from nothing, over its results.

:func:`driver_lock` holds an exclusive ``fcntl`` lock on a file beside the sweep's storage
folder (local storage) and beside its results folder for as long as the driver runs, so a
second driver on either stops with a message instead of racing the first for the last word.
Object-store storage (``s3://``) cannot be locked this way: there the results folder's lock
is the only one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hkmr.config import ConfigError
from hkmr.digest import git_revision
from hkmr.io import NotWritableError, check_writable

from .storage import SWEEP_FILE, exists, is_uri, join, list_names, read_json, write_text

FINGERPRINT_FILE = "hkmr_fingerprint.json"
STATE_PREFIX, STATE_SUFFIX = "experiment_state-", ".json"


def check_name(name: str) -> str:
    """``name`` as one folder name under the storage; ConfigError for a path (``../x``,
    ``a/b``, an absolute path), which would put the sweep outside ``--storage``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"--name {name!r} must be one folder name under --storage (no '/', "
                          "'..' or absolute path): the sweep would be written elsewhere")
    return name


def fingerprint(plan, first_seed: int, seeds: int, configurations) -> dict[str, Any]:
    """What defines the sweep of ``plan`` (a :class:`tuning.run.driver.SweepPlan`)."""
    exp = plan.experiment
    yaml_text = exp.recorded_yaml()
    return {"experiment": exp.name,
            "experiment_digest": hashlib.sha256(yaml_text.encode()).hexdigest()[:16],
            "preset": plan.preset,
            "overrides": {k: plan.spec.overrides[k] for k in sorted(plan.spec.overrides)},
            "configurations": None if exp.is_search
            else sorted(configurations or exp.configurations),
            "seeds": list(range(first_seed, first_seed + seeds)),
            "samples": plan.num_samples,
            "git_revision": git_revision()}


def _recorded(folder: str) -> tuple[str, dict[str, Any]] | None:
    """(file, the fingerprint it holds) of the sweep at ``folder``: its fingerprint file, or
    for older sweeps what ``hkmr_sweep.json`` records; None when neither exists."""
    path = join(folder, FINGERPRINT_FILE)
    if exists(path):
        return path, read_json(path, "sweep fingerprint")
    path = join(folder, SWEEP_FILE)
    if not exists(path):
        return None
    info = read_json(path, "sweep record")
    spec = info.get("spec") or info.get("run") or {}
    return path, {"experiment": info.get("experiment"), "preset": info.get("preset"),
                  "overrides": spec.get("overrides", {})}


def _differences(stored: dict, current: dict) -> list[str]:
    out = []
    for key, before in stored.items():
        now = current.get(key)
        if key == "overrides" and isinstance(before, dict):
            for k in sorted(set(before) | set(now or {})):
                a, b = (repr(d[k]) if k in d else "(unset)" for d in (before, now or {}))
                if a != b:
                    out.append(f"override {k}: {a} then, {b} now")
        elif before != now:
            out.append(f"{key}: {before!r} then, {now!r} now")
    return out


def newest_state(folder: str) -> str:
    """The newest ``experiment_state-*.json`` of the Tune run at ``folder``, checked to be
    whole JSON; FileNotFoundError or ValueError naming the file otherwise."""
    names = sorted(n for n in list_names(folder)
                   if n.startswith(STATE_PREFIX) and n.endswith(STATE_SUFFIX))
    if not names:
        raise FileNotFoundError(f"{folder}: no {STATE_PREFIX}*{STATE_SUFFIX}, so there is no "
                                "sweep to continue (run it without --resume)")
    path = join(folder, names[-1])
    read_json(path, "experiment state (Ray Tune's; Ray would restart the sweep from nothing "
              "and overwrite its results: restore the file or start anew with another --name)")
    return path


def check_resume(folder: str, current: dict[str, Any]) -> None:
    """Refuse to resume the sweep at ``folder`` when its state is missing or damaged or it
    was made with another fingerprint than ``current`` (the message names each difference)."""
    newest_state(folder)
    recorded = _recorded(folder)
    if recorded is None:
        return
    path, stored = recorded
    diffs = _differences(stored, current)
    if diffs:
        raise ConfigError(f"{path}: --resume continues the sweep this file records, which was "
                          f"made with another {'; '.join(diffs)}. Resume with the command "
                          "that started it, or start a new sweep with another --name")


def write_fingerprint(folder: str, current: dict[str, Any]) -> None:
    write_text(join(folder, FINGERPRINT_FILE), json.dumps(current, indent=2) + "\n")


@contextlib.contextmanager
def _flock(lock_file: Path, what: str) -> Iterator[None]:
    check_writable(lock_file.parent, f"folder of the {what}")
    try:
        fh = open(lock_file, "a+")
    except OSError as err:
        raise NotWritableError(f"cannot write {lock_file}: {err.strerror or err}") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ConfigError(f"{lock_file}: another hkmr sweep ({holder}) is running on "
                              f"this {what}; wait for it to end, or use another --name / "
                              "--out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


@contextlib.contextmanager
def driver_lock(storage: str | Path, name: str, results: Path | None) -> Iterator[None]:
    """Hold ``STORAGE/.NAME.lock`` (local storage) and ``RESULTS/.lock`` (the
    results folder ``OUT/EXPERIMENT/PRESET``, which is made, so an output path that is a file
    or read-only fails here, before any training) while the block runs."""
    with contextlib.ExitStack() as stack:
        if results is not None:
            stack.enter_context(_flock(Path(results).parent / f".{Path(results).name}.lock",
                                       "results folder"))
            check_writable(results, "results folder")
        if not is_uri(str(storage)):
            stack.enter_context(_flock(Path(storage) / f".{name}.lock", "sweep storage"))
        yield
