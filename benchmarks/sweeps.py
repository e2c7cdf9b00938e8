"""Helpers of the benchmarks that run real sweeps: start Ray, run a spec quietly, read what trials reported.

Sweeps run through :func:`taso_tune.tuning.run_sweep`, the same call as ``taso-tune sweep``.
Ray is started with the settings of :func:`taso_tune.tuning.preflight.connect` except that worker logs
are not forwarded to the driver, so the benchmark output stays one table.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import ray
from common import REPO_ROOT

from taso_tune.core.storage import result_records
from taso_tune.spaces import SweepSpec, load_space, load_space_dict, with_overrides
from taso_tune.tuning import run_sweep

QUICKSTART = REPO_ROOT / "search_spaces" / "quickstart.yaml"


def start_ray(address: str | None = None) -> float:
    """Start a local Ray, or connect to the one at ``address`` (if none is connected); returns the
    seconds it took."""
    if ray.is_initialized():
        return 0.0
    os.environ.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    ray.init(
        address=address,
        include_dashboard=None,
        log_to_driver=False,
        configure_logging=True,
        logging_level="WARNING",
    )
    return time.perf_counter() - start


def stop_ray() -> float:
    """Shut Ray down; returns the seconds it took."""
    start = time.perf_counter()
    if ray.is_initialized():
        ray.shutdown()
    return time.perf_counter() - start


def quickstart(**overrides: Any) -> SweepSpec:
    """The quickstart space with :meth:`SweepSpec.with_overrides` applied."""
    return with_overrides(load_space(str(QUICKSTART)), **overrides)


def one_trial_spec(
    epochs: int, checkpoint_every: int, checkpoint_min_seconds: float = 0.0
) -> SweepSpec:
    """One LeNet5/digits TASO trial of ``epochs`` epochs, 1 CPU, no early stopping."""
    return load_space_dict(
        {
            "name": "one-trial",
            "train": {"model": "lenet5", "dataset": "digits", "epochs": epochs, "batch_size": 64},
            "seeds": 1,
            "resources": {"cpus": 1},
            "scheduler": {"type": "none"},
            "search": "grid",
            "checkpoint_every": checkpoint_every,
            "checkpoint_min_seconds": checkpoint_min_seconds,
            "blocks": [{"optimizer": "taso"}],
        }
    )


@dataclass(frozen=True)
class SweepRun:
    """A finished sweep: its wall seconds (run_sweep alone), the CPU seconds Ray itself used meanwhile
    (driver, raylet, GCS, dashboard: every process of this Ray but the trial workers) and every
    trial's reported records."""

    wall_seconds: float
    ray_cpu_seconds: float
    experiment: Path
    trials: list[list[dict[str, Any]]]

    @property
    def epochs_run(self) -> int:
        """Epochs trained, counted per seed: a trial's record reports each of its seeds' epoch
        under ``per_seed`` (a seed that diverged earlier is not in it)."""
        return sum(len(r.get("per_seed") or {0: r}) for records in self.trials for r in records)


def trial_records(experiment: Path) -> list[list[dict[str, Any]]]:
    """Every trial's result.json records (one per reported epoch), budget-sh rung folders included."""
    return [
        result_records(result.read_text(), str(result))
        for result in sorted(experiment.rglob("result.json"))
    ]


@contextlib.contextmanager
def storage() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="taso-bench-") as folder:
        yield Path(folder)


def _ray_cpu() -> dict[int, float]:
    """CPU seconds so far of this process and each process under it, trial workers left out."""
    me = psutil.Process()
    out = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            if "TrialActor" in " ".join(
                process.cmdline()
            ):  # a trial worker (the trainable's actor)
                continue
            times = process.cpu_times()
            out[process.pid] = times.user + times.system
        except psutil.Error:  # ended meanwhile
            continue
    return out


def run_quiet(spec: SweepSpec, root: Path, name: str) -> SweepRun:
    """Run ``spec`` under ``root/name`` with Tune's progress table swallowed (Ray must be started)."""
    cpu_before = _ray_cpu()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(spec, str(root), name=name)
    wall = time.perf_counter() - start
    ray_cpu = sum(seconds - cpu_before.get(pid, 0.0) for pid, seconds in _ray_cpu().items())
    if outcome.errored:
        raise RuntimeError(f"{outcome.errored} trial(s) of the benchmark sweep {name!r} errored")
    experiment = Path(outcome.experiment_path)
    return SweepRun(wall, ray_cpu, experiment, trial_records(experiment))


def actor_start_ups(since: float) -> tuple[float | None, tuple[float, ...]]:
    """From Ray's state API, the trial actors created since the Unix time ``since``: the seconds from
    ``since`` until the first was asked for, and each one's start-up (its creation task from
    submission to end). ``(None, ())`` where the state API cannot answer (no dashboard)."""
    from ray.util.state import list_tasks
    from ray.util.state.exception import RayStateApiException

    try:
        tasks = list_tasks(
            filters=[("type", "=", "ACTOR_CREATION_TASK")],
            detail=True,
            raise_on_missing_output=False,
        )
    except RayStateApiException:  # no dashboard, so no state API
        return None, ()
    created = [
        (t.creation_time_ms / 1e3, t.end_time_ms / 1e3)
        for t in tasks
        if "TrialActor" in (t.name or "")
        and t.creation_time_ms
        and t.end_time_ms
        and t.creation_time_ms / 1e3 >= since
    ]
    if not created:
        return None, ()
    return min(asked for asked, _ in created) - since, tuple(end - asked for asked, end in created)
