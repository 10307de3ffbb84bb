"""Composable presets (tuning/presets.yaml, tuning.experiment.presets): each scale and regime
is defined once, an experiment adds only what it needs, and results folders' complete presets
still load as recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from hkmr.config import ConfigError
from tuning.experiment.presets import catalogue
from tuning.experiment.schema import EXPERIMENTS_DIR, load_experiment

SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def _write(tmp_path: Path, **raw) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"configurations": {"a": {}, "b": {}}, **raw}))
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_experiment_repeats_a_presets_settings(name):
    """An experiment's presets add to the shipped ones: none is complete (``config:``) and
    no added value is one the scale or regime already gives."""
    raw = yaml.safe_load((EXPERIMENTS_DIR / f"{name}.yaml").read_text())
    cat = catalogue()
    exp = load_experiment(name)
    for preset, added in (raw.get("presets") or {}).items():
        assert "config" not in added, f"{name}: preset {preset} repeats a complete preset"
        if "from" in added:
            continue
        shipped = cat.offered(list(cat.regimes))
        offered = [p for p, (scale, _) in shipped.items()
                   if preset in (p, scale) and p in exp.presets]
        assert offered, f"{name}: {preset} adds to no preset it offers"
        for key, value in added.items():
            # what the preset had before this addition: the shipped values, and for a
            # preset's own addition also its scale's
            given = [{**cat.values(*shipped[p]), **(raw["presets"].get(shipped[p][0], {})
                                                     if preset != shipped[p][0] else {})}
                     .get(key) for p in offered]
            assert any(g != value for g in given), f"{name}: {preset}.{key} repeats {value!r}"


def test_a_preset_is_its_scale_in_its_regime_plus_what_the_experiment_adds():
    table1, table2, choose = (load_experiment(n) for n in ("table1", "table2",
                                                          "choose_iterations"))
    # scale smoke: 1 seed, 2 epochs, 64 test images; the keypoint regime narrows the suites
    assert table1.preset("smoke_keypoints").suites == ["table1", "degrees"]
    assert table1.preset("smoke").suites == ["table1", "degrees", "invisible", "segmentation"]
    assert table1.preset("smoke").degree_limit == 28 and table1.preset("cpu").degree_limit == 140
    # no degrees suite: no degree limit (what the trial spec records stays as it was)
    assert table2.preset("smoke").degree_limit == 0
    assert table2.preset("cpu_keypoints").seeds == 6 and table2.preset("cpu").eval_limit == 512
    mlp = table2.preset("cpu_keypoints_mlp")
    assert (mlp.config, mlp.seeds, mlp.overrides) == ("cpu_keypoints", 6,
                                                      {"model.chain_layer": "mlp"})
    # a scale's additions reach each of its regimes: choose_iterations' cpu seeds (a look's
    # batch) and "confirm every grid point"
    assert (choose.preset("cpu").seeds, choose.preset("cpu_keypoints").seeds) == (4, 4)
    assert choose.preset("smoke_frozen").candidates == 0 and choose.preset("smoke").seeds == 2
    # overrides merge: Table 4's SMPLify iterations beside the smoke scale's epochs
    table4 = load_experiment("table4")
    assert table4.preset("smoke").overrides == {"train.epochs": 2, "train.smplify_iters": 20}
    assert "smoke_keypoints" not in table4.presets  # regimes: end to end, frozen features


def test_an_experiment_of_ones_own_offers_every_shipped_preset(tmp_path):
    exp = load_experiment(_write(tmp_path, suites=["table1"]))
    assert set(exp.presets) == set(catalogue().offered(list(catalogue().regimes)))
    assert exp.resolve("smoke_keypoints", "a").regime == "keypoints"
    assert exp.resolve("cpu_frozen", "a").regime == "frozen_features"


@pytest.mark.parametrize("presets, message", [
    ({"huge": {"seeds": 2}}, r"preset 'huge' is not a scale .* nor one of its presets"),
    ({"mine": {"from": "nowhere"}}, r"preset mine: 'from: nowhere' is not one of its presets"),
    ({"smoke": {"seedz": 2}}, r"preset smoke: unknown preset keys \['seedz'\]"),
])
def test_a_bad_preset_fails_at_load_naming_it(tmp_path, presets, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path, presets=presets))
    with pytest.raises(ConfigError, match=r"unknown regimes \['images'\]"):
        load_experiment(_write(tmp_path, regimes=["images"]))


def test_complete_presets_load_as_recorded_and_a_record_is_self_contained(tmp_path):
    """A results folder records its experiment with every preset complete: it resolves the
    same whatever tuning/presets.yaml says later."""
    old = load_experiment(_write(tmp_path, presets={"smoke": {"config": "smoke", "seeds": 4}}))
    assert list(old.presets) == ["smoke"] and old.preset("smoke").seeds == 4
    assert old.preset("smoke").eval_limit == 0  # nothing composed into a complete preset
    for name in SHIPPED:
        exp = load_experiment(name)
        again = load_experiment(f"{name}.yaml", text=exp.recorded_yaml())
        assert again.presets == exp.presets, name
        assert [t.to_dict() for t in again.tables] == [t.to_dict() for t in exp.tables], name
        assert dataclasses.replace(again, path=exp.path, regimes=exp.regimes) == exp, name
        assert "from" not in exp.recorded_yaml()
