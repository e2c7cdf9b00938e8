"""Data sets as whole uint8 tensors, a fixed validation split, and batches made on the training device.

Every data set becomes one :class:`ImageData`: uint8 images (N, C, H, W) and int64 labels for the
train, validation and test parts. The training loop moves it to its device once and cuts batches
there (:class:`DeviceBatches`); normalisation and the paper's CIFAR augmentation (random crop with
padding 4, horizontal flip) run on whole batches, with no PIL and no per-image Python.

Real data sets are read by torchvision's classes from ``data_root``. They are not downloaded unless
asked (``download=True``); offline, a missing data set fails with a message saying where the files
must go. Downloads into one root are serialised by a file lock.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from taso_tune.errors import ConfigError, Registry

#: Seed of the fixed validation split and of the digits test hold-out. It never changes with the
#: trial's seed, so every trial of every sweep is scored on the same images.
SPLIT_SEED = 20_210_301
DIGITS_TEST_SIZE = 360  # of scikit-learn's 1,797 digits; the rest are the training set
DIGITS_IMAGE_SIZE = 28  # digits are 8x8; brought to LeNet's MNIST input size
#: Label of the rows ``DeviceBatches(pad_last=True)`` adds: cross-entropy's default ``ignore_index``,
#: and never equal to a predicted class.
PAD_LABEL = -100


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the batch pipeline need to know about a data set."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # the paper's CIFAR augmentation: random crop (padding 4) + horizontal flip


@dataclass
class ImageData:
    """A data set in memory: uint8 images (N, C, H, W) and int64 labels, split three ways."""

    info: DatasetInfo
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (a no-op when it is already there)."""
        names = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        return replace(self, **{n: getattr(self, n).to(device) for n in names})

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


RawSplits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Loader = Callable[[str | None, bool], tuple[DatasetInfo, RawSplits]]
DATASETS: Registry = Registry("dataset")


def _as_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:  # (N, H, W) greyscale
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().to(torch.uint8)


def _labels(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.int64)


# --- scikit-learn's bundled digits: real data available on every machine -------------------------


@DATASETS.register("digits")
def _load_digits(data_root: str | None, download: bool) -> tuple[DatasetInfo, RawSplits]:
    del data_root, download  # bundled with scikit-learn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8) in [0,1]
    x = F.interpolate(x, size=(DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    y = _labels(bunch.target)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=SPLIT_SEED % 2**32
    )
    idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
    mean, std = _stats(x[idx_train])
    info = DatasetInfo("digits", 1, DIGITS_IMAGE_SIZE, 10, mean, std, augment=False)
    return info, (x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float() / 255.0
    dims = (0, 2, 3)
    return tuple(xf.mean(dims).tolist()), tuple(xf.std(dims).tolist())


# --- synthetic: random images with learnable class structure, for smoke tests --------------------


@DATASETS.register("synthetic")
def _load_synthetic(data_root: str | None, download: bool) -> tuple[DatasetInfo, RawSplits]:
    del data_root, download
    g = torch.Generator().manual_seed(SPLIT_SEED)
    classes, side = 10, 28
    prototypes = torch.rand(classes, 1, side, side, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (n,), generator=g)
        x = 0.6 * prototypes[y] + 0.4 * torch.rand(n, 1, side, side, generator=g)
        return (x * 255).to(torch.uint8), y

    x_tr, y_tr = make(512)
    x_te, y_te = make(128)
    info = DatasetInfo("synthetic", 1, side, classes, (0.5,), (0.25,), augment=False)
    return info, (x_tr, y_tr, x_te, y_te)


# --- torchvision data sets read from a local root -------------------------------------------------


def _local_cifar(base):
    """A torchvision CIFAR class that trusts files already on disk (the archive's checksum is still
    verified when torchvision downloads it), so copies and test fixtures load as they are."""

    class LocalCIFAR(base):
        train_list = [[name, None] for name, _ in base.train_list]
        test_list = [[name, None] for name, _ in base.test_list]
        meta = {**base.meta, "md5": None}

    LocalCIFAR.__name__ = base.__name__
    return LocalCIFAR


def _torchvision_loader(
    name: str,
    class_name: str,
    expected: str,
    info: DatasetInfo,
) -> Loader:
    def load(data_root: str | None, download: bool) -> tuple[DatasetInfo, RawSplits]:
        import torchvision.datasets as tvd
        from filelock import FileLock

        if not data_root:
            raise ConfigError("data_root", data_root, f"dataset {name!r} needs a data root (--data-root DIR)")
        root = os.path.abspath(os.path.expanduser(data_root))
        if not download and not os.path.isdir(root):
            raise ConfigError(
                "data_root",
                data_root,
                f"directory does not exist; dataset {name!r} expects {expected} under it: "
                "create it and copy the files there, or pass --download to fetch it",
            )
        cls = getattr(tvd, class_name)
        if class_name.startswith("CIFAR"):
            cls = _local_cifar(cls)
        split_args = [{"split": "train"}, {"split": "test"}] if name == "svhn" else [
            {"train": True}, {"train": False}]  # fmt: skip
        try:
            if download:
                os.makedirs(root, exist_ok=True)
                with FileLock(os.path.join(root, f".{name}.download.lock")):
                    parts = [cls(root, download=True, **a) for a in split_args]
            else:
                parts = [cls(root, download=False, **a) for a in split_args]
        except (RuntimeError, OSError) as err:
            how = "copy the files there" if not download else f"the download failed ({err})"
            raise ConfigError(
                "data_root",
                data_root,
                f"dataset {name!r} not found: expected {expected} under it; {how}"
                + ("" if download else ", or pass --download to fetch it"),
            ) from None
        out = []
        for part in parts:
            images = part.data
            labels = getattr(part, "targets", None)
            if labels is None:
                labels = part.labels
            out += [_as_nchw_uint8(images), _labels(labels)]
        return info, tuple(out)

    return load


_MNIST_FILES = "{cls}/raw/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
for _name, _cls, _mean, _std in [
    ("mnist", "MNIST", 0.1307, 0.3081),
    ("fashion_mnist", "FashionMNIST", 0.2860, 0.3530),
    ("kmnist", "KMNIST", 0.1918, 0.3483),
]:
    DATASETS[_name] = _torchvision_loader(
        _name, _cls, _MNIST_FILES.format(cls=_cls), DatasetInfo(_name, 1, 28, 10, (_mean,), (_std,), False)
    )
DATASETS["cifar10"] = _torchvision_loader(
    "cifar10",
    "CIFAR10",
    "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
    DatasetInfo("cifar10", 3, 32, 10, (0.491, 0.482, 0.446), (0.247, 0.243, 0.261), True),
)
DATASETS["cifar100"] = _torchvision_loader(
    "cifar100",
    "CIFAR100",
    "cifar-100-python/{train, test, meta}",
    DatasetInfo("cifar100", 3, 32, 100, (0.507, 0.486, 0.440), (0.267, 0.256, 0.276), True),
)
DATASETS["svhn"] = _torchvision_loader(
    "svhn",
    "SVHN",
    "train_32x32.mat, test_32x32.mat",
    DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.198, 0.201, 0.197), False),
)


def validation_split(
    n: int, val_fraction: float, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a deterministic split; the same for every trial seed."""
    if not 0 <= val_fraction < 1:
        raise ConfigError("val_fraction", val_fraction, "must be in [0, 1)")
    n_val = int(math.floor(n * val_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def load_dataset(
    name: str,
    data_root: str | None = None,
    *,
    download: bool = False,
    val_fraction: float = 0.1,
    train_limit: int | None = None,
) -> ImageData:
    """Load the registered data set ``name`` and split a validation part off its training set.

    ``train_limit`` keeps only the first N training images (before the split), for quick runs on
    large data sets.
    """
    loader = DATASETS.get_or_fail(name, "dataset")
    info, (x_train, y_train, x_test, y_test) = loader(data_root, download)
    if train_limit is not None:
        if train_limit < 2:
            raise ConfigError("train_limit", train_limit, "must be >= 2")
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    idx_train, idx_val = validation_split(len(y_train), val_fraction)
    return ImageData(
        info,
        x_train[idx_train],
        y_train[idx_train],
        x_train[idx_val],
        y_train[idx_val],
        x_test,
        y_test,
    )


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """The paper's CIFAR augmentation on a whole batch (N, C, H, W): a random crop of the
    zero-padded image at the original size, then a horizontal flip with probability 1/2."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    # crop and flip are one gather from each flattened padded image (a flipped image reads its
    # columns right to left): one kernel, several times faster on a CPU than advanced indexing
    cols = torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]  # (N, W)
    rows = dy[:, None] + torch.arange(h, device=dev)  # (N, H)
    index = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # (N, H, W) into the padded image
    index = index.view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


class DeviceBatches:
    """Batches of one split, cut from tensors already on the training device.

    Shuffles with ``generator`` when given. Every batch has the same shape (what CUDA graphs and
    ``torch.compile`` want) with ``drop_last``, which drops the last partial batch (training), or with
    ``pad_last``, which fills it up with blank images labelled :data:`PAD_LABEL` (evaluation: the
    padding counts in neither the loss, as cross-entropy's ignored label, nor the accuracy). Yields
    normalised float images and labels.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        info: DatasetInfo,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
        pad_last: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator, self.augment, self.memory_format = generator, augment, memory_format
        self.drop_last = drop_last and len(y) > batch_size
        self.pad_last = pad_last and not self.drop_last
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(info.mean, device=x.device).view(shape) * 255.0
        self.std = torch.tensor(info.std, device=x.device).view(shape) * 255.0

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = None
        if self.generator is not None:
            order = torch.randperm(n, generator=self.generator, device=self.generator.device)
            order = order.to(self.x.device)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            idx = order[sl] if order is not None else sl
            xb, yb = self.x[idx], self.y[idx]
            if self.pad_last and len(yb) < self.batch_size:
                missing = self.batch_size - len(yb)
                xb = torch.cat([xb, xb.new_zeros((missing, *xb.shape[1:]))])
                yb = torch.cat([yb, yb.new_full((missing,), PAD_LABEL)])
            if self.augment:
                xb = random_crop_flip(xb, 4, self.generator)
            xb = ((xb.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield xb, yb
