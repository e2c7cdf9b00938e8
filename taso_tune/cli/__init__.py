"""The ``taso-tune`` command line: one module per command, each a thin call into the library."""

from taso_tune.cli.main import build_parser, format_warning, main

__all__ = ["build_parser", "format_warning", "main"]
