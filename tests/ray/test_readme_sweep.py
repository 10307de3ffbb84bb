"""README.md's "Your own ablation sweep in five minutes", run as a new user would: its YAML
saved outside the package, each line of its command block run in that folder (``hkmr`` as
``python -m hkmr.cli``), on the smoke keypoint preset."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
SECTION = "## Your own ablation sweep in five minutes"


def _section_blocks() -> tuple[str, list[str]]:
    text = README.read_text()
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    bash_block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.strip() for line in bash_block.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    return yaml_block, lines


def _run(line: str, cwd: Path) -> str:
    argv = shlex.split(line)
    if argv[0] == "hkmr":
        argv = [sys.executable, "-m", "hkmr.cli", *argv[1:]]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{line!r} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_readme_section_names_a_yaml_file_and_its_commands():
    yaml_block, lines = _section_blocks()
    assert "configurations:" in yaml_block and "tables:" in yaml_block
    assert any(" my_ablation.yaml " in f" {line} " for line in lines)
    assert any(line.startswith("hkmr sweep --list") for line in lines)


@pytest.mark.slow
def test_the_readme_own_sweep_runs_from_a_folder_outside_the_package(tmp_path):
    yaml_block, lines = _section_blocks()
    (tmp_path / "my_ablation.yaml").write_text(yaml_block)
    outputs = [_run(line, tmp_path) for line in lines]
    listing, dry_run, _, table = outputs
    assert "table2" in listing and "smoke_keypoints" in listing
    assert "d = 64" in dry_run and "d = 128" in dry_run
    assert "### MPJPE (mm)" in table and "| P1 |" in table
    assert "Paired difference to **d = 128**" in table
    assert (tmp_path / "my_results" / "my_ablation" / "smoke_keypoints" / "trials.parquet").exists()
