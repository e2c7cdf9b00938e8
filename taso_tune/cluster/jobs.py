"""Sweeps as Ray Jobs: submit one to a cluster's dashboard, list them, follow and stop one.

Every call goes through Ray's :class:`~ray.job_submission.JobSubmissionClient` with the cluster's
token sent explicitly (Ray's SDK adds it only when ``RAY_AUTH_MODE=token`` is set on the client), so
the commands work from any shell. The token is read from ``--token-file``, ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, in that order, and is never printed: errors name
where it came from. A job's metadata carries the space file and the experiment path, which is how
``taso-tune jobs`` tells sweeps from other jobs and where ``taso-tune stop`` says to resume from.

Ray's SDK is imported only when a client is made, and the experiment is read through
:class:`~taso_tune.experiment.reader.ExperimentReader` without the results layer: listing jobs
loads neither Ray Tune nor pandas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.experiment.reader import ExperimentReader, read_space
from taso_tune.experiment.state import all_finished, experiment_planned

#: Where a local ``ray start --head`` serves its dashboard (and the Jobs API).
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: Ray's own variable for the dashboard's address, read when ``--address`` is not given.
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"
#: The metadata key that marks a job as a taso-tune sweep.
SWEEP_KEY = "taso_tune"
#: Files the job does not need from the working directory (Ray also skips what .gitignore lists).
UPLOAD_EXCLUDES = [".venv", "runs", "__pycache__", "*.pyc"]
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
#: Ray reads it in the job's supervisor (an actor on the head) when it stops a job: the seconds
#: between SIGTERM and SIGKILL. The job's ``runtime_env`` ``env_vars`` win over the environment
#: ``ray start`` ran in on the head; ``submit`` sets it on the job.
STOP_WAIT_ENV = "RAY_JOB_STOP_WAIT_TIME_S"
#: What ``submit`` gives a sweep to stop its trials and save its state.
DEFAULT_STOP_WAIT_S = 30
#: What ``taso-tune stop`` waits beyond a job's stop wait: Ray's SIGKILL, and the job's status
#: settling.
STOP_MARGIN_S = 30
#: Ray's own, for a job that sets none (the head's environment may set another, unseen from here).
RAY_STOP_WAIT_S = 3
#: What a token may hold to go in an HTTP header: printable ASCII without spaces.
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
TOKEN_HELP = (
    f"set {TOKEN_ENV}, or put it in {DEFAULT_TOKEN_FILE} or a file given by --token-file; "
    "`ray get-auth-token` prints it on the head node"
)


@dataclass(frozen=True)
class Token:
    """The cluster's auth token and where it was read (the value never appears in a repr)."""

    value: str = field(repr=False)
    source: str


def find_token(token_file: str | None = None) -> Token | None:
    """The token to send: ``token_file``, else ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or the
    default token file; ``None`` when there is none (a cluster without token auth needs none)."""
    if token_file:
        return _read_token(token_file, "--token-file", token_file)
    if os.environ.get(TOKEN_ENV, "").strip():
        return _checked(os.environ[TOKEN_ENV].strip(), "token", TOKEN_ENV, TOKEN_ENV)
    if os.environ.get(TOKEN_PATH_ENV):
        path = os.environ[TOKEN_PATH_ENV]
        return _read_token(path, TOKEN_PATH_ENV, f"{TOKEN_PATH_ENV} ({path})")
    default = os.path.expanduser(DEFAULT_TOKEN_FILE)
    return _read_token(default, DEFAULT_TOKEN_FILE, default) if os.path.isfile(default) else None


def _read_token(path: str, field: str, source: str) -> Token:
    try:
        with open(os.path.expanduser(path)) as fh:
            value = fh.read().strip()
    except OSError as err:
        raise ConfigError(field, path, f"cannot read the token file ({err.strerror})") from None
    if not value:
        raise ConfigError(field, path, "the token file is empty")
    return _checked(value, field, path, source)


def _checked(value: str, field: str, shown: str, source: str) -> Token:
    """The token, once it is known to fit in a header: http.client and requests quote a header
    value they refuse in their error, so a bad token would be printed by the first request."""
    if not TOKEN_CHARS.fullmatch(value):
        raise ConfigError(
            field,
            shown,
            "the token holds a character an HTTP header cannot carry (a space, a line break, "
            "a control or non-ASCII character); it is not a Ray token, `ray get-auth-token` "
            "prints the cluster's",
        )
    return Token(value, source)


@dataclass(frozen=True)
class SweepJob:
    """One sweep submitted as a Ray Job, as ``taso-tune jobs`` lists it."""

    job_id: str
    status: str
    experiment: str
    space_file: str
    start_time_ms: int | None
    end_time_ms: int | None  # None while the job runs
    driver_exit_code: int | None
    #: seconds between Ray's SIGTERM and its SIGKILL when the job is stopped (the job's
    #: ``RAY_JOB_STOP_WAIT_TIME_S``, else Ray's default)
    stop_wait_s: float = RAY_STOP_WAIT_S

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATES


def dashboard_address(address: str | None = None) -> str:
    """``address``, else ``RAY_API_SERVER_ADDRESS``, else a local head's dashboard, as a URL:
    ``HOST:PORT`` (how ``ray start`` prints the dashboard) gets ``http://``. A Ray cluster address
    (``auto``, ``ray://...``, ``gcs://...``) is refused: the Jobs API is served by the dashboard,
    which such an address does not name."""
    given = address or os.environ.get(API_SERVER_ENV) or DEFAULT_ADDRESS
    if given.strip().lower() == "auto" or (
        "://" in given and not given.lower().startswith(("http://", "https://"))
    ):
        raise ConfigError(
            "--address" if address else API_SERVER_ENV,
            given,
            "not the Ray dashboard's address: give its URL, http://HEAD:8265 (what "
            "`ray start --head` prints as the dashboard), not a Ray cluster address",
        )
    return (given if "://" in given else f"http://{given}").rstrip("/")


def token_missing(address: str) -> ConfigError:
    """The error for a cluster that asks for a token when none was found."""
    looked = f"looked in {TOKEN_ENV}, {TOKEN_PATH_ENV}, {DEFAULT_TOKEN_FILE}"
    return ConfigError(
        "token",
        looked,
        f"the cluster at {address} needs a token and none was found: {TOKEN_HELP}",
    )


def token_refused(token: Token, address: str, refused: bool) -> ConfigError:
    """The error for a token the cluster did not accept (``refused``: it answered 403)."""
    why = "refused" if refused else "not accepted"
    return ConfigError(
        "token",
        token.source,
        f"the token was {why} by {address}: it is not this cluster's token; {TOKEN_HELP}",
    )


def no_dashboard(address: str) -> ConfigError:
    """The error for an address where no dashboard answers."""
    return ConfigError(
        "--address",
        address,
        "no Ray dashboard answers there (start one with `ray start --head`, or tunnel to it)",
    )


def not_a_dashboard(address: str) -> ConfigError:
    """The error for an address where an HTTP server answers that is not a Ray dashboard."""
    return ConfigError(
        "--address",
        address,
        "a web server answers there but not a Ray dashboard (no Ray Jobs API); the dashboard "
        "is on the head's port 8265 unless `ray start --dashboard-port` chose another",
    )


class SweepJobs:
    """The Jobs API of one cluster, with its token; auth and connection problems are ConfigErrors."""

    def __init__(self, address: str | None = None, token_file: str | None = None) -> None:
        self.address = dashboard_address(address)
        self.token = find_token(token_file)
        headers = {"Authorization": f"Bearer {self.token.value}"} if self.token else None
        # Ray's SDK logs every upload step at INFO; its warnings (a large working directory) stay
        for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
            logging.getLogger(name).setLevel(logging.WARNING)
        with self._errors():
            from ray.job_submission import JobSubmissionClient
            from requests.exceptions import HTTPError

            try:
                self.client = JobSubmissionClient(self.address, headers=headers)
            except (RuntimeError, ValueError, HTTPError):
                # Ray's version check: a 404, an error status or no JSON at /api/version
                raise not_a_dashboard(self.address) from None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError as err:
            if self.token is None:
                raise token_missing(self.address) from None
            refused = "403" in str(err) or "Invalid" in str(err)
            raise token_refused(self.token, self.address, refused) from None
        except ConnectionError:
            raise no_dashboard(self.address) from None

    def submit(
        self,
        command: Sequence[str],
        *,
        experiment: str,
        space_file: str = "",
        working_dir: str = ".",
        python: str = "python",
        py_modules: Sequence[str] = (),
        stop_wait_s: int = DEFAULT_STOP_WAIT_S,
    ) -> str:
        """Submit ``taso-tune COMMAND`` (``sweep FILE ...`` or ``resume EXPERIMENT``) with
        ``working_dir`` uploaded, the job running in it, the user's modules that live outside it
        shipped as ``py_modules``, and ``stop_wait_s`` seconds between Ray's SIGTERM and its SIGKILL
        when the job is stopped; returns the job id."""
        entrypoint = shlex.join([python, "-m", "taso_tune.cli", *command])
        metadata = {SWEEP_KEY: command[0], "space_file": space_file, "experiment": experiment}
        runtime_env: dict[str, Any] = {
            "working_dir": working_dir,
            "excludes": UPLOAD_EXCLUDES,
            "env_vars": {STOP_WAIT_ENV: str(stop_wait_s)},
        }
        if py_modules:
            runtime_env["py_modules"] = list(py_modules)
        with self._errors():
            return self.client.submit_job(
                entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata
            )

    def sweeps(self) -> list[SweepJob]:
        """The cluster's sweep jobs, newest first."""
        with self._errors():
            jobs = self.client.list_jobs()
        found = [_sweep_job(job) for job in jobs if (job.metadata or {}).get(SWEEP_KEY)]
        return sorted(found, key=lambda job: job.start_time_ms or 0, reverse=True)

    def sweep(self, job_id: str) -> SweepJob:
        with self._errors():
            try:
                job = self.client.get_job_info(job_id)
            except RuntimeError as err:
                if "does not exist" in str(err):
                    raise ConfigError("JOB", job_id, f"no such job on {self.address}") from None
                raise
        return _sweep_job(job)

    def logs(self, job_id: str) -> str:
        self.sweep(job_id)  # a clear error for an unknown id
        with self._errors():
            return self.client.get_job_logs(job_id)

    def follow(self, job_id: str) -> Iterator[str]:
        """The job's log, chunk by chunk, until the job ends."""
        self.sweep(job_id)
        stream = self.client.tail_job_logs(job_id)
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    with self._errors():
                        yield loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            loop.close()

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop (Ray sends its driver SIGTERM); ``False`` if it had already ended."""
        self.sweep(job_id)
        with self._errors():
            return self.client.stop_job(job_id)

    def dashboard_url(self, job_id: str) -> str:
        return f"{self.address}/#/jobs/{job_id}"


def _sweep_job(job) -> SweepJob:
    metadata = job.metadata or {}
    env_vars = (getattr(job, "runtime_env", None) or {}).get("env_vars") or {}
    try:
        stop_wait_s = float(env_vars.get(STOP_WAIT_ENV, RAY_STOP_WAIT_S))
    except ValueError:
        stop_wait_s = RAY_STOP_WAIT_S
    return SweepJob(
        job_id=job.submission_id or job.job_id,
        status=str(getattr(job.status, "value", job.status)),
        experiment=metadata.get("experiment", ""),
        space_file=metadata.get("space_file", ""),
        start_time_ms=job.start_time,
        end_time_ms=job.end_time,
        driver_exit_code=getattr(job, "driver_exit_code", None),
        stop_wait_s=stop_wait_s,
    )


@dataclass(frozen=True)
class BestResult:
    """The best configuration of an experiment as one job left it."""

    metric: str
    value: float
    config_id: str


def best_result(experiment: str, until_ms: int | None = None) -> BestResult | None:
    """The best configuration mean of the experiment's metric from the reports written up to
    ``until_ms`` (a job's end time; ``None``: all of them), ``None`` when there is none.

    A stopped sweep and its resume write into the same folder; bounding by the job's end keeps
    the stopped job's result from showing what its resume reached later. Each trial counts with its
    last report in that window; a configuration's value is the mean over its trials of one Tune
    run (the seeds, when each seed is its own trial), and the best is taken over every run.

    Raises:
        ConfigError: the folder or its files cannot be read as a taso-tune experiment.
    """
    reader = ExperimentReader(experiment, None if until_ms is None else until_ms / 1000)
    spec = reader.space()
    if spec is None:
        return None
    values: dict[tuple[int | None, str], list[float]] = {}
    for trial in reader.all_trials():
        last = trial.reports[-1]
        if isinstance(value := last.get(spec.metric), int | float) and not math.isnan(value):
            values.setdefault((trial.rung, str(last["config_id"])), []).append(value)
    if not values:
        return None
    means = {key: sum(v) / len(v) for key, v in values.items()}
    pick = max if spec.mode == "max" else min
    (_rung, config_id), value = pick(means.items(), key=lambda item: item[1])
    return BestResult(spec.metric, value, config_id)


def job_best(job: SweepJob) -> BestResult | None:
    """:func:`best_result` of ``job``'s experiment up to the job's end (none: the job names no
    experiment).

    Raises:
        ConfigError: the experiment cannot be read from here, whatever the cause; its ``problem`` is
            a short reason, for a listing to show in the job's row.
    """
    if not job.experiment:
        return None
    try:
        return best_result(job.experiment, job.end_time_ms)
    except ConfigError as err:
        raise ConfigError("experiment", job.experiment, _short(err.problem)) from None
    except OSError as err:
        why = err.strerror or str(err) or type(err).__name__
        raise ConfigError(
            "experiment", job.experiment, _short(f"cannot read it here: {why}")
        ) from None
    except Exception as err:
        # one folder written by something else, or read while being written, or a storage URI
        # pyarrow cannot open here (ArrowInvalid): its row says so and the listing goes on
        reason = f"cannot read it here: {type(err).__name__}"
        raise ConfigError("experiment", job.experiment, reason) from None


def job_finished(job: SweepJob) -> bool:
    """Whether ``job``'s experiment, read from here, has nothing left to resume (every planned
    trial finished, or budget-sh's winner picked); ``False`` when it cannot be read from here."""
    if not job.experiment:
        return False
    try:
        spec = read_space(job.experiment)
        return all_finished(job.experiment, spec, experiment_planned(job.experiment, spec))
    except Exception:  # noqa: BLE001 (unreadable here, whatever the cause: the resume line stays)
        return False


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
