"""``hkmr sweep``, ``hkmr report`` and ``hkmr choose-iterations``.

:func:`register` imports neither Ray nor torch (``hkmr --help`` builds every parser): the
experiment and preset names in the help are read from ``tuning/experiments/*.yaml`` and
``tuning/presets.yaml`` (:mod:`tuning.experiment.catalog`); the commands import the rest.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hkmr.options import add_batch_size, add_device, add_overrides, add_tracking, flag_overrides
from hkmr.tracking import parse_tracking

from .experiment.catalog import experiment_help, listing, preset_help


def _common(p: argparse.ArgumentParser, experiments: list[str] | None = None) -> None:
    """The options of ``hkmr sweep`` and ``hkmr choose-iterations``; ``experiments``: those
    whose presets the ``--preset`` help describes (default: every one ``hkmr sweep`` runs)."""
    p.add_argument("--preset", default="smoke", help=preset_help(experiments))
    p.add_argument("--seeds", type=int, help="seeds per configuration (default: the preset's)")
    p.add_argument("--address", help="Ray cluster address ('auto' or HOST:PORT); default: "
                   "start a local Ray sized to this machine")
    p.add_argument("--storage", help="where Ray keeps trials and checkpoints: a folder, shared "
                   "by all nodes on a cluster (NFS), or a URI such as s3://bucket/path "
                   "(default: ./ray_results or $HKMR_STORAGE)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once "
                   "(default: as many as the cluster's resources fit, the rest wait as "
                   "pending demand; a search's Optuna searcher: a quarter of its samples)")
    _out(p)
    p.add_argument("--name", help="sweep name under the storage (default: EXPERIMENT-PRESET)")
    add_device(p, default=None)
    add_batch_size(p, default=None, what="every trial's train.batch_size")
    add_overrides(p, "config overrides applied to every trial, e.g. train.epochs=2")


def _choice_options(p: argparse.ArgumentParser, experiments: list[str] | None = None) -> None:
    _common(p, experiments)
    p.add_argument("--reference", nargs="+", metavar="KEY=VALUE", help="the reference "
                   "configuration's searched keys (default: the experiment's baseline, e.g. "
                   "model.outer_iters=3 model.inner_iters=4)")
    p.add_argument("--margin", type=float, metavar="MM", help="δ: a candidate within δ mm "
                   "of the reference is acceptable (default: the experiment's margin)")
    p.add_argument("--max-seeds", type=int, default=24, metavar="N", help="confirm with at "
                   "most N seeds per candidate, a batch of the preset's seeds a look "
                   "(default 24); then the outcome may be 'inconclusive at N seeds'")
    p.set_defaults(func=_choose)


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "--results", dest="out", type=Path, default=Path("results"),
                   help="output folder: the aggregated tables go to OUT/EXPERIMENT/PRESET "
                   "(default: results)")


def _overrides(args: argparse.Namespace) -> list[str]:
    """The overrides with --device and --batch-size as the keys they stand for."""
    return [*args.overrides, *flag_overrides(args)]


def register(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="run an experiment's trials on Ray Tune and "
                           "aggregate the paper-shaped tables")
    sweep.add_argument("experiment", nargs="?", help=experiment_help())
    sweep.add_argument("--list", action="store_true", help="describe every shipped experiment "
                       "(or EXPERIMENT): its title, configurations or searched keys, and what "
                       "each of its presets runs (config, seeds, samples, suites, limits, GPU)")
    _common(sweep)
    sweep.add_argument("--resume", action="store_true",
                       help="continue an interrupted sweep: finished trials are kept, "
                       "unfinished ones continue from their checkpoints")
    add_tracking(sweep, "OUT/mlflow.db")
    sweep.add_argument("--optuna-storage", metavar="URL", help="search experiments: where "
                       "the Optuna study goes (default: sqlite:///OUT/EXPERIMENT/PRESET/"
                       "optuna.db, which optuna-dashboard opens)")
    sweep.add_argument("--dry-run", action="store_true", help="print every trial and the "
                       "shared artefacts it would build or reuse; start nothing")
    sweep.add_argument("--workers-per-trial", type=int, metavar="N", help="train each trial "
                       "with a Ray Train group of N DDP workers (one GPU each on GPU presets), "
                       "each taking 1/N of train.batch_size, the global batch; 0: in the "
                       "trial's own process (default: the preset's workers_per_trial)")
    sweep.add_argument("--target-mde", type=float, metavar="MM", help="add seeds (a batch "
                       "at a time, finished trials kept) until the primary endpoint's minimal "
                       "detectable paired difference at 80 %% power is at most MM mm")
    sweep.add_argument("--max-seeds", type=int, default=10, metavar="N",
                       help="with --target-mde: at most N seeds (default 10)")
    sweep.add_argument("--extend", action="store_true", help="with --target-mde: keep the "
                       "trials of OUT/EXPERIMENT/PRESET (seeds 0..n-1, e.g. a committed "
                       "folder whose Ray storage is gone) as the first batch and run only "
                       "later seeds; refused unless the folder records this experiment, "
                       "preset, configurations and effective overrides, and unless the "
                       "reference's seed 0, retrained first, reproduces its primary endpoint "
                       "and val_mpjpe to 1e-3 mm")
    sweep.set_defaults(func=_sweep_or_list)
    report = sub.add_parser("report", help="aggregate a sweep folder into Parquet, "
                            "Markdown tables and plots")
    report.add_argument("sweep_dir", nargs="?", help="STORAGE/NAME of a sweep (a folder or a "
                        "URI such as s3://bucket/prefix/NAME), or a results folder "
                        "(re-rendered from its trials.parquet)")
    report.add_argument("--index", action="store_true", help="write OUT/index.md: every "
                        "results folder under OUT with its experiment, preset, regime, seeds, "
                        "date and command")
    _out(report)
    report.add_argument("--bootstrap", type=int, metavar="N", default=0,
                        help="also write bootstrap.md: each paired difference's 95 %% interval "
                        "from N resamples of seeds x test images (needs images.parquet)")
    report.set_defaults(func=_report)
    choose = sub.add_parser("choose", help="choose a configuration of a search experiment: "
                            "candidates (the grid, or an Optuna search on validation) "
                            "confirmed on fresh seeds against a pre-set reference, "
                            "sequentially, test split once after the decision")
    choose.add_argument("experiment", help="a search experiment (name or YAML file), e.g. "
                        "choose_iterations or loss_weights")
    _choice_options(choose)
    iterations = sub.add_parser("choose-iterations", help="hkmr choose choose_iterations: "
                                "the outer/inner iteration counts against T = 3, P = 4")
    _choice_options(iterations, ["choose_iterations"])
    iterations.set_defaults(func=_choose, experiment="choose_iterations")


def _sweep_or_list(args: argparse.Namespace) -> int | None:
    """``hkmr sweep --list [EXPERIMENT]`` describes experiments; otherwise EXPERIMENT runs."""
    if args.list:
        text, failed = listing(None if args.experiment is None else [args.experiment])
        print(text, end="")
        return 1 if failed else 0
    if args.experiment is None:
        raise ValueError("give an EXPERIMENT to run (hkmr sweep --list describes them)")
    return _sweep(args)


def _command() -> str:
    return shlex.join(["hkmr", *sys.argv[1:]])


def _sweep(args: argparse.Namespace) -> None:
    from .experiment.schema import load_experiment
    from .run.driver import plan_sweep, run_sweep, shared_root
    from .run.request import SweepRequest

    if Path(args.experiment).stem == "choose_iterations":
        raise ValueError("choose_iterations is not a plain sweep: its search, the "
                         "confirmation on fresh seeds and the decision are run by "
                         f"`hkmr choose-iterations --preset {args.preset}`")
    request = SweepRequest(args.experiment, args.preset, args.seeds, overrides=_overrides(args),
                           address=args.address, storage=args.storage, name=args.name,
                           max_concurrent=args.max_concurrent, resume=args.resume,
                           results_dir=args.out, command=_command(),
                           tracking=parse_tracking(args.tracking, args.out),
                           optuna_storage=args.optuna_storage,
                           workers_per_trial=args.workers_per_trial)
    if args.dry_run:
        from .run.dry_run import describe

        plan = plan_sweep(request)
        print(describe(plan, shared_root(plan.storage, args.address)), end="")
        return
    if args.extend and args.target_mde is None:
        raise ValueError("--extend adds seeds to a results folder by power: give --target-mde "
                         "MM (and --max-seeds N)")
    if args.target_mde is not None:
        from .procedures.target_mde import sweep_to_target

        out = sweep_to_target(request, args.target_mde, args.max_seeds, extend=args.extend)
    else:
        from .run.progress import best_line

        grid, out = run_sweep(request)
        print(best_line(grid, load_experiment(args.experiment)))
    print(f"results: {out}/tables.md")
    print((out / "tables.md").read_text())


def _report(args: argparse.Namespace) -> None:
    from .run.report import report_sweep

    if args.index:
        from .analysis.queryable import write_index

        print(write_index(args.sweep_dir or args.out).read_text())
        return
    if args.sweep_dir is None:
        raise SystemExit("hkmr report: give a sweep folder (or --index)")
    out = report_sweep(args.sweep_dir, args.out)
    print((out / "tables.md").read_text())
    if args.bootstrap:
        from .analysis.image_errors import write_bootstrap
        from .run.report import results_experiment

        print(write_bootstrap(out, results_experiment(out).tables, args.bootstrap).read_text())


def _choose(args: argparse.Namespace) -> None:
    from .experiment.schema import parse_overrides
    from .procedures.choose import choose
    from .run.request import SweepRequest

    request = SweepRequest(args.experiment, args.preset, args.seeds,
                           overrides=tuple(_overrides(args)), address=args.address,
                           storage=args.storage, name=args.name,
                           max_concurrent=args.max_concurrent, results_dir=args.out,
                           command=_command())
    reference = parse_overrides(args.reference) if args.reference else None
    decision = choose(request, reference, args.margin, args.max_seeds)
    print(decision.read_text())
