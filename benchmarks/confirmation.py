"""The Fashion-MNIST confirmation study (``make confirm``): equal tuning budgets, interior picks, fresh
seeds, one pre-declared family of comparisons against TASO.

1. Selection: ``taso-tune sweep search_spaces/reproduction/fashion_confirmation.yaml``: ten families
   (TASO; SGD with a constant rate, cosine, WSD and schedule-free; Adam, AMSGrad, RMSProp, Adagrad,
   Schedule-Free AdamW), a 4-point learning-rate grid each, 5 seeds (0-4), selection on validation.
2. The checks before the confirmation: every configuration finished all its seeds, every family has
   a pick, and no pick is the smallest or largest rate of its grid (the export's grid-edge
   warning); otherwise the study stops (exit 1) and says what to widen.
3. ``taso-tune export`` of the selection, then ``taso-tune apply`` of it with ``--seeds 10
   --seed-start 10``: each pick trained on seeds 10-19, which no earlier study of this split used.
4. The comparisons declared before the run: every other family's pick against TASO's, on test
   accuracy, paired by seed, Holm-corrected over the comparisons made
   (:func:`taso_tune.stats.verdict.compare_to_reference`), with TOST at a 0.5-point margin.

The tables and the findings (each sentence generated from its row) are written into
docs/reproduction.md between markers (the findings also into the README), with the commands, wall
times, seeds and provenance read from the results; the reports go to dashboards/reproduction/.

    python benchmarks/confirmation.py [--storage DIR] [--seeds N]

A rerun resumes what an interrupted run left; a sweep's wall time is logged when it finishes in one
go (an interrupted one is left out of the total, which the doc's command list shows).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import write_between_markers  # noqa: E402
from confirmation_tables import families, readme_findings, render_confirmation  # noqa: E402
from reproduce import PROTOCOLS, Study  # noqa: E402

from taso_tune.core.errors import ConfigError  # noqa: E402
from taso_tune.results.experiment import Experiment, load_experiment  # noqa: E402
from taso_tune.results.export import load_defaults  # noqa: E402

SPACE = "search_spaces/reproduction/fashion_confirmation.yaml"
#: The family every other is compared with, declared before the run.
REFERENCE = "taso"
#: The confirmation's first seed: above every seed an earlier Fashion-MNIST study of this split
#: trained (the paper's protocol, docs/reproduction.md Part 2, used 0-9), so no result of the
#: confirmation's seeds was seen before it ran.
SEED_START = 10
MARKERS = ("<!-- confirmation-fashion:begin -->", "<!-- confirmation-fashion:end -->")
README_MARKERS = ("<!-- findings:begin -->", "<!-- findings:end -->")


def selection_problems(experiment: Experiment, document: dict) -> list[str]:
    """Why the selection (``experiment``, exported as ``document``) cannot go on to the
    confirmation: a configuration without all its seeds finished (its mean is not comparable), a
    family of the space without a pick, a pick on the edge of its grid. Empty when it can."""
    table = experiment.aggregated
    problems = [
        f"{row.config_id}: {row.n} of {row.planned} seeds finished ({row.status or 'unfinished'})"
        for row in table.itertuples()
        if not row.comparable
    ]
    picks = document["optimizers"]
    problems += [f"{name}: no pick" for name in families(experiment) if name not in picks]
    problems += [
        f"{name}: {warning}" for name, entry in picks.items() for warning in entry["grid_edges"]
    ]
    return problems


def run(args: argparse.Namespace) -> int:
    os.chdir(REPO)
    # paths relative to the repository (the commands run there): nothing of this machine's layout
    # ends up in the reports' provenance or the docs
    storage, reports = (
        Path(os.path.relpath(Path(p).resolve(), REPO)) for p in (args.storage, args.reports)
    )
    storage.mkdir(parents=True, exist_ok=True)
    study = Study(storage, reports, "confirmation-")
    selection = study.sweep("selection", SPACE)
    defaults = storage / "selection-defaults.yaml"
    confirmation = storage / "confirmation"
    if not confirmation.exists():  # the file the confirmation applies is never rewritten
        study.export(selection, defaults)
    document = load_defaults(str(defaults))
    problems = selection_problems(load_experiment(str(selection)), document)
    if problems:
        for problem in problems:
            print(f"selection: {problem}", file=sys.stderr)
        print(
            f"error: the selection cannot be confirmed as it is. Widen the grids of {SPACE} where a "
            f"pick is on an edge, remove {selection} (a rerun resumes it as it was) and run again.",
            file=sys.stderr,
        )
        return 1
    if REFERENCE not in document["optimizers"]:
        raise ConfigError("reference", REFERENCE, f"{defaults} has no pick of it to compare with")
    epochs = int(document["provenance"]["epochs"])
    # the selection's data, on fresh seeds from SEED_START
    flags = PROTOCOLS["fashion_mnist"].pair(args.seeds)
    flags += ["--seed-start", str(SEED_START), "--epochs", str(epochs)]
    study.sweep("confirmation", str(defaults), *flags, command="apply")

    selected = load_experiment(str(selection))
    confirmed = load_experiment(str(confirmation))
    block, findings = render_confirmation(selected, confirmed, document, study.log, REFERENCE)
    write_between_markers(Path(args.doc), *MARKERS, block)
    write_between_markers(
        Path(args.readme),
        *README_MARKERS,
        readme_findings(findings, confirmed, document, REFERENCE),
    )
    total = sum(seconds for _, seconds in study.log)
    print(f"\nconfirmation study: {total / 60:.1f} min; tables in {args.doc}; reports in {reports}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--storage", default="runs/confirmation-fashion", help="results root (default: %(default)s)"
    )
    parser.add_argument(
        "--seeds", type=int, default=10, help="fresh seeds of the confirmation (default: 10)"
    )
    parser.add_argument("--reports", default=str(REPO / "dashboards/reproduction"))
    parser.add_argument("--doc", default=str(REPO / "docs/reproduction.md"))
    parser.add_argument("--readme", default=str(REPO / "README.md"))
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds: {args.seeds}: a paired comparison needs at least 2 seeds")
    try:
        return run(args)
    except ConfigError as err:
        print(f"confirmation: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
