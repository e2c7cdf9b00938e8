"""Markdown of the Fashion-MNIST confirmation study (``confirmation.py``): its tables, and findings
whose every sentence is generated from the row it names, so the doc never says more than the
results.

Table C1 is the selection (equal budgets, whether each pick is interior), C2 the confirmation on
fresh seeds, C3 the pre-declared comparisons against the reference (TASO) by the one verdict rule
(:func:`taso_tune.stats.verdict.compare_to_reference`), with TOST at the default margin.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from reproduction_tables import _acc, _md, _seed_range

from taso_tune.results.experiment import Experiment
from taso_tune.results.significance import seed_values
from taso_tune.stats.seeds import ACCURACY_DIFFERENCE_RANGE, MISSING_TEXT
from taso_tune.stats.verdict import (
    DEFAULT_LEVEL,
    DEFAULT_MARGIN,
    ReferenceComparison,
    compare_to_reference,
    equivalence_text,
    format_difference,
    verdict_text,
)

METRIC = "test_acc"


def _rate(value: float) -> str:
    return f"{value:g}"


def _points(value: float | None) -> str:
    return MISSING_TEXT if value is None or value != value else f"{value * 100:.2f}"


def _p(value: float | None) -> str:
    """A p-value as the report prints it (three decimals, "< 0.001" below that)."""
    if value is None or value != value:
        return MISSING_TEXT
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _notes(row: pd.Series) -> str:
    """A configuration's seeds at chance or diverged, as every table flags them."""
    return row["status"] or ""


def selection_table(selection: Experiment, edges: dict[str, list[str]]) -> str:
    """Table C1: each family's grid, its pick and whether the pick is interior."""
    table = selection.aggregated
    best = selection.best("val").set_index("optimizer")
    rows = []
    for family, pick in best.iterrows():
        mine = table[table["optimizer"] == family].sort_values("hp.lr")
        rates = ", ".join(
            (f"**{_rate(r['hp.lr'])}: {_points(r['val_acc_mean'])}**")
            if r["config_id"] == pick["config_id"]
            else f"{_rate(r['hp.lr'])}: {_points(r['val_acc_mean'])}"
            for _, r in mine.iterrows()
        )
        rows.append(
            {
                "family": family,
                "configurations": len(mine),
                "val acc % by lr (mean over the seeds; the pick in bold)": rates,
                "pick's val acc %": _acc(pick, "val_acc"),
                "n": f"{int(pick['n'])}/{int(pick['planned'])}",
                "pick interior": "no: " + "; ".join(edges[family]) if edges.get(family) else "yes",
                "notes": _notes(pick),
            }
        )
    return _md(rows)


def confirmation_table(confirmation: Experiment) -> str:
    """Table C2: each family's pick on the fresh seeds, best test mean first."""
    table = confirmation.aggregated.sort_values("test_acc_mean", ascending=False)
    return _md(
        [
            {
                "family": row["optimizer"],
                "lr": _rate(row["hp.lr"]),
                "test acc %": _acc(row, "test_acc"),
                "val acc %": _acc(row, "val_acc"),
                "n": f"{int(row['n'])}/{int(row['planned'])}",
                "diverged": int(row["diverged"]),
                "notes": _notes(row),
            }
            for _, row in table.iterrows()
        ]
    )


def _by_family(confirmation: Experiment, column: str) -> dict[str, object]:
    """``column`` of the confirmation's one configuration per family, by family."""
    table = confirmation.aggregated
    if table["optimizer"].duplicated().any():
        raise ValueError(f"{confirmation.path}: a confirmation trains one configuration per family")
    return dict(zip(table["optimizer"], table[column], strict=True))


def families(selection: Experiment) -> list[str]:
    """The families the study declared: every optimizer of the selection's space."""
    blocks = selection.spec.blocks if selection.spec is not None else []
    return sorted({o for block in blocks for o in block["optimizer"].options})


def comparisons(
    confirmation: Experiment, reference: str, declared: list[str]
) -> dict[str, ReferenceComparison]:
    """The declared family: every other family of ``declared`` against ``reference``'s pick, on
    test accuracy, paired by seed, Holm over those compared, TOST at :data:`DEFAULT_MARGIN`; a
    family the confirmation did not train is "not compared" (no pick)."""
    ids = _by_family(confirmation, "config_id")
    if reference not in ids:
        raise ValueError(f"{confirmation.path}: no {reference} pick, the declared reference")
    values = {name: seed_values(confirmation, config, METRIC) for name, config in ids.items()}
    found = compare_to_reference(
        values[reference],
        {name: values[name] for name in declared if name != reference and name in values},
        mode="max",
        bounds=ACCURACY_DIFFERENCE_RANGE,
        margin=DEFAULT_MARGIN,
    )
    missing = {
        name: ReferenceComparison("not compared", 0, reason="no pick")
        for name in declared
        if name != reference and name not in values
    }
    return {**found, **missing}


def _by_difference(found: dict[str, ReferenceComparison]) -> list[str]:
    """The compared families, largest difference first, then those not compared."""
    return sorted(found, key=lambda n: (found[n].difference is None, -(found[n].difference or 0.0)))


def _comparisons(m: int) -> str:
    return f"the {m} comparisons" if m != 1 else "the 1 comparison"


def _compared(found: dict[str, ReferenceComparison]) -> int:
    return sum(1 for c in found.values() if c.verdict != "not compared")


def comparison_table(
    found: dict[str, ReferenceComparison], means: dict[str, float], reference: str
) -> str:
    """Table C3: the declared comparisons, best difference first."""
    return _md(
        [
            {
                "family": name,
                "n": c.n,
                "test acc %": _points(means.get(name)),
                f"difference to {reference} (points) [Holm-adjusted interval]": format_difference(
                    c.difference, c.ci_low, c.ci_high
                ),
                "interval's confidence": MISSING_TEXT
                if c.confidence is None
                else f"{c.confidence:.1%}",
                "p (paired t)": _p(c.p_value),
                "p (Holm)": _p(c.p_holm),
                "verdict": verdict_text(
                    c.verdict, selected_on=METRIC, compared_on=METRIC, reason=c.reason
                ),
                f"TOST at ±{DEFAULT_MARGIN * 100:g} points": equivalence_text(c.equivalence),
            }
            for name in _by_difference(found)
            for c in [found[name]]
        ]
    )


def _listed(names: list[str], found: dict[str, ReferenceComparison]) -> str:
    return "; ".join(
        f"{n} ({format_difference(found[n].difference, found[n].ci_low, found[n].ci_high)} points)"
        for n in names
    )


def findings(
    reference: str,
    selection: Experiment,
    found: dict[str, ReferenceComparison],
    confirmation: Experiment,
    fresh: bool,
) -> list[str]:
    """The findings, one sentence a fact, each naming its table and rows; ``fresh`` says whether the
    confirmation's seeds are all unused by the selection."""
    declared = families(selection)
    counts = selection.aggregated.groupby("optimizer").size().reindex(declared, fill_value=0)
    sizes = sorted(set(int(c) for c in counts))
    budget = (
        f"Every one of the {len(declared)} families was tuned on the same {sizes[0]} "
        "configurations (table C1, column configurations)."
        if len(sizes) == 1
        else "The families were tuned on unequal numbers of configurations ("
        + ", ".join(f"{name} {int(c)}" for name, c in counts.items())
        + "; table C1)."
    )
    table = confirmation.aggregated.set_index("optimizer")
    ref = table.loc[reference]
    lines = [
        budget,
        f"{reference}'s pick (lr {_rate(ref['hp.lr'])}) reached {_acc(ref, 'test_acc')} % test "
        f"accuracy over n={int(ref['n'])} {'fresh ' if fresh else ''}seeds (table C2, row "
        f"{reference}).",
    ]
    # a flagged reference seed enters every paired difference: every verdict sentence says so
    caveat = f"; {reference}'s own seeds: {ref['status']}" if ref["status"] else ""
    by_verdict: dict[str, list[str]] = {}
    for name in _by_difference(found):
        by_verdict.setdefault(found[name].verdict, []).append(name)
    m = _compared(found)
    for verdict, words in (("better", "better than"), ("worse", "worse than")):
        names = by_verdict.get(verdict, [])
        lines.append(
            f"Shown {words} {reference} at {DEFAULT_LEVEL:.0%} (Holm over {_comparisons(m)}; "
            f"table C3, rows {', '.join(names)}{caveat}): {_listed(names, found)}."
            if names
            else f"No family was shown {words} {reference} at {DEFAULT_LEVEL:.0%} (Holm over "
            f"{_comparisons(m)}; table C3, column verdict{caveat})."
        )
    unclear = by_verdict.get("no difference shown", [])
    if unclear:
        lines.append(
            f"No difference from {reference} was shown for {', '.join(unclear)} (table C3"
            f"{caveat}): the seeds cannot tell them apart, which is not the same as equal."
        )
    equivalent = [n for n, c in found.items() if c.equivalence and c.equivalence.equivalent]
    margin = f"±{DEFAULT_MARGIN * 100:g} points"
    lines.append(
        f"Equivalent to {reference} within {margin} by TOST (Holm-adjusted; table C3, last "
        f"column): {', '.join(equivalent)}."
        if equivalent
        else f"No family was shown equivalent to {reference} within {margin} (TOST, "
        "Holm-adjusted; table C3, last column)."
    )
    skipped = by_verdict.get("not compared", [])
    if skipped:
        lines.append(
            "Not compared (table C3): "
            + "; ".join(f"{n} ({found[n].reason})" for n in skipped)
            + "."
        )
    flagged = [f"{name} ({row['status']})" for name, row in table.iterrows() if row["status"]]
    if flagged:
        lines.append(f"Seeds flagged in table C2: {'; '.join(flagged)}.")
    return lines


def render_confirmation(
    selection: Experiment,
    confirmation: Experiment,
    document: dict,
    log: list[tuple[str, float]],
    reference: str,
) -> tuple[str, list[str]]:
    """All the study's Markdown (header with sizes, seeds and provenance from the results, tables
    C1-C3, the findings, the commands with their wall times) and the findings' sentences."""
    edges = {name: entry.get("grid_edges") or [] for name, entry in document["optimizers"].items()}
    c1 = selection_table(selection, edges)
    found = comparisons(confirmation, reference, families(selection))
    means = _by_family(confirmation, "test_acc_mean")
    seeds = {
        name: sorted({int(s) for s in e.trials["seed"]})
        for name, e in (("selection", selection), ("confirmation", confirmation))
    }
    overlap = set(seeds["selection"]) & set(seeds["confirmation"])
    sizes = confirmation.trials.iloc[0]
    split = (
        f"{int(sizes['train_size']):,} train / {int(sizes['val_size']):,} validation / "
        f"{int(sizes['test_size']):,} test images"
    )
    provenance = document["provenance"]
    epochs = int(provenance["epochs"])
    total = sum(seconds for _, seconds in log)
    commands = _md([{"command": f"`{c}`", "wall time": f"{s / 60:.1f} min"} for c, s in log])
    runs = _md(
        [
            {
                "experiment": name,
                "configurations": e.trials["config_id"].nunique(),
                "seed runs": len(e.trials),
                "epochs run": int(e.trials["epochs_run"].sum()),
            }
            for name, e in (("selection", selection), ("confirmation", confirmation))
        ]
    )
    sentences = findings(reference, selection, found, confirmation, not overlap)
    lines = "\n".join(f"- {line}" for line in sentences)
    text = f"""Measured by `make confirm` (`python benchmarks/confirmation.py`), rendered {date.today():%Y-%m-%d}:
{sizes["model"]} on {sizes["dataset"]} ({split}), {epochs} epochs (the paper: 100). Seeds, from the results:
the selection on {_seed_range(seeds["selection"])}, the confirmation on
{_seed_range(seeds["confirmation"])} ({"no seed in common" if not overlap else f"seeds {sorted(overlap)} in common"}).
The defaults file the confirmation applied records its provenance: experiment
`{provenance.get("experiment", MISSING_TEXT)}`, selected on {provenance.get("selected_on", MISSING_TEXT)}, seeds
{_seed_range(provenance.get("seeds") or [])}, exported {provenance.get("exported", MISSING_TEXT)}.
Mean ± sample std and [95% interval, inside 0-100] over n of the planned seeds; a diverged seed
counts at chance level (10%). The sweeps took {total / 60:.1f} min in all.

#### Table C1: selection, each family's learning-rate grid ({_seed_range(seeds["selection"])})

{c1}

#### Table C2: each family's pick on the confirmation's seeds ({_seed_range(seeds["confirmation"])})

{confirmation_table(confirmation)}

#### Table C3: the comparisons declared before the run, each family against {reference}

Test accuracy, paired by seed over the confirmation's seeds, Holm-corrected over
{_comparisons(_compared(found))} made; the interval beside a verdict is Holm-adjusted (it excludes 0 exactly when the verdict
says better or worse; it is not simultaneous); TOST at ±{DEFAULT_MARGIN * 100:g} points says where a
difference is shown to be smaller than the margin.

{comparison_table(found, means, reference)}

#### Findings (each generated from the row it names)

{lines}

#### Commands and wall times

{commands}

{runs}"""
    return text, sentences


def readme_findings(
    sentences: list[str], confirmation: Experiment, document: dict, reference: str
) -> str:
    """The README's findings: the doc's generated ``sentences``, pointing at its tables."""
    sizes = confirmation.trials.iloc[0]
    head = (
        f"The confirmation study ({sizes['model']} on {sizes['dataset']}, "
        f"{int(document['provenance']['epochs'])} epochs; every family against {reference}, the "
        "comparisons declared before the run; tables C1-C3 of "
        "[docs/reproduction.md](docs/reproduction.md), this list generated from them by "
        "`make confirm`):"
    )
    tail = (
        "One model, one data set, a short run: these are findings about these picks on this pair, "
        "not about the optimizers in general."
    )
    return "\n".join([head, "", *(f"- {line}" for line in sentences), "", tail])
