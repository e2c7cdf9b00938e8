"""``taso-tune sweep`` and ``taso-tune resume``: run a search space on Ray Tune, continue one."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Callable
from typing import Any

from taso_tune.cli.help_format import HelpFormatter
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import STORAGE_ENV, is_uri
from taso_tune.spaces import SweepSpec, load_space, with_overrides

#: Results root when --storage is not given: $TASO_TUNE_STORAGE (set on cluster heads), else ./runs.
DEFAULT_STORAGE = os.environ.get(STORAGE_ENV, "runs")


def true_or_false(text: str) -> bool:
    """An argparse type for ``true`` / ``false`` (``yes`` / ``no``, any case)."""
    answer = {"true": True, "yes": True, "false": False, "no": False}.get(text.lower())
    if answer is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return answer


#: The flags that change a space, shared by ``sweep`` and ``submit`` (which passes them on): (flag, type, help).
OVERRIDE_FLAGS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    ("--epochs", int, "override the planned epochs of every trial"),
    ("--seeds", int, "override the number of seeds per configuration"),
    ("--seed-start", int, "use seeds START, START+1, ... (fresh seeds for a confirmation run)"),
    ("--max-concurrent", int, "at most N trials at once"),
    (
        "--max-trials",
        int,
        "refuse a space of more than N trials (default: the space's max_trials, else 10000)",
    ),
    ("--cpus-per-trial", float, "CPUs per trial (also its torch threads)"),
    ("--gpus-per-trial", float, "GPUs per trial, fractions allowed (default: per model)"),
    (
        "--seed-packing",
        str,
        "auto | stacked | separate: a trial's seeds as one stacked model, or one after "
        "another (default: the space's seed_packing, else auto: stacked on CUDA only)",
    ),
    (
        "--reuse-actors",
        true_or_false,
        "true | false: one actor process runs trial after trial (starts ~4 s faster "
        "a trial on 2 CPU cores; the Ray dashboard then names the actor after the "
        "experiment, its log lines after the trial). Default: the space's "
        "reuse_actors, else false: one actor per trial, named after it",
    ),
)


def add_override_flags(p: argparse.ArgumentParser) -> None:
    """The :data:`OVERRIDE_FLAGS` on parser ``p``."""
    for flag, kind, text in OVERRIDE_FLAGS:
        p.add_argument(flag, type=kind, help=text)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a search space (YAML) on Ray Tune",
        description=(
            "Run every trial of a search-space file on a local Ray, or on an existing cluster when "
            "--address or RAY_ADDRESS is given. Prints a progress table, then the best configuration "
            "per optimizer (mean ± std over seeds). With --defaults, trains each optimizer of an "
            "exported defaults file on --model/--dataset without tuning (the paper's suboptimal scenario)."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "space", nargs="?", metavar="FILE", help="search-space YAML (see search_spaces/)"
    )
    p.add_argument("--name", help="experiment name (default: the space's name)")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="results root: a local path, an NFS mount or a URI (s3://, gs://)",
    )
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    add_override_flags(p)
    p.add_argument(
        "--scheduler",
        choices=["asha", "none", "budget-sh"],
        help="override the early-stopping scheduler",
    )
    p.add_argument(
        "--select-on",
        choices=["val", "test"],
        default="val",
        help="split that picks the best configuration in the summary (test = the paper's protocol)",
    )
    p.add_argument(
        "--defaults",
        metavar="DEFAULTS.yaml",
        help="train exported defaults on --model/--dataset instead of a space",
    )
    p.add_argument("--model", help="with --defaults: the model to train")
    p.add_argument("--dataset", help="with --defaults: the data set to train on")
    p.add_argument("--data-root", help="with --defaults: where the data set's files are")
    p.add_argument(
        "--train-limit", type=int, help="with --defaults: a stratified subset of N training images"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        help="with --defaults: share of the training set held out (default 0.1)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the trials it would run and exit")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not write report.html and defaults.yaml into the experiment folder at the end",
    )
    p.set_defaults(handler=run_sweep_command)


def add_resume_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue an interrupted sweep",
        description=(
            "Continue an interrupted sweep: finished trials are kept, unfinished ones continue from "
            "their last checkpoints, errored ones are retried from theirs."
        ),
    )
    p.add_argument(
        "experiment", metavar="EXPERIMENT", help="the experiment folder (STORAGE/NAME) or URI"
    )
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--select-on", choices=["val", "test"], default="val")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not write report.html and defaults.yaml at the end",
    )
    p.add_argument(
        "--allow-device-change",
        action="store_true",
        help="continue on this cluster's device kind (cpu or cuda) even where the sweep started on "
        "the other (default: refuse)",
    )
    p.set_defaults(handler=run_resume_command)


def resolve_spec(args: argparse.Namespace) -> SweepSpec:
    """The space to run: a file with the flags' overrides, or a defaults file applied to a pair."""
    if args.defaults:
        if args.space:
            raise ConfigError(
                "FILE", args.space, "give either a space file or --defaults, not both"
            )
        from taso_tune.results.export import defaults_space

        spec = defaults_space(
            args.defaults,
            model=args.model,
            dataset=args.dataset,
            data_root=args.data_root,
            train_limit=getattr(args, "train_limit", None),
            val_fraction=getattr(args, "val_fraction", None),
            epochs=args.epochs,
            seeds=args.seeds,
            seed_start=args.seed_start,
        )
    else:
        if not args.space:
            raise ConfigError("FILE", None, "a search-space file is required (or --defaults FILE)")
        for flag in (
            "model",
            "dataset",
            "data_root",
            "train_limit",
            "val_fraction",
        ):  # (submit has the first three)
            if getattr(args, flag, None) is not None:
                raise ConfigError(
                    f"--{flag.replace('_', '-')}", getattr(args, flag), "only goes with --defaults"
                )
        if args.max_trials is not None and args.max_trials < 1:
            raise ConfigError("--max-trials", args.max_trials, "must be an integer >= 1")
        spec = load_space(args.space, max_trials=args.max_trials)
    return with_overrides(
        spec,
        epochs=args.epochs if not args.defaults else None,
        seeds=args.seeds if not args.defaults else None,
        seed_start=args.seed_start if not args.defaults else None,
        scheduler=args.scheduler,
        max_concurrent=args.max_concurrent,
        cpus=args.cpus_per_trial,
        gpus=args.gpus_per_trial,
        name=args.name,
        seed_packing=args.seed_packing,
        reuse_actors=args.reuse_actors,
    )


def print_dry_run(spec: SweepSpec) -> None:
    per_trial = spec.seeds if spec.seeds_per_trial == "all" else 1
    seeds = f"seeds {list(spec.seed_values)}, {per_trial} per trial"
    if spec.search.type == "optuna":
        trials = spec.search.num_samples * spec.seeds // per_trial
        print(
            f"{spec.name}: Optuna proposes {spec.search.num_samples} configurations; {seeds} = {trials} "
            f"trials of up to {spec.epochs} epochs"
        )
        return
    configs = spec.configurations()
    trials = len(configs) * spec.seeds // per_trial
    print(
        f"{spec.name}: {len(configs)} configurations; {seeds} = {trials} trials, up to "
        f"{len(configs) * spec.seeds * spec.epochs} seed-epochs; scheduler {spec.scheduler.type}, "
        f"metric {spec.metric} ({spec.mode})"
    )
    for flat in configs:
        fixed = {k: v for k, v in flat.items() if k not in ("config_id", "block")}
        print(f"  {flat['config_id']}: {fixed}")


def run_sweep_command(args: argparse.Namespace) -> int:
    spec = resolve_spec(args)
    if args.dry_run:
        print_dry_run(spec)
        return 0
    from taso_tune.sweep import disconnect, run_sweep

    outcome = run_sweep(spec, args.storage, name=spec.name, address=args.address)
    disconnect()
    return finish(outcome, args.select_on, write_files=not args.no_report, command="sweep")


def run_resume_command(args: argparse.Namespace) -> int:
    from taso_tune.sweep import disconnect, resume_sweep

    if not is_uri(args.experiment) and not os.path.isdir(args.experiment):
        raise ConfigError("EXPERIMENT", args.experiment, "no such experiment folder")
    outcome = resume_sweep(
        args.experiment, address=args.address, allow_device_change=args.allow_device_change
    )
    disconnect()
    return finish(outcome, args.select_on, write_files=not args.no_report, command="resume")


def finish(outcome, select_on: str, write_files: bool = True, command: str = "sweep") -> int:
    """Print the summary; for a local experiment also write its report and exported defaults.

    A sweep stopped by a signal prints how far it got and the command that continues it instead,
    writes nothing, and returns 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    """
    from taso_tune.results.experiment import load_experiment
    from taso_tune.results.outputs import write_outputs
    from taso_tune.results.summary import format_summary

    if outcome.interrupted is not None:
        path = shlex.quote(outcome.experiment_path)
        print(
            f"taso-tune {command}: stopped by {signal.Signals(outcome.interrupted).name}: {outcome.finished} of "
            f"{outcome.planned} planned trials finished; continue with `taso-tune resume {path}` "
            f"(partial report: `taso-tune report {path}`)",
            file=sys.stderr,
            flush=True,
        )
        return 128 + int(outcome.interrupted)
    experiment = load_experiment(outcome.experiment_path)
    print()
    print(format_summary(experiment, select_on))
    print(f"wall time {outcome.wall_seconds:.1f}s; results in {outcome.experiment_path}")
    print(
        f"tensorboard: tensorboard --logdir {outcome.experiment_path}   (HParams: optimizer, hyperparameters, seeds)"
    )
    if write_files:
        written = write_outputs(experiment, select_on)
        if written.report:
            print(f"report:   {written.report}")
        if written.defaults:
            print(f"defaults: {written.defaults}")
        elif written.report:
            print(f"defaults: not written ({written.why_not})")
        else:
            print(written.why_not)
    sys.stdout.flush()
    return 1 if outcome.errored else 0
