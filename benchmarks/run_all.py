"""Run every benchmark section (``make bench``), print one table and keep it in docs/benchmarks.md.

    python benchmarks/run_all.py            # about 23 minutes on 2 CPU cores
    python benchmarks/run_all.py --quick    # tiny versions, to check the scripts (figures meaningless)

Sections: 1 trial overhead, 2 sweep overhead, 3 input path, 4 early stopping, 5 memory, 6 seed
packing (one module each, each runnable alone). The table goes between the ``bench`` markers of docs/benchmarks.md with
the command, the date, the machine and the total time; the rest of the document is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import early_stopping_quickstart
import input_path
import memory
import seed_packing
import sweep_overhead
import trial_overhead
from common import REPO_ROOT, Row, format_facts, format_table, machine_facts, write_between_markers

SECTIONS: dict[str, Callable[[bool], list[Row]]] = {
    "trial_overhead": trial_overhead.run,
    "sweep_overhead": sweep_overhead.run,
    "input_path": input_path.run,
    "early_stopping_quickstart": early_stopping_quickstart.run,
    "memory": memory.run,
    "seed_packing": seed_packing.run,
}
DOC = REPO_ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny versions; the doc is left alone")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows: list[Row] = []
    for name in args.only or SECTIONS:
        began = time.perf_counter()
        rows += SECTIONS[name](args.quick)
        print(f"[{name}: {time.perf_counter() - began:.0f} s]", file=sys.stderr, flush=True)
    total = time.perf_counter() - start
    table = format_table(rows)
    facts = format_facts(machine_facts())
    command = "make bench" + (" (--quick)" if args.quick else "")
    print(f"{table}\n\n{facts}; {total:.0f} s")
    if not args.quick and not args.only:
        block = (
            f"Measured with `{command}` (`python benchmarks/run_all.py`) on {time.strftime('%Y-%m-%d')} in "
            f"{total / 60:.1f} minutes.\nMachine: {facts}.\n\n{table}"
        )
        write_between_markers(DOC, BEGIN, END, block)
        print(f"table written to {DOC.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
