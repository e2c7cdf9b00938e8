"""GPU sweep: a LeNet5 grid with its seeds as fractional-GPU trials against seeds stacked per trial.

    python benchmarks/gpu_sweep.py           # on a machine with one CUDA GPU; a few minutes
    python benchmarks/gpu_sweep.py --smoke   # tiny, on the CPU (checks the script)

The same sweep (LeNet5 on digits, TASO at 4 learning rates, 8 seeds, no early stopping) through
``run_sweep`` two ways, interleaved:

* separate: one trial per seed (``seeds_per_trial: 1``), each given ``gpu: 0.125`` so 8 share the GPU
  (what Ray does with small trials on a GPU node): 32 trials;
* stacked: one trial per configuration with its 8 seeds as one stacked model
  (``seed_packing: stacked``), ``gpu: 0.25``: 4 trials, all at once.

The row is the sweep wall of each and the speed-up separate / stacked. digits is the data set every
machine has (scikit-learn's); its 1,437 training images make an epoch short, so the figure weighs
the per-trial costs (fewer trials when stacked) as much as the GPU's use. Unlike ``gpu.py``, this
script imports Ray.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import (
    Row,
    add_repo_to_path,
    format_facts,
    format_table,
    interleaved,
    machine_facts,
    median,
)

add_repo_to_path()
from sweeps import run_quiet, start_ray, stop_ray, storage  # noqa: E402

from taso_tune.spaces import SweepSpec, load_space_dict  # noqa: E402

SECTION = "gpu sweep"


def spec(
    packing: str, *, configs: int, seeds: int, epochs: int, gpus: float, smoke: bool
) -> SweepSpec:
    """The benchmark's sweep with its seeds ``separate`` (a trial each) or ``stacked`` (per
    configuration); ``gpus`` is the GPU share of one seed's trial (0: none)."""
    lrs = [0.01, 0.02, 0.05, 0.1][:configs]
    stacked = packing == "stacked"
    train = {"model": "lenet5", "dataset": "digits", "epochs": epochs, "batch_size": 128}
    if smoke:
        train["train_limit"] = 200
    return load_space_dict(
        {
            "name": f"gpu-sweep-{packing}",
            "train": train,
            "seeds": seeds,
            "seeds_per_trial": "all" if stacked else 1,
            "seed_packing": packing,
            # on a GPU the configurations' trials share it: 1/8 each when a trial per seed, 1/configs when stacked
            "resources": {"cpus": 1, "gpus": (1 / configs if stacked else gpus) if gpus else 0},
            "scheduler": {"type": "none"},
            "search": "grid",
            "checkpoint_every": epochs,
            "blocks": [{"optimizer": "taso", "lr": {"grid": lrs}}],
        }
    )


def run(smoke: bool) -> list[Row]:
    configs, seeds, epochs, gpus, repeats = (2, 2, 1, 0.0, 1) if smoke else (4, 8, 5, 0.125, 2)
    specs = {
        p: spec(p, configs=configs, seeds=seeds, epochs=epochs, gpus=gpus, smoke=smoke)
        for p in ("separate", "stacked")
    }
    start_ray()
    with storage() as root:
        walls = interleaved(
            {
                p: (
                    lambda p=p: run_quiet(specs[p], root, f"{p}-{time.monotonic_ns()}").wall_seconds
                )
                for p in specs
            },
            repeats,
        )
    stop_ray()
    separate, stacked = median(walls["separate"]), median(walls["stacked"])
    share = f"gpu {gpus:g} per seed trial" if gpus else "no GPU (smoke)"
    return [
        Row(
            SECTION,
            f"LeNet5/digits sweep, {configs} configurations x {seeds} seeds, {epochs} epochs: "
            "seeds stacked vs a trial per seed",
            f"{stacked:.1f} s ({configs} trials)",
            f"{separate:.1f} s ({configs * seeds} trials, {share})",
            separate / stacked,
            note=f"speed-up = wall(separate) / wall(stacked); n={repeats}, interleaved",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU (checks the script)")
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA GPU here; run with --smoke to check the script on the CPU")
    start = time.perf_counter()
    text = f"{format_table(run(args.smoke))}\n\n{format_facts(machine_facts())}; {time.perf_counter() - start:.0f} s"
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
