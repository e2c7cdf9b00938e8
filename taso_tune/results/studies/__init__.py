"""Studies that compare sweeps of the same space (early stopping against the full sweep); they read
results like the results layer and draw their own pages."""
