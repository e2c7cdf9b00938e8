"""Sweeps as Ray Jobs: submit one to a cluster's dashboard, list them, follow and stop one.

Every call goes through Ray's :class:`~ray.job_submission.JobSubmissionClient` with the cluster's
token sent explicitly (Ray's SDK adds it only when ``RAY_AUTH_MODE=token`` is set on the client), so
the commands work from any shell. The token is read from ``--token-file``, ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, in that order, and is never printed: errors name
where it came from. A job's metadata carries the space file and the experiment path, which is how
``taso-tune jobs`` tells sweeps from other jobs and where ``taso-tune stop`` says to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taso_tune.core.errors import ConfigError

#: Where a local ``ray start --head`` serves its dashboard (and the Jobs API).
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"
#: The metadata key that marks a job as a taso-tune sweep.
SWEEP_KEY = "taso_tune"
#: Files the job does not need from the working directory (Ray also skips what .gitignore lists).
UPLOAD_EXCLUDES = [".venv", "runs", "__pycache__", "*.pyc"]
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
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
        return Token(os.environ[TOKEN_ENV].strip(), TOKEN_ENV)
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
    return Token(value, source)


@dataclass(frozen=True)
class SweepJob:
    """One sweep submitted as a Ray Job, as ``taso-tune jobs`` lists it."""

    job_id: str
    status: str
    experiment: str
    space_file: str
    start_time_ms: int | None
    driver_exit_code: int | None


class SweepJobs:
    """The Jobs API of one cluster, with its token; auth and connection problems are ConfigErrors."""

    def __init__(self, address: str | None = None, token_file: str | None = None) -> None:
        self.address = (
            address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS
        ).rstrip("/")
        self.token = find_token(token_file)
        headers = {"Authorization": f"Bearer {self.token.value}"} if self.token else None
        # Ray's SDK logs every upload step at INFO; its warnings (a large working directory) stay
        for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
            logging.getLogger(name).setLevel(logging.WARNING)
        with self._errors():
            from ray.job_submission import JobSubmissionClient

            self.client = JobSubmissionClient(self.address, headers=headers)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError as err:
            if self.token is None:
                looked = f"looked in {TOKEN_ENV}, {TOKEN_PATH_ENV}, {DEFAULT_TOKEN_FILE}"
                raise ConfigError(
                    "token",
                    looked,
                    f"the cluster at {self.address} needs a token and none was found: {TOKEN_HELP}",
                ) from None
            why = "refused" if "403" in str(err) or "Invalid" in str(err) else "not accepted"
            raise ConfigError(
                "token",
                self.token.source,
                f"the token was {why} by {self.address}: it is "
                f"not this cluster's token; {TOKEN_HELP}",
            ) from None
        except ConnectionError:
            raise ConfigError(
                "--address",
                self.address,
                "no Ray dashboard answers there (start one with "
                "`ray start --head`, or tunnel to it)",
            ) from None

    def submit(
        self,
        command: Sequence[str],
        *,
        experiment: str,
        space_file: str = "",
        working_dir: str = ".",
        python: str = "python",
        py_modules: Sequence[str] = (),
    ) -> str:
        """Submit ``taso-tune COMMAND`` (``sweep FILE ...`` or ``resume EXPERIMENT``) with
        ``working_dir`` uploaded, the job running in it, and the user's modules that live outside it
        shipped as ``py_modules``; returns the job id."""
        entrypoint = shlex.join([python, "-m", "taso_tune.cli", *command])
        metadata = {SWEEP_KEY: command[0], "space_file": space_file, "experiment": experiment}
        runtime_env: dict[str, Any] = {"working_dir": working_dir, "excludes": UPLOAD_EXCLUDES}
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
    return SweepJob(
        job_id=job.submission_id or job.job_id,
        status=str(getattr(job.status, "value", job.status)),
        experiment=metadata.get("experiment", ""),
        space_file=metadata.get("space_file", ""),
        start_time_ms=job.start_time,
        driver_exit_code=getattr(job, "driver_exit_code", None),
    )
