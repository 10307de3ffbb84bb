"""The ``hkmr`` command. Each area of the library registers its own subcommands.

The library's own command modules are listed in :data:`COMMAND_MODULES`; packages above the
library add theirs through the ``hkmr.commands`` entry-point group (``tuning`` adds ``sweep``,
``report`` and ``choose-iterations``, see ``pyproject.toml``), so ``hkmr`` never imports them
by name. Each module has a ``register(subparsers)`` function that adds its parsers and sets
``func``.

``hkmr --help`` and every ``hkmr COMMAND --help`` build all the parsers, so a command module
imports at its top only argparse and light modules (:mod:`hkmr.options`, :mod:`hkmr.config`):
torch, Ray and the model, data and training code are imported by the functions that run a
command (tests/test_cli.py checks that building the parser imports neither torch nor Ray).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

COMMAND_MODULES = ("hkmr.body.commands", "hkmr.data.commands", "hkmr.data.check",
                   "hkmr.model.commands",
                   "hkmr.train.commands", "hkmr.eval.commands", "hkmr.demo",
                   "hkmr.features.commands")
PLUGIN_GROUP = "hkmr.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hkmr", description="Hierarchical Kinematic Human Mesh Recovery: library and "
        "Ray platform. Run 'hkmr COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere after the command, also between options
    stray = [a for a in rest if "=" not in a or a.startswith("-")]
    if stray or (rest and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = list(args.overrides or []) + rest
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # user-facing errors: one clear line
        print(f"hkmr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
