"""Names shared by the Ray and results layers: the files taso-tune writes into an experiment folder
and the metrics every trial reports."""

#: The resolved search space, written beside the results when a sweep starts.
SPACE_FILE = "taso_tune_space.yaml"
#: Inside each checkpoint: the whole training run (model, optimizer, schedule, RNG, epoch).
STATE_FILE = "run_state.pt"
#: Budget-aware successive halving keeps its rung bookkeeping here.
BUDGET_SH_FILE = "taso_tune_budget_sh.json"
#: The metrics every epoch record carries, and that a sweep may optimise.
METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_acc", "train_loss")
