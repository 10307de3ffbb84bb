"""Where a search sweep's Optuna study lives, so ``optuna-dashboard`` and ``optuna.load_study``
open it: an SQLite file ``optuna.db`` in the sweep's results folder, or any Optuna storage URL
(``--optuna-storage``). The study is named after the sweep (``EXPERIMENT-PRESET`` or
``--name``); a new sweep of that name replaces the study as it replaces the tables, a resumed
one continues it."""

from __future__ import annotations

from pathlib import Path

STUDY_FILE = "optuna.db"


def default_study_url(results_folder: str | Path) -> str:
    folder = Path(results_folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / STUDY_FILE}"


def study_storage(url: str | None, study_name: str, fresh: bool = True):
    """Optuna's RDB storage at ``url`` (None: in memory); ``fresh`` drops an earlier study
    of ``study_name`` there, so a re-run does not sample from the last run's trials."""
    if url is None:
        return None
    import optuna

    storage = optuna.storages.RDBStorage(url)
    if fresh and study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=study_name, storage=storage)
    return storage
