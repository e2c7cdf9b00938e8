"""Learning-rate schedules: the pure maths (``maths``, no torch) and its torch adapter (``lr_scheduler``).

Importing this package loads only the maths; the torch adapter is imported by name.
"""

from taso_tune.schedules.maths import (
    SCHEDULES,
    get_schedule,
    schedule_parameters,
    schedule_table,
    taso_lr,
)

__all__ = ["SCHEDULES", "get_schedule", "schedule_parameters", "schedule_table", "taso_lr"]
