"""``hkmr choose`` end to end on real Ray: a two-point (T, P) grid against the reference
T = 3, P = 4 in the keypoint regime, one look of two seeds. The confirmation folder holds
validation metrics only; the test split is computed once, after the decision, by a run that
starts after the last confirmation trial ended and retrains the same trials."""

import pyarrow.parquet as pq
import pytest
import yaml

from test_sweeps import ray_local  # noqa: F401  (a fixture: Ray shut down after the test)

pytestmark = pytest.mark.slow


def test_choose_confirms_against_the_reference_then_tests_once(tmp_path, ray_local):
    from hkmr.cli import main

    spec = {"name": "mini_iters", "title": "Mini", "metric": "val_mpjpe", "margin": 1.0,
            "baseline": {"model.outer_iters": 3, "model.inner_iters": 4},
            "base": {"model.regressor": "hkmr"},
            "search": {"model.outer_iters": {"choice": [1, 3]},
                       "model.inner_iters": {"choice": [4]}},
            "suites": ["table1"], "regimes": ["keypoints"],
            "presets": {"smoke_keypoints": {"seeds": 2, "candidates": 0}}}
    path = tmp_path / "mini_iters.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    rc = main(["choose", str(path), "--preset", "smoke_keypoints", "--max-seeds", "2",
               "--out", str(out), "--storage", str(tmp_path / "ray"), "--max-concurrent", "2"])
    assert rc in (None, 0)
    decision = (out / "mini_iters" / "smoke_keypoints" / "decision.md").read_text()
    reference = decision.split("**Reference**, fixed before the data: ")[1].split("}")[0]
    assert "'model.outer_iters': 3" in reference and "'model.inner_iters': 4" in reference
    assert "δ = 1 mm" in decision and "Bonferroni alpha spending" in decision
    assert "| T1 P4 |" in decision and "Replay" in decision
    assert "Inconclusive at 2 seeds" in decision or "Decided:" in decision
    confirm = pq.read_table(out / "mini_iters_confirm" / "smoke_keypoints" / "trials.parquet")
    assert not any(c.startswith(("P1_", "P2_")) for c in confirm.column_names)
    assert sorted(set(confirm.column("configuration").to_pylist())) == ["T1 P4", "reference"]
    assert sorted(set(confirm.column("seed").to_pylist())) == [1000, 1001]
    test = pq.read_table(out / "mini_iters" / "smoke_keypoints" / "test" / "trials.parquet")
    assert "P1_standard_mpjpe" in test.column_names
    assert max(confirm.column("timestamp").to_pylist()) <= min(test.column("timestamp").to_pylist())
    assert "equals the confirmation's to 0.0e+00 mm" in decision
