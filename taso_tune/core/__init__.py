"""The bottom layer: errors, the typed records that cross layers, range checks, and atomic storage."""
