"""Experiment tracking in MLflow (optional: ``pip install -e '.[mlflow]'``).

``--tracking mlflow[:URI]`` on ``hkmr train`` and ``hkmr sweep`` logs what a run already
wrote — its config as dotted params, its per-epoch metrics (step = epoch), its final metrics,
tags naming the experiment, preset, configuration, git revision and command, and its result
files as artifacts — through MLflow's own client (``mlflow.MlflowClient``) once the run is
done, so a crashed or unreachable tracking server never costs a training run. Without a URI
the store is a SQLite file beside the run's outputs (``mlflow ui --backend-store-uri
sqlite:///...`` opens it). MLflow is imported only here and only when tracking is asked for.

Before any training, :func:`check_tracking_reachable` checks that MLflow imports and that the
store can be reached: a SQLite store's folder is writable, an ``http(s)://`` server answers an
HTTP request within :data:`REACH_TIMEOUT_S` seconds (MLflow's own client retries a dead
server for minutes, after the training).
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the file name of the default local store
STORE = "mlflow.db"
#: MLflow's tag that nests a run under its parent (a sweep's trials under the sweep)
PARENT_TAG = "mlflow.parentRunId"


#: seconds a tracking server has to answer the check before training
REACH_TIMEOUT_S = 5.0


def check_tracking_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """ValueError naming ``uri`` when MLflow is missing or the store cannot be reached:
    a ``sqlite:///`` store's folder must be writable, an ``http(s)://`` server must answer
    (any HTTP status) within ``timeout`` seconds. Other schemes are left to MLflow."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ValueError("--tracking mlflow needs MLflow: pip install -e '.[mlflow]' (or pip "
                         "install mlflow-skinny)") from None
    if uri.startswith("sqlite:///"):
        from .io import check_writable

        check_writable(Path(uri.removeprefix("sqlite:///")).parent, "MLflow store folder")
    elif uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            return  # it answered
        except (OSError, ValueError) as err:  # refused, unresolvable, no answer in time
            reason = getattr(err, "reason", err)
            raise ValueError(f"--tracking: the MLflow server {uri} did not answer within "
                             f"{timeout:g} s ({type(reason).__name__}: {reason}); start it or "
                             "drop --tracking") from None


def parse_tracking(value: str | None, default_folder: Path) -> str | None:
    """The MLflow tracking URI of a ``--tracking`` value: ``mlflow`` -> a SQLite store in
    ``default_folder``; ``mlflow:URI`` -> URI (``sqlite:///...``, ``http://...``, a folder);
    None -> no tracking. Anything else is an error naming the value."""
    if value is None:
        return None
    kind, _, uri = value.partition(":")
    if kind != "mlflow":
        raise ValueError(f"--tracking {value!r}: expected 'mlflow' or 'mlflow:URI'")
    if not uri:
        return f"sqlite:///{(Path(default_folder).resolve() / STORE)}"
    if "://" not in uri:  # a bare folder: a SQLite store in it
        return f"sqlite:///{(Path(uri).expanduser().resolve() / STORE)}"
    return uri


@dataclass
class RunRecord:
    """One run to log: its params, per-epoch metrics, final metrics, tags and files."""

    name: str
    params: Mapping[str, Any]
    epochs: Iterable[Mapping[str, Any]] = ()
    final: Mapping[str, Any] | None = None
    tags: Mapping[str, Any] | None = None
    artifacts: Iterable[Path] = ()


def _client(uri: str):
    try:
        from mlflow import MlflowClient
    except ImportError as err:
        raise RuntimeError("--tracking mlflow needs MLflow: pip install -e '.[mlflow]' "
                           "(or pip install mlflow-skinny)") from err
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the store, not in the cwd
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(float(v))}


class Tracker:
    """Logs :class:`RunRecord` s into one MLflow experiment of the store at ``uri``."""

    def __init__(self, uri: str, experiment: str):
        from mlflow.entities import Metric, Param, RunTag

        self._entities = Metric, Param, RunTag
        self.uri = uri
        self.client = _client(uri)
        self.experiment_id = _experiment_id(self.client, experiment, uri)

    def log(self, record: RunRecord, parent: str | None = None, status: str = "FINISHED") -> str:
        """Create the run, log everything of ``record`` and end it; returns its run id."""
        Metric, Param, RunTag = self._entities
        tags = {k: str(v) for k, v in (record.tags or {}).items() if v is not None}
        if parent:
            tags[PARENT_TAG] = parent
        run = self.client.create_run(self.experiment_id, run_name=record.name, tags=tags)
        run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in record.params.items()]
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, int(epoch["epoch"]))
                   for epoch in record.epochs for k, v in _finite(epoch).items()
                   if k != "epoch"]
        last = max((int(e["epoch"]) for e in record.epochs), default=0)
        per_epoch = {m.key for m in metrics}  # their last epoch is already their final value
        metrics += [Metric(k, v, now, last) for k, v in _finite(record.final or {}).items()
                    if k not in per_epoch]
        for i in range(0, max(len(params), len(metrics), 1), 100):  # MLflow's batch limits
            self.client.log_batch(run_id, metrics=metrics[i:i + 100], params=params[i:i + 100])
        for path in record.artifacts:
            if Path(path).exists():
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status=status)
        return run_id
