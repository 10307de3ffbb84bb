"""One retry layer for sweep trials, and the errors that no retry can fix.

**Tune retries, Train does not.** A crashed trial (its process or node died, a transient
error) is retried by Ray Tune, ``tune.FailureConfig(max_failures=preset.max_failures)``,
from its last checkpoint. A trial that trains with a Ray Train ``TorchTrainer``
(``workers_per_trial >= 1``) gives its trainer ``ray.train.FailureConfig(max_failures=0)``:
a failed worker group ends ``TorchTrainer.fit`` and so the trial, which Tune then retries; the
new ``TorchTrainer`` has the same run name under the storage and resumes from its newest
checkpoint. Tune is the layer kept because it is the one both kinds of trial have (an
in-process trial has no Train layer) and the one ``--resume`` and the results table see.
Retrying at both layers multiplied the attempts (Tune's times Train's: up to 9 runs of a
deterministic failure).

**Permanent errors end the trial at once.** Ray 2.60 has no per-exception retry filter
(``FailureConfig.fail_fast`` stops the whole sweep), so the trial itself catches the errors
that would fail the same way on every attempt and ends normally with a report of ``failed = 1``
and the error's message (an in-process trial catches them around its training; a Ray Train
worker lets them end its worker group, so the other DDP ranks do not wait for it, and the trial
finds them in the ``WorkerGroupError`` of ``TorchTrainer.fit``); the sweep goes on and the
results table lists the trial as failed with that message. Permanent are: an invalid config
(:class:`hkmr.config.ConfigError` and any other ``ValueError``: hkmr raises it for settings
that cannot work), a non-finite loss (:class:`hkmr.train.trainer.NonFiniteLossError`) and
running out of memory (``torch.cuda.OutOfMemoryError``, ``MemoryError``). Everything else is
retried.
"""

from __future__ import annotations

import torch

from hkmr.config import ConfigError
from hkmr.train.trainer import NonFiniteLossError

#: exception types a retry cannot fix (see the module docstring)
PERMANENT: tuple[type[BaseException], ...] = (
    ConfigError, ValueError, NonFiniteLossError, torch.cuda.OutOfMemoryError, MemoryError)

#: Ray Train's own retries inside a trial: none, Tune retries the trial
TRAIN_MAX_FAILURES = 0


def is_permanent(err: BaseException) -> bool:
    """Whether ``err`` would fail a retried trial the same way."""
    return isinstance(err, PERMANENT)


def permanent_cause(err: BaseException) -> BaseException | None:
    """The permanent error behind ``err`` (itself, a Ray Train worker's failure in a
    ``WorkerGroupError``, the cause of a ``RayTaskError``, or its ``__cause__`` chain), or
    None when a retry might succeed."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if is_permanent(e):
            return getattr(e, "cause", None) if is_permanent(getattr(e, "cause", None)) else e
        todo += list(getattr(e, "worker_failures", {}).values())
        todo += [getattr(e, "cause", None), e.__cause__]
    return None


def error_message(err: BaseException) -> str:
    """The message a failed trial records: the exception's type and text."""
    return f"{type(err).__name__}: {err}"


def failure_metrics(err: BaseException, node_id: str) -> dict:
    """The report that ends a trial with a permanent error."""
    return {"failed": 1, "error": error_message(err), "epoch": -1, "node_id": node_id,
            "val_mpjpe": float("nan")}
