"""The installed ``hkmr`` console script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hkmr.cli import main


def test_installed_hkmr_help_lists_the_subcommands():
    script = Path(sys.executable).parent / "hkmr"
    assert script.exists(), "pip install puts the hkmr console script beside python"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("body", "synth", "prior", "train", "eval", "demo", "features", "sweep",
                    "report", "choose-iterations", "compare"):
        assert command in out.stdout, command


def test_stray_arguments_are_refused_and_overrides_are_collected(capsys):
    with pytest.raises(SystemExit):
        main(["body", "info", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["body", "info", "model.x=1"])  # body info takes no overrides


# -- the help is light and generated from the data ------------------------------------------
ROOT = Path(__file__).parents[1]
#: modules whose import the help must not need (hkmr --help ran 3-5 s when it imported them)
HEAVY = ("torch", "ray")


def heavy_imports(code: str) -> list[str]:
    """The top-level packages of :data:`HEAVY` that ``code``, run in a fresh interpreter,
    imports."""
    probe = (f"{code}\nimport json, sys\nloaded = {{k.split('.')[0] for k in sys.modules}}\n"
             f"print(json.dumps(sorted(loaded & {set(HEAVY)!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_every_parser_imports_neither_torch_nor_ray():
    """``hkmr --help`` builds the parser of every command, the plugins' included: deterministic
    where a timing would not be (with torch it took 3-5 s)."""
    assert heavy_imports("from hkmr.cli import build_parser\nbuild_parser()") == []


def test_the_sweep_commands_register_without_torch_or_ray():
    """The plugins' parsers (``hkmr sweep``, ``report``, ``choose-iterations``) import neither,
    their help included (read from tuning/experiments and tuning/presets.yaml)."""
    code = ("import argparse\nfrom importlib.metadata import entry_points\n"
            "from hkmr.cli import PLUGIN_GROUP\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            "for plugin in entry_points(group=PLUGIN_GROUP): plugin.load()(sub)\n"
            "for name in ('sweep', 'choose-iterations'): sub.choices[name].format_help()")
    assert heavy_imports(code) == []


def test_the_light_copies_of_constants_agree():
    from hkmr.device import DEVICES
    from hkmr.options import DEVICES as OPTION_DEVICES

    assert OPTION_DEVICES == DEVICES


def sweep_parsers():
    """The ``hkmr sweep`` and ``hkmr choose-iterations`` parsers (no torch needed)."""
    import argparse

    from tuning.commands import register

    sub = argparse.ArgumentParser(prog="hkmr").add_subparsers()
    register(sub)
    return sub.choices["sweep"], sub.choices["choose-iterations"]


def one_line(parser) -> str:
    return " ".join(parser.format_help().split())


def test_preset_help_names_every_shipped_preset_and_scale(monkeypatch):
    """A preset is a scale in a regime (tuning/presets.yaml): SCALE + the regime's suffix for
    each scale the regime has a config of."""
    import yaml

    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping inside a name
    raw = yaml.safe_load((ROOT / "tuning" / "presets.yaml").read_text())
    regimes = {regime: [scale + spec.get("suffix", "") for scale in spec["configs"]]
               for regime, spec in raw["regimes"].items()}
    assert {"smoke", "cpu_frozen", "smoke_keypoints"} <= {n for v in regimes.values() for n in v}
    for parser in sweep_parsers():
        text = one_line(parser)
        for regime, names in regimes.items():
            assert regime in text and f"): {', '.join(names)}" in text, regime
        for scale, values in raw["scales"].items():
            assert f"{scale}: {' '.join(values['about'].split())}" in text, scale
        assert "hkmr sweep --list" in text


def test_experiment_help_names_the_shipped_experiments(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    text = one_line(sweep_parsers()[0])
    names = sorted(p.stem for p in (ROOT / "tuning" / "experiments").glob("*.yaml"))
    assert "table4" in names and "choose_iterations" in names
    listed = text.split("a shipped experiment (", 1)[1].split(";", 1)[0]
    assert listed.split(", ") == [n for n in names if n != "choose_iterations"]
    assert "choose_iterations is run by 'hkmr choose-iterations'" in text


@pytest.fixture(scope="module")
def loaded():
    """Every shipped experiment, loaded once (``hkmr sweep --list`` reads the same)."""
    from tuning.experiment.schema import EXPERIMENTS_DIR, load_experiment

    return {p.stem: load_experiment(p.stem) for p in sorted(EXPERIMENTS_DIR.glob("*.yaml"))}


def test_sweep_list_describes_every_experiment_and_its_presets(loaded, monkeypatch, capsys):
    import tuning.experiment.schema as schema

    monkeypatch.setattr(schema, "load_experiment", lambda name: loaded[name])
    assert main(["sweep", "--list"]) == 0
    blocks = {b.split(":", 1)[0]: b for b in capsys.readouterr().out.strip().split("\n\n")}
    assert sorted(blocks) == sorted(loaded)
    for name, exp in loaded.items():
        block = blocks[name]
        assert block.startswith(f"{name}: {exp.title}")
        rows = block.split("  presets (", 1)[1].splitlines()[1:]
        assert [row.split()[0] for row in rows] == list(exp.presets), name
        for row, preset in zip(rows, exp.presets.values()):
            assert f"config {preset.config};" in row and f"{preset.seeds} seed" in row
            assert ("GPU" if preset.use_gpu else "CPU") in row
            if exp.is_search:
                assert f"{preset.samples} sample" in row
        keys = exp.search if exp.is_search else exp.configurations
        assert all(f"\n    {key}" in block for key in keys), name
    assert "run by hkmr choose-iterations" in blocks["choose_iterations"]
    assert "run by" not in blocks["table2"]

    assert main(["sweep", "--list", "table4"]) == 0
    assert capsys.readouterr().out.startswith("table4: ")


def test_sweep_without_an_experiment_asks_for_one(capsys):
    assert main(["sweep"]) == 2
    assert "give an EXPERIMENT" in capsys.readouterr().err
