"""The Ray Tune layer: run or resume a sweep (``run``), and the trainable, trials and schedulers it uses."""

from taso_tune.tuning.run import SweepInterrupted, SweepOutcome, disconnect, resume_sweep, run_sweep

__all__ = ["SweepInterrupted", "SweepOutcome", "disconnect", "resume_sweep", "run_sweep"]
