"""``taso-tune report`` and ``taso-tune export``: an experiment's HTML report, its best settings as a
defaults file. Both read saved results only; neither starts Ray."""

from __future__ import annotations

import argparse
import os
from typing import Any

from taso_tune.cli.help_format import HelpFormatter
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import check_writable, is_uri


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an experiment's HTML report (curves, tables, early stopping)",
        description=(
            "Write one HTML page with the experiment's learning curves (mean ± std over seeds of each "
            "optimizer's best configuration), learning rates, results tables in the paper's layout, "
            "hyperparameter views and early-stopping summary. Reads saved results; never retrains."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "experiment", metavar="EXPERIMENT", help="the experiment folder (STORAGE/NAME) or URI"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.html",
        help="where to write (default: EXPERIMENT/report.html)",
    )
    _select_on(p)
    p.add_argument(
        "--plotlyjs",
        choices=["inline", "directory"],
        default="inline",
        help="inline: one self-contained file; directory: load plotly.min.js written beside it",
    )
    p.set_defaults(handler=run_report_command)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export each optimizer's best hyperparameters as a defaults file",
        description=(
            "Write each optimizer's best configuration (mean ± std over seeds, n) to a defaults YAML "
            "that `taso-tune apply FILE --model M --dataset D` trains on a new pair."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "experiment", metavar="EXPERIMENT", help="the experiment folder (STORAGE/NAME) or URI"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.yaml",
        help="where to write (default: EXPERIMENT/defaults.yaml)",
    )
    _select_on(p)
    p.set_defaults(handler=run_export_command)


def _select_on(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--select-on",
        choices=["val", "test"],
        default="val",
        help="split that picks each optimizer's best configuration (test = the paper's protocol)",
    )


def default_output(experiment: str, output: str | None, filename: str) -> str:
    """``output``, else ``EXPERIMENT/filename`` for a local experiment (a URI needs ``-o``); refuses,
    before any work, a place where the file cannot be written (under a file, a folder, unwritable)."""
    if output and is_uri(output):
        raise ConfigError(
            "-o/--output", output, "must be a local file path (write it locally, then copy it)"
        )
    if not output and is_uri(experiment):
        raise ConfigError(
            "-o/--output", None, f"required for an experiment at a URI ({experiment})"
        )
    out = output or os.path.join(experiment, filename)
    check_writable(out, "-o/--output", "file")
    return out


def run_report_command(args: argparse.Namespace) -> int:
    from taso_tune.results.experiment import load_experiment
    from taso_tune.results.report import write_report

    out = default_output(args.experiment, args.output, "report.html")
    experiment = load_experiment(args.experiment)
    path = write_report(experiment, out, select_on=args.select_on, plotlyjs=args.plotlyjs)
    print(f"report written to {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0


def run_export_command(args: argparse.Namespace) -> int:
    from taso_tune.results.experiment import load_experiment
    from taso_tune.results.export import export_defaults

    out = default_output(args.experiment, args.output, "defaults.yaml")
    document = export_defaults(load_experiment(args.experiment), out, select_on=args.select_on)
    print(f"defaults written to {out} (selected on {document['provenance']['selected_on']})")
    print(format_defaults_table(document))
    return 0


def format_defaults_table(document: dict[str, Any]) -> str:
    """The optimizers of a defaults document, one line each: accuracy mean ± std (n/planned) with
    its interval, the verdict against the reference with the difference and its Holm-adjusted
    interval and the equivalence test at its margin (the one rule, as the summary and the report
    word it), seeds diverged, without a value or at chance, and the hyperparameters."""
    from taso_tune.stats.equivalence import equivalence_words
    from taso_tune.stats.seeds import AT_CHANCE_UNKNOWN, format_interval, format_mean_std
    from taso_tune.stats.verdict import INTERVAL_LABEL, format_difference, verdict_text

    comparison = document.get("provenance", {}).get("comparison") or {}

    def stat(entry: dict[str, Any]) -> str:
        if entry.get("mean") is None:
            return "n/a"
        low, high = entry.get("ci95") or (None, None)
        return f"{format_mean_std(entry['mean'], entry.get('std'), entry.get('n', 0))} {format_interval(low, high)}"

    def verdict(entry: dict[str, Any]) -> str:
        versus = entry.get("versus_best") or {}
        words = verdict_text(
            entry.get("verdict", ""),
            selected_on=comparison.get("selected_on", ""),
            compared_on=comparison.get("compared_on", ""),
            reason=versus.get("reason", ""),
        )
        if versus.get("difference") is None:
            return words
        low, high = versus.get("holm_interval") or (None, None)
        text = f"{words}: {format_difference(versus['difference'], low, high)}"
        tost = versus.get("equivalence")
        if tost:
            text += "; " + equivalence_words(
                tost["equivalent"],
                tost["margin"],
                tost["p_value"],
                versus["n"],
                tost.get("p_holm"),
                " points",
                100.0,
            )
        return text

    def notes(entry: dict[str, Any]) -> str:
        # the summary's and the report's row notes, from the record with the most seeds at chance
        records = [entry.get(m) or {} for m in ("val_acc", "test_acc")]
        worst = max(
            records, key=lambda r: -1 if r.get("at_chance", 0) is None else r.get("at_chance", 0)
        )
        n = worst.get("n", 0)
        parts = []
        if worst.get("diverged"):
            parts.append(f"diverged {worst['diverged']}/{n}")
        if worst.get("no_value"):
            parts.append(f"no finite value {worst['no_value']}/{n}")
        if "at_chance" in worst and worst["at_chance"] is None:
            parts.append(AT_CHANCE_UNKNOWN)
        elif worst.get("at_chance"):
            parts.append(f"at chance {worst['at_chance']}/{n}")
        return "".join(f"{p}; " for p in parts)

    lines = []
    if comparison:
        lines.append(
            f"  verdicts against the reference {comparison.get('reference')} (the best on "
            f"{comparison.get('selected_on')}), on {comparison.get('compared_on')} in points, with "
            f"the {INTERVAL_LABEL}"
        )
    lines.append(f"  {'optimizer':<13} {'val_acc':<36} {'test_acc':<36} verdict; hyperparameters")
    for name, entry in document["optimizers"].items():
        hps = ", ".join(f"{k}={v}" for k, v in entry["hparams"].items() if v is not None)
        lines.append(
            f"  {name:<13} {stat(entry.get('val_acc') or {}):<36} {stat(entry.get('test_acc') or {}):<36} "
            f"{verdict(entry)}; {notes(entry)}{hps}"
        )
    return "\n".join(lines)
