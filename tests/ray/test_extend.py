"""``hkmr sweep --target-mde --extend``: a results folder's seeds kept, only later seeds run,
after the identity and reproduction checks; per-image errors split past the size limit and
read back whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from test_sweeps import ray_local, write_experiment  # noqa: F401  (ray_local: a fixture)


def _paired_experiment(tmp_path: Path) -> Path:
    exp = write_experiment(tmp_path, {"A": {"model.regressor": "hmr"},
                                      "B": {"model.regressor": "hkmr"}})
    spec = yaml.safe_load(exp.read_text())
    spec["reference"] = "B"
    exp.write_text(yaml.safe_dump(spec))
    return exp


def _tune_trials(storage: Path) -> list[tuple[str, str, int]]:
    """(Tune run, configuration, seed) of every trial Tune ran under ``storage``."""
    out = []
    for params in storage.glob("*/*/params.json"):
        config = json.loads(params.read_text())
        out.append((params.parents[1].name, config["configuration"], config["seed"]))
    return sorted(out)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_extend_keeps_the_seeds_reproduces_seed_0_and_refuses_a_mismatch(tmp_path, ray_local):
    """Also the plain --target-mde path's checks (a seed batch added as its own Tune run, the
    power statement, a repeat re-runs nothing), so the suite runs one such sweep, not two."""
    from tuning.procedures.extend_seeds import ExtensionRefused
    from tuning.procedures.target_mde import sweep_to_target
    from tuning.run.request import SweepRequest

    exp = _paired_experiment(tmp_path)
    results = tmp_path / "results"
    out = sweep_to_target(SweepRequest(str(exp), "smoke", storage=str(tmp_path / "store"),
                                       results_dir=str(results)), 0.001, 2)  # seeds 0, 1
    kept = {r["trial_id"]: r for r in pq.read_table(out / "trials.parquet").to_pylist()}
    assert len(kept) == 4
    # the Ray storage is gone: a new one; first a folder whose kept seed 0 was corrupted
    store = tmp_path / "store2"
    bad = tmp_path / "bad" / "mini" / "smoke"
    shutil.copytree(out, bad)
    table = pq.read_table(bad / "trials.parquet")
    rows = table.to_pylist()
    for r in rows:
        if (r["configuration"], r["seed"]) == ("B", 0):
            r["P1_standard_mpjpe"] += 0.5
    pq.write_table(pa.Table.from_pylist(rows, table.schema), bad / "trials.parquet")
    before = _files(bad)
    with pytest.raises(ExtensionRefused, match=r"P1_standard_mpjpe: kept .*, now .*git revision"):
        sweep_to_target(SweepRequest(str(exp), "smoke", storage=str(store),
                                     results_dir=str(tmp_path / "bad")), 0.001, 3, extend=True)
    assert _files(bad) == before  # nothing written
    assert _tune_trials(store) == [("mini-smoke-reproduce", "B", 0)]

    # the intact folder: the reproduction (resumed, not re-run) passes, seed 2 is added
    extended = SweepRequest(str(exp), "smoke", storage=str(store), results_dir=str(results),
                            command="hkmr sweep X")
    again = sweep_to_target(extended, 0.001, 3, extend=True)
    assert again == out
    assert _tune_trials(store) == [("mini-smoke-reproduce", "B", 0),
                                   ("mini-smoke-seeds2-2", "A", 2),
                                   ("mini-smoke-seeds2-2", "B", 2)]
    trials = pq.read_table(out / "trials.parquet")
    rows = trials.to_pylist()
    assert sorted((r["configuration"], r["seed"]) for r in rows) == [
        ("A", 0), ("A", 1), ("A", 2), ("B", 0), ("B", 1), ("B", 2)]
    for r in rows:  # the kept trials unchanged
        if r["trial_id"] in kept:
            assert r["trial_work_seconds"] == kept[r["trial_id"]]["trial_work_seconds"]
    info = json.loads(trials.schema.metadata[b"hkmr_sweep"])
    check = info["extensions"][0]["reproduction"]
    assert check["kept"]["P1_standard_mpjpe"] == pytest.approx(
        check["reproduced"]["P1_standard_mpjpe"], abs=1e-3)
    assert info["seeds"] == 3 and info["power"]["seeds"] == 3
    text = (out / "tables.md").read_text()
    assert "Extended by `hkmr sweep X`" in text and "seeds 0–1 kept" in text
    assert "seeds 2–2 added after the reproduction check: B seed 0 retrained" in text
    assert "Seeds sized by `--target-mde 0.001` (max 3): 3 seeds" in text
    assert "--max-seeds 3 was reached" in text
    assert "Trials: 6 ok" in text and "(n=3)" in text
    images = pq.read_table(out / "images.parquet")
    assert {(r["configuration"], r["seed"]) for r in images.to_pylist()} == {
        (c, s) for c in "AB" for s in range(3)}
    assert images.schema.field("mpjpe").type == pa.float32()
    epochs = pq.read_table(out / "epochs.parquet").to_pylist()
    assert {r["seed"] for r in epochs} == {0, 1, 2}
    # a re-render of the extended folder keeps its header (the extension record)
    from tuning.run.report import rerender_results

    rerender_results(out)
    assert (out / "tables.md").read_text() == text
    # the same command again: max seeds reached, nothing trained or changed
    work = {r["trial_id"]: r["trial_work_seconds"] for r in rows}
    sweep_to_target(extended, 0.001, 3, extend=True)
    assert _tune_trials(store) == [("mini-smoke-reproduce", "B", 0),
                                   ("mini-smoke-seeds2-2", "A", 2),
                                   ("mini-smoke-seeds2-2", "B", 2)]
    assert {r["trial_id"]: r["trial_work_seconds"]
            for r in pq.read_table(out / "trials.parquet").to_pylist()} == work


def test_an_extension_with_other_overrides_or_seeds_is_refused_before_ray_starts(tmp_path):
    import ray

    from tuning.procedures.extend_seeds import ExtensionRefused
    from tuning.procedures.target_mde import sweep_to_target
    from tuning.run.driver import plan_sweep, sweep_info
    from tuning.run.request import SweepRequest

    exp = _paired_experiment(tmp_path)
    folder = tmp_path / "results" / "mini" / "smoke"
    folder.mkdir(parents=True)
    plan = plan_sweep(SweepRequest(exp, "smoke", 2, storage=tmp_path / "old_store"))
    rows = [{"trial_id": f"{c}{s}", "configuration": c, "seed": s, "status": "ok"}
            for c in "AB" for s in (0, 1)]
    meta = {"hkmr_sweep": json.dumps(sweep_info(plan, 2, "hkmr sweep mini"))}
    pq.write_table(pa.Table.from_pylist(rows).replace_schema_metadata(meta),
                   folder / "trials.parquet")
    request = SweepRequest(exp, "smoke", storage=str(tmp_path / "store"),
                           results_dir=str(tmp_path / "results"))
    with pytest.raises(ExtensionRefused, match=r"train.lr \(every configuration's resolved "
                       r"config\) is 0.001 there, 0.0005 in this sweep"):
        sweep_to_target(request.but(overrides=["train.lr=0.0005"]), 1.0, 4, extend=True)
    from tuning.procedures.extend_seeds import load_kept

    # another storage and an override equal to the preset's value are the same sweep
    same = load_kept(folder, plan_sweep(SweepRequest(exp, "smoke", 1, storage=tmp_path / "s",
                                                        overrides=["train.epochs=2"])))
    assert same.seeds == 2
    pq.write_table(pa.Table.from_pylist(rows[:-1] + [{**rows[-1], "status": "error"}])
                   .replace_schema_metadata(meta), folder / "trials.parquet")
    with pytest.raises(ExtensionRefused, match="'B' seed 1 is error"):
        sweep_to_target(request, 1.0, 4, extend=True)
    pq.write_table(pa.Table.from_pylist(rows[1:]).replace_schema_metadata(meta),
                   folder / "trials.parquet")
    with pytest.raises(ExtensionRefused, match="no trial of 'A' seed 0"):
        sweep_to_target(request, 1.0, 4, extend=True)
    assert not ray.is_initialized()


def test_per_image_errors_split_by_seed_past_the_limit_and_read_back_whole(tmp_path):
    from tuning.analysis.image_error_files import PART_LIMIT, image_files, read_images, write_images
    from tuning.analysis.image_errors import write_bootstrap
    from tuning.experiment.layouts import table_layout

    # 12 seeds x 5 configurations x 5120 rows: the size of a cpu_keypoints Table 2
    rng = np.random.default_rng(0)
    n, names = 5120, ["c0", "c1", "c2", "c3", "c4"]
    parts = []
    for seed in range(12):
        for name in names:
            parts.append(pa.table({
                "trial_id": [f"{name}-{seed}"] * n, "configuration": [name] * n,
                "seed": pa.array([seed] * n, pa.int64()),
                "image": pa.array(np.arange(n) % 256, pa.int64()),
                "protocol": ["P1", "P2"] * (n // 2), "occlusion": ["standard"] * n,
                "degree": pa.array([0] * n, pa.int64()),
                "mpjpe": rng.gamma(4, 20, n), "pa_mpjpe": rng.gamma(4, 12, n)}))
    table = pa.concat_tables(parts)
    written = write_images(table, tmp_path)
    assert [p.name for p in written] == ["images.parquet", "images-seeds6-11.parquet"]
    assert all(p.stat().st_size <= PART_LIMIT for p in written)
    back = read_images(tmp_path)
    assert back.num_rows == table.num_rows
    assert sorted(set(back.column("seed").to_pylist())) == list(range(12))
    assert back.schema.field("mpjpe").type == pa.float32()
    assert np.allclose(back.column("mpjpe").to_numpy(), table.column("mpjpe").to_numpy(),
                       rtol=1e-6)
    # the bootstrap reads every part (a small folder split by a small limit)
    small = table.filter(pa.compute.and_(pa.compute.less(table.column("seed"), 4),
                                         pa.compute.less(table.column("image"), 8)))
    small = small.filter(pa.compute.is_in(small.column("configuration"),
                                          pa.array(["c0", "c4"])))
    few = tmp_path / "few"
    assert len(write_images(small, few, limit=2000)) == 4
    text = write_bootstrap(few, [table_layout({"columns": ["c0", "c4"], "reference": "c4"})],
                           200).read_text()
    assert "| c0 − c4 | P1 | MPJPE |" in text and "| 4 | 4 |" in text
    # a smaller table rewritten into the folder leaves no stale part behind
    write_images(table.filter(pa.compute.less(table.column("seed"), 2)), tmp_path)
    assert [p.name for p in image_files(tmp_path)] == ["images.parquet"]
    assert read_images(tmp_path).num_rows == table.num_rows // 6
