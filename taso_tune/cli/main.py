"""The ``taso-tune`` command line: a thin layer, one call into the library per command.

Bad input (a :class:`~taso_tune.core.errors.ConfigError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from taso_tune import __version__
from taso_tune.cli.commands import COMMANDS
from taso_tune.core.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taso-tune",
        description="Hyperparameter search on Ray Tune around the Training Aware Sigmoidal Optimizer.",
    )
    parser.add_argument("--version", action="version", version=f"taso-tune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """``warning: MESSAGE``: a warning is advice to the user, not a pointer into our source."""
    return f"warning: {message}\n"


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head``): point stdout at devnull, so the interpreter's
    own flush at exit does not fail again with a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _let_stop_signals_in() -> None:
    """Unblock SIGINT and SIGTERM in this thread. A process inherits its parent's signal mask, and
    a parent that runs Ray in-process (a test runner, a notebook) can have them blocked: Ctrl-C and
    ``kill`` would then stay pending for ever instead of stopping the sweep."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def main(argv: Sequence[str] | None = None) -> int:
    _let_stop_signals_in()
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default", UserWarning)
    warnings.formatwarning = format_warning
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(f"taso-tune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except KeyboardInterrupt as err:  # a sweep stopped by SIGTERM says so in ``signum``
        signum = int(getattr(err, "signum", signal.SIGINT))
        print(
            f"taso-tune {args.command}: interrupted ({signal.Signals(signum).name})",
            file=sys.stderr,
        )
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
