"""Shared fixtures: every test session builds its own procedural body model cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch (OpenMP) thread per xdist worker, set before any test module imports torch:
    # two workers of two threads each oversubscribe two cores (in a suite run CPU-bound tests
    # took 2-3x their time alone, e.g. the SMPLify test 24 s against 8 s)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: every test module that starts Ray (a local instance, a multi-node cluster or a sweep) lives
#: under tests/ray/: they run one after another in one xdist worker, the rest of the suite in
#: the other (two Ray instances at once on 2 cores made Ray Train's health checks fail)
RAY_FOLDER = Path(__file__).parent / "ray"

# test modules share helpers by module name (``from test_features import one_thread``) across
# the package folders: every folder is importable (test file names are unique in the tree)
for _folder in sorted(p for p in Path(__file__).parent.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_"))):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FOLDER in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session", autouse=True)
def _hkmr_cache(tmp_path_factory):
    """Point HKMR_CACHE at a per-session folder so tests never touch ~/.cache/hkmr; shorten
    Ray Train's health check (the sweep forwards it to Ray's workers) so small Train trials
    end quickly; run Ray's workers at the tests' own priority. Ray starts its workers at nice
    15 (``RAY_worker_niceness``), so while the other xdist worker trains a model at nice 0 a
    trial gets a few per cent of a core: the serial Ray group took 15 min of a 15.7 min run."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HKMR_CACHE", str(tmp_path_factory.mktemp("hkmr_cache")))
    mp.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    mp.setenv("RAY_worker_niceness", "0")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def body_model():
    from hkmr.body import BodyModel

    return BodyModel()


def model_with_data_statistics(cfg, split: str):
    """An untrained MeshEstimator whose batch-norm statistics are those of ``split``'s images,
    so its output depends on its input (with the initial statistics an occluder or another
    image changes the output by < 1e-6 mm). Returns (model in eval mode, dataset root)."""
    import torch
    from torch import nn

    from hkmr.data.datasets import SyntheticDataset
    from hkmr.model import MeshEstimator
    from hkmr.checkpoint import mean_params_for
    from hkmr.data.synthetic import ensure_synthetic

    root = ensure_synthetic(cfg.data, progress=False)
    torch.manual_seed(0)
    model = MeshEstimator(cfg.model, mean_params_for(cfg))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the one pass below
            module.reset_running_stats()
    data = SyntheticDataset(root, split, "P1")
    with torch.no_grad():
        model.train().encoder(torch.stack([data[i]["img"] for i in range(len(data))]))
    return model.eval(), root


def smoke_run(tmp_path, *overrides):
    """Train the smoke preset (no prior) with ``overrides``; returns the validation metrics
    of the untrained model and after training (printed), and the trainer."""
    from hkmr.config import load_config

    cfg = load_config("smoke", ["model.prior=none", *overrides])
    trainer = trainer_for(cfg, tmp_path)
    before = trainer.evaluate()
    after = trainer.fit()
    print(f"smoke {cfg.model.regressor}: val MPJPE {before['val_mpjpe']:.1f} -> "
          f"{after['val_mpjpe']:.1f} mm, PA-MPJPE {before['val_pa_mpjpe']:.1f} -> "
          f"{after['val_pa_mpjpe']:.1f} mm, {after['images_per_second']:.0f} images/s")
    return before, after, trainer


def trainer_for(cfg, out_dir, hooks=None):
    """A Trainer of ``cfg`` on the data source ``hkmr train`` would give it (prepared first,
    as the CLI and the sweep trials do)."""
    from hkmr.train.source import prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks

    hooks = hooks or TrainerHooks(log=lambda msg: None)
    return Trainer(cfg, out_dir, prepare_source(cfg, log=hooks.log, progress=False), hooks)
