"""The Ray layer: the only package of taso-tune that imports ``ray``."""
