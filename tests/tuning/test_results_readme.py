"""results/README.md quotes no figure its folder's generated files do not give.

The README's findings are written per results folder: a section whose heading names a folder
(`` `table2/cpu_keypoints` ``) may quote a millimetre figure (a number followed by "mm", or
beside "±") only when the same number appears in that folder's generated Markdown
(``tables.md``, ``decision.md``, ``search/tables.md``). The paper's own values are quoted as
``(paper: +6.0 mm)`` and are exempt. A section whose heading names no folder quotes no mm
figure at all (it can state no result)."""

import re
from pathlib import Path

RESULTS = Path(__file__).parents[2] / "results"
README = RESULTS / "README.md"
FOLDER = re.compile(r"`((?:table\d|choose_[a-z_]+)/[A-Za-z0-9_]+)/?`")
NUMBER = r"[+\-−]?\d+(?:\.\d+)?"
FIGURE = re.compile(rf"({NUMBER})(?=\s*mm\b|\s*±)|(?<=±\s)({NUMBER})")
PAPER = re.compile(r"\(paper:[^)]*\)")


def _sections(text: str):
    """(heading, body) of each ### section of the findings."""
    parts = re.split(r"^(###? .*)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def _generated(folder: str) -> str:
    root = RESULTS / folder
    files = [root / "tables.md", root / "decision.md", root / "search" / "tables.md"]
    return "\n".join(p.read_text() for p in files if p.exists())


def _figures(body: str) -> list[str]:
    body = PAPER.sub("", body)
    body = re.sub(r"`[^`]*`", "", body)  # commands and file names
    return [(a or b).replace("−", "-") for a, b in FIGURE.findall(body)]


def _appears(figure: str, text: str) -> bool:
    digits = figure.lstrip("+-")
    return re.search(rf"(?<![\d.]){re.escape(digits)}(?![\d])", text) is not None


def test_every_mm_figure_of_a_folder_section_is_in_that_folders_generated_files():
    text = README.read_text()
    checked, missing = 0, []
    for heading, body in _sections(text):
        folders = FOLDER.findall(heading)
        figures = _figures(body)
        if not folders:
            assert not figures, f"{heading.strip()} names no folder but quotes {figures}"
            continue
        generated = "\n".join(_generated(f) for f in folders)
        assert generated, f"{heading}: no generated files for {folders}"
        for figure in figures:
            checked += 1
            if not _appears(figure, generated):
                missing.append(f"{heading.strip()}: {figure}")
    assert not missing, "figures not in their folder's files:\n" + "\n".join(missing)
    assert checked >= 20  # the findings quote the data


def test_the_checker_catches_a_figure_that_drifted():
    body = "The full model is 118.3 mm; No joint hierarchy +0.21 ± 0.75 mm (paper: +6.0 mm)."
    assert _figures(body) == ["118.3", "+0.21", "0.75"]
    generated = "| P1 | 118.33 ± 1.39 (n=12) | +0.21 ± 0.75 (n=12) |"
    assert not _appears("118.3", generated)  # 118.33 is not 118.3: quote what is there
    assert _appears("+0.21", generated) and _appears("0.75", generated)
