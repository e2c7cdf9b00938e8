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
from taso_tune.core.storage import (
    STORAGE_ENV,
    STORAGE_FULL_EXIT,
    format_bytes,
    free_bytes,
    is_uri,
)
from taso_tune.spaces import SweepSpec, load_space, with_overrides
from taso_tune.spaces.sections import SCHEDULER_TYPES
from taso_tune.spaces.spec import ReuseActors

#: Results root when --storage is not given: $TASO_TUNE_STORAGE (set on cluster heads), else ./runs.
DEFAULT_STORAGE = os.environ.get(STORAGE_ENV, "runs")


def auto_true_or_false(text: str) -> ReuseActors:
    """An argparse type for ``auto``, ``true`` or ``false`` (``yes`` / ``no``, any case)."""
    answer = {"auto": "auto", "true": True, "yes": True, "false": False, "no": False}.get(
        text.lower()
    )
    if answer is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, true or false")
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
        auto_true_or_false,
        "auto | true | false: true, one actor process runs trial after trial (about "
        "4 s a trial faster on 2 CPU cores; the Ray dashboard then names the actor "
        "after the experiment, its log lines after the trial); false, one actor per "
        "trial, named after it. Default: the space's reuse_actors, else auto: true "
        "when each trial plans to train on fewer than 1,000,000 images",
    ),
)


def add_override_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The :data:`OVERRIDE_FLAGS` on parser ``p``, but those in ``skip``."""
    for flag, kind, text in OVERRIDE_FLAGS:
        if flag not in skip:
            p.add_argument(flag, type=kind, help=text)


def add_run_flags(
    p: argparse.ArgumentParser, *, scheduler_help: str, skip: tuple[str, ...] = ()
) -> None:
    """The flags of a command that runs a sweep (``sweep``, ``apply``): where it writes, which Ray,
    the space's overrides (but ``skip``), the scheduler, the selection split, a dry run and no
    report."""
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="results root: a local path, an NFS mount or a URI (s3://, gs://)",
    )
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    add_override_flags(p, skip)
    p.add_argument("--scheduler", choices=SCHEDULER_TYPES, help=scheduler_help)
    p.add_argument(
        "--select-on",
        choices=["val", "test"],
        default="val",
        help="split that picks the best configuration in the summary (test = the paper's protocol)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the trials it would run and exit")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not write report.html and defaults.yaml into the experiment folder at the end",
    )


#: What ``sweep`` and ``resume`` exit with (their ``--help`` shows it).
EXIT_STATUSES = f"""exit status:
  0    every trial ran
  1    some trials failed
  2    bad input, or a storage too small for what is still to write: nothing
       started
  {STORAGE_FULL_EXIT}   the storage took no more writes (disk full, over quota, read-only): the
       sweep stopped as on Ctrl-C; make room, then `taso-tune resume EXPERIMENT`
  130  stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM
"""


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a search space (YAML) on Ray Tune",
        description=(
            "Run every trial of a search-space file on a local Ray, or on an existing cluster when "
            "--address or RAY_ADDRESS is given. Prints a progress table, then the best configuration "
            "per optimizer (mean ± std over seeds). To train the optimizers of an exported defaults "
            "file on a new model and data set, use `taso-tune apply` (--defaults here is deprecated)."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "space", nargs="?", metavar="FILE", help="search-space YAML (see search_spaces/)"
    )
    p.add_argument("--name", help="experiment name (default: the space's name)")
    add_run_flags(p, scheduler_help="override the early-stopping scheduler")
    p.add_argument(
        "--defaults",
        metavar="DEFAULTS.yaml",
        help="deprecated: use `taso-tune apply DEFAULTS.yaml --model M --dataset D`",
    )
    add_pair_flags(p, "with --defaults: ")
    p.set_defaults(handler=run_sweep_command)


def add_resume_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue an interrupted sweep",
        description=(
            "Continue an interrupted sweep: finished trials are kept, unfinished ones continue from "
            "their last checkpoints, errored ones are retried from theirs. What is still to write "
            "must fit in the storage (checked before Ray starts)."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=HelpFormatter,
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
    p.add_argument(
        "--rerun-lost",
        action="store_true",
        help="where the experiment's Ray Tune state cannot be read and no good copy is left: keep "
        "every finished trial as it is and train only the lost ones again (same configurations "
        "and seeds, without early stopping, in EXPERIMENT/rerun-lost), each from the last "
        "checkpoint its own folder holds, else from the start; refused when nothing is lost",
    )
    p.set_defaults(handler=run_resume_command)


def add_pair_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The flags that name the pair exported defaults are applied to (``apply``, ``sweep --defaults``)."""
    p.add_argument("--model", help=f"{prefix}the model to train (required)")
    p.add_argument("--dataset", help=f"{prefix}the data set to train on (required)")
    p.add_argument("--data-root", help=f"{prefix}where the data set's files are")
    p.add_argument(
        "--download",
        action="store_true",
        default=None,
        help=f"{prefix}download the data set into --data-root if missing",
    )
    p.add_argument(
        "--train-limit", type=int, help=f"{prefix}a stratified subset of N training images"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        help=f"{prefix}share of the training set held out (default 0.1)",
    )


#: The keyword argument of :func:`resolve_spec` (and of
#: :func:`~taso_tune.spaces.with_overrides`) each override flag sets, where it is not the flag's name.
_KEYWORD_OF_FLAG = {"--cpus-per-trial": "cpus", "--gpus-per-trial": "gpus"}


def override_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values of the :data:`OVERRIDE_FLAGS` a parser defined (``None`` where not given), by
    the keyword argument of :func:`resolve_spec` each sets."""
    values = {}
    for flag, _, _ in OVERRIDE_FLAGS:
        dest = flag[2:].replace("-", "_")
        if hasattr(args, dest):
            values[_KEYWORD_OF_FLAG.get(flag, dest)] = getattr(args, dest)
    return values


def resolve_spec(
    space: str | None,
    *,
    epochs: int | None = None,
    seeds: int | None = None,
    seed_start: int | None = None,
    max_concurrent: int | None = None,
    max_trials: int | None = None,
    cpus: float | None = None,
    gpus: float | None = None,
    seed_packing: str | None = None,
    reuse_actors: ReuseActors | None = None,
    scheduler: str | None = None,
    name: str | None = None,
) -> SweepSpec:
    """The space file ``space`` with the command line's overrides (``None``: the file's value);
    every error names the file or the flag."""
    if not space:
        raise ConfigError("FILE", None, "a search-space file is required")
    if max_trials is not None and max_trials < 1:
        raise ConfigError("--max-trials", max_trials, "must be an integer >= 1")
    return with_overrides(
        load_space(space, max_trials=max_trials),
        epochs=epochs,
        seeds=seeds,
        seed_start=seed_start,
        scheduler=scheduler,
        max_concurrent=max_concurrent,
        cpus=cpus,
        gpus=gpus,
        name=name,
        seed_packing=seed_packing,
        reuse_actors=reuse_actors,
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


#: The flags of ``sweep`` that only go with ``--defaults`` (``taso-tune apply``'s own).
PAIR_KEYWORDS = ("model", "dataset", "data_root", "download", "train_limit", "val_fraction")


def run_sweep_command(args: argparse.Namespace) -> int:
    if args.defaults:
        return _run_deprecated_defaults(args)
    for flag in PAIR_KEYWORDS:
        if getattr(args, flag) is not None:
            raise ConfigError(
                f"--{flag.replace('_', '-')}", getattr(args, flag), "only goes with --defaults"
            )
    spec = resolve_spec(
        args.space, **override_values(args), scheduler=args.scheduler, name=args.name
    )
    return run_spec(spec, args, command="sweep")


def _run_deprecated_defaults(args: argparse.Namespace) -> int:
    """``sweep --defaults``: what ``taso-tune apply`` does, kept for one release."""
    from taso_tune.results.export import defaults_space, naming_the_flags

    if args.space:
        raise ConfigError("FILE", args.space, "give either a space file or --defaults, not both")
    values = override_values(args)
    del values["max_trials"]  # a defaults space has one configuration per optimizer
    spec = defaults_space(
        args.defaults,
        **{key: getattr(args, key) for key in PAIR_KEYWORDS},
        **values,
        scheduler=args.scheduler,
        name=args.name,
    )
    print(
        "warning: `taso-tune sweep --defaults` is deprecated and goes in the next release; "
        "use `taso-tune apply DEFAULTS --model M --dataset D` (same flags)",
        file=sys.stderr,
        flush=True,
    )
    with naming_the_flags(args.defaults):
        return run_spec(spec, args, command="sweep")


def run_spec(spec: SweepSpec, args: argparse.Namespace, command: str) -> int:
    """Print the trials of ``spec`` (``--dry-run``), or run it and print its summary (:func:`finish`)."""
    if args.dry_run:
        print_dry_run(spec)
        return 0
    from taso_tune.tuning import disconnect, run_sweep

    outcome = run_sweep(spec, args.storage, name=args.name, address=args.address)
    disconnect()
    return finish(outcome, args.select_on, write_files=not args.no_report, command=command)


def run_resume_command(args: argparse.Namespace) -> int:
    from taso_tune.tuning import disconnect, resume_sweep

    if not is_uri(args.experiment) and not os.path.isdir(args.experiment):
        raise ConfigError("EXPERIMENT", args.experiment, "no such experiment folder")
    outcome = resume_sweep(
        args.experiment,
        address=args.address,
        allow_device_change=args.allow_device_change,
        rerun_lost=args.rerun_lost,
    )
    disconnect()
    return finish(outcome, args.select_on, write_files=not args.no_report, command="resume")


def finish(outcome, select_on: str, write_files: bool = True, command: str = "sweep") -> int:
    """Print the summary; for a local experiment also write its report and exported defaults.

    A sweep stopped by a signal prints how far it got and the command that continues it instead,
    writes nothing, and returns 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    """
    from taso_tune.api import finished

    if outcome.storage_fault is not None:
        return storage_stop(outcome, command)
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
    result = finished(outcome, select_on, write_files)
    print()
    print(result.summary)
    print(f"wall time {outcome.wall_seconds:.1f}s; results in {outcome.experiment_path}")
    print(
        f"tensorboard: tensorboard --logdir {outcome.experiment_path}   (HParams: optimizer, hyperparameters, seeds)"
    )
    if write_files:
        if result.report:
            print(f"report:   {result.report}")
        if result.defaults:
            print(f"defaults: {result.defaults}")
        elif result.report:
            print(f"defaults: not written ({result.why_not})")
        else:
            print(result.why_not)
    sys.stdout.flush()
    return 1 if outcome.errored else 0


def storage_stop(outcome, command: str) -> int:
    """Say, in one line, that the storage took no more writes: where, what is free there, how far the
    sweep got and how to continue it; return :data:`STORAGE_FULL_EXIT`."""
    path = outcome.experiment_path
    storage = os.path.dirname(path.rstrip("/")) if not is_uri(path) else path
    free = free_bytes(storage)
    room = f", {format_bytes(free)} free" if free is not None else ""
    then = (
        f"continue with `taso-tune resume {shlex.quote(path)}`"
        if outcome.trials or command == "resume"
        else "run the sweep again"
    )
    print(
        f"taso-tune {command}: stopped: the storage {storage} takes no more writes "
        f"({outcome.storage_fault}{room}): {outcome.finished} of {outcome.planned} planned trials "
        f"finished; make room there, then {then}",
        file=sys.stderr,
        flush=True,
    )
    return STORAGE_FULL_EXIT
