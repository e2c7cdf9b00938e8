"""``taso-tune submit``, ``jobs``, ``logs`` and ``stop``: sweeps as Ray Jobs on a cluster's dashboard."""

from __future__ import annotations

import argparse
import os
import posixpath
import shlex
import sys
import time
from typing import TYPE_CHECKING

from taso_tune.cli.help_format import HelpFormatter
from taso_tune.cli.sweep import (
    DEFAULT_STORAGE,
    OVERRIDE_FLAGS,
    add_override_flags,
    override_values,
    resolve_spec,
)
from taso_tune.cluster.jobs import DEFAULT_STOP_WAIT_S, STOP_MARGIN_S
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import is_uri
from taso_tune.experiment.layout import SPACE_FILE
from taso_tune.spaces.sections import SCHEDULER_TYPES

if TYPE_CHECKING:
    from taso_tune.cluster.jobs import SweepJob, SweepJobs


def add_cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        help="the Ray dashboard's URL, http://HOST:PORT or HOST:PORT (default: "
        "RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265)",
    )
    p.add_argument(
        "--token-file",
        help="file holding the cluster's auth token (default: RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)",
    )


def add_submit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="run a sweep on a Ray cluster as a Ray Job",
        description=(
            "Check a search-space file here, then submit `taso-tune sweep FILE` as a Ray Job: the working "
            "directory is uploaded and the job runs in it on the cluster. Prints the job id, its "
            "dashboard page and the commands to follow, stop and resume it. With --resume EXPERIMENT, "
            "submits `taso-tune resume EXPERIMENT` instead."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "space", nargs="?", metavar="FILE", help="search-space YAML, inside the working directory"
    )
    p.add_argument(
        "--resume",
        metavar="EXPERIMENT",
        help="continue this stopped sweep instead (a relative path is made absolute here)",
    )
    add_cluster_flags(p)
    p.add_argument("--name", help="experiment name (default: the space's name and the time)")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="results root on the cluster: a shared mount or a URI (a relative path is made absolute here)",
    )
    p.add_argument("--working-dir", default=".", help="the folder uploaded for the job")
    p.add_argument(
        "--python", default="python", help="the cluster's Python that has taso-tune's dependencies"
    )
    # the sweep's own, checked here and passed on to `taso-tune sweep` in the job
    add_override_flags(p)
    p.add_argument("--scheduler", choices=SCHEDULER_TYPES, help="as for `taso-tune sweep`")
    p.add_argument("--no-report", action="store_true", help="as for `taso-tune sweep`")
    p.add_argument(
        "--stop-wait",
        type=int,
        default=DEFAULT_STOP_WAIT_S,
        metavar="SECONDS",
        help="seconds Ray waits, when the job is stopped, between the sweep's SIGTERM and its "
        "SIGKILL: time to stop the trials and save the state (set on the job as "
        "RAY_JOB_STOP_WAIT_TIME_S, which wins over the head's; default %(default)s, Ray's own is 3)",
    )
    p.set_defaults(handler=run_submit)


def add_jobs_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "jobs",
        help="list the sweeps submitted to a Ray cluster",
        description="List the cluster's sweep jobs, newest first: status, experiment and "
        "the best configuration mean each job reached (a stopped job and its resume share an "
        "experiment folder; each row counts the reports written up to its own job's end).",
    )
    add_cluster_flags(p)
    p.set_defaults(handler=run_jobs)
    p = sub.add_parser("logs", help="print (or follow) a sweep job's output")
    p.add_argument("job", metavar="JOB", help="the job id `taso-tune submit` printed")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    add_cluster_flags(p)
    p.set_defaults(handler=run_logs)
    p = sub.add_parser(
        "stop",
        help="stop a sweep job; its state is saved for `taso-tune resume`",
        description="Stop a sweep job: Ray sends its driver SIGTERM, the driver stops the "
        "trials and saves the sweep's state, and the job ends as STOPPED. Prints the command that "
        "resumes it once it has ended; a job still stopping after --wait is said to be, with the "
        "command that shows when it has ended (exit status 1).",
    )
    p.add_argument("job", metavar="JOB")
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="seconds to wait for the job to end (default: the job's stop wait, which "
        f"`submit --stop-wait` set, plus {STOP_MARGIN_S})",
    )
    add_cluster_flags(p)
    p.set_defaults(handler=run_stop)


def _jobs(args: argparse.Namespace) -> SweepJobs:
    from taso_tune.cluster.jobs import SweepJobs

    return SweepJobs(args.address, args.token_file)


def _cluster_flags(args: argparse.Namespace) -> str:
    """The cluster flags of ``args``, quoted for a shell, to repeat in a printed command."""
    flags = f" --address {shlex.quote(args.address)}" if args.address else ""
    return flags + (f" --token-file {shlex.quote(args.token_file)}" if args.token_file else "")


def _resume_command(experiment: str, args: argparse.Namespace) -> str:
    return f"taso-tune submit --resume {shlex.quote(experiment)}{_cluster_flags(args)}"


def _sweep_args(args: argparse.Namespace) -> tuple[str, str, list[str], list[str]]:
    """(space file relative to the working dir, experiment path, `taso-tune sweep` flags, the user
    modules to ship beside the working dir)."""
    from taso_tune.tuning.shipping import job_py_modules

    spec = resolve_spec(
        args.space, **override_values(args), scheduler=args.scheduler, name=args.name
    )
    name = args.name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = args.storage if is_uri(args.storage) else os.path.abspath(args.storage)
    space = os.path.relpath(os.path.abspath(args.space), os.path.abspath(args.working_dir))
    if space.startswith(".."):
        raise ConfigError(
            "FILE",
            args.space,
            f"must be inside the working directory {args.working_dir} "
            "(only that folder is uploaded); pass --working-dir",
        )
    flags = ["--name", name, "--storage", storage]
    for flag in (*(f for f, _, _ in OVERRIDE_FLAGS), "--scheduler"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            flags += [flag, str(value)]
    flags += ["--no-report"] if args.no_report else []
    return space, posixpath.join(storage, name), flags, job_py_modules(spec, args.working_dir)


def _resumed_py_modules(experiment: str, working_dir: str) -> list[str]:
    """The user modules the saved space of ``experiment`` names, to ship with its resume (none when
    the folder cannot be read from here: the job then finds them where the sweep did)."""
    from taso_tune.experiment.reader import read_space
    from taso_tune.tuning.shipping import job_py_modules

    try:
        return job_py_modules(read_space(experiment), working_dir)
    except (ConfigError, OSError):
        return []


def run_submit(args: argparse.Namespace) -> int:
    if bool(args.space) == bool(args.resume):
        raise ConfigError(
            "FILE",
            args.space or args.resume,
            "give a space file or --resume EXPERIMENT, one of them",
        )
    if not os.path.isdir(args.working_dir):
        raise ConfigError("--working-dir", args.working_dir, "no such folder")
    if args.stop_wait < 1:
        raise ConfigError("--stop-wait", args.stop_wait, "must be 1 second or more")
    if args.resume:
        # as --storage: the job runs in the uploaded working dir, where a relative path is not
        experiment = args.resume if is_uri(args.resume) else os.path.abspath(args.resume)
        command = ["resume", experiment]
        # the resolved space the sweep wrote beside its results: what the resume runs
        space = f"{experiment.rstrip('/')}/{SPACE_FILE}"
        py_modules = _resumed_py_modules(experiment, args.working_dir)
    else:
        space, experiment, flags, py_modules = _sweep_args(args)
        command = ["sweep", space, *flags]
    jobs = _jobs(args)
    running = [
        job.job_id
        for job in jobs.sweeps()
        if not job.ended and job.experiment.rstrip("/") == experiment.rstrip("/")
    ]
    if running:
        raise ConfigError(
            "--resume" if args.resume else "--name",
            experiment,
            f"job {running[0]} is still running on this experiment (its folder is locked "
            f"while it runs): stop it with `taso-tune stop {running[0]}{_cluster_flags(args)}`, "
            "or wait for it to end",
        )
    job_id = jobs.submit(
        command,
        experiment=experiment,
        space_file=space,
        working_dir=args.working_dir,
        python=args.python,
        py_modules=py_modules,
        stop_wait_s=args.stop_wait,
    )
    more = _cluster_flags(args)
    print(f"submitted job {job_id}")
    print(f"  experiment  {experiment}")
    print(f"  dashboard   {jobs.dashboard_url(job_id)}")
    print(f"  follow      taso-tune logs {job_id} --follow{more}")
    print(f"  list        taso-tune jobs{more}")
    print(f"  stop        taso-tune stop {job_id}{more}")
    print(f"  resume      {_resume_command(experiment, args)}")
    return 0


def best_so_far(job: SweepJob) -> str:
    """The best configuration mean of the job's experiment as the job left it (up to its end; a
    running job: up to now), as text: '—' when none yet, '— (why)' when the folder cannot be read
    from here."""
    from taso_tune.cluster.jobs import job_best

    try:
        best = job_best(job)
    except ConfigError as err:
        return f"— ({err.problem})"
    if best is None:
        return "—"
    shown = f"{best.value:.2%}" if best.metric.endswith("_acc") else f"{best.value:.4g}"
    return f"{best.metric} {shown} ({best.config_id})"


def run_jobs(args: argparse.Namespace) -> int:
    sweeps = _jobs(args).sweeps()
    if not sweeps:
        print("no sweep jobs on this cluster (submit one with `taso-tune submit FILE`)")
        return 0
    width = max(len("EXPERIMENT"), *(len(job.experiment) for job in sweeps))
    print(f"{'JOB':<28}  {'STATUS':<9}  {'EXPERIMENT':<{width}}  BEST SO FAR")
    for job in sweeps:
        print(f"{job.job_id:<28}  {job.status:<9}  {job.experiment:<{width}}  {best_so_far(job)}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    jobs = _jobs(args)
    if not args.follow:
        sys.stdout.write(jobs.logs(args.job))
        return 0
    for chunk in jobs.follow(args.job):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def run_stop(args: argparse.Namespace) -> int:
    if args.wait is not None and not 0 <= args.wait < float("inf"):
        raise ConfigError("--wait", args.wait, "must be 0 seconds or more")
    jobs = _jobs(args)
    job = jobs.sweep(args.job)
    if not jobs.stop(args.job):
        print(f"job {args.job} had already ended: {job.status}")
        return 0
    wait = job.stop_wait_s + STOP_MARGIN_S if args.wait is None else args.wait
    deadline = time.monotonic() + wait
    while not job.ended and time.monotonic() < deadline:
        time.sleep(1)
        job = jobs.sweep(args.job)
    if not job.ended:
        # a resume now would find the driver still running and its experiment locked
        print(
            f"job {args.job} is still stopping ({job.status} after {wait:g} s; Ray kills its "
            f"driver {job.stop_wait_s:g} s after the SIGTERM)"
        )
        print(f"check with: taso-tune jobs{_cluster_flags(args)}; resume it once it has ended")
        return 1
    exit_code = (
        "" if job.driver_exit_code is None else f", driver exit status {job.driver_exit_code}"
    )
    print(f"job {args.job}: {job.status}{exit_code}")
    if job.experiment and job.status != "SUCCEEDED":
        from taso_tune.cluster.jobs import job_finished

        if job_finished(job):
            print(
                f"its experiment had finished every trial: nothing to resume "
                f"(read it with: taso-tune report {shlex.quote(job.experiment)})"
            )
        else:
            print(f"continue it with: {_resume_command(job.experiment, args)}")
    return 0
