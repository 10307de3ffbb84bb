"""The confirmatory family: declared per experiment, tested in its own section of tables.md
(values checked against scipy and brute force), every other table descriptive."""

import itertools
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from hkmr.config import ConfigError
from tuning.analysis.confirmatory_section import confirmatory_section
from tuning.analysis.estimates import Estimates
from tuning.experiment.schema import load_experiment
from tuning.stats.crossed import crossed
from tuning.stats.paired import holm, mde

RESULTS = Path(__file__).parents[2] / "results"


def test_the_paper_tables_declare_the_comparisons_the_paper_makes():
    t1, t2, t3 = (load_experiment(n).confirmatory for n in ("table1", "table2", "table3"))
    assert t1.comparisons == ("HMR", "CMR") and len(t1) == 4
    assert t2.comparisons == ("No joint hierarchy", "Forward only", "Discriminator")
    assert "No chain hierarchy" not in t2.comparisons and len(t2) == 6
    assert len(t3) == 10 and t3.keys() == ["P1_standard_mpjpe", "P2_standard_mpjpe"]
    assert load_experiment("loss_weights").confirmatory is None  # a search: no family


def _experiment(tmp_path, confirmatory):
    import yaml

    raw = {"name": "mini", "title": "Mini", "reference": "R",
           "configurations": {"A": {"model.regressor": "hmr"}, "B": {}, "R": {}},
           "tables": [{"columns": ["A", "B", "R"], "metric": "mpjpe"}]}
    if confirmatory is not None:
        raw["confirmatory"] = confirmatory
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


def test_a_family_is_validated_and_defaults_to_every_comparison_on_the_primary_endpoint(tmp_path):
    family = _experiment(tmp_path, None).confirmatory
    assert family.comparisons == ("A", "B") and not family.declared
    assert family.keys() == ["P1_standard_mpjpe", "P2_standard_mpjpe"]
    assert _experiment(tmp_path, {"comparisons": ["A"]}).confirmatory.members() == [
        ("A", "P1_standard_mpjpe"), ("A", "P2_standard_mpjpe")]
    with pytest.raises(ConfigError, match=r"confirmatory.comparisons \['C'\]"):
        _experiment(tmp_path, {"comparisons": ["C"]})
    with pytest.raises(ConfigError, match=r"confirmatory.comparisons \['R'\]"):
        _experiment(tmp_path, {"comparisons": ["R"]})
    with pytest.raises(ConfigError, match="unknown keys \\['alpha'\\]"):
        _experiment(tmp_path, {"alpha": 0.1})
    with pytest.raises(ConfigError, match="protocols"):
        _experiment(tmp_path, {"protocols": ["P3"]})
    recorded = load_experiment("mini.yaml", text=_experiment(tmp_path, None).recorded_yaml())
    assert recorded.confirmatory.comparisons == ("A", "B") and recorded.confirmatory.declared


def _rows(per_seed: dict, n: int):
    rows = []
    for s in range(n):
        base = 100 + 7 * math.sin(s)
        rows.append({"configuration": "R", "seed": s, "status": "ok", "trial_id": f"R{s}",
                     "P1_standard_mpjpe": base, "P2_standard_mpjpe": base - 5})
        for name, d in per_seed.items():
            rows.append({"configuration": name, "seed": s, "status": "ok", "trial_id": f"{name}{s}",
                         "P1_standard_mpjpe": base + d[s], "P2_standard_mpjpe": base - 5 + d[s] / 2})
    return rows


def test_the_section_gives_holm_adjusted_t_and_sign_flip_p_values_and_each_mde(tmp_path):
    exp = _experiment(tmp_path, None)
    a = np.array([2.1, 1.6, 2.4, 1.9, 2.2, 1.7, 2.6, 2.0])  # clearly higher
    b = np.array([0.3, -0.4, 0.5, -0.1, 0.2, -0.6, 0.4, 0.1])  # nothing
    rows = _rows({"A": a, "B": b}, 8)
    text = confirmatory_section(exp.confirmatory, Estimates(rows, "R"))
    diffs = [a, a / 2, b, b / 2]  # A P1, A P2, B P1, B P2
    t_holm = holm([sps.ttest_1samp(d, 0).pvalue for d in diffs])
    flip = []
    for d in diffs:
        signs = np.array(list(itertools.product((1, -1), repeat=8)))
        flip.append(np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12))
    flip_holm = holm(flip)
    line = text.split("| A − R | P1 |")[1].splitlines()[0]
    assert "p<0.001" in line and f"p={flip_holm[0]:.3f}" in line and "**resolved**: higher" in line
    line = text.split("| B − R | P1 |")[1].splitlines()[0]
    assert f"p={t_holm[2]:.3f}" in line and f"p={flip_holm[2]:.3f}" in line
    assert "not resolved" in line and f"| {mde(b.std(ddof=1), 8, 0.05 / 4):.2f} |" in line
    assert "MDE at α/4" in text and "simultaneous interval (α/4)" in text
    assert "Error: seeds only" in text and "at least 8 seeds (here: 8)" in text


def test_with_per_image_errors_the_interval_is_over_seeds_and_images(tmp_path):
    exp = _experiment(tmp_path, {"comparisons": ["A"], "protocols": ["P1"]})
    rng = np.random.default_rng(0)
    n, images = 6, 40
    image_effect = rng.normal(0, 3, images)
    errors = {(c, s): 100 + rng.normal(0, 5, images) + (image_effect + 1.0 if c == "A" else 0)
              for c in ("A", "R") for s in range(n)}
    rows = [{"configuration": c, "seed": s, "status": "ok", "trial_id": f"{c}{s}",
             "P1_standard_mpjpe": float(e.astype(np.float32).mean())}
            for (c, s), e in errors.items()]
    images_table = pa.table({
        "trial_id": [f"{c}{s}" for (c, s) in errors for _ in range(images)],
        "configuration": [c for (c, s) in errors for _ in range(images)],
        "seed": [s for (c, s) in errors for _ in range(images)],
        "image": [i for _ in errors for i in range(images)],
        "protocol": ["P1"] * (len(errors) * images), "occlusion": ["standard"] * (len(errors) * images),
        "degree": [0] * (len(errors) * images),
        "mpjpe": pa.array(np.concatenate(list(errors.values())), pa.float32())})
    estimate = Estimates(rows, "R", images_table)
    d, per_seed = estimate("A", "P1_standard_mpjpe")
    matrix = np.stack([errors["A", s].astype(np.float32).astype(float)
                       - errors["R", s].astype(np.float32).astype(float) for s in range(n)])
    assert d.se == pytest.approx(crossed(matrix).se, rel=1e-4) and d.se > d.se_seeds
    assert d.images == images and len(per_seed) == n
    text = confirmatory_section(exp.confirmatory, estimate)
    assert "Error: seeds × test images" in text and f"{d.se_seeds:.3f} → {d.se:.3f}" in text


def _sections(text: str) -> tuple[str, str]:
    """(the confirmatory section, everything after it) of a tables.md."""
    start = text.index("### Confirmatory family")
    end = text.index("\n### ", start + 1)
    return text[start:end], text[end:]


def test_every_committed_table_with_a_reference_has_its_family_and_descriptive_tables():
    folders = sorted(p.parent for p in RESULTS.rglob("trials.parquet"))
    checked = 0
    for folder in folders:
        text = (folder / "tables.md").read_text()
        if "Paired difference to" not in text:
            continue
        family, rest = _sections(text)
        rest = rest.split("### Trials")[0]
        assert "p=" not in rest and "p<" not in rest and " * |" not in rest, folder
        assert "Descriptive" in rest, folder
        if "Fewer than two seeds" in family:  # one-seed smoke folders
            continue
        assert "t p (Holm)" in family and "sign-flip p (Holm)" in family, folder
        assert "MDE at α/" in family and "simultaneous interval" in family, folder
        assert "Error: seeds" in family, folder  # names its sources of error
        checked += 1
    assert checked >= 7
