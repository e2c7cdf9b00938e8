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
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from ray import tune

#: The signals that stop a sweep.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TUNE_RUN_FILE = os.path.join("ray", "tune", "tune.py")
_TUNE_ENV = "TUNE_DISABLE_SIGINT_HANDLER"


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
    """Ends an interrupted Tune run with :class:`SweepInterrupted` once Tune has saved its state.

    It also forwards a signal that came while the run was starting (before Tune's handler was in
    place) at the run's next step. It holds no state, so it pickles into ``tuner.pkl`` and works the
    same in a resumed run.
    """

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if SIGNALS.received is not None:
            SIGNALS.forward_to_tune()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if SIGNALS.received is not None:
            raise SweepInterrupted(SIGNALS.received)
