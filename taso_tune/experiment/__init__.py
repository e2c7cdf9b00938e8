"""An experiment folder: its layout (every file and folder name), the one reader of what it holds
(Tune's state, each trial's reports, the space), its progress counts, the lock that keeps one driver
on it, and the trust rule for what it holds."""
