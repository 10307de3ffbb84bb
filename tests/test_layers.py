"""The package layering of docs/architecture.md, read from the source with ``ast`` (imports
inside functions included): body -> data -> model -> checkpoint -> features -> eval -> train ->
cli, ``tuning`` above all of ``hkmr``; no import cycles; the library never imports Ray or
``tuning``."""

from __future__ import annotations

import ast
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
    """The layer unit of a module: a subpackage or top-level module of hkmr, or tuning."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "hkmr" else parts[0]


def graph(top: str) -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    """(unit edges, module edges within each package, imports of ray/tuning from hkmr)."""
    units, modules, forbidden = defaultdict(set), defaultdict(set), []
    for path in sorted((ROOT / top).rglob("*.py")):
        mod = module_name(path)
        for name in imports(path):
            root = name.split(".")[0]
            if top == "hkmr" and root in ("ray", "tuning"):
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
