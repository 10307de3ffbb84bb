"""The ``hkmr`` command. Each area of the library registers its own subcommands.

Subcommands are added by the modules listed in :data:`COMMAND_MODULES`; each has a
``register(subparsers)`` function that adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("hkmr.body.commands", "hkmr.data.commands", "hkmr.model.commands",
                   "hkmr.train.commands", "hkmr.features.commands", "tuning.commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hkmr", description="Hierarchical Kinematic Human Mesh Recovery: library and "
        "Ray platform. Run 'hkmr COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
