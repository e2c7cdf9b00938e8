"""Statistics over seeds: summaries and intervals (``seeds``), paired comparisons (``paired``),
equivalence (``equivalence``) and the one verdict rule (``verdict``)."""
