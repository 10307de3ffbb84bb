"""The package layering of docs/architecture.md, read from the source with ``ast`` (imports
inside functions included): body -> data -> model -> checkpoint -> features -> eval -> train ->
cli, ``tuning`` above all of ``hkmr``; no import cycles; the library never imports Ray or
``tuning``. Inside ``tuning``: stats -> experiment -> analysis -> run -> procedures -> commands;
only ``tuning.run`` imports Ray; ``tuning.stats`` imports neither Ray, torch nor ``hkmr``."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
#: subpackages that may not import hkmr.train (they sit below it)
BELOW_TRAIN = ("hkmr.body", "hkmr.data", "hkmr.model", "hkmr.checkpoint", "hkmr.features",
               "hkmr.eval")
#: the layer order of the subpackages; a unit may import only units of its own layer or below
ORDER = ("hkmr.body", "hkmr.data", "hkmr.model", "hkmr.checkpoint", "hkmr.features",
         "hkmr.eval", "hkmr.train", "hkmr.demo", "hkmr.cli")
#: the layer order of tuning's subpackages
TUNING_ORDER = ("tuning.stats", "tuning.experiment", "tuning.analysis", "tuning.run",
                "tuning.procedures", "tuning.commands")
#: what each tuning subpackage may not import directly (at any depth of its code)
TUNING_FORBIDDEN = {"tuning.stats": ("ray", "torch", "hkmr"), "tuning.experiment": ("ray",),
                    "tuning.analysis": ("ray",), "tuning.procedures": ("ray",),
                    "tuning.commands": ("ray", "torch")}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of its code, as absolute names."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module or "")
    return names


def unit(name: str) -> str:
    """The layer unit of a module: a subpackage or top-level module of hkmr or tuning."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("hkmr", "tuning") else parts[0]


def graph(top: str) -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    """(unit edges, module edges within each package, imports of ray/tuning from hkmr)."""
    units, modules, forbidden = defaultdict(set), defaultdict(set), []
    for path in sorted((ROOT / top).rglob("*.py")):
        mod = module_name(path)
        for name in imports(path):
            root = name.split(".")[0]
            if top == "hkmr" and root in ("ray", "tuning"):
                forbidden.append(f"{mod} imports {name}")
            if top == "tuning" and root in TUNING_FORBIDDEN.get(unit(mod), ()):
                forbidden.append(f"{mod} imports {name}")
            if root in ("hkmr", "tuning"):
                if unit(name) != unit(mod):
                    units[unit(mod)].add(unit(name))
                elif name != mod and not mod.startswith(name + "."):
                    modules[mod].add(name)
    return units, modules, forbidden


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(edges):
        if u not in state:
            visit(u)
    return found


def test_the_detector_finds_cycles_and_relative_imports(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    fake = ROOT / "hkmr" / "eval" / "suites.py"
    assert "hkmr.data.source" in imports(fake) and "hkmr.eval.metrics" in imports(fake)


@pytest.mark.parametrize("top", ["hkmr", "tuning"])
def test_no_import_cycles_between_units_or_modules(top):
    units, modules, _ = graph(top)
    assert cycles(units) == []
    assert cycles(modules) == []


def test_lower_layers_never_import_train_and_the_library_never_imports_ray_or_tuning():
    units, _, forbidden = graph("hkmr")
    assert forbidden == []
    for low in BELOW_TRAIN:
        assert "hkmr.train" not in units.get(low, set()), f"{low} imports hkmr.train"


def test_each_layer_imports_only_itself_and_the_layers_below():
    units, _, _ = graph("hkmr")
    rank = {name: i for i, name in enumerate(ORDER)}
    for src, targets in units.items():
        for dst in targets:
            if src in rank and dst in rank:  # top-level helpers (config, io, ...) are below all
                assert rank[dst] <= rank[src], f"{src} imports {dst}, a layer above it"
            elif src not in rank:
                assert dst not in rank, f"helper module {src} imports the layer {dst}"


def test_tuning_subpackages_keep_their_layers_and_ray_stays_in_run():
    units, _, forbidden = graph("tuning")
    assert forbidden == []
    rank = {name: i for i, name in enumerate(TUNING_ORDER)}
    assert set(units) <= set(rank), f"a tuning module outside the layers: {set(units) - set(rank)}"
    for src, targets in units.items():
        for dst in targets:
            if dst.startswith("tuning"):
                assert rank[dst] <= rank[src], f"{src} imports {dst}, a layer above it"


def test_the_tuning_layer_check_fails_on_a_violation(tmp_path, monkeypatch):
    """The check above is not vacuous: a statistics module that imports torch, and an analysis
    module that imports the Ray driver, are both caught."""
    fake = tmp_path / "tuning"
    (fake / "stats").mkdir(parents=True)
    (fake / "analysis").mkdir()
    (fake / "run").mkdir()
    (fake / "stats" / "bad.py").write_text("import torch\n")
    (fake / "analysis" / "up.py").write_text("def f():\n    from ..run.driver import run_sweep\n")
    (fake / "run" / "driver.py").write_text("import ray\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    units, _, forbidden = graph("tuning")
    assert forbidden == ["tuning.stats.bad imports torch"]
    assert units["tuning.analysis"] == {"tuning.run"}


def test_the_statistics_load_neither_torch_nor_ray():
    """Importing every ``tuning.stats`` module loads neither torch nor Ray (nor hkmr, which
    imports torch): a notebook or another project can use them alone."""
    code = ("import pkgutil, importlib, sys, tuning.stats as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module(f'tuning.stats.{m.name}')\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'ray', 'hkmr')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_test_files_have_unique_names_and_ray_tests_live_in_the_ray_folder():
    """Tests mirror the packages; a module that starts Ray must be under tests/ray, where
    conftest runs them one after another in one xdist worker (two Ray instances on 2 cores
    fail Ray Train's health checks)."""
    tests = ROOT / "tests"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test modules of one name"
    starts_ray = ("ray.init(", "run_sweep(", "sweep_to_target(", "choose_iterations(",
                  "cluster_utils", "ray_local")
    outside = [str(p.relative_to(tests)) for p in tests.rglob("test_*.py")
               if "ray" not in p.relative_to(tests).parts[:1] and p != Path(__file__)
               and any(s in p.read_text() for s in starts_ray)]
    assert outside == [], f"modules that start Ray outside tests/ray: {outside}"
