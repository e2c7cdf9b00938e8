"""Interrupts of a sweep driver: SIGINT (Ctrl-C) and SIGTERM (``kill``, ``ray job stop``).

Left alone, Ray Tune catches the first SIGINT, saves its state and returns the partial results as if
the sweep had finished (our driver then exited 0 and wrote a report and defaults from them), and Ray's
SIGTERM handler exits in the middle of the run (exit 134 and a C++ stack dump). Instead, while a sweep
runs, :data:`SIGNALS` handles both signals itself (Tune's own SIGINT handler is turned off through
``TUNE_DISABLE_SIGINT_HANDLER``):

- the first signal inside Tune's run loop asks Tune to stop the way its own Ctrl-C does: running
  trials are stopped, the experiment state is saved one last time, unfinished trials stay unfinished
  (``taso-tune resume`` continues them from their checkpoints). :class:`StopAfterSignal`, a Tune
  callback, then ends ``Tuner.fit`` with :class:`SweepInterrupted` instead of partial results, so
  budget-aware successive halving never takes an interrupted rung for a finished one;
- the first signal anywhere else (loading data, expanding a space, between rungs) and any second
  signal raise :class:`KeyboardInterrupt` at once.

The driver exits with 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.

A storage that can take no more writes (full, over quota, or read-only: see
:func:`~taso_tune.core.storage.storage_full`) stops the sweep the same way, whoever meets it:

- a trial whose checkpoint cannot be written posts the error (:func:`wait_for_stop`) and waits for
  the driver to stop it, instead of failing: no retry is spent on a fault no retry can fix, and Tune
  records no error for the trial;
- the driver's own copies into the storage (Tune's experiment state, the trials' ``result.json``)
  fail in a background thread that Ray only logs from: :data:`STORAGE` filters those records out of
  Ray's log and notes the fault.

:class:`StopAfterSignal` forwards either fault to Tune's stop at the next step and ends the run with
:class:`StorageInterrupted`; the driver exits with
:data:`~taso_tune.core.storage.STORAGE_FULL_EXIT` (74, ``EX_IOERR``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from ray import tune
from ray.experimental import internal_kv

from taso_tune.core.storage import first_line, storage_full

#: The signals that stop a sweep.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TUNE_RUN_FILE = os.path.join("ray", "tune", "tune.py")
_TUNE_ENV = "TUNE_DISABLE_SIGINT_HANDLER"


#: Seconds a trial that met a full storage waits for the driver to stop it before it fails.
TRIAL_STOP_WAIT_S = 300.0
_KV_PREFIX = "taso-tune/storage-full/"
#: Seconds between two looks for a fault the trials posted.
POLL_S = 0.5
#: Ray's loggers of the driver's copies into the storage (they log a failed copy, traceback included).
_STORAGE_LOGGERS = ("ray.train._internal.syncer", "ray.tune.execution.experiment_state")


class SweepInterrupted(KeyboardInterrupt):
    """A signal stopped the sweep after Tune saved its state; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_tune_run(frame: FrameType | None) -> bool:
    """Whether the interrupted code runs inside ``ray.tune.run`` (the loop of ``Tuner.fit``)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run" and code.co_filename.endswith(_TUNE_RUN_FILE):
            return True
        frame = frame.f_back
    return False


def _tune_stop_handler() -> Any:
    """Tune's interrupt handler of the run in progress: Tune registers it for SIGUSR1 as well as
    SIGINT, and with its SIGINT handler turned off, SIGUSR1 is where it stays reachable."""
    handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    return handler if callable(handler) else None


class StopSignals:
    """The driver's handler of :data:`STOP_SIGNALS` (one per process: :data:`SIGNALS`)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._forwarded_to: Any = None
        self._tune_env: str | None = None

    def install(self) -> None:
        """Handle the stop signals from now on. Call again after ``ray.init``, which puts its own
        SIGTERM handler in place; a no-op outside the main thread, where Python allows no handler."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not self._previous:
            self._tune_env = os.environ.get(_TUNE_ENV)
        os.environ[_TUNE_ENV] = "1"
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current != self._handle:
                self._previous[signum] = current
                signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers (and Tune's setting) :meth:`install` replaced, and forget any
        signal received."""
        if self._previous:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            if self._tune_env is None:
                os.environ.pop(_TUNE_ENV, None)
            else:
                os.environ[_TUNE_ENV] = self._tune_env
        self._previous.clear()
        self.received = None
        self._forwarded_to = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            print(f"taso-tune: {name} again: stopping at once", file=sys.stderr, flush=True)
            raise KeyboardInterrupt(name)
        self.received = signum
        if not _in_tune_run(frame):
            raise KeyboardInterrupt(name)
        print(
            f"taso-tune: {name}: stopping the trials and saving the sweep's state "
            f"(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        self.forward_to_tune()

    def forward_to_tune(self) -> None:
        """Ask the Tune run in progress to stop, once per run (see :class:`StopAfterSignal`)."""
        handler = _tune_stop_handler()
        if handler is not None and handler is not self._forwarded_to:
            self._forwarded_to = handler
            # Tune would repeat our line and then point at its Tuner.restore(): taso-tune says resume
            logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
            handler(signal.SIGUSR1, None)


#: The stop-signal handler of this process.
SIGNALS = StopSignals()


class StopAfterSignal(tune.Callback):
    """Ends an interrupted Tune run with :class:`SweepInterrupted` once Tune has saved its state
    (:class:`StorageInterrupted` when a full storage stopped it).

    It also forwards a signal that came while the run was starting (before Tune's handler was in
    place) at the run's next step. It holds no state, so it pickles into ``tuner.pkl`` and works the
    same in a resumed run.
    """

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if trials:
            STORAGE.poll_trials(trials[0].storage.experiment_dir_name)
        if SIGNALS.received is not None or STORAGE.fault is not None:
            SIGNALS.forward_to_tune()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if SIGNALS.received is not None:
            raise SweepInterrupted(SIGNALS.received)
        if STORAGE.fault is not None:
            raise StorageInterrupted(STORAGE.fault)


class StorageInterrupted(KeyboardInterrupt):
    """The storage took no more writes; the sweep stopped after Tune saved what it could.
    ``fault`` is the error's first line."""

    signum = None

    def __init__(self, fault: str) -> None:
        super().__init__(fault)
        self.fault = fault


class StorageFaults(logging.Filter):
    """The storage faults the driver met (one per process: :data:`STORAGE`), and the filter that takes
    them out of Ray's log: a full disk is reported once, in the driver's last line, not as the
    traceback of every failed copy."""

    def __init__(self) -> None:
        super().__init__()
        self.fault: str | None = None
        self._polled = -POLL_S

    def install(self) -> None:
        for name in _STORAGE_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        for name in _STORAGE_LOGGERS:
            logging.getLogger(name).removeFilter(self)
        self.fault = None
        self._polled = -POLL_S

    def note(self, fault: str) -> None:
        """Record ``fault`` (the first one met is kept)."""
        if self.fault is None:
            self.fault = fault

    def filter(self, record: logging.LogRecord) -> bool:
        err = storage_full(record.exc_info[1] if record.exc_info else None)
        if err is not None:
            self.note(first_line(err))
            return False
        text = record.getMessage()
        line = next((x for x in reversed(text.splitlines()) if storage_full(OSError(x))), None)
        if line is not None:
            self.note(line.strip())
            return False
        return True

    def poll_trials(self, experiment: str) -> None:
        """Note a fault that a trial of the Tune run ``experiment`` posted (:func:`wait_for_stop`);
        asks Ray at most every :data:`POLL_S` seconds (Tune's loop steps far more often)."""
        now = time.monotonic()
        if self.fault is not None or now - self._polled < POLL_S:
            return
        self._polled = now
        if not internal_kv._internal_kv_initialized():
            return
        keys = internal_kv._internal_kv_list(f"{_KV_PREFIX}{experiment}/")
        if keys:
            value = internal_kv._internal_kv_get(keys[0])
            self.note(value.decode() if value else "the storage took no more writes")
            for key in keys:
                internal_kv._internal_kv_del(key)


#: The storage faults of this process.
STORAGE = StorageFaults()


def wait_for_stop(err: OSError) -> None:
    """In a trial that met a full storage: tell the driver, then wait for it to stop the trial (the
    checkpoint before stays the trial's last, so resume continues from it). Should no driver stop
    it within :data:`TRIAL_STOP_WAIT_S` (one that predates this mechanism), ``err`` is raised."""
    context = tune.get_context()
    key = f"{_KV_PREFIX}{context.get_experiment_name()}/{context.get_trial_id()}"
    internal_kv._internal_kv_put(key, f"trial {context.get_trial_name()}: {first_line(err)}")
    print(
        f"the storage takes no more writes ({first_line(err)}): waiting for the driver to stop the sweep",
        file=sys.stderr,
        flush=True,
    )
    deadline = time.monotonic() + TRIAL_STOP_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.5)
    raise err
