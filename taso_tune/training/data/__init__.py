"""Data sets: the registry and device-resident loaders (``sets``), files on disk (``files``), and
their format readers (``readers``)."""
