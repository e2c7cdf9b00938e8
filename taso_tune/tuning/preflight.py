"""What the driver checks on the Ray side before a trial starts, each failure one line:

- the cluster at ``--address`` answers (Ray itself retries an unreachable address for minutes);
- every trial fits on some node: on a cluster of fixed size a trial asking for more CPUs or GPUs
  than any node has would wait forever; where an autoscaler may add nodes it says what it waits for;
- Ray's token file stays private (Ray writes ``~/.ray/auth_token`` readable by everyone);
- the storage has room for what the sweep, or a resume, will still write (:func:`check_free_space`:
  for a resume, less the checkpoints its unfinished trials hold, which they replace), checked
  before Ray starts.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import ray
import torch

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import first_line, format_bytes, free_bytes, is_uri
from taso_tune.experiment.state import unfinished_checkpoint_bytes
from taso_tune.training.data.sets import ImageData
from taso_tune.training.optimizers import set_mode
from taso_tune.training.run import Run
from taso_tune.tuning.trainable import DataKey, data_key, train_config_of
from taso_tune.tuning.trials import TrialSource, seed_groups

#: Seconds to wait for ``--address`` to accept a connection.
CONNECT_TIMEOUT_ENV = "TASO_TUNE_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 15.0
#: Ray's default ports: the GCS of ``host:port`` addresses, the Ray Client server of ``ray://``.
_DEFAULT_PORTS = {"": 6379, "ray": 10001}
_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
#: Checkpoints Ray Tune keeps per trial (``CheckpointConfig(num_to_keep=...)``).
CHECKPOINTS_KEPT = 2
#: What a trial writes besides checkpoints, per epoch (``result.json``, ``progress.csv`` and the
#: TensorBoard events: about 4 kB measured on the quickstart) and per seed of the trial (each epoch
#: record carries every seed's record), and once (its share of Tune's experiment state, its params).
RESULT_BYTES_PER_EPOCH = 4_000
RESULT_BYTES_PER_SEED_EPOCH = 1_000
STATE_BYTES_PER_TRIAL = 100_000
#: Warn when the sweep needs more than this share of the free space (others may write there too).
WARN_SHARE = 0.8


def cluster_address(address: str | None) -> str | None:
    """``address``, else ``RAY_ADDRESS``; ``None`` means a local Ray started by this driver."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _connect_timeout() -> float:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV)
    try:
        seconds = float(raw) if raw else DEFAULT_CONNECT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(CONNECT_TIMEOUT_ENV, raw, "must be a number of seconds > 0")
    return seconds


def probe_address(address: str) -> None:
    """Fail within :data:`CONNECT_TIMEOUT_ENV` seconds when nothing listens at ``address``
    (``host:port`` or ``ray://host:port``; ``auto`` is left to Ray, which resolves it locally)."""
    if address in ("auto", "local"):
        return
    scheme, sep, _ = address.partition("://")
    parts = urlsplit(address if sep else f"//{address}")
    try:
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme if sep else "")
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ConfigError("--address", address, "must be HOST:PORT or ray://HOST:PORT")
    seconds = _connect_timeout()
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except TimeoutError:
        raise ConfigError(
            "--address",
            address,
            f"no Ray cluster answered at {host}:{port} within {seconds:g} s "
            f"(set {CONNECT_TIMEOUT_ENV} to wait longer)",
        ) from None
    except OSError as err:
        raise ConfigError(
            "--address",
            address,
            f"no Ray cluster at {host}:{port} ({err.strerror or first_line(err)})",
        ) from None


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def private_token_file() -> None:
    """Make Ray's default token file ``~/.ray/auth_token`` readable by its owner alone (0600):
    anyone who reads it can run code on the cluster."""
    path = Path.home() / ".ray" / "auth_token"
    try:
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    except OSError:
        pass


def connect(address: str | None, runtime_env: dict[str, Any] | None = None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray; ``runtime_env``
    ships the user's modules to the workers (:mod:`taso_tune.tuning.shipping`)."""
    if ray.is_initialized():
        return
    address = cluster_address(address)
    if address:
        probe_address(address)
    if address is None or _token_available():
        # Ray then turns token authentication on (a local Ray always does) and warns that it did, on
        # every run; the warning that it is off, where no token exists, is left to be seen
        logging.getLogger(_TOKEN_LOGGER).setLevel(logging.ERROR)
    try:
        ray.init(
            address=address,
            include_dashboard=None,
            log_to_driver=True,
            configure_logging=True,
            logging_level="WARNING",
            runtime_env=runtime_env,
        )
    except (ConnectionError, TimeoutError) as err:
        raise ConfigError(
            "--address", address, f"cannot connect to Ray: {first_line(err)}"
        ) from None
    except ray.exceptions.AuthenticationError as err:
        raise ConfigError(
            "--address", address, f"Ray refused the connection: {first_line(err)}"
        ) from None
    private_token_file()


def disconnect() -> None:
    """Leave Ray once a sweep has ended, before its summary is printed: the driver stops forwarding
    the workers' output, so what workers print as they are shut down (a ``SystemExit: 1`` traceback
    from their SIGTERM handler) never follows the summary of a sweep that went well."""
    if ray.is_initialized():
        ray.shutdown()


def may_autoscale(address: str | None) -> bool:
    """Whether the cluster may grow: an existing cluster (we cannot tell a fixed one from one with
    an autoscaler, except that Ray's autoscaler reports node types with no maximum or room to grow);
    a local Ray started by this driver never does."""
    if address is None:
        return False
    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # a private Ray API: if it moves, assume the cluster may grow
        return True
    if config is None or not config.node_group_configs:
        return True
    return any(group.max_count != 0 for group in config.node_group_configs)


def check_trial_fits(resources: Mapping[str, float], address: str | None) -> None:
    """Refuse trials no node can run (``resources``: ``cpu`` and ``gpu`` per trial), before any starts.

    On a cluster of fixed size that is an error on ``resources.cpus`` or ``resources.gpus``; where
    the cluster may autoscale, a warning says what the trials wait for.
    """
    needed = {"CPU": float(resources.get("cpu", 0.0)), "GPU": float(resources.get("gpu", 0.0))}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in needed.items()) for node in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    have = f"{largest.get('CPU', 0.0):g} CPUs and {largest.get('GPU', 0.0):g} GPUs"
    short = [
        k for k in ("CPU", "GPU") if not any(node.get(k, 0.0) >= needed[k] for node in nodes)
    ] or ["CPU"]
    field = {"CPU": "resources.cpus", "GPU": "resources.gpus"}[short[0]]
    if may_autoscale(address):
        print(
            f"warning: each trial needs {needed['CPU']:g} CPUs and {needed['GPU']:g} GPUs on one node and no "
            f"node has them now (the largest has {have}): the trials wait until the autoscaler adds such "
            f"a node; if this cluster does not grow, stop with Ctrl-C and lower {field}",
            file=sys.stderr,
            flush=True,
        )
        return
    raise ConfigError(
        field,
        needed[short[0]],
        f"per trial, more {short[0]}s than any node of this Ray cluster has "
        f"(the largest has {have}): the trials would wait forever; lower it "
        f"(--{short[0].lower()}s-per-trial)",
    )


def checkpoint_bytes(flat: Mapping, data: ImageData, cpus: float) -> int:
    """The size of one seed's checkpoint of configuration ``flat``: its run's whole state
    (:meth:`~taso_tune.training.run.Run.state_dict`, what a trial saves) once the optimizer holds its
    per-parameter state, measured by saving it to memory after one step on CPU."""
    config = dataclasses.replace(train_config_of(flat, cpus), device="cpu", compile=False)
    threads = torch.get_num_threads()
    try:
        run = Run(config, data)
        for parameter in run.module.parameters():
            parameter.grad = torch.zeros_like(parameter)
        set_mode(run.optimizer, training=True)  # as the loop does: schedule-free steps need it
        run.optimizer.step()  # optimizers make their state (momentum, moments) at the first step
        buffer = io.BytesIO()
        torch.save(run.state_dict(), buffer)
        return buffer.tell()
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Writes:
    """What a run of a sweep still writes into its storage, for :func:`check_free_space`: the trials
    and planned epochs of each Tune run ahead (a sweep has one; budget-sh one a rung; a resume the
    trials not finished yet), and who writes (``sweep`` refused on ``--storage``; ``resume`` on the
    experiment)."""

    runs: tuple[tuple[int, int], ...]
    command: Literal["sweep", "resume"] = "sweep"

    @classmethod
    def sweep(cls, source: TrialSource) -> Writes:
        """A whole sweep of ``source``'s trials, each its planned epochs."""
        return cls(((source.planned_trials(), source.spec.epochs),))


def sweep_bytes(
    source: TrialSource,
    datasets: Mapping[DataKey, ImageData],
    runs: tuple[tuple[int, int], ...] | None = None,
) -> tuple[int, str]:
    """What ``runs`` (:attr:`Writes.runs`; default: the whole sweep of ``source``) write into the
    storage at most, and how that was counted: every trial keeps :data:`CHECKPOINTS_KEPT`
    checkpoints of all its seeds (a running trial one more while it writes the next), plus its
    results."""
    spec = source.spec
    runs = runs or Writes.sweep(source).runs
    trials = sum(count for count, _epochs in runs)
    seeds = len(seed_groups(spec)[0])
    sizes = {}
    for flat in source.fixed_configs():
        key = (data_key(flat), flat.get("model"), flat.get("optimizer"))
        if key not in sizes:
            sizes[key] = checkpoint_bytes(flat, datasets[data_key(flat)], spec.resources.cpus)
    checkpoint = max(sizes.values())
    widest = max(count for count, _epochs in runs)
    running = min(widest, spec.max_concurrent or widest)
    checkpoints = checkpoint * seeds * (CHECKPOINTS_KEPT * trials + running)
    results = sum(
        count
        * (
            epochs * (RESULT_BYTES_PER_EPOCH + RESULT_BYTES_PER_SEED_EPOCH * seeds)
            + STATE_BYTES_PER_TRIAL
        )
        for count, epochs in runs
    )
    over = f" over {len(runs)} rungs" if len(runs) > 1 else ""
    how = (
        f"checkpoints of {format_bytes(checkpoint)} x {seeds} seeds x {CHECKPOINTS_KEPT} kept x "
        f"{trials} trials{over} (+1 in flight for each of {running} running), results "
        f"{format_bytes(results)}"
    )
    return checkpoints + results, how


def check_free_space(
    source: TrialSource,
    datasets: Mapping[DataKey, ImageData],
    storage: str,
    writes: Writes | None = None,
    experiment: str | None = None,
) -> None:
    """Refuse a sweep or resume its storage cannot hold (a :class:`ConfigError` with the figures,
    on ``--storage`` for a sweep, on the ``experiment`` for a resume); warn when it would take most
    of the free space. ``writes``: what is still to write (default: the whole sweep); for a resume,
    what the unfinished trials' checkpoints take now is subtracted: their new checkpoints replace
    them. A bucket has no free space to ask about: the check is skipped, and a line says so."""
    writes = writes or Writes.sweep(source)
    if sum(count for count, _epochs in writes.runs) <= 0:
        return
    flag = "--storage" if writes.command == "sweep" else "the experiment's storage"
    if is_uri(storage):
        print(
            f"note: {flag} {storage} is a bucket: its free space is not checked",
            file=sys.stderr,
            flush=True,
        )
        return
    free = free_bytes(storage)
    if free is None:
        return
    need, how = sweep_bytes(source, datasets, writes.runs)
    # a resumed trial's new checkpoints replace those it holds: only the growth needs room
    held = (
        unfinished_checkpoint_bytes(experiment) if experiment and writes.command == "resume" else 0
    )
    if held:
        how += (
            f"; less the {format_bytes(held)} of checkpoints its unfinished trials hold and replace"
        )
        need = max(need - held, 0)
    figures = (
        f"the {writes.command} writes up to {format_bytes(need)} ({how}), {format_bytes(free)} free"
    )
    if need > free and writes.command == "sweep":
        raise ConfigError(
            "--storage",
            storage,
            f"too little space: {figures}; make room, choose other storage, or run fewer trials "
            "or seeds",
        )
    if need > free:
        raise ConfigError(
            "EXPERIMENT",
            experiment,
            f"too little space in {storage}: {figures}; make room there, then resume again",
        )
    if need > WARN_SHARE * free:
        print(
            f"warning: {flag} {storage}: {figures}; a {writes.command} that fills it stops and "
            "resumes once there is room",
            file=sys.stderr,
            flush=True,
        )
