"""Fractional GPUs (``gpus_per_trial``): the placement a fractional request produces, on a local
Ray that declares one (logical) GPU, so no GPU is needed: four quarter-GPU trials fit on it
at once, a fifth waits."""

from __future__ import annotations

import dataclasses

import pytest

from tuning.experiment.schema import load_experiment
from tuning.experiment.trial_spec import TrialSpec
from tuning.run.trainable import scaling_config, trial_placement


def _spec(**changes) -> TrialSpec:
    spec = TrialSpec.of(load_experiment("table2"), "paper_frozen", "/tmp/unused", {})
    return dataclasses.replace(spec, **changes)


def test_the_frozen_gpu_preset_asks_for_a_quarter_gpu_per_worker():
    spec = _spec()
    assert spec.use_gpu and spec.workers_per_trial == 1 and spec.gpus_per_trial == 0.25
    assert scaling_config(spec).as_placement_group_factory().bundles == [
        {"CPU": pytest.approx(0.99), "GPU": 0.25}]
    in_process = _spec(workers_per_trial=0, gpus_per_trial=0.125)
    assert trial_placement(in_process).bundles == [{"CPU": 1.0, "GPU": 0.125}]
    with pytest.raises(Exception, match="gpus_per_trial=1.5"):
        _spec(gpus_per_trial=1.5)


def test_four_quarter_gpu_trials_share_one_gpu_and_a_fifth_waits():
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    ray.init(address="local", num_cpus=8, num_gpus=1, include_dashboard=False,
             log_to_driver=False)
    try:
        bundles = scaling_config(_spec()).as_placement_group_factory().bundles
        groups = [placement_group(bundles) for _ in range(5)]
        ready = [g for g in groups if g.wait(timeout_seconds=20 if g is groups[0] else 5)]
        assert ready == groups[:4], f"{len(ready)} of 5 quarter-GPU groups placed"

        @ray.remote(num_cpus=0.5, num_gpus=0.25)
        def visible():
            return ray.get_gpu_ids()

        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        ids = ray.get([visible.options(scheduling_strategy=PlacementGroupSchedulingStrategy(g))
                       .remote() for g in groups[:4]])
        assert all(len(i) == 1 for i in ids) and len({str(i[0]) for i in ids}) == 1
        remove_placement_group(groups[0])
        assert groups[4].wait(timeout_seconds=20), "the fifth is placed when one ends"
    finally:
        ray.shutdown()


def test_the_dry_run_of_a_gpu_preset_shows_the_fractional_request(tmp_path, monkeypatch,
                                                                   capsys):
    from hkmr.cli import main

    monkeypatch.setenv("HKMR_CACHE", str(tmp_path / "cache"))
    assert main(["sweep", "table2", "--preset", "paper_frozen", "--dry-run", "--storage",
                 str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "each: cpu=0.01; a Ray Train group of 1 workers (cpu=0.99, gpu=0.25 each)" in out
