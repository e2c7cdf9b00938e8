"""Every file and folder name of an experiment folder, in one place.

::

    STORAGE/NAME/                       the experiment
      taso_tune_space.yaml              the resolved space (SPACE_FILE)
      taso_tune.lock                    who drives it now (LOCK_FILE)
      taso_tune_interrupted.json        a signal stopped it (INTERRUPTED_FILE)
      taso_tune_budget_sh.json          budget-sh's rung bookkeeping (BUDGET_SH_FILE)
      events.out.tfevents.taso_tune_hparams   TensorBoard's HParams experiment (HPARAMS_FILE)
      experiment_state-<time>.json      Ray Tune's state of its run (TUNE_STATE_PREFIX)
      tuner.pkl                         the Tuner Ray Tune restores (TUNER_FILE)
      <trial name>_<trial id>/          one trial
        result.json                     its reports, one JSON line an epoch (RESULT_FILE)
        error.txt                       why it failed, when it did (ERROR_FILE)
        checkpoint_<n>/run_state.pt     its checkpoints (CHECKPOINT_PREFIX, STATE_FILE)
      rung-<i>-<epochs>ep/              budget-sh: one Tune run a rung, laid out as above (RUNG_PREFIX)
      taso_tune_rerun.json              resume --rerun-lost: trials kept and rerun (RERUN_FILE)
      damaged-experiment_state-<time>.json  the unreadable state, set aside (DAMAGED_PREFIX)
      rerun-lost/                       the Tune run of the lost trials, laid out as above (RERUN_FOLDER)

Our own file names are declared with the typed records (:mod:`taso_tune.core.records`), which every
layer may read; Ray Tune's, and the rung folders, here.
"""

from __future__ import annotations

import re

from taso_tune.core.records import (
    BUDGET_SH_FILE,
    HPARAMS_FILE,
    INTERRUPTED_FILE,
    LOCK_FILE,
    RERUN_FILE,
    SPACE_FILE,
    STATE_FILE,
)

__all__ = [
    "BUDGET_SH_FILE",
    "CHECKPOINT_PREFIX",
    "DAMAGED_PREFIX",
    "ERROR_FILE",
    "FROM_CHECKPOINT",
    "HPARAMS_FILE",
    "INTERRUPTED_FILE",
    "LOCK_FILE",
    "RERUN_FILE",
    "RERUN_FOLDER",
    "RESULT_FILE",
    "RUNG_PREFIX",
    "SPACE_FILE",
    "STATE_FILE",
    "TUNER_FILE",
    "TUNE_STATE_PREFIX",
    "is_checkpoint_name",
    "is_tune_state",
    "trial_checkpoint",
    "rung_index",
    "rung_name",
]

#: A trial's reports, written by Ray Tune: one JSON line per epoch.
RESULT_FILE = "result.json"
#: Written by Ray Tune into a trial's folder when the trial fails.
ERROR_FILE = "error.txt"
#: Ray Tune's saved state of a run: ``experiment_state-<time>.json``, the newest one counts.
TUNE_STATE_PREFIX = "experiment_state-"
#: The pickled Tuner that ``Tuner.restore`` reads.
TUNER_FILE = "tuner.pkl"
#: Budget-aware successive halving runs each rung as its own Tune run in ``rung-<i>-<epochs>ep``.
RUNG_PREFIX = "rung-"
#: ``resume --rerun-lost`` runs the trials a lost Tune state held as a Tune run of their own here.
RERUN_FOLDER = "rerun-lost"
#: The key of a rerun trial's config (:data:`RERUN_FILE`, and Tune's config of the trial) that names
#: the checkpoint it starts from: ``<lost trial's folder>/checkpoint_<n>``, relative to the
#: experiment so that a moved or copied experiment still finds it (``None``: from the start).
FROM_CHECKPOINT = "from_checkpoint"
#: A Tune state that cannot be read is kept for a look as ``damaged-<name>`` (no state by that name).
DAMAGED_PREFIX = "damaged-"
#: Ray Tune names each checkpoint folder of a trial ``checkpoint_<index>`` (``checkpoint_000003``).
CHECKPOINT_PREFIX = "checkpoint_"
_RUNG = re.compile(rf"{RUNG_PREFIX}(\d+)-(\d+)ep")
_CHECKPOINT = re.compile(rf"{CHECKPOINT_PREFIX}\d+")


def rung_name(index: int, epochs: int) -> str:
    """The folder of budget-sh's rung ``index``, whose trials run ``epochs`` epochs."""
    return f"{RUNG_PREFIX}{index}-{epochs}ep"


def rung_index(name: str) -> int | None:
    """The rung index of a folder named ``name`` (``rung-2-9ep``: 2); ``None`` for any other name."""
    found = _RUNG.fullmatch(name)
    return int(found.group(1)) if found else None


def is_tune_state(name: str) -> bool:
    """Whether a file named ``name`` is one of Ray Tune's saved states of a run."""
    return name.startswith(TUNE_STATE_PREFIX) and name.endswith(".json")


def is_checkpoint_name(name: str) -> bool:
    """Whether ``name`` is the name Ray Tune gives a trial's checkpoint folder (``checkpoint_<n>``)."""
    return _CHECKPOINT.fullmatch(name) is not None


def trial_checkpoint(relative: str) -> tuple[str, str] | None:
    """``relative`` (``<trial folder>/checkpoint_<n>``, a trial's checkpoint relative to its run's
    folder) split into the trial folder's name and the checkpoint's; ``None`` for anything else
    (an absolute path, ``..``, a deeper path, another name)."""
    parts = relative.split("/")
    if len(parts) != 2 or parts[0] in ("", ".", "..") or not is_checkpoint_name(parts[1]):
        return None
    return parts[0], parts[1]
