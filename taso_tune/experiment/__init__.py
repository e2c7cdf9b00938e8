"""An experiment folder: its state as Tune left it, the lock that keeps one driver on it, and the
trust rule for what it holds."""
