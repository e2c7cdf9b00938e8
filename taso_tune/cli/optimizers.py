"""``taso-tune optimizers``: the optimizer recipes, their defaults and the schedule each uses."""

from __future__ import annotations

import argparse

from taso_tune.training.optimizers import OPTIMIZERS


def add_optimizers_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimizers",
        help="list the optimizer recipes with their defaults and lr schedules",
        description="List every optimizer recipe a space or `taso-tune train --optimizer` can name: the "
        "torch optimizer, the learning-rate schedule and every field with its default.",
    )
    p.add_argument("name", nargs="?", help="show only this recipe")
    p.set_defaults(handler=run_optimizers)


def format_recipes(names: list[str]) -> str:
    """One paragraph per recipe: name, description, torch class, schedule, then its fields."""
    lines = []
    for name in names:
        recipe = OPTIMIZERS.get_or_fail(name, "optimizer")
        lines.append(f"{name}: {recipe.description}")
        lines.append(f"  torch.optim.{recipe.torch_class}, schedule {recipe.schedule}")
        fields = ", ".join(
            f"{k}={'lr/20' if v is None and k == 'lr_final' else v}"
            for k, v in recipe.defaults.items()
        )
        lines.append(f"  defaults: {fields}")
        if recipe.fixed:
            lines.append(f"  fixed: {', '.join(f'{k}={v}' for k, v in recipe.fixed.items())}")
    return "\n".join(lines)


def run_optimizers(args: argparse.Namespace) -> int:
    print(format_recipes([args.name] if args.name else list(OPTIMIZERS)))
    return 0
