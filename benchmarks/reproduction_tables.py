"""Markdown tables of the reproduction study, next to the paper's numbers (used by reproduce.py).

The paper's numbers are VGG19 on CIFAR10 (Tables I-VII), VGG19/CIFAR100, ResNet18/CIFAR10 and
LeNet5/MNIST (Tables VIII-X): test accuracy % (± std) and loss over 5 runs. Ours are LeNet5 on the
bundled digits: the data sets differ, so the columns compare shapes of results, not values.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.significance import paired_comparisons
from taso_tune.stats.seeds import format_interval, format_mean_std

# (optimizer, variant, lr) -> (accuracy, std, loss): Tables I-IV of the paper
PAPER_GRIDS = {
    ("adagrad", "", 0.1): (89.18, 0.16, 0.45),
    ("adagrad", "", 0.05): (89.52, 0.31, 0.45),
    ("adagrad", "", 0.01): (88.77, 0.09, 0.46),
    ("adagrad", "", 0.0075): (88.09, 0.02, 0.47),
    ("adagrad", "", 0.005): (87.80, 0.09, 0.45),
    ("rmsprop", "plain", 0.01): (89.94, 0.13, 0.44),
    ("rmsprop", "plain", 0.005): (90.10, 0.32, 0.42),
    ("rmsprop", "plain", 0.001): (90.74, 0.01, 0.40),
    ("rmsprop", "plain", 0.0005): (90.77, 0.07, 0.39),
    ("rmsprop", "plain", 0.0003): (90.54, 0.15, 0.40),
    ("rmsprop", "plain", 0.0001): (88.75, 0.39, 0.46),
    ("rmsprop", "centered", 0.01): (89.96, 0.17, 0.43),
    ("rmsprop", "centered", 0.005): (90.00, 0.17, 0.42),
    ("rmsprop", "centered", 0.001): (90.65, 0.26, 0.39),
    ("rmsprop", "centered", 0.0005): (90.76, 0.21, 0.38),
    ("rmsprop", "centered", 0.0003): (90.58, 0.16, 0.38),
    ("rmsprop", "centered", 0.0001): (88.72, 0.38, 0.46),
    ("adam", "", 0.005): (90.17, 0.05, 0.39),
    ("adam", "", 0.001): (90.93, 0.34, 0.38),
    ("adam", "", 0.0005): (91.02, 0.04, 0.37),
    ("adam", "", 0.0003): (90.77, 0.18, 0.37),
    ("adam", "", 0.0001): (88.96, 0.09, 0.44),
    ("adam", "", 0.00005): (86.54, 0.23, 0.52),
    ("amsgrad", "", 0.005): (90.38, 0.14, 0.40),
    ("amsgrad", "", 0.001): (91.01, 0.34, 0.37),
    ("amsgrad", "", 0.0005): (91.33, 0.15, 0.36),
    ("amsgrad", "", 0.0003): (91.06, 0.27, 0.37),
    ("amsgrad", "", 0.0001): (88.66, 0.11, 0.45),
    ("amsgrad", "", 0.00005): (86.40, 0.09, 0.53),
    ("sgd", "no momentum", 2): (35.91, 36.64, 1.69),
    ("sgd", "no momentum", 1): (88.94, 0.18, 0.47),
    ("sgd", "no momentum", 0.5): (89.72, 0.42, 0.42),
    ("sgd", "no momentum", 0.25): (90.39, 0.29, 0.41),
    ("sgd", "no momentum", 0.05): (89.66, 0.18, 0.44),
    ("sgd", "no momentum", 0.01): (86.00, 0.14, 0.52),
    ("sgd", "no momentum", 0.001): (78.78, 0.10, 0.62),
    ("sgd", "momentum", 2): (10.05, 0.03, 2.48),
    ("sgd", "momentum", 1): (10.04, 0.03, 2.33),
    ("sgd", "momentum", 0.5): (25.82, 22.38, 1.94),
    ("sgd", "momentum", 0.25): (55.32, 33.12, 1.33),
    ("sgd", "momentum", 0.05): (91.01, 0.13, 0.37),
    ("sgd", "momentum", 0.01): (90.55, 0.11, 0.40),
    ("sgd", "nesterov", 2): (10.14, 0.10, 2.32),
    ("sgd", "nesterov", 1): (10.08, 0.09, 2.31),
    ("sgd", "nesterov", 0.5): (10.02, 0.02, 2.30),
    ("sgd", "nesterov", 0.25): (28.70, 26.22, 1.93),
    ("sgd", "nesterov", 0.05): (90.00, 0.71, 0.41),
    ("sgd", "nesterov", 0.01): (90.49, 0.28, 0.40),
    ("sgd", "nesterov", 0.001): (86.56, 0.22, 0.51),
}
# (alpha, beta) -> Table V
PAPER_TABLE5 = {
    (10, 0.3): (90.96, 0.12, 0.37),
    (10, 0.5): (91.66, 0.31, 0.38),
    (10, 0.7): (91.97, 0.19, 0.38),
    (25, 0.3): (90.73, 0.17, 0.37),
    (25, 0.5): (91.61, 0.27, 0.37),
    (25, 0.7): (91.98, 0.19, 0.35),
    (50, 0.3): (90.85, 0.30, 0.36),
    (50, 0.5): (91.94, 0.04, 0.37),
    (50, 0.7): (91.95, 0.25, 0.37),
}
# optimizer family -> Table VI, VII, VIII, IX, X
PAPER_FINAL = {
    "VI (VGG19/CIFAR10)": {
        "adagrad": (89.40, 0.31, 0.42),
        "rmsprop": (90.77, 0.01, 0.41),
        "adam": (91.33, 0.16, 0.37),
        "taso": (91.98, 0.19, 0.36),
    },
    "VII (25 epochs)": {
        "adagrad": (86.10, 0.27, 0.44),
        "rmsprop": (88.20, 0.33, 0.41),
        "adam": (88.56, 0.16, 0.38),
        "taso": (90.02, 0.41, 0.34),
    },
    "VIII (VGG19/CIFAR100)": {
        "adagrad": (1.33, 0.06, 4.77),
        "rmsprop": (55.02, 0.54, 2.04),
        "adam": (61.46, 0.13, 1.90),
        "taso": (65.08, 0.47, 1.76),
    },
    "IX (ResNet18/CIFAR10)": {
        "adagrad": (19.03, 0.78, 2.19),
        "rmsprop": (92.13, 0.28, 0.37),
        "adam": (92.35, 0.29, 0.35),
        "taso": (93.15, 0.08, 0.35),
    },
    "X (LeNet5/MNIST)": {
        "adagrad": (75.16, 8.01, 1.15),
        "rmsprop": (99.09, 0.03, 0.03),
        "adam": (99.03, 0.03, 0.03),
        "taso": (99.09, 0.03, 0.03),
    },
}


def _paper(value: tuple[float, float, float] | None) -> tuple[str, str]:
    if value is None:
        return "—", "—"
    return f"{value[0]:.2f} (± {value[1]:.2f})", f"{value[2]:.2f}"


def _md(rows: list[dict]) -> str:
    if not rows:
        return "(no results)"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _none(value):
    return None if value is None or value != value else value


def _acc(row: pd.Series, metric: str) -> str:
    mean, std = _none(row[f"{metric}_mean"]), _none(row[f"{metric}_std"])
    if mean is None:
        return "—"
    text = format_mean_std(mean, std, int(row["n"])).rsplit(" (", 1)[0]
    if std is None:
        return text
    return (
        f"{text} {format_interval(_none(row[f'{metric}_ci_low']), _none(row[f'{metric}_ci_high']))}"
    )


def _ours(row: pd.Series) -> dict:
    """Mean ± std [95% interval] over the n of the planned seeds, diverged seeds at chance level."""
    loss = _none(row["test_loss_mean"])
    return {
        "ours val acc %": _acc(row, "val_acc"),
        "ours test acc %": _acc(row, "test_acc"),
        "ours test loss": "—" if loss is None else f"{loss:.3f}",
        "n": f"{int(row['n'])}/{int(row['planned'])}",
        "diverged": int(row["diverged"]),
        "notes": row["status"].split(";")[0] if not row["comparable"] else "",
    }


def _pm(stat: dict) -> str:
    low, high = stat.get("ci95") or (None, None)
    return f"{format_mean_std(stat['mean'], stat.get('std'), stat['n']).rsplit(' (', 1)[0]} {format_interval(low, high)}"


def _variant(row: pd.Series) -> str:
    if row["optimizer"] == "rmsprop":
        return "centered" if row.get("hp.centered") else "plain"
    if row["optimizer"] == "sgd":
        if row.get("hp.nesterov"):
            return "nesterov"
        return "momentum" if row.get("hp.momentum") else "no momentum"
    return ""


def grid_tables(exp: Experiment) -> str:
    table = exp.aggregated
    sections = []
    for title, names in (
        ("Table I: Adagrad", ["adagrad"]),
        ("Table II: RMSProp", ["rmsprop"]),
        ("Table III: Adam / AMSGrad", ["adam", "amsgrad"]),
        ("Table IV: constant-lr SGD (TASO's initial lr)", ["sgd"]),
    ):
        part = table[table["optimizer"].isin(names)].copy()
        part["variant"] = part.apply(_variant, axis=1)
        part = part.sort_values(["optimizer", "variant", "hp.lr"], ascending=[True, True, False])
        rows = []
        for _, row in part.iterrows():
            acc, loss = _paper(
                PAPER_GRIDS.get((row["optimizer"], row["variant"], float(row["hp.lr"])))
            )
            rows.append(
                {
                    "optimizer": row["optimizer"],
                    "variant": row["variant"] or "—",
                    "lr": row["hp.lr"],
                    **_ours(row),
                    "paper acc %": acc,
                    "paper loss": loss,
                }
            )
        sections.append(f"#### {title}\n\n{_md(rows)}")
    return "\n\n".join(sections)


def table5(exp: Experiment) -> str:
    agg = exp.aggregated.sort_values(["hp.alpha", "hp.beta"])
    rows = []
    for _, row in agg.iterrows():
        acc, loss = _paper(PAPER_TABLE5.get((int(row["hp.alpha"]), float(row["hp.beta"]))))
        rows.append(
            {
                "alpha": int(row["hp.alpha"]),
                "beta": row["hp.beta"],
                **_ours(row),
                "paper acc %": acc,
                "paper loss": loss,
            }
        )
    return _md(rows)


def _family(name: str) -> str:
    return "adam" if name in ("adam", "amsgrad") else name


def final_table(exp: Experiment, paper_columns: list[str]) -> str:
    agg = exp.aggregated.sort_values("test_acc_mean")
    rows = []
    for _, row in agg.iterrows():
        entry = {"optimizer": row["optimizer"], **_ours(row)}
        for column in paper_columns:
            entry[f"paper {column.split(' ')[0]} acc %"] = _paper(
                PAPER_FINAL[column].get(_family(row["optimizer"]))
            )[0]
        rows.append(entry)
    return _md(rows)


def best_table(exp: Experiment, select_on: str = "val") -> pd.DataFrame:
    return exp.best(select_on).set_index("optimizer")


def beyond_table(exp: Experiment) -> str:
    best = best_table(exp)
    verdicts = paired_comparisons(exp).set_index("config_id")["verdict"]
    return _md(
        [
            {
                "schedule": name,
                "best lr": row["hp.lr"],
                **_ours(row),
                "verdict": verdicts[row["config_id"]],
            }
            for name, row in best.iterrows()
        ]
    )


def selection_table(exp: Experiment) -> str:
    on_val, on_test = best_table(exp, "val"), best_table(exp, "test")
    rows = []
    for name in on_val.index:
        v, t = on_val.loc[name], on_test.loc[name]
        rows.append(
            {
                "optimizer": name,
                "chosen on validation": v["config_id"],
                "its test acc %": _acc(v, "test_acc"),
                "chosen on test (paper)": t["config_id"],
                "its test acc % ": _acc(t, "test_acc"),
                "same choice": "yes" if v["config_id"] == t["config_id"] else "**no**",
            }
        )
    return _md(rows)


def early_stopping_table(full: Experiment, others: dict[str, Experiment]) -> str:
    truth = full.aggregated.set_index("config_id")["val_acc_mean"]
    full_epochs = int(full.trials["epochs_run"].sum())
    methods = {"none (full)": full, **others}
    best = {m: best_table(e) for m, e in methods.items()}
    overall = {m: b.iloc[0]["config_id"] for m, b in best.items() if len(b)}
    epochs_run = {m: int(e.trials["epochs_run"].sum()) for m, e in methods.items()}
    cost = _md(
        [
            {
                "scheduler": m,
                "epochs": epochs_run[m],
                "share of full": f"{epochs_run[m] / full_epochs:.0%}",
                "overall pick": overall.get(m, "none compared"),
                "its full-run val acc %": f"{100 * truth[overall[m]]:.2f}" if m in overall else "—",
                "regret (points)": f"{100 * (truth.max() - truth[overall[m]]):.2f}"
                if m in overall
                else "—",
            }
            for m in methods
        ]
    )
    families = sorted(best["none (full)"].index)
    picks = []
    for family in families:
        row = {"optimizer": family}
        for m, b in best.items():
            row[m] = (
                f"{b.loc[family, 'config_id']} ({100 * truth[b.loc[family, 'config_id']]:.2f})"
                if family in b.index
                else "none compared"
            )
        picks.append(row)
    return (
        f"{cost}\n\nEach family's pick and, in brackets, its full-run mean validation accuracy %:\n\n"
        f"{_md(picks)}"
    )


def _seed_range(seeds: list[int]) -> str:
    low, high = min(seeds), max(seeds)
    if low == high:
        return str(low)
    return f"{low}-{high}" if seeds == list(range(low, high + 1)) else ", ".join(map(str, seeds))


def seeds_sentence(exp: dict[str, Experiment], selection: str = "grids") -> str:
    """Which seeds each experiment trained, read from its results: the runs on the selection's seeds
    and those on others (fresh), never typed by hand."""
    used = {name: sorted({int(s) for s in e.trials["seed"]}) for name, e in exp.items()}
    base = used[selection]
    same = [name for name, seeds in used.items() if seeds == base]
    other = [f"{name} on {_seed_range(seeds)}" for name, seeds in used.items() if seeds != base]
    text = (
        f"Seeds, from the results: {', '.join(same)} on {_seed_range(base)} (the selection's seeds)"
    )
    return text + (f"; {', '.join(other)}." if other else ".")


def render_tables(
    storage: Path, log: list[tuple[str, float]], epochs: int, quarter: int, total: float
) -> str:
    """All the study's tables as Markdown."""
    exp = {
        name: load_experiment(str(storage / name))
        for name in (
            "grids",
            "table5",
            "table6",
            "table7",
            "suboptimal",
            "beyond",
            "grids-asha",
            "grids-budget-sh",
        )
    }
    chosen = yaml.safe_load((storage / "digits-defaults.yaml").read_text())["optimizers"]
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
    commands = _md(
        [{"command": f"`{c}`", "wall time": f"{s / 60:.1f} min"} for c, s in log]
    )  # sweeps only
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
    return f"""Measured by `make reproduce` (`python benchmarks/reproduce.py --epochs {epochs}`): LeNet5 on the
bundled digits, {epochs} epochs (the paper: 100), Table VII at {quarter}, 5 seeds everywhere: mean ± sample
std and [95% t interval] over n of the planned seeds, a diverged seed counted at chance level (10%),
selection on the validation split unless said. {seeds_sentence(exp)} The sweeps took {total / 60:.1f} min in all (reports and exports add
about a minute).

### 1. Optimal scenario: the grids (Tables I-IV)

{grid_tables(exp["grids"])}

#### Table V: TASO alpha x beta (lr and momentum of the Table IV winner)

{table5(exp["table5"])}

#### The chosen defaults

{defaults}

#### Table VI: final comparison with the chosen defaults ({epochs} epochs)

{final_table(exp["table6"], ["VI (VGG19/CIFAR10)"])}

#### Table VII: the same at a quarter of the epochs ({quarter} epochs)

{final_table(exp["table7"], ["VII (25 epochs)"])}

### 2. Suboptimal scenario: the paper's defaults unchanged (Tables VIII-X)

{final_table(exp["suboptimal"], ["VIII (VGG19/CIFAR100)", "IX (ResNet18/CIFAR10)", "X (LeNet5/MNIST)"])}

### 3. Beyond the paper

#### TASO against other budget-aware schedules (SGD, equal grid of 3 learning rates each)

{beyond_table(exp["beyond"])}

#### Selection on the test set (the paper's protocol) against ours on validation (the grids)

{selection_table(exp["grids"])}

### 4. Early stopping on the grids

{early_stopping_table(exp["grids"], {"asha": exp["grids-asha"], "budget-sh": exp["grids-budget-sh"]})}

### Commands and wall times

{commands}

{epoch_rows}
"""
