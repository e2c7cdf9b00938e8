"""Measure ASHA's short-horizon bias and the schedulers that answer it on one space (``make bench-early-stopping``).

Runs the space five times: to the end; under ASHA judging each configuration by its mean over seeds;
under budget-sh, its first budget a fifth of the planned epochs; under cooldown-asha (ASHA's rungs,
each trial judged by cooldown branches); under top-k (the ``ceil(n / eta)`` best after ASHA's first
rung of un-decayed training, run to the end). Its statistics are read off the full sweep, whose
first epochs are the top-k run's bit for bit (``tests/test_top_k.py``); the top-k run gives its wall
time and is checked to keep the same configurations.
``taso_tune.results.studies.early_stopping.compare`` compares them; the tables
go into docs/early-stopping.md between the markers, and a comparison page into dashboards/reproduction/.

    python benchmarks/early_stopping_bias.py [--data digits|fashion_mnist] [--space FILE] [--storage DIR]

``--data fashion_mnist`` (``make bench-early-stopping DATA=fashion_mnist``) runs the Fashion-MNIST space
(Debian's package dataset-fashion-mnist) and writes its own section of the doc and its own page.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT as REPO
from common import add_repo_to_path, cpu_model, usable_cores, write_between_markers

add_repo_to_path()

from taso_tune.core.storage import result_records  # noqa: E402
from taso_tune.results.experiment import load_experiment  # noqa: E402
from taso_tune.results.studies.early_stopping import (  # noqa: E402
    compare,
    to_markdown,
    top_k,
)
from taso_tune.results.studies.early_stopping_page import write_comparison_page  # noqa: E402
from taso_tune.spaces import SweepSpec, load_space, load_space_dict, with_overrides  # noqa: E402
from taso_tune.tuning import resume_sweep, run_sweep  # noqa: E402

#: data set -> (space, doc marker, page)
STUDIES = {
    "digits": ("search_spaces/early_stopping.yaml", "early-stopping", "early-stopping.html"),
    "fashion_mnist": (
        "search_spaces/early_stopping_fashion.yaml",
        "early-stopping-fashion",
        "early-stopping-fashion.html",
    ),
}


METHODS = ("none", "asha", "budget-sh", "cooldown-asha", "top-k")
#: budget-sh's first budget, as a share of the planned epochs: the first rung's runs are a fifth of
#: the real run (one epoch of ten would judge 1-epoch runs, a different experiment).
BUDGET_SH_FIRST = 0.2


def method_spec(spec: SweepSpec, method: str, name: str) -> SweepSpec:
    """The space under one method: ASHA's and cooldown-asha's rungs are the space's, top-k's rung
    its first; budget-sh's first budget is :data:`BUDGET_SH_FIRST` of the planned epochs."""
    if method == "top-k":  # paused trials count against it; the cores cap trials at once the same
        uncapped = {k: v for k, v in spec.to_dict().items() if k != "max_concurrent"}
        spec = load_space_dict(uncapped, source=spec.source)
    data = with_overrides(spec, scheduler=method, name=name).to_dict()
    if method == "budget-sh":
        data["scheduler"]["min_epochs"] = max(1, round(BUDGET_SH_FIRST * spec.epochs))
    return load_space_dict(data, source=spec.source)


def sweep_wall_from_results(experiment: Path) -> float:
    """Seconds from the first trial's start to the last report, read from the trials' results."""
    starts, ends = [], []
    for result in experiment.rglob("result.json"):
        records = result_records(result.read_text(), str(result))
        if records:
            starts.append(records[0]["timestamp"] - records[0]["time_this_iter_s"])
            ends.append(records[-1]["timestamp"])
    return max(ends) - min(starts) if starts else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        choices=list(STUDIES),
        default="digits",
        help="which study: its space, doc section and page (default: digits)",
    )
    parser.add_argument("--space", help="the space to run (default: the study's)")
    parser.add_argument(
        "--storage",
        help="where the five experiments go (default: a temporary folder); "
        "a rerun on the same folder resumes them",
    )
    parser.add_argument("--doc", default=str(REPO / "docs/early-stopping.md"))
    parser.add_argument(
        "--page", help="the comparison page (default: the study's, in dashboards/reproduction/)"
    )
    args = parser.parse_args(argv)
    space, marker, page = STUDIES[args.data]
    args.space = args.space or str(REPO / space)
    args.page = args.page or str(REPO / "dashboards/reproduction" / page)
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"

    storage = args.storage or tempfile.mkdtemp(prefix="taso-tune-es-")
    spec = load_space(args.space)
    walls: dict[str, float] = {}
    paths: dict[str, str] = {}
    walls_file = Path(storage) / "walls.json"
    walls.update(json.loads(walls_file.read_text()) if walls_file.exists() else {})
    for method in METHODS:
        name = f"{spec.name}-{method}"
        paths[method] = os.path.join(storage, name)
        start = time.perf_counter()
        if os.path.isdir(
            paths[method]
        ):  # a rerun on the same --storage continues what was interrupted
            print(f"== {name}: resuming ==", flush=True)
            resume_sweep(paths[method])
        else:
            print(f"== {name} ==", flush=True)
            run_sweep(method_spec(spec, method, name), storage, name=name)
            walls[method] = time.perf_counter() - start
            walls_file.write_text(json.dumps(walls))
        if method not in walls:  # interrupted before its wall was kept: from its trials' timestamps
            walls[method] = sweep_wall_from_results(Path(paths[method]))
    full = load_experiment(paths["none"])
    methods = {m: load_experiment(paths[m]) for m in METHODS if m not in ("none", "top-k")}
    rungs = spec.scheduler.asha_rungs(spec.epochs)
    k = math.ceil(len(spec.configurations()) / spec.scheduler.reduction_factor)
    baseline = top_k(full, rungs[0], k)
    kept = set(load_experiment(paths["top-k"]).trials.query("epochs_run > @rungs[0]")["config_id"])
    if kept != set(baseline.kept):  # only equal rung scores may be broken differently
        print(f"top-k run kept {sorted(kept)}, the full sweep's rung ranks {sorted(baseline.kept)}")
    comparison = compare(full, methods, asha_rung_epochs=rungs, baseline=baseline)
    comparison.summary.insert(2, "wall_seconds", [round(walls[m]) for m in METHODS])

    command = f"python benchmarks/early_stopping_bias.py --data {args.data} --space {os.path.relpath(args.space, REPO)}"
    machine = f"{cpu_model()}, {usable_cores()} cores"
    block = (
        f"Measured with `{command}` ({time.strftime('%Y-%m-%d')}, {machine}, CPU only).\n\n"
        f"{to_markdown(comparison)}"
    )
    print(block)
    doc = Path(args.doc)
    write_between_markers(doc, begin, end, block)
    write_comparison_page(comparison, args.page)
    print(f"tables in {doc}; page in {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
