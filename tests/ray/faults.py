"""Fault injection for the fault-tolerance tests: a trial callback
(:class:`tuning.run.request.TrialCallback`) that breaks trials on purpose and logs their
attempts. It lives with the tests; production code only offers the callback hook."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray.cloudpickle

from hkmr.config import ConfigError
from tuning.run.request import TrialCallback

# the trial processes cannot import this test module: its classes travel by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: the kinds of injected fault
FAULTS = ("raise", "kill", "config")


@dataclass(frozen=True)
class FailOnce(TrialCallback):
    """After the report of ``epoch``: ``raise`` a RuntimeError or ``kill`` the process
    (SIGKILL) once, remembered by a marker file so the retried trial goes on, or raise a
    ``config`` error (permanent) every time. ``faults``: configuration -> kind (``*``: every
    other configuration; empty: ``raise`` in all); ``epoch`` 0: no fault, only the log. With
    ``marker_dir`` every attempt's start and epochs are logged there (``attempts-<trial id>``:
    one JSON line each, with the node and process)."""

    epoch: int = 0
    faults: dict[str, str] = field(default_factory=dict)
    marker_dir: str | None = None

    def __post_init__(self):
        bad = {k: v for k, v in self.faults.items() if v not in FAULTS}
        if bad:
            raise ValueError(f"faults {bad}: each must be one of {FAULTS}")

    def _folder(self) -> Path:
        return Path(self.marker_dir or tempfile.gettempdir())

    def _log(self, trial_id: str, event: str, epoch: int, node_id: str) -> None:
        if self.marker_dir is None:
            return
        path = self._folder() / f"attempts-{trial_id}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps({"event": event, "epoch": epoch, "node_id": node_id,
                                 "pid": os.getpid(), "time": time.time()}) + "\n")

    def on_attempt_start(self, trial_id, configuration, node_id):
        self._log(trial_id, "start", 0, node_id)

    def on_epoch_end(self, trial_id, configuration, epoch, node_id):
        self._log(trial_id, "epoch", epoch, node_id)
        faults = self.faults or {"*": "raise"}
        fault = faults.get(configuration or "", faults.get("*"))
        if not self.epoch or epoch != self.epoch or fault is None:
            return
        if fault == "config":
            raise ConfigError(f"injected invalid config after epoch {epoch} (fault=config)")
        marker = self._folder() / f"failed-{trial_id}"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure after epoch {epoch} (FailOnce)")


def attempts(markers: Path) -> dict[str, list[dict]]:
    """Trial id -> the logged attempts (:class:`FailOnce` with ``marker_dir``)."""
    return {p.name.removeprefix("attempts-"): [json.loads(line) for line in
                                               p.read_text().splitlines()]
            for p in markers.glob("attempts-*")}
