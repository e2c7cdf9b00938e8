"""``taso-tune apply``: train each optimizer of an exported defaults file on a new model and data
set, with its exported hyperparameters and no tuning (the paper's suboptimal scenario)."""

from __future__ import annotations

import argparse

from taso_tune.cli.help_format import HelpFormatter
from taso_tune.cli.sweep import (
    add_pair_flags,
    add_run_flags,
    override_values,
    run_spec,
)
from taso_tune.spaces import SweepSpec


def add_apply_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "apply",
        help="train the optimizers of exported defaults on a new model and data set",
        description=(
            "Train each optimizer of a defaults file (written by `taso-tune export`) on --model and "
            "--dataset with its exported hyperparameters, without tuning: one configuration per "
            "optimizer, 5 fresh seeds (above those that selected the defaults) unless --seeds or "
            "--seed-start say otherwise, no early stopping. Prints the summary like `taso-tune "
            "sweep`; the experiment is named defaults-MODEL-DATASET unless --name is given."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("defaults", metavar="DEFAULTS", help="a defaults file from `taso-tune export`")
    add_pair_flags(p)
    p.add_argument("--name", help="experiment name (default: defaults-MODEL-DATASET)")
    add_run_flags(
        p,
        scheduler_help="early stopping (default none: every optimizer trains its full run)",
        skip=("--max-trials",),  # one configuration per optimizer: nothing to cap
    )
    p.set_defaults(handler=run_apply_command)


def apply_spec(args: argparse.Namespace) -> SweepSpec:
    """The space ``taso-tune apply`` runs, from its parsed flags
    (:func:`~taso_tune.results.export.defaults_space`)."""
    from taso_tune.results.export import defaults_space

    return defaults_space(
        args.defaults,
        model=args.model,
        dataset=args.dataset,
        data_root=args.data_root,
        download=args.download,
        train_limit=args.train_limit,
        val_fraction=args.val_fraction,
        **override_values(args),
        scheduler=args.scheduler,
        name=args.name,
    )


def run_apply_command(args: argparse.Namespace) -> int:
    from taso_tune.results.export import naming_the_flags

    spec = apply_spec(args)
    with naming_the_flags(args.defaults):
        return run_spec(spec, args, command="apply")
