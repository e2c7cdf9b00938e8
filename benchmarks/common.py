"""Shared pieces of the benchmarks: side-by-side timing, the results table and the machine facts.

Every benchmark measures its two sides in the same run, alternating them (A B, B A, A B, ...) so a
slow moment of a shared machine hits both, and reports the median over the repeats and the ratio of
the medians. Each section returns :class:`Row` objects; ``run_all.py`` prints them as one table.

This module imports neither Ray nor taso_tune, so ``gpu.py`` can use it on a machine that has only
torch and torchvision.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def add_repo_to_path() -> None:
    """Make ``import taso_tune`` work from a plain checkout (no ``pip install``)."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


# --- targets and rows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on a figure: ``Target("<=", 1.05)`` (a ratio) or ``Target("<=", 1.5, " s")``."""

    op: Literal["<=", ">="]
    bound: float
    unit: str = ""

    def holds(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Row:
    """One line of the results table: a measurement, its baseline and their ratio against a target.

    ``value`` and ``baseline`` are already formatted with their units; ``ratio`` is value/baseline
    (or whatever the measure says), ``None`` where the row is a plain figure. The target judges
    ``judged`` when given (an absolute figure, seconds say), else the ratio.
    """

    section: str
    measure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    judged: float | None = None

    @property
    def verdict(self) -> str:
        figure = self.judged if self.judged is not None else self.ratio
        if self.target is None or figure is None:
            return ""
        return "met" if self.target.holds(figure) else "**missed**"


TABLE_HEADER = ("section", "measure", "value", "baseline", "ratio", "target", "verdict", "note")


def format_table(rows: Iterable[Row]) -> str:
    """The rows as one markdown table."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        target = "" if row.target is None else str(row.target)
        cells = (
            row.section,
            row.measure,
            row.value,
            row.baseline,
            ratio,
            target,
            row.verdict,
            row.note,
        )
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


# --- timing -----------------------------------------------------------------------------------


def interleaved(sides: Mapping[str, Callable[[], T]], repeats: int) -> dict[str, list[T]]:
    """Call each side once per round for ``repeats`` rounds, reversing the order every other round.

    Each callable returns its own measurement (seconds, images/s, a dict of figures), so a side may
    time only part of what it does (without its set-up, say).
    """
    names = list(sides)
    out: dict[str, list[T]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            out[name].append(sides[name]())
    return out


def reset_peak_rss() -> bool:
    """Start this process's resident-memory high-water mark (VmHWM) afresh from its current RSS
    (Linux: ``5`` written to ``/proc/self/clear_refs``); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """This process's resident-memory high-water mark, MiB: since the last :func:`reset_peak_rss`
    (Linux's VmHWM), else since it started (``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- the machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_facts() -> dict[str, str]:
    """The facts a table needs beside it: CPU, cores, memory, GPU and library versions."""
    import torch

    facts = {"cpu": cpu_model(), "cores": str(usable_cores())}
    try:
        import psutil

        facts["memory"] = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        pass
    facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    facts["python"] = platform.python_version()
    facts["torch"] = torch.__version__
    for name in ("torchvision", "ray"):
        try:
            facts[name] = __import__(name).__version__
        except ImportError:
            facts[name] = "not installed"
    return facts


def format_facts(facts: Mapping[str, str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in facts.items())


# --- command line -----------------------------------------------------------------------------


def section_main(
    run: Callable[[bool], list[Row]], description: str, argv: Sequence[str] | None = None
) -> None:
    """``python benchmarks/X.py [--quick]``: run one section and print its table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny version (seconds), for smoke tests"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(args.quick)
    print(format_table(rows))
    print(f"\n{format_facts(machine_facts())}; {time.perf_counter() - start:.0f} s")


# --- the docs ---------------------------------------------------------------------------------


def write_between_markers(path: Path, begin: str, end: str, block: str) -> None:
    """Put ``block`` between the ``begin`` and ``end`` lines of ``path``, keeping the rest of the file
    (the markers are appended when missing)."""
    text = path.read_text() if path.exists() else ""
    if begin not in text or end not in text:
        text = f"{text.rstrip()}\n\n{begin}\n{end}\n".lstrip()
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    from taso_tune.core.storage import write_text_atomic

    write_text_atomic(str(path), f"{head}{begin}\n{block.strip()}\n{end}{tail}")
