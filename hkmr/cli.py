"""The ``hkmr`` command. Each area of the library registers its own subcommands.

The library's own command modules are listed in :data:`COMMAND_MODULES`; packages above the
library add theirs through the ``hkmr.commands`` entry-point group (``tuning`` adds ``sweep``,
``report`` and ``choose-iterations``, see ``pyproject.toml``), so ``hkmr`` never imports them
by name. Each module has a ``register(subparsers)`` function that adds its parsers and sets
``func``.

:func:`main` is the one handler of every command's failures: an expected failure (a bad value
or file, a file that cannot be read or written, a full disk, a non-finite loss, an unreachable
service) prints one line ``hkmr COMMAND: error: ...`` naming the file, key or address and
exits 2 (1 for a diverged training, 130 for an interrupt), without a traceback; ``--debug``
anywhere on the command line (or ``HKMR_DEBUG=1``) shows it. SIGTERM is handled as SIGINT
(Ray Tune stops a sweep gracefully on either, and its tables are written).

``hkmr --help`` and every ``hkmr COMMAND --help`` build all the parsers, so a command module
imports at its top only argparse and light modules (:mod:`hkmr.options`, :mod:`hkmr.config`):
torch, Ray and the model, data and training code are imported by the functions that run a
command (tests/test_cli.py checks that building the parser imports neither torch nor Ray).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
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
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure "
                        "(also anywhere after the command, or HKMR_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        plugin.load()(sub)
    return parser


def sigterm_as_sigint(signum, frame) -> None:
    """SIGTERM (a scheduler, ``kill``, a pod's end) does what Ctrl-C does: whatever SIGINT
    handler is installed now runs (Ray Tune's graceful stop during a sweep, else
    KeyboardInterrupt)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def failure_message(err: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) for an expected failure; None for a bug (shown as a traceback)."""
    from .io import NotWritableError

    name = type(err).__name__
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", 130
    if name == "NonFiniteLossError":  # hkmr.train.trainer, not imported here (torch)
        return f"training diverged: {err}", 1
    if isinstance(err, (ValueError, FileNotFoundError, NotWritableError)):
        return str(err), 2
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        what = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            what = "no space left on the device (disk full); nothing was half-written"
        return f"{where}{what}", 2
    if isinstance(err, (EOFError, ImportError)) and str(err):
        return f"{name}: {err}", 2
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("HKMR_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere after the command, also between options
    stray = [a for a in rest if "=" not in a or a.startswith("-")]
    if stray or (rest and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = list(args.overrides or []) + rest
    try:
        previous = signal.signal(signal.SIGTERM, sigterm_as_sigint)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - sorted just below
        found = failure_message(err)
        if found is None or debug:
            raise
        message, code = found
        print(f"hkmr {args.command}: error: {message}", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
