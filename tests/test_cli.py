"""The installed ``hkmr`` console script."""

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
