"""Markdown tables of the reproduction study on LeNet5/Fashion-MNIST (``reproduce.py --data fashion_mnist``).

The same tables as on digits (:mod:`reproduction_tables`), the grids reduced, plus for every final
comparison the paired test of each optimizer against the best one
(:func:`taso_tune.results.significance.paired_comparisons`), and the transfer table: the defaults
tuned on digits applied unchanged, against those tuned on Fashion-MNIST, seed by seed.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from reproduction_tables import (
    _family,
    _md,
    _pm,
    beyond_table,
    final_table,
    grid_tables,
    seeds_sentence,
    selection_table,
    table5,
)

from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.significance import paired_comparisons, seed_values
from taso_tune.stats.seeds import ACCURACY_DIFFERENCE_RANGE, MISSING_TEXT, format_interval
from taso_tune.stats.verdict import compare_pairs

NAMES = ("grids", "table5", "table6", "table7", "suboptimal", "transfer", "beyond")


def _points(value: float | None, sign: bool = True) -> str:
    if value is None or value != value:
        return MISSING_TEXT
    return f"{value * 100:+.2f}" if sign else f"{value * 100:.2f}"


def significance_table(exp: Experiment) -> str:
    """Each optimizer's pick against the best one on test accuracy: paired over seeds, Holm-corrected."""
    table = paired_comparisons(exp)
    if table.empty:
        return "(nothing to compare)"
    rows = []
    for row in table.itertuples():
        interval = (
            MISSING_TEXT
            if row.ci_low != row.ci_low or row.ci_low is None
            else f"[{_points(row.ci_low)}, {_points(row.ci_high)}]"
        )
        rows.append(
            {
                "optimizer": row.optimizer,
                "test acc %": _points(row.mean, sign=False),
                "difference to the reference (points)": _points(row.difference),
                "Holm-adjusted interval": interval,
                "p (paired t)": MISSING_TEXT
                if row.p_value != row.p_value or row.p_value is None
                else f"{row.p_value:.3f}",
                "p (Holm)": MISSING_TEXT
                if row.p_holm != row.p_holm or row.p_holm is None
                else f"{row.p_holm:.3f}",
                "verdict at 5%": row.verdict,
            }
        )
    return _md(rows)


def transfer_table(tuned: Experiment, transferred: Experiment) -> str:
    """Per optimizer: test accuracy with the Fashion-MNIST-tuned defaults and with the digits-tuned
    ones (same fresh seeds), and the one verdict rule on tuned - transferred
    (:func:`taso_tune.stats.verdict.compare_pairs`): paired by seed, Holm across the optimizers,
    the difference with the Holm-adjusted interval that matches the verdict: what tuning on the new
    pair bought."""
    # Adam and AMSGrad are one family, as in the paper's Tables VI-X (each study keeps the better one)
    by_name = {_family(row.optimizer): row.config_id for row in tuned.best().itertuples()}
    moved = {_family(row.optimizer): row.config_id for row in transferred.best().itertuples()}
    names = sorted(set(by_name) & set(moved))
    pairs = {
        name: (
            seed_values(tuned, by_name[name], "test_acc"),
            seed_values(transferred, moved[name], "test_acc"),
        )
        for name in names
    }
    found = compare_pairs(pairs, bounds=ACCURACY_DIFFERENCE_RANGE)
    rows = []
    for name in names:
        mine, theirs = pairs[name]
        verdict = found[name]
        label = (
            name
            if name != "adam"
            else f"adam/amsgrad ({by_name[name].split('_')[0]} vs {moved[name].split('_')[0]})"
        )
        rows.append(
            {
                "optimizer": label,
                "tuned on Fashion-MNIST, test acc %": _points(
                    sum(mine.values()) / len(mine), False
                ),
                "digits defaults unchanged, test acc %": _points(
                    sum(theirs.values()) / len(theirs), False
                ),
                "tuning bought (points)": _points(verdict.difference),
                "Holm-adjusted interval": format_interval(
                    verdict.ci_low, verdict.ci_high, signed=True
                ),
                "p (Holm)": MISSING_TEXT if verdict.p_holm is None else f"{verdict.p_holm:.3f}",
                "verdict at 5%": {
                    "better": "tuning helps",
                    "worse": "tuning hurts",
                    "no difference shown": "no difference shown",
                }.get(verdict.verdict, f"not compared ({verdict.reason})"),
            }
        )
    return _md(rows) + (
        "\n\nThe Holm-adjusted interval excludes 0 exactly when the verdict says tuning helps or "
        "hurts; it is not simultaneous."
    )


def render_fashion_tables(
    storage: Path, log: list[tuple[str, float]], epochs: int, quarter: int, total: float
) -> str:
    """All the Fashion-MNIST study's tables as Markdown."""
    exp = {name: load_experiment(str(storage / name)) for name in NAMES}
    chosen = yaml.safe_load((storage / "fashion_mnist-defaults.yaml").read_text())["optimizers"]
    defaults = _md(
        [
            {
                "optimizer": n,
                "settings": ", ".join(f"{k}={v}" for k, v in e["hparams"].items()),
                "val acc % (selection)": _pm(e["val_acc"]),
                "n": e["val_acc"]["n"],
            }
            for n, e in chosen.items()
        ]
    )
    commands = _md([{"command": f"`{c}`", "wall time": f"{s / 60:.1f} min"} for c, s in log])
    epoch_rows = _md(
        [
            {
                "experiment": n,
                "seed runs": len(e.trials),
                "epochs run": int(e.trials["epochs_run"].sum()),
            }
            for n, e in exp.items()
        ]
    )
    sizes = exp["grids"].trials.iloc[0]
    split = f"{int(sizes['train_size']):,} train / {int(sizes['val_size']):,} validation / {int(sizes['test_size']):,} test"
    return f"""Measured by `make reproduce DATA=fashion_mnist` (`python benchmarks/reproduce.py --data fashion_mnist
--epochs {epochs}`): LeNet5 on Fashion-MNIST ({split} images), {epochs} epochs (the paper: 100), Table VII at
{quarter}, 5 seeds everywhere: mean ± sample std and [95% t interval] over n of the planned seeds, a
diverged seed counted at chance level (10%), selection on the validation split unless said.
{seeds_sentence(exp)} The paired
tests compare test accuracy seed by seed (the same seed gives every optimizer the same initialisation
and data order), Holm-corrected within each table. The sweeps took {total / 60:.1f} min in all.

#### Tables I-IV, reduced: two learning rates per grid

{grid_tables(exp["grids"])}

#### Table V, reduced: TASO alpha x beta (lr and momentum of the Table IV winner)

{table5(exp["table5"])}

#### The chosen defaults

{defaults}

#### Table VI: final comparison with the chosen defaults ({epochs} epochs)

{final_table(exp["table6"], ["VI (VGG19/CIFAR10)"])}

Each optimizer against the best one (paired over the 5 seeds):

{significance_table(exp["table6"])}

#### Table VII: the same at a quarter of the epochs ({quarter} epochs)

{final_table(exp["table7"], ["VII (25 epochs)"])}

{significance_table(exp["table7"])}

#### Suboptimal scenario: the paper's defaults unchanged

{final_table(exp["suboptimal"], ["X (LeNet5/MNIST)"])}

{significance_table(exp["suboptimal"])}

#### Transfer: the defaults tuned on digits, applied unchanged

What tuning on Fashion-MNIST itself bought over applying the digits defaults (the paper's question of
Tables VIII-X, answered with `taso-tune apply search_spaces/defaults/digits.yaml`): the
difference of test accuracy, tuned minus transferred, paired over the same seeds.

{transfer_table(exp["table6"], exp["transfer"])}

With the digits defaults:

{significance_table(exp["transfer"])}

#### Beyond the paper: TASO against other budget-aware schedules (SGD, 2 learning rates each)

{beyond_table(exp["beyond"])}

{significance_table(exp["beyond"])}

#### Selection on the test set (the paper's protocol) against ours on validation (the grids)

{selection_table(exp["grids"])}

#### Commands and wall times

{commands}

{epoch_rows}
"""
