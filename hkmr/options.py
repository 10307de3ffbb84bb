"""Command-line options that mean the same in every ``hkmr`` command.

``--device`` (auto, cpu, cuda) and ``--batch-size`` wherever a command runs a model; ``--out``
is always the folder a command writes into (made if missing; every file in it is written
atomically); ``--limit`` / ``--degree-limit`` bound the evaluation suites; ``--suites`` names
them; trailing ``key=value`` words are config overrides in the dotted vocabulary of
:mod:`hkmr.config`.

Light on purpose: ``hkmr --help`` builds every command's parser, so this module (like every
command module's ``register``) imports nothing beyond the standard library — no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: the choices of ``--device``: :data:`hkmr.device.DEVICES`, repeated so that building a parser
#: does not import torch (tests/test_cli.py checks that the two agree)
DEVICES = ("auto", "cpu", "cuda")
SUITE_HELP = "comma-separated evaluation suites: table1, degrees, invisible, segmentation, or all"


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--device", default=default, choices=DEVICES,
                        help="where the model runs (auto: CUDA when available)")


def add_batch_size(parser: argparse.ArgumentParser, default: int | None = 64,
                   what: str = "evaluation batch size") -> None:
    parser.add_argument("--batch-size", type=int, default=default, help=what)


def add_out(parser: argparse.ArgumentParser, default: Path | None = None,
            required: bool = False, what: str = "") -> None:
    default_text = f" (default: {default})" if default is not None else ""
    parser.add_argument("--out", type=Path, default=default, required=required,
                        help=f"output folder{', ' + what if what else ''}{default_text}")


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--device`` and ``--batch-size`` of a training command as the keys they stand for
    (``train.device``, ``train.batch_size``), to follow its other overrides."""
    return [f"train.{key}={value}" for key, value in (("device", args.device),
                                                     ("batch_size", args.batch_size))
            if value is not None]


def add_overrides(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=what)


def add_suites(parser: argparse.ArgumentParser, default: str = "all") -> None:
    parser.add_argument("--suites", default=default, help=SUITE_HELP)


def non_negative(text: str) -> int:
    """An argparse type: an integer >= 0 (``--limit -5`` was taken as "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = all), got {value}")
    return value


def add_eval_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=non_negative, default=0,
                        help="test images per suite (0 = all; P1 and P2 each keep this many)")
    parser.add_argument("--degree-limit", type=non_negative, default=0,
                        help="images per (occluder, degree) pass of Fig. 6 (0 = all)")


def add_tracking(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument("--tracking", metavar="mlflow[:URI]",
                        help="log the run(s) to MLflow (the [mlflow] extra): 'mlflow' uses a "
                        f"SQLite store {where}, 'mlflow:URI' any MLflow tracking URI "
                        "(sqlite:///FILE, http://HOST:PORT) or a folder")
