"""Mutation testing of the critical paths: does the suite notice a bug that would silently
corrupt a table?

Each entry of :data:`mutations.MUTATIONS` (``benchmarks/mutations.py``) is one small change of
the library (a file, an exact source snippet, its replacement) and the tests that cover it.
This script copies the working tree (tracked and untracked, not ignored, files) into a
temporary folder once, then for each mutation: applies it there, runs its tests with
``pytest -p no:xdist -x -q``, records killed (the tests failed) or survived and the time, and
restores the file. The working tree is never edited. A snippet that is not found exactly once
stops the run before anything is mutated, so the list cannot rot silently; an entry with an
``equivalent`` reason is a change no test can tell apart from the original (it is still run,
and reported as equivalent when it survives).

Before the mutations, every covering test runs once unmutated: it must pass, otherwise a
"kill" would mean nothing.

    flock /tmp/hkmr-heavy.lock python benchmarks/mutation.py            # all, ~10 min on 2 cores
    python benchmarks/mutation.py --only losses-w_shape-as-w_smpl       # one or a few
    python benchmarks/mutation.py --list

writes ``benchmarks/mutation_report.md`` and ``benchmarks/mutation_report.json`` (``--out``
for another folder). Not part of CI: it takes minutes. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ["-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-o", "addopts=",
          "-x", "-q", "--no-header", "-W", "ignore"]


@dataclass(frozen=True)
class Mutation:
    """One change of the library: ``find`` (exactly once in ``file``) becomes ``replace``;
    ``tests``: pytest node ids or files that must fail on it; ``equivalent``: why no test can
    tell it apart from the original, for a known equivalent mutation."""

    name: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    equivalent: str | None = None


class MutationListError(ValueError):
    """A mutation that cannot be applied: its snippet is missing or ambiguous."""


def check(mutations, root: Path = ROOT) -> None:
    """Every snippet found exactly once and every entry well formed; raises naming each bad
    entry, before anything is run."""
    problems, names = [], set()
    for m in mutations:
        if m.name in names:
            problems.append(f"{m.name}: the name is used twice")
        names.add(m.name)
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.find)
        if count != 1:
            problems.append(f"{m.name}: the snippet {m.find!r} occurs {count} times in "
                            f"{m.file} (must be exactly once)")
        if m.find == m.replace:
            problems.append(f"{m.name}: the replacement equals the snippet")
        if not m.tests:
            problems.append(f"{m.name}: no covering tests listed")
    if problems:
        raise MutationListError("bad mutation list:\n  " + "\n  ".join(problems))


def copy_tree(root: Path, dest: Path) -> None:
    """The files git knows or would track (no venvs, caches, data or results of runs)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=root, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = root / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(tree: Path, tests, timeout: float) -> tuple[int | None, float, str]:
    """(pytest's exit status or None on timeout, seconds, output tail) in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *PYTEST, *tests], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, "timeout"
    return proc.returncode, time.perf_counter() - start, (proc.stdout + proc.stderr)[-1500:]


def run_mutation(m: Mutation, tree: Path, timeout: float) -> dict:
    """Apply ``m`` in ``tree``, run its tests, restore; the outcome as a dict."""
    path = tree / m.file
    original = path.read_text()
    path.write_text(original.replace(m.find, m.replace, 1))
    try:
        code, seconds, tail = run_tests(tree, m.tests, timeout)
    finally:
        path.write_text(original)
    if code in (4, 5):  # usage error, or no test collected: the entry is wrong, not the code
        raise MutationListError(f"{m.name}: pytest exit status {code} for {m.tests}:\n{tail}")
    killed = code != 0  # a failure, an error, or a timeout
    status = "killed" if killed else ("equivalent" if m.equivalent else "survived")
    failed = [line for line in tail.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"name": m.name, "file": m.file, "status": status, "seconds": round(seconds, 1),
            "exit": code, "failed": failed[:1], "tests": list(m.tests),
            "equivalent": m.equivalent}


def summary(results: list[dict]) -> dict:
    killed = sum(r["status"] == "killed" for r in results)
    equivalent = sum(r["status"] == "equivalent" for r in results)
    survived = sum(r["status"] == "survived" for r in results)
    return {"mutations": len(results), "killed": killed, "equivalent": equivalent,
            "survived": survived,
            "kill_rate": killed / len(results) if results else float("nan"),
            "kill_rate_of_non_equivalent": (killed / (len(results) - equivalent)
                                            if len(results) > equivalent else float("nan")),
            "seconds": round(sum(r["seconds"] for r in results), 1)}


def markdown(results: list[dict], totals: dict, command: str, revision: str) -> str:
    lines = ["# Mutation testing of the critical paths", "",
             f"Made by `{command}` at git revision `{revision}` on "
             f"{datetime.date.today().isoformat()} (the mutations are in "
             "`benchmarks/mutations.py`, the runner is `benchmarks/mutation.py`; "
             "docs/benchmarks.md).", "",
             f"**{totals['killed']} of {totals['mutations']} mutations killed "
             f"({100 * totals['kill_rate']:.0f} %)**; {totals['equivalent']} equivalent "
             f"(listed with the reason), {totals['survived']} survived; "
             f"{100 * totals['kill_rate_of_non_equivalent']:.0f} % of the non-equivalent ones "
             f"killed. Tests ran {totals['seconds']:.0f} s in all.", "",
             "| mutation | file | outcome | s | killed by / why equivalent |",
             "|---|---|---|---|---|"]
    for r in results:
        why = r["equivalent"] if r["status"] == "equivalent" else (
            r["failed"][0].removeprefix("FAILED ").removeprefix("ERROR ").split(" - ")[0]
            if r["failed"] else ("timeout" if r["exit"] is None else ""))
        lines.append(f"| {r['name']} | `{r['file']}` | {r['status']} | {r['seconds']:.1f} | "
                     f"{why.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, results: list[dict], command: str) -> Path:
    from hkmr.digest import git_revision
    from hkmr.io import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    totals = summary(results)
    revision = git_revision()
    with atomic_path(out / "mutation_report.json") as tmp:
        tmp.write_text(json.dumps({"command": command, "git_revision": revision,
                                   "date": datetime.date.today().isoformat(),
                                   "summary": totals, "mutations": results}, indent=1))
    with atomic_path(out / "mutation_report.md") as tmp:
        tmp.write_text(markdown(results, totals, command, revision))
    return out / "mutation_report.md"


def run(mutations, timeout: float = 300, log=print) -> list[dict]:
    """Check the list, copy the tree, run the baseline, then every mutation in turn."""
    check(mutations)
    with tempfile.TemporaryDirectory(prefix="hkmr-mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(ROOT, tree)
        tests = sorted({t for m in mutations for t in m.tests})
        code, seconds, tail = run_tests(tree, tests, timeout * 4)
        if code != 0:
            raise RuntimeError(f"the covering tests fail without any mutation (exit {code}):"
                               f"\n{tail}")
        log(f"baseline: {len(tests)} test selections pass unmutated ({seconds:.0f} s)")
        results = []
        for i, m in enumerate(mutations, 1):
            results.append(run_mutation(m, tree, timeout))
            log(f"[{i}/{len(mutations)}] {m.name}: {results[-1]['status']} "
                f"({results[-1]['seconds']:.1f} s)")
        return results


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).parent))
    from mutations import MUTATIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", help="run these mutations (by name) only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent,
                        help="folder of mutation_report.md/.json (default: benchmarks/)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds for one mutation's tests (a timeout counts as killed)")
    args = parser.parse_args(argv)
    chosen = list(MUTATIONS)
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        check(chosen)
        for m in chosen:
            print(f"{m.name:45s} {m.file}")
        return 0
    results = run(chosen, args.timeout)
    command = "python benchmarks/mutation.py" + (" " + " ".join(argv or sys.argv[1:])
                                                  if (argv or sys.argv[1:]) else "")
    report = write_report(args.out, results, command)
    totals = summary(results)
    print(f"{totals['killed']}/{totals['mutations']} killed, {totals['equivalent']} equivalent,"
          f" {totals['survived']} survived; report: {report}")
    return 0 if totals["survived"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
