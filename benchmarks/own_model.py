"""Run docs/your-own-model.md's walk-through and put what it printed into the doc.

In a scratch copy of ``docs/examples`` it writes part of Fashion-MNIST as an image folder, sweeps the
example space (a model of one's own), writes the report, exports the defaults and applies them to
torchvision's MobileNetV3-Small on the same folder, timing each command. The block between the
``own-model`` markers of ``docs/your-own-model.md`` is rewritten from that run: the commands, their
wall times and the summaries taso-tune printed, verbatim.

    python benchmarks/own_model.py --doc        # needs `make data` (Debian's Fashion-MNIST)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, write_between_markers

DOC = REPO_ROOT / "docs" / "your-own-model.md"
BEGIN, END = "<!-- own-model:begin -->", "<!-- own-model:end -->"
EXAMPLES = REPO_ROOT / "docs" / "examples"
FASHION = "/usr/share/datasets/fashion-mnist"
TAIL_FROM = "best configuration per optimizer"


def steps(data_root: str, per_class: int, test_per_class: int) -> list[list[str]]:
    """The walk-through's commands, as a user types them in ``docs/examples``."""
    apply = [
        "taso-tune",
        "apply",
        "runs/own/defaults.yaml",
        "--model",
        "torchvision/mobilenet_v3_small",
        "--dataset",
        "imagefolder",
        "--data-root",
        "fashion-pngs",
        "--storage",
        "runs",
        "--name",
        "own-mobilenet",
    ]
    return [
        [
            "python",
            "fashion_to_folder.py",
            data_root,
            "fashion-pngs",
            "--train-per-class",
            str(per_class),
            "--test-per-class",
            str(test_per_class),
        ],
        ["taso-tune", "sweep", "own_model.yaml", "--storage", "runs", "--name", "own"],
        ["taso-tune", "report", "runs/own"],
        ["taso-tune", "export", "runs/own"],
        apply,
    ]


def run(command: list[str], cwd: Path) -> tuple[float, str]:
    """Run one step where the user would; its wall time and output (stdout then stderr)."""
    binary = Path(sys.executable).parent
    program = str(binary / command[0]) if command[0] == "taso-tune" else sys.executable
    argv = [program, *command[1:]]
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # `my_models` imports from the working folder
    print(f"$ {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    # paths as the user sees them, relative to docs/examples, not to this run's scratch folder
    return wall, (done.stdout + done.stderr).replace(f"{cwd}/", "")


def summary_of(output: str) -> str:
    """The summary a sweep printed: from its per-optimizer picks to its wall time."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if TAIL_FROM in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("wall time"))
    return "\n".join(lines[start - 2 : end + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=FASHION)
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--doc", action="store_true", help=f"rewrite the block in {DOC.name}")
    args = parser.parse_args()
    if not Path(args.data_root, "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"no Fashion-MNIST in {args.data_root}: run `make data`")
    with tempfile.TemporaryDirectory(prefix="own-model-") as scratch:
        work = Path(scratch) / "examples"
        shutil.copytree(EXAMPLES, work)
        timed = []
        for command in steps(args.data_root, args.train_per_class, args.test_per_class):
            wall, output = run(command, work)
            timed.append((command, wall, output))
    rows = "\n".join(f"| `{shlex.join(command)}` | {wall:.0f} s |" for command, wall, _ in timed)
    block = f"""Measured {dt.date.today().isoformat()} with `python benchmarks/own_model.py --doc` on
{os.cpu_count()} CPU cores ({platform.machine()}, no GPU), {args.train_per_class} training and
{args.test_per_class} test images per class written as PNGs:

| command (in `docs/examples`) | wall |
|---|---|
{rows}

What `taso-tune sweep own_model.yaml` printed (the space's own model, `my_models:small_cnn`):

```text
{summary_of(timed[1][2])}
```

What `taso-tune apply` printed (the exported picks on torchvision's MobileNetV3-Small, not tuned
again):

```text
{summary_of(timed[4][2])}
```"""
    print(block)
    if args.doc:
        write_between_markers(DOC, BEGIN, END, block)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
