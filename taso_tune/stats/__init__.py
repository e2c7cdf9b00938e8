"""Statistics over seeds: summaries and intervals (``seeds``) and paired comparisons (``paired``)."""
