"""The mutation runner (benchmarks/mutation.py): its list cannot rot silently (a snippet that
is missing or ambiguous stops it, naming the entry), and one known mutation, applied in a
copy of the tree, is killed by its listed tests while the working tree stays untouched."""

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def runner():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("mutation"), importlib.import_module("mutations")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_list_applies_and_a_bad_snippet_stops_it_by_name(runner):
    mutation, mutations = runner
    mutation.check(mutations.MUTATIONS)  # every snippet exactly once, today
    names = {m.name for m in mutations.MUTATIONS}
    assert len(names) >= 40 and set(mutations.PINNED_MUTATIONS) <= names
    for m in mutations.MUTATIONS:
        for test in m.tests:
            assert (mutation.ROOT / test.split("::")[0]).is_file(), (m.name, test)
    gone = mutation.Mutation("gone", "hkmr/eval/metrics.py", "no such code", "x",
                             ("tests/eval/test_metrics.py",))
    twice = mutation.Mutation("twice", "hkmr/eval/metrics.py", "torch", "numpy",
                              ("tests/eval/test_metrics.py",))
    with pytest.raises(mutation.MutationListError, match=r"gone: the snippet 'no such code' "
                       r"occurs 0 times in hkmr/eval/metrics.py[\s\S]*twice: .* occurs \d+ "
                       r"times"):
        mutation.check([gone, twice])


def test_a_known_mutation_is_killed_in_a_copy_and_the_tree_is_untouched(runner, tmp_path):
    mutation, mutations = runner
    (m,) = [m for m in mutations.MUTATIONS if m.name == "pck-strict-threshold"]
    source = mutation.ROOT / m.file
    before = source.read_text()
    tree = tmp_path / "tree"
    for name in ("hkmr", "tests/conftest.py", "tests/eval/test_metrics.py", "pyproject.toml"):
        path = mutation.ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")
                                                if "__pycache__" not in p.parts]
        for f in files:
            target = tree / f.relative_to(mutation.ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    result = mutation.run_mutation(m, tree, timeout=120)
    assert result["status"] == "killed", result
    assert "test_pck_and_2d_error_on_a_constructed_case" in result["failed"][0]
    assert (tree / m.file).read_text() == before == source.read_text()  # restored, untouched
    totals = mutation.summary([result, dict(result, status="equivalent")])
    assert (totals["killed"], totals["equivalent"], totals["kill_rate"]) == (1, 1, 0.5)
