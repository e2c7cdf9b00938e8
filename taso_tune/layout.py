"""Names of the files taso-tune writes into an experiment folder (shared by the Ray and results layers)."""

#: The resolved search space, written beside the results when a sweep starts.
SPACE_FILE = "taso_tune_space.yaml"
#: Inside each checkpoint: the whole training run (model, optimizer, schedule, RNG, epoch).
STATE_FILE = "run_state.pt"
#: Budget-aware successive halving keeps its rung bookkeeping here.
BUDGET_SH_FILE = "taso_tune_budget_sh.json"
