"""Writers of the real data-set file formats, for the tests that read them back (and break them)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080N, N big-endian sizes, then the values."""
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX, gzipped when ``path`` ends in .gz."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist(
    folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0, *, gz: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four MNIST-family IDX files in ``folder`` (created): random images and labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )
    for name, array in zip(MNIST_FILES, arrays, strict=True):
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


def write_pickle(path: Path, obj: Any, protocol: int = 2) -> Path:
    # the real files were written by Python 2 with str keys; they are unpickled with latin1
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return path


def chw_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(
    root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 1
) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """A complete ``cifar-10-batches-py`` folder under ``root``; returns what it holds."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    for i in range(1, 6):
        images, labels = chw_images(rng, per_batch), rng.integers(0, 10, per_batch).tolist()
        # one row per image: 1024 red, then 1024 green, then 1024 blue values, row-major
        write_pickle(
            folder / f"data_batch_{i}", {"data": images.reshape(per_batch, 3072), "labels": labels}
        )
        train_images.append(images)
        train_labels += labels
    test_images, test_labels = chw_images(rng, n_test), rng.integers(0, 10, n_test).tolist()
    write_pickle(
        folder / "test_batch", {"data": test_images.reshape(n_test, 3072), "labels": test_labels}
    )
    write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return np.concatenate(train_images), train_labels, test_images, test_labels
