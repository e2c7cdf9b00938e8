"""Where each file-backed data set lives under a data root, and reading it from there in place.

A data set's files sit in one of its layouts: torchvision's (``MNIST/raw/``, ``cifar-10-batches-py/``,
...) and, for Fashion-MNIST, also Debian's: the package ``dataset-fashion-mnist`` installs the four
gzipped IDX files directly in ``/usr/share/datasets/fashion-mnist``, which is then the data root.
Files are read where they are by the checked readers of :mod:`taso_tune.training.data.readers`: nothing is
copied, and nothing is fetched unless ``download`` is asked. A download uses torchvision's helpers,
which verify the checksum of each archive they fetch, and is serialised by a lock file in the root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from taso_tune.core.errors import ConfigError
from taso_tune.training.data.readers import (
    BadDataFile,
    check_same_length,
    read_cifar_batch,
    read_idx_images,
    read_idx_labels,
    read_svhn_mat,
)

DEBIAN_FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Training images, training labels, test images, test labels, as numpy arrays.
RawArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Layout:
    """One place a data set's files may be: ``folder`` under the data root ("" for the root)."""

    folder: str
    files: tuple[str, ...]
    note: str = ""
    gzip_ok: bool = False  # each file may also be there as FILE.gz (IDX files only)

    def locate(self, root: str) -> list[str | None]:
        """The path of each file under ``root`` (the plain file before its .gz), None if absent."""
        found: list[str | None] = []
        for file in self.files:
            candidates = [file, file + ".gz"] if self.gzip_ok else [file]
            paths = [os.path.join(root, self.folder, c) for c in candidates]
            found.append(next((p for p in paths if os.path.isfile(p)), None))
        return found

    def describe(self, files_named: bool = True) -> str:
        """Where the files go; ``files_named=False`` when an earlier layout already listed them."""
        if files_named:
            text = (f"{self.folder}/" if self.folder else "") + ", ".join(self.files)
            if self.gzip_ok:
                text += " (each plain or gzipped, .gz)"
            if not self.folder:
                text += " directly in the data root"
        else:
            text = "the same files " + (
                f"in {self.folder}/" if self.folder else "directly in the data root"
            )
        return text + (f" {self.note}" if self.note else "")


Reader = Callable[[list[str], int], RawArrays]


@dataclass(frozen=True)
class Source:
    """A file-backed data set: its layouts, the reader of its files and how to fetch them."""

    layouts: tuple[Layout, ...]
    read: Reader  # (paths in the layout's order, number of classes) -> arrays
    download: Callable[[str], None]  # fetch into the data root (torchvision's layout)
    hint: str = ""  # advice added to a "not found" message

    def expected(self) -> str:
        """Every layout, for a message; a layout with the files of the one before names them once."""
        texts = [
            layout.describe(i == 0 or layout.files != self.layouts[i - 1].files)
            for i, layout in enumerate(self.layouts)
        ]
        return " or ".join(texts)


def _read_mnist(paths: list[str], num_classes: int) -> RawArrays:
    arrays = []
    for images_path, labels_path in (paths[0:2], paths[2:4]):
        images, labels = read_idx_images(images_path), read_idx_labels(labels_path, num_classes)
        check_same_length(images_path, images, labels_path, labels)
        arrays += [images, labels]
    return tuple(arrays)


def _cifar_reader(label_key: str) -> Reader:
    def read(paths: list[str], num_classes: int) -> RawArrays:
        parts = [read_cifar_batch(path, label_key, num_classes) for path in paths]
        *train, test = parts
        return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *test

    return read


def _read_svhn(paths: list[str], num_classes: int) -> RawArrays:
    del num_classes  # SVHN's ten digits are checked by its reader
    return (*read_svhn_mat(paths[0]), *read_svhn_mat(paths[1]))


def _download_mnist(class_name: str) -> Callable[[str], None]:
    def download(root: str) -> None:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive

        cls = getattr(tvd, class_name)
        raw = os.path.join(root, class_name, "raw")
        for filename, md5 in cls.resources:
            if os.path.isfile(os.path.join(raw, filename.removesuffix(".gz"))):
                continue
            errors = []
            for mirror in cls.mirrors:
                try:
                    download_and_extract_archive(
                        mirror + filename, download_root=raw, filename=filename, md5=md5
                    )
                    break
                except (RuntimeError, OSError) as err:
                    errors.append(f"{mirror}: {err}")
            else:
                raise RuntimeError(f"{filename}: " + "; ".join(errors))

    return download


def _download_cifar(class_name: str) -> Callable[[str], None]:
    def download(root: str) -> None:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive

        cls = getattr(tvd, class_name)
        download_and_extract_archive(cls.url, root, filename=cls.filename, md5=cls.tgz_md5)

    return download


def _download_svhn(root: str) -> None:
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_url

    for split in ("train", "test"):
        url, filename, md5 = tvd.SVHN.split_list[split]
        if not os.path.isfile(os.path.join(root, filename)):
            download_url(url, root, filename, md5)


def _mnist_source(class_name: str, *extra: Layout, hint: str = "") -> Source:
    torchvision_layout = Layout(
        f"{class_name}/raw", MNIST_FILES, "(torchvision's layout)" if extra else "", True
    )
    return Source((torchvision_layout, *extra), _read_mnist, _download_mnist(class_name), hint)


_DEBIAN_HINT = (
    f"; Debian's package {DEBIAN_FASHION_MNIST_PACKAGE} installs the gzipped files in {DEBIAN_FASHION_MNIST_ROOT}"
    f" (apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}, or make data), then use that folder as the data root"
)

SOURCES: dict[str, Source] = {
    "mnist": _mnist_source("MNIST"),
    "fashion_mnist": _mnist_source(
        "FashionMNIST",
        Layout("", MNIST_FILES, "(Debian's layout)", gzip_ok=True),
        hint=_DEBIAN_HINT,
    ),
    "kmnist": _mnist_source("KMNIST"),
    "cifar10": Source(
        (Layout("cifar-10-batches-py", (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")),),
        _cifar_reader("labels"),
        _download_cifar("CIFAR10"),
    ),
    "cifar100": Source(
        (Layout("cifar-100-python", ("train", "test")),),
        _cifar_reader("fine_labels"),
        _download_cifar("CIFAR100"),
    ),
    "svhn": Source(
        (Layout("", ("train_32x32.mat", "test_32x32.mat")),), _read_svhn, _download_svhn
    ),
}


def _find(source: Source, root: str) -> list[str] | None:
    for layout in source.layouts:
        paths = layout.locate(root)
        if all(paths):
            return paths
    return None


def _not_found(name: str, source: Source, root: str, downloaded: bool) -> str:
    text = f"dataset {name!r} not found under {root}: expected {source.expected()}"
    # a layout that holds some of its files says which of them are missing
    partial = max(
        source.layouts, key=lambda layout: sum(p is not None for p in layout.locate(root))
    )
    present = partial.locate(root)
    if any(present):
        missing = [
            os.path.join(root, partial.folder, f)
            for f, p in zip(partial.files, present, strict=True)
            if not p
        ]
        text += f"; missing: {', '.join(missing)}"
    if downloaded:
        return text + "; the download did not produce them" + source.hint
    return (
        text
        + "; copy the files there, or set download: true (--download) to fetch them"
        + source.hint
    )


def load_files(name: str, data_root: str | None, download: bool, num_classes: int) -> RawArrays:
    """The arrays of the file-backed data set ``name`` under ``data_root``, read in place.

    Every problem (no root, files missing, a file that is not what its format says) is a
    :class:`ConfigError` on ``data_root`` that names the path and what is wrong.
    """
    source = SOURCES[name]
    if not data_root:
        raise ConfigError(
            "data_root",
            data_root,
            f"dataset {name!r} needs a data root (--data-root DIR){source.hint}",
        )
    root = os.path.abspath(os.path.expanduser(data_root))
    if not download and not os.path.isdir(root):
        raise ConfigError(
            "data_root",
            data_root,
            f"directory {root} does not exist; dataset {name!r} expects in it {source.expected()}: "
            f"create it and copy the files there, or set download: true (--download) to fetch them{source.hint}",
        )
    paths = _find(source, root)
    if paths is None and download:
        from filelock import FileLock

        try:
            os.makedirs(root, exist_ok=True)
            with FileLock(os.path.join(root, f".{name}.download.lock")):
                source.download(root)
        except (RuntimeError, OSError) as err:
            raise ConfigError(
                "data_root", data_root, f"dataset {name!r}: the download into {root} failed ({err})"
            ) from None
        paths = _find(source, root)
    if paths is None:
        raise ConfigError("data_root", data_root, _not_found(name, source, root, download))
    try:
        return source.read(paths, num_classes)
    except BadDataFile as err:
        raise ConfigError(
            "data_root",
            data_root,
            f"dataset {name!r}: {err}; replace the file, or delete it and set download: true (--download)"
            " to fetch a fresh copy",
        ) from None
    except FileNotFoundError as err:  # removed between looking and reading
        raise ConfigError(
            "data_root", data_root, f"dataset {name!r}: {err.filename} disappeared"
        ) from None
