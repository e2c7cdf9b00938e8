"""The ``taso-tune`` command line: a thin layer, one call into the library per command.

Bad input (a :class:`~taso_tune.errors.ConfigError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from taso_tune import __version__
from taso_tune.commands import COMMANDS
from taso_tune.errors import ConfigError


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default", UserWarning)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(f"taso-tune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"taso-tune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
