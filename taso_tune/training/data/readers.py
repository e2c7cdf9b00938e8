"""Checked readers of the data-set file formats: IDX (the MNIST family, plain or gzipped), CIFAR's
pickled batches and SVHN's MATLAB files.

A data root may be shared (an NFS folder, a copy from someone else), so a file is untrusted input:
every reader checks what it reads against its format and raises :class:`BadDataFile`, naming the
file and what is wrong, instead of a traceback from deep inside a parser. CIFAR's batches are
pickles, and ``pickle.load`` runs whatever callable a file names; they are read with
:class:`BatchUnpickler`, which builds only what the format holds (dicts, lists, numbers, strings,
bytes and numpy arrays) and refuses every other global, so a crafted batch cannot run code.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from typing import Any

import numpy as np

MNIST_SIDE = 28
CIFAR_SIDE = 32
CIFAR_ROW = (
    3 * CIFAR_SIDE * CIFAR_SIDE
)  # one image: 1024 red, then 1024 green, then 1024 blue values


class BadDataFile(Exception):
    """A data file that does not hold what its format promises."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


# --- IDX: the MNIST family -----------------------------------------------------------------------

_IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one the MNIST family uses


def _describe_idx(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"{shape[0]} labels"
    return f"{shape[0]} images of {'x'.join(map(str, shape[1:]))}"


def read_idx(path: str, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file with ``ndim`` dimensions (``path`` may end in ``.gz``).

    The file must hold exactly the header's number of bytes: a short or an over-long file is an
    error, never a partial array.
    """
    gzipped = path.endswith(".gz")
    header_size = 4 + 4 * ndim
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
            header = handle.read(header_size)
            if len(header) < 4:
                raise BadDataFile(
                    path,
                    f"not an IDX file: {len(header)} bytes, shorter than its 4-byte magic number",
                )
            if header[:3] != bytes([0, 0, _IDX_UBYTE]) or header[3] != ndim:
                raise BadDataFile(
                    path,
                    f"not an IDX file of unsigned bytes with {ndim} dimension(s): magic number 0x{header[:4].hex()},"
                    f" expected 0x000008{ndim:02x}",
                )
            if len(header) < header_size:
                raise BadDataFile(
                    path,
                    f"truncated: {len(header)} bytes, shorter than the {header_size}-byte header",
                )
            shape = struct.unpack(f">{ndim}I", header[4:])
            body = math.prod(shape)
            if not gzipped and os.path.getsize(path) != header_size + body:
                # checked before anything is allocated: a header can claim any size
                size = os.path.getsize(path)
                what = "truncated" if size < header_size + body else "too long"
                raise BadDataFile(
                    path,
                    f"{what}: header says {_describe_idx(shape)}, file holds {size} bytes"
                    f" (expected {header_size + body})",
                )
            data = np.empty(body, dtype=np.uint8)
            got = handle.readinto(memoryview(data))
            if got < body:
                raise BadDataFile(
                    path,
                    f"truncated: header says {_describe_idx(shape)}, file holds {header_size + got} bytes"
                    f" (expected {header_size + body}) once decompressed",
                )
            if handle.read(1):
                raise BadDataFile(
                    path,
                    f"too long: header says {_describe_idx(shape)}, the decompressed file holds more bytes",
                )
    except BadDataFile:
        raise
    except FileNotFoundError:
        raise
    except MemoryError:
        raise BadDataFile(path, "header claims more data than fits in memory") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise BadDataFile(path, f"not a complete gzip file ({err})") from None
    except OSError as err:
        raise BadDataFile(path, f"cannot be read ({err.strerror or err})") from None
    return data.reshape(shape)


def read_idx_images(path: str, side: int = MNIST_SIDE) -> np.ndarray:
    """Images (N, side, side) of an IDX file of 3 dimensions."""
    images = read_idx(path, 3)
    if images.shape[1:] != (side, side):
        raise BadDataFile(
            path, f"images are {images.shape[1]}x{images.shape[2]}, expected {side}x{side}"
        )
    if len(images) == 0:
        raise BadDataFile(path, "holds no images")
    return images


def read_idx_labels(path: str, num_classes: int) -> np.ndarray:
    """Labels (N,) of an IDX file of 1 dimension, each below ``num_classes``."""
    labels = read_idx(path, 1)
    _check_label_range(path, labels, num_classes)
    return labels.astype(np.int64)


def _check_label_range(
    path: str, labels: np.ndarray, num_classes: int, key: str = "labels", low: int = 0
) -> None:
    high = low + num_classes - 1
    if len(labels) and (labels.min() < low or labels.max() > high):
        bad = labels[(labels < low) | (labels > high)]
        raise BadDataFile(
            path,
            f"{key} must be in {low}..{high}: {len(bad)} out of range, the first {int(bad[0])}",
        )


def check_same_length(
    images_path: str, images: np.ndarray, labels_path: str, labels: np.ndarray
) -> None:
    """The labels file must hold one label per image of its images file."""
    if len(images) != len(labels):
        raise BadDataFile(
            labels_path, f"holds {len(labels)} labels, but {images_path} holds {len(images)} images"
        )


# --- CIFAR: pickled batches, read without running code -------------------------------------------


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # how Python 3 pickles bytes at protocol 2: _codecs.encode(text, "latin1"); nothing else
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed only as bytes' latin1 form, not {encoding!r}"
        )
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    # how Python 3 pickles b"" at protocol 2: __builtin__.bytes() with no arguments
    return b""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The callables numpy's own pickles of arrays, dtypes and scalars name, under both spellings of
    numpy's core module (``numpy.core`` before numpy 2, ``numpy._core`` since), taken from numpy's
    ``__reduce__`` itself so that they are numpy's, whatever the installed version."""
    array = np.zeros(1, np.uint8)
    reconstruct = array.__reduce__()[
        0
    ]  # protocol 0-4: _reconstruct(ndarray, shape, typecode) + state
    frombuffer = array.__reduce_ex__(5)[0]  # protocol 5: _frombuffer(buffer, dtype, shape, order)
    scalar = np.int64(0).__reduce__()[0]  # a numpy integer inside a list of labels
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("_codecs", "encode")] = _latin1_bytes
    allowed[("__builtin__", "bytes")] = allowed[("builtins", "bytes")] = _empty_bytes
    return allowed


class BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches: any global outside :data:`ALLOWED` is refused.

    A pickle runs code only through the globals it names (``os.system``, ``builtins.eval``, a
    class's ``__reduce__``); what remains (dicts, lists, tuples, str, bytes, numbers) is inert.
    """

    ALLOWED = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR batch holds only dicts, lists, numbers, strings"
                " and numpy arrays"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: a CIFAR batch has none")


def unpickle_batch(path: str) -> dict[str, Any]:
    """The dict of one CIFAR batch file, keys as str (the files were written by Python 2)."""
    try:
        with open(path, "rb") as handle:
            obj = BatchUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except MemoryError:
        raise BadDataFile(
            path, "not a CIFAR batch: it claims more data than fits in memory"
        ) from None
    except OSError as err:
        raise BadDataFile(path, f"cannot be read ({err.strerror or err})") from None
    except Exception as err:  # any failure to decode untrusted bytes means a bad file
        raise BadDataFile(
            path, f"not a CIFAR batch (a Python pickle): {type(err).__name__}: {err}"
        ) from None
    if not isinstance(obj, dict):
        raise BadDataFile(path, f"not a CIFAR batch: holds a {type(obj).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batch(path: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and int64 labels of one CIFAR batch; ``label_key`` is
    ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100)."""
    batch = unpickle_batch(path)
    for key in ("data", label_key):
        if key not in batch:
            keys = ", ".join(sorted(map(str, batch))) or "none"
            raise BadDataFile(path, f"not a CIFAR batch: no {key!r} entry (it has: {keys})")
    data = batch["data"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == CIFAR_ROW
    ):
        got = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise BadDataFile(
            path, f"'data' is a {got}, expected a uint8 array of shape (N, {CIFAR_ROW})"
        )
    if len(data) == 0:
        raise BadDataFile(path, "holds no images")
    labels = batch[label_key]
    try:
        labels = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else None
    except (TypeError, ValueError):  # ragged nested lists
        labels = None
    if labels is None or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BadDataFile(path, f"{label_key!r} must be a list of integers, one per image")
    if len(labels) != len(data):
        raise BadDataFile(
            path, f"{label_key!r} holds {len(labels)} labels, but 'data' holds {len(data)} images"
        )
    _check_label_range(path, labels, num_classes, repr(label_key))
    # an array unpickled from an in-band buffer (protocol 5) is read-only; torch wants to own one
    images = np.require(data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), requirements=["C", "W"])
    return images, labels.astype(np.int64)


# --- SVHN: MATLAB files --------------------------------------------------------------------------


def read_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and int64 labels 0..9 of an SVHN ``*_32x32.mat`` file (the
    files label the digit 0 as 10)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except FileNotFoundError:
        raise
    except MemoryError:
        raise BadDataFile(path, "claims more data than fits in memory") from None
    except Exception as err:  # scipy raises many kinds on a bad file; it never runs code from one
        raise BadDataFile(
            path, f"not a MATLAB v5 file of SVHN: {type(err).__name__}: {err}"
        ) from None
    x, y = mat.get("X"), mat.get("y")
    if not (
        isinstance(x, np.ndarray)
        and x.dtype == np.uint8
        and x.shape[:3] == (CIFAR_SIDE, CIFAR_SIDE, 3)
    ):
        got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else "missing"
        raise BadDataFile(path, f"'X' is {got}, expected uint8 of shape (32, 32, 3, N)")
    if (
        not isinstance(y, np.ndarray)
        or y.dtype.kind not in "iuf"
        or y.size != x.shape[3]
        or y.size == 0
    ):
        raise BadDataFile(path, f"'y' must hold one label per image of 'X' ({x.shape[3]})")
    labels = y.reshape(-1)
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise BadDataFile(path, "'y' holds non-integer labels")
    labels = labels.astype(np.int64)
    _check_label_range(path, labels, 10, "'y' (10 stands for the digit 0)", low=1)
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels
