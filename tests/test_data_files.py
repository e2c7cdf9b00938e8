"""Data files as untrusted input: crafted pickles never run, garbage files are ConfigErrors naming
the path, Fashion-MNIST is read in place from Debian's layout, downloads happen only when asked."""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_helpers import MNIST_FILES, idx_bytes, write_cifar10, write_mnist, write_pickle

from taso_tune.core.errors import ConfigError
from taso_tune.training.data import files as data_files
from taso_tune.training.data.files import DEBIAN_FASHION_MNIST_PACKAGE, DEBIAN_FASHION_MNIST_ROOT
from taso_tune.training.data.readers import BadDataFile, read_cifar_batch
from taso_tune.training.data.sets import load_dataset


def _load_fails(name: str, root: Path, **kwargs: Any) -> str:
    """The message of the ConfigError on ``data_root`` that loading ``name`` from ``root`` raises."""
    with pytest.raises(ConfigError) as info:
        load_dataset(name, str(root), **kwargs)
    assert info.value.field == "data_root"
    return str(info.value)


# --- crafted pickles are refused, never run -------------------------------------------------------


class _TouchWithShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _TouchWithOpen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _crafted_batches(marker: Path) -> dict[str, Any]:
    images = np.zeros((4, 3072), np.uint8)
    return {
        "shell": _TouchWithShell(marker),
        "open": _TouchWithOpen(marker),
        # the payload hidden inside an otherwise well-formed batch
        "in_labels": {"data": images, "labels": [0, 1, _TouchWithOpen(marker), 3]},
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("payload", ["shell", "open", "in_labels"])
def test_crafted_cifar_batch_is_refused_and_never_run(
    tmp_data_root: Path, payload: str, protocol: int
) -> None:
    write_cifar10(tmp_data_root)
    marker = tmp_data_root.parent / "marker"
    batch = tmp_data_root / "cifar-10-batches-py" / "data_batch_1"
    write_pickle(batch, _crafted_batches(marker)[payload], protocol=protocol)

    message = _load_fails("cifar10", tmp_data_root)
    assert str(batch) in message
    # as pickle names them: os.system is posix.system, open is io.open
    global_name = (
        f"{open.__module__}.open" if payload != "shell" else f"{os.system.__module__}.system"
    )
    assert f"refused global {global_name}" in message
    assert not marker.exists()


def test_the_crafted_batch_would_run_under_plain_pickle(tmp_path: Path) -> None:
    # the control for the test above: the payload is live, so its marker staying absent means something
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_TouchWithOpen(marker), protocol=2)).close()
    assert marker.exists()


def _python2_style_array(images: np.ndarray) -> Any:
    """An array whose pickle carries its pixels as a latin-1 str, as Python 2 wrote CIFAR's files."""

    class Python2Array:
        def __reduce__(self):
            reconstruct, args, state = images.__reduce__()
            return reconstruct, args, (*state[:4], state[4].decode("latin1"))

    return Python2Array()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize(
    "form", ["plain", "bytes_keys", "numpy_labels", "numpy_int_list", "python2_str_pixels"]
)
def test_batches_as_numpy_and_python_pickle_them_are_read(
    tmp_path: Path, form: str, protocol: int
) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    labels = [3, 0, 9, 9, 1]
    batch: dict[Any, Any] = {
        "data": images,
        "labels": labels,
        "batch_label": "training batch 1 of 5",
    }
    if form == "bytes_keys":
        batch = {b"data": images, b"labels": labels, b"filenames": [b"a.png"] * 5}
    elif form == "numpy_labels":
        batch["labels"] = np.array(labels, dtype=np.int64)
    elif form == "numpy_int_list":
        batch["labels"] = [np.int64(label) for label in labels]
    elif form == "python2_str_pixels":
        batch["data"] = _python2_style_array(images)
    path = write_pickle(tmp_path / "data_batch_1", batch, protocol=protocol)
    x, y = read_cifar_batch(str(path), "labels", 10)
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.uint8 and x.flags.writeable
    assert np.array_equal(x.reshape(5, 3072), images)
    assert y.tolist() == labels and y.dtype == np.int64


def test_batches_written_by_numpy_1_name_numpy_core(tmp_path: Path) -> None:
    # numpy < 2 (and the real files) name numpy.core.multiarray; numpy 2 writes numpy._core
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    data = pickle.dumps({"data": images, "labels": [np.int64(4), 7]}, protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "batch"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, y = read_cifar_batch(str(path), "labels", 10)
    assert np.array_equal(x.reshape(2, 3072), images) and y.tolist() == [4, 7]


# --- garbage files: one ConfigError naming the path and the problem -------------------------------

_GOOD_IMAGES = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
_GOOD = idx_bytes(_GOOD_IMAGES)  # 16 + 20 * 784 = 15696 bytes


def _gzip_corrupted() -> bytes:
    packed = bytearray(gzip.compress(_GOOD))
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


#: (case, file, its bytes, the problem the error must state)
IDX_CASES: list[tuple[str, str, bytes, str]] = [
    (
        "empty",
        "train-images-idx3-ubyte",
        b"",
        "not an IDX file: 0 bytes, shorter than its 4-byte magic number",
    ),
    (
        "garbage",
        "train-images-idx3-ubyte",
        b"hello, this is not an IDX file",
        "not an IDX file of unsigned bytes with 3 dimension(s): magic number 0x68656c6c, expected 0x00000803",
    ),
    (
        "labels_as_images",
        "train-images-idx3-ubyte",
        idx_bytes(np.zeros(20, np.uint8)),
        "not an IDX file of unsigned bytes with 3 dimension(s): magic number 0x00000801, expected 0x00000803",
    ),
    (
        "cut_header",
        "train-images-idx3-ubyte",
        _GOOD[:10],
        "truncated: 10 bytes, shorter than the 16-byte header",
    ),
    (
        "truncated",
        "train-images-idx3-ubyte",
        _GOOD[:1000],
        "truncated: header says 20 images of 28x28, file holds 1000 bytes (expected 15696)",
    ),
    (
        "too_long",
        "train-images-idx3-ubyte",
        _GOOD + b"\0" * 5,
        "too long: header says 20 images of 28x28, file holds 15701 bytes (expected 15696)",
    ),
    (
        "wrong_size",
        "train-images-idx3-ubyte",
        idx_bytes(np.zeros((20, 32, 32), np.uint8)),
        "images are 32x32, expected 28x28",
    ),
    (
        "no_images",
        "train-images-idx3-ubyte",
        idx_bytes(np.zeros((0, 28, 28), np.uint8)),
        "holds no images",
    ),
    (
        "label_range",
        "train-labels-idx1-ubyte",
        idx_bytes(np.array([0] * 17 + [10, 3, 11], np.uint8)),
        "labels must be in 0..9: 2 out of range, the first 10",
    ),
    (
        "label_count",
        "train-labels-idx1-ubyte",
        idx_bytes(np.zeros(19, np.uint8)),
        "holds 19 labels, but ",
    ),
    (
        "gz_truncated",
        "train-images-idx3-ubyte.gz",
        gzip.compress(_GOOD)[:500],
        "not a complete gzip file (Compressed file ended before the end-of-stream marker was reached)",
    ),
    (
        "gz_not_gzip",
        "train-images-idx3-ubyte.gz",
        b"plain bytes",
        "not a complete gzip file (Not a gzipped file",
    ),
    ("gz_corrupted", "train-images-idx3-ubyte.gz", _gzip_corrupted(), "not a complete gzip file"),
    (
        "gz_short_content",
        "train-images-idx3-ubyte.gz",
        gzip.compress(_GOOD[:1000]),
        "truncated: header says 20 images of 28x28, file holds 1000 bytes (expected 15696) once decompressed",
    ),
]


@pytest.fixture(params=IDX_CASES, ids=[case[0] for case in IDX_CASES])
def garbage_mnist(request: pytest.FixtureRequest, tmp_data_root: Path) -> tuple[Path, Path, str]:
    """A torchvision-layout MNIST folder with one file replaced by garbage: (root, that file, problem)."""
    _, file, content, problem = request.param
    raw = tmp_data_root / "MNIST" / "raw"
    write_mnist(raw)
    (raw / file.removesuffix(".gz")).unlink()
    (raw / file).write_bytes(content)
    return tmp_data_root, raw / file, problem


def test_garbage_idx_file_is_a_config_error_naming_it(
    garbage_mnist: tuple[Path, Path, str],
) -> None:
    root, path, problem = garbage_mnist
    message = _load_fails("mnist", root)
    assert f"{path}: {problem}" in message
    assert "--download" in message


def _cifar_batch(data: Any = None, labels: Any = None, **extra: Any) -> dict[str, Any]:
    batch = {
        "data": np.zeros((4, 3072), np.uint8) if data is None else data,
        "labels": labels or [0, 1, 2, 3],
    }
    return {**batch, **extra}


_GOOD_BATCH = pickle.dumps(_cifar_batch(), protocol=2)

CIFAR_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "garbage",
        lambda p: p.write_bytes(b"this is not a pickle"),
        "not a CIFAR batch (a Python pickle): UnpicklingError: ",
    ),
    (
        "empty",
        lambda p: p.write_bytes(b""),
        "not a CIFAR batch (a Python pickle): EOFError: Ran out of input",
    ),
    (
        "truncated",
        lambda p: p.write_bytes(_GOOD_BATCH[: len(_GOOD_BATCH) // 2]),
        "not a CIFAR batch (a Python pickle): ",
    ),
    (
        "a_list",
        lambda p: write_pickle(p, [1, 2, 3]),
        "not a CIFAR batch: holds a list, expected a dict",
    ),
    (
        "no_data",
        lambda p: write_pickle(p, {"labels": [0]}),
        "not a CIFAR batch: no 'data' entry (it has: labels)",
    ),
    (
        "float_data",
        lambda p: write_pickle(p, _cifar_batch(np.zeros((4, 3072)))),
        "'data' is a float64 array of shape (4, 3072), expected a uint8 array of shape (N, 3072)",
    ),
    (
        "wrong_shape",
        lambda p: write_pickle(p, _cifar_batch(np.zeros((4, 1000), np.uint8))),
        "'data' is a uint8 array of shape (4, 1000), expected a uint8 array of shape (N, 3072)",
    ),
    (
        "data_is_a_str",
        lambda p: write_pickle(p, _cifar_batch("pixels")),
        "'data' is a str, expected a uint8 array of shape (N, 3072)",
    ),
    (
        "label_count",
        lambda p: write_pickle(p, _cifar_batch(labels=[0, 1, 2])),
        "'labels' holds 3 labels, but 'data' holds 4 images",
    ),
    (
        "label_range",
        lambda p: write_pickle(p, _cifar_batch(labels=[0, 1, 10, 3])),
        "'labels' must be in 0..9: 1 out of range, the first 10",
    ),
    (
        "label_strings",
        lambda p: write_pickle(p, _cifar_batch(labels=["cat", "dog", "cat", "dog"])),
        "'labels' must be a list of integers, one per image",
    ),
]


@pytest.mark.parametrize(
    ("case", "write", "problem"), CIFAR_CASES, ids=[case[0] for case in CIFAR_CASES]
)
def test_garbage_cifar_batch_is_a_config_error_naming_it(
    tmp_data_root: Path, case: str, write: Callable[[Path], None], problem: str
) -> None:
    write_cifar10(tmp_data_root)
    batch = tmp_data_root / "cifar-10-batches-py" / "data_batch_3"
    write(batch)
    message = _load_fails("cifar10", tmp_data_root)
    assert f"{batch}: {problem}" in message


def test_cifar100_needs_its_fine_labels(tmp_data_root: Path) -> None:
    folder = tmp_data_root / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        write_pickle(
            folder / name, {"data": np.zeros((2, 3072), np.uint8), "coarse_labels": [0, 1]}
        )
    message = _load_fails("cifar100", tmp_data_root)
    assert (
        f"{folder / 'train'}: not a CIFAR batch: no 'fine_labels' entry (it has: coarse_labels, data)"
        in message
    )


def test_bad_data_file_names_the_path() -> None:
    err = BadDataFile("/data/x", "truncated")
    assert str(err) == "/data/x: truncated" and err.path == "/data/x"


# --- missing files --------------------------------------------------------------------------------


def test_missing_files_of_a_partial_layout_are_listed(tmp_data_root: Path) -> None:
    raw = tmp_data_root / "KMNIST" / "raw"
    write_mnist(raw)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    message = _load_fails("kmnist", tmp_data_root)
    assert f"missing: {raw / 't10k-labels-idx1-ubyte'};" in message
    assert "download: true (--download)" in message


def test_missing_cifar_batches_are_listed(tmp_data_root: Path) -> None:
    write_cifar10(tmp_data_root)
    folder = tmp_data_root / "cifar-10-batches-py"
    (folder / "data_batch_2").unlink()
    (folder / "test_batch").unlink()
    message = _load_fails("cifar10", tmp_data_root)
    assert f"missing: {folder / 'data_batch_2'}, {folder / 'test_batch'};" in message


# --- Fashion-MNIST in Debian's layout -------------------------------------------------------------


def test_fashion_mnist_reads_debian_layout_in_place(tmp_data_root: Path) -> None:
    x_train, y_train, x_test, y_test = write_mnist(
        tmp_data_root, n_train=30, n_test=12, seed=4, gz=True
    )
    before = sorted(p.name for p in tmp_data_root.iterdir())
    data = load_dataset("fashion_mnist", str(tmp_data_root), val_fraction=0.0)
    assert data.info.name == "fashion_mnist" and data.sizes() == {"train": 30, "val": 0, "test": 12}
    assert np.array_equal(data.x_train[:, 0].numpy(), x_train)
    assert np.array_equal(data.x_test[:, 0].numpy(), x_test)
    assert data.y_train.tolist() == y_train.tolist() and data.y_test.tolist() == y_test.tolist()
    # read in place: nothing copied, extracted or locked beside the files
    assert (
        sorted(p.name for p in tmp_data_root.iterdir())
        == before
        == sorted(f + ".gz" for f in MNIST_FILES)
    )


def test_fashion_mnist_reads_gzipped_files_in_torchvision_layout(tmp_data_root: Path) -> None:
    x_train, *_ = write_mnist(tmp_data_root / "FashionMNIST" / "raw", gz=True)
    data = load_dataset("fashion_mnist", str(tmp_data_root), val_fraction=0.0)
    assert np.array_equal(data.x_train[:, 0].numpy(), x_train)


def test_fashion_mnist_not_found_names_both_layouts_and_the_debian_package(
    tmp_data_root: Path,
) -> None:
    message = _load_fails("fashion_mnist", tmp_data_root)
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in message
    assert "or the same files directly in the data root (Debian's layout)" in message
    assert (
        f"apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}" in message
        and DEBIAN_FASHION_MNIST_ROOT in message
    )
    assert "--download" in message


def test_the_debian_layout_is_only_fashion_mnists(tmp_data_root: Path) -> None:
    # the MNIST family shares file names: flat files could be any of them, and Debian ships Fashion-MNIST
    write_mnist(tmp_data_root, gz=True)
    assert "not found" in _load_fails("mnist", tmp_data_root)


_DEBIAN = Path(DEBIAN_FASHION_MNIST_ROOT)


@pytest.mark.skipif(
    not all((_DEBIAN / f"{f}.gz").is_file() for f in MNIST_FILES),
    reason=f"Debian's package {DEBIAN_FASHION_MNIST_PACKAGE} is not installed (no {_DEBIAN}/*-ubyte.gz);"
    " `make data` installs it",
)
def test_real_fashion_mnist_from_the_debian_package() -> None:
    data = load_dataset("fashion_mnist", str(_DEBIAN))
    assert data.sizes() == {"train": 60_000 - 6_000, "val": 6_000, "test": 10_000}
    assert data.x_train.shape[1:] == data.x_test.shape[1:] == (1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images of each of its 10 classes
    assert (data.y_train.bincount() + data.y_val.bincount()).tolist() == [6_000] * 10
    assert data.y_test.bincount().tolist() == [1_000] * 10
    # the files' first labels (ankle boot, T-shirt, T-shirt, dress, ...), in file order
    x_train, y_train, _, y_test = data_files.load_files("fashion_mnist", str(_DEBIAN), False, 10)
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert x_train.mean() / 255 == pytest.approx(data.info.mean[0], abs=1e-4)


# --- SVHN's MATLAB files --------------------------------------------------------------------------


def test_svhn_mat_files_round_trip(tmp_data_root: Path) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(5)
    parts = {}
    for name, n in (("train", 6), ("test", 4)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(1, 11, n)
        labels[0] = 10  # SVHN's label of the digit 0
        # the files hold X as (H, W, C, N) and y as (N, 1)
        savemat(
            tmp_data_root / f"{name}_32x32.mat",
            {"X": images.transpose(2, 3, 1, 0), "y": labels[:, None]},
        )
        parts[name] = images, labels
    data = load_dataset("svhn", str(tmp_data_root), val_fraction=0.0)
    assert np.array_equal(data.x_train.numpy(), parts["train"][0])
    assert np.array_equal(data.x_test.numpy(), parts["test"][0])
    assert data.y_train.tolist() == [0 if v == 10 else int(v) for v in parts["train"][1]]
    assert data.y_train[0] == 0


def test_garbage_svhn_file_is_a_config_error(tmp_data_root: Path) -> None:
    from scipy.io import savemat

    (tmp_data_root / "train_32x32.mat").write_bytes(b"not a MATLAB file")
    savemat(
        tmp_data_root / "test_32x32.mat",
        {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])},
    )
    message = _load_fails("svhn", tmp_data_root)
    assert f"{tmp_data_root / 'train_32x32.mat'}: not a MATLAB v5 file of SVHN" in message
    (tmp_data_root / "train_32x32.mat").write_bytes((tmp_data_root / "test_32x32.mat").read_bytes())
    message = _load_fails("svhn", tmp_data_root)
    assert (
        "'y' (10 stands for the digit 0) must be in 1..10: 1 out of range, the first 11" in message
    )


# --- downloads only when asked --------------------------------------------------------------------


def _with_download(
    monkeypatch: pytest.MonkeyPatch, name: str, download: Callable[[str], None]
) -> list[str]:
    calls: list[str] = []

    def recorded(root: str) -> None:
        calls.append(root)
        download(root)

    monkeypatch.setitem(
        data_files.SOURCES, name, dataclasses.replace(data_files.SOURCES[name], download=recorded)
    )
    return calls


def test_download_fetches_missing_files_into_torchvision_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "new-root"
    calls = _with_download(monkeypatch, "mnist", lambda r: write_mnist(Path(r) / "MNIST" / "raw"))
    data = load_dataset("mnist", str(root), download=True, val_fraction=0.0)
    assert calls == [str(root)] and data.sizes() == {"train": 20, "val": 0, "test": 10}
    load_dataset("mnist", str(root), download=True)  # files there: no second download
    assert calls == [str(root)]


def test_no_download_unless_asked(tmp_data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _with_download(monkeypatch, "cifar10", lambda r: None)
    _load_fails("cifar10", tmp_data_root)
    assert calls == [] and list(tmp_data_root.iterdir()) == []


def test_failed_download_is_a_config_error(
    tmp_data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(root: str) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    _with_download(monkeypatch, "fashion_mnist", offline)
    message = _load_fails("fashion_mnist", tmp_data_root, download=True)
    reason = "Error downloading train-images-idx3-ubyte.gz: no network"
    assert f"the download into {tmp_data_root} failed ({reason})" in message
