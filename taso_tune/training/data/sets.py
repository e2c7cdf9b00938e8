"""Data sets as whole uint8 tensors, a fixed validation split, and batches made on the training device.

Every data set becomes one :class:`ImageData`: uint8 images (N, C, H, W) and int64 labels for the
train, validation and test parts. The training loop moves it to its device once and cuts batches
there (:class:`DeviceBatches`); normalisation and the paper's CIFAR augmentation (random crop with
padding 4, horizontal flip) run on whole batches, with no PIL and no per-image Python.

Real data sets are read in place from ``data_root`` by checked readers of their file formats
(:mod:`taso_tune.training.data.files`: where each data set's files may be; :mod:`taso_tune.training.data.readers`: the
formats, CIFAR's pickles included, read without running code). A bad file, a missing one or a
missing root is a :class:`ConfigError` naming the path. Nothing is downloaded unless asked
(``download=True``).

The validation split is a fixed part of the training set and ``train_limit`` a fixed, stratified
subset of it: neither changes with the trial's seed, so every trial of a sweep sees the same images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from taso_tune.core.errors import ConfigError, Registry
from taso_tune.training.data.custom import (
    IMAGE_FOLDER,
    Loaded,
    load_image_folder,
    load_user_data,
)
from taso_tune.training.data.files import load_files
from taso_tune.training.user_code import is_import_spec

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


def _as_nchw_uint8(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images)
    return (
        x.unsqueeze(1) if x.ndim == 3 else x
    ).contiguous()  # (N, H, W) greyscale gets its channel


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
    x = F.interpolate(
        x, size=(DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE), mode="bilinear", align_corners=False
    )
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    y = _labels(bunch.target)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)),
        test_size=DIGITS_TEST_SIZE,
        stratify=bunch.target,
        random_state=SPLIT_SEED % 2**32,
    )
    idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
    mean, std = _stats(x[idx_train])
    info = DatasetInfo("digits", 1, DIGITS_IMAGE_SIZE, 10, mean, std, augment=False)
    return info, (x[idx_train], y[idx_train], x[idx_test], y[idx_test])


#: Up to this many pixel values the statistics are taken in one go (every built-in data set);
#: above it, a chunk of images at a time, so an image folder as large as its memory budget
#: does not need eight times its size again in float copies.
STATS_IN_ONE_GO = 2**28
STATS_CHUNK = 2**24


def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in [0, 1] units."""
    dims = (0, 2, 3)
    if x.numel() <= STATS_IN_ONE_GO:
        xf = x.float() / 255.0
        return tuple(xf.mean(dims).tolist()), tuple(xf.std(dims).tolist())
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in x.split(max(1, STATS_CHUNK // x[0].numel())):
        values = chunk.to(torch.float64)
        total += values.sum(dims)
        squares += values.square().sum(dims)
    count = x.numel() // x.shape[1]
    mean = total / count
    variance = (squares - count * mean.square()).clamp_min(0) / max(count - 1, 1)
    return tuple((mean / 255.0).tolist()), tuple((variance.sqrt() / 255.0).tolist())


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


# --- data sets read from files under a data root --------------------------------------------------


def _file_loader(name: str, info: DatasetInfo) -> Loader:
    def load(data_root: str | None, download: bool) -> tuple[DatasetInfo, RawSplits]:
        x_train, y_train, x_test, y_test = load_files(name, data_root, download, info.num_classes)
        return info, (
            _as_nchw_uint8(x_train),
            _labels(y_train),
            _as_nchw_uint8(x_test),
            _labels(y_test),
        )

    return load


for _name, _mean, _std in [
    ("mnist", 0.1307, 0.3081),
    ("fashion_mnist", 0.2860, 0.3530),
    ("kmnist", 0.1918, 0.3483),
]:
    DATASETS[_name] = _file_loader(_name, DatasetInfo(_name, 1, 28, 10, (_mean,), (_std,), False))
DATASETS["cifar10"] = _file_loader(
    "cifar10", DatasetInfo("cifar10", 3, 32, 10, (0.491, 0.482, 0.446), (0.247, 0.243, 0.261), True)
)
DATASETS["cifar100"] = _file_loader(
    "cifar100",
    DatasetInfo("cifar100", 3, 32, 100, (0.507, 0.486, 0.440), (0.267, 0.256, 0.276), True),
)
DATASETS["svhn"] = _file_loader(
    "svhn", DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.198, 0.201, 0.197), False)
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


def stratified_subset(labels: torch.Tensor, size: int, seed: int = SPLIT_SEED) -> torch.Tensor:
    """Sorted indices of ``size`` examples with the class proportions of ``labels``.

    Each class gets its share of ``size`` rounded by largest remainder (ties to the lower class), so
    the counts add up to ``size`` exactly; its members are taken in the order of one fixed
    permutation, so the subset is the same for every trial seed and does not depend on how the
    files are sorted. ``size >= len(labels)`` keeps everything.
    """
    n = len(labels)
    if size >= n:
        return torch.arange(n)
    classes, counts = torch.unique(labels, return_counts=True)
    shares = counts.double() * size / n
    quotas = shares.floor().long()
    short = size - int(quotas.sum())
    # stable sort on the negated remainders: the largest first, equal ones in class order
    order = torch.sort(-(shares - quotas), stable=True).indices
    quotas[order[:short]] += 1
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shuffled = labels[perm]
    picked = [
        perm[shuffled == c][:q] for c, q in zip(classes.tolist(), quotas.tolist(), strict=True)
    ]
    return torch.cat(picked).sort().values


@DATASETS.register(IMAGE_FOLDER)
def _load_image_folder(data_root: str | None, download: bool) -> tuple[DatasetInfo, RawSplits]:
    """An image folder at its defaults; :func:`load_dataset` passes its size and memory fields."""
    del download  # nothing to download: the folder is the user's
    return _from_loaded(IMAGE_FOLDER, _image_folder(data_root, None, None))[:2]


def _image_folder(data_root: str | None, image_size: int | None, memory_gb: float | None) -> Loaded:
    if data_root is None:
        raise ConfigError("data_root", None, "imagefolder needs a data root (--data-root DIR)")
    return load_image_folder(data_root, image_size, memory_gb)


def _from_loaded(name: str, loaded: Loaded) -> tuple[DatasetInfo, RawSplits, tuple | None]:
    """A data set the user brought as the info, the raw splits and its own validation part."""
    (x_train, y_train), (x_test, y_test) = loaded.train, loaded.test
    mean, std = _stats(x_train)
    info = DatasetInfo(
        name, loaded.in_channels, loaded.image_size, loaded.num_classes, mean, std, False
    )
    return info, (x_train, y_train, x_test, y_test), loaded.val


DATASET_FORMS = "a built-in name, imagefolder (with data_root) or package.module:callable"


def check_dataset_name(name: object, field: str = "dataset") -> None:
    """Fail on a data set name no loader takes, without importing the user's code."""
    if is_import_spec(name) or (isinstance(name, str) and name in DATASETS):
        return
    raise ConfigError(
        field,
        name,
        f"unknown dataset (use {DATASET_FORMS})",
        choices=sorted(DATASETS),
    )


def load_dataset(
    name: str,
    data_root: str | None = None,
    *,
    download: bool = False,
    val_fraction: float = 0.1,
    train_limit: int | None = None,
    image_size: int | None = None,
    data_memory_gb: float | None = None,
) -> ImageData:
    """Load the data set ``name`` and split a validation part off its training set.

    ``name`` is a registered data set, ``imagefolder`` or the user's ``package.module:callable``
    loader (:mod:`taso_tune.training.data.custom`); ``image_size`` and ``data_memory_gb`` apply to
    an image folder. ``train_limit`` keeps a stratified subset of at most N training images
    (:func:`stratified_subset`, before the validation split), for quick runs on large data sets.
    An image folder's own ``val/`` part replaces the split. The test part is always the whole test
    set.
    """
    if train_limit is not None and (
        isinstance(train_limit, bool) or not isinstance(train_limit, int) or train_limit < 2
    ):
        raise ConfigError("train_limit", train_limit, "must be an integer >= 2")
    check_dataset_name(name)
    own_val = None
    if name == IMAGE_FOLDER or is_import_spec(name):
        if name == IMAGE_FOLDER:
            if data_root is None:
                raise ConfigError(
                    "data_root", None, "imagefolder needs a data root (--data-root DIR)"
                )
            loaded = load_image_folder(data_root, image_size, data_memory_gb)
        else:
            loaded = load_user_data(name, data_root)
        (x_train, y_train), (x_test, y_test), own_val = loaded.train, loaded.test, loaded.val
        mean, std = _stats(x_train)
        info = DatasetInfo(
            name, loaded.in_channels, loaded.image_size, loaded.num_classes, mean, std, False
        )
    else:
        loader = DATASETS[name]
        info, (x_train, y_train, x_test, y_test) = loader(data_root, download)
    if train_limit is not None:
        keep = stratified_subset(y_train, train_limit)
        x_train, y_train = x_train[keep], y_train[keep]
    if own_val is not None:
        return ImageData(info, x_train, y_train, *own_val, x_test, y_test)
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


def check_batch_size(batch_size: int, data: ImageData) -> None:
    """Fail when one training batch needs more images than the training part holds.

    Training drops its last partial batch, so a batch larger than the training part would train
    on fewer images than asked each step; the training loop calls this once its data is known.
    """
    n_train = len(data.y_train)
    if batch_size > n_train:
        sizes = ", ".join(f"{part} {count}" for part, count in data.sizes().items())
        raise ConfigError(
            "batch_size",
            batch_size,
            f"larger than the training part of dataset {data.info.name!r} ({sizes} images):"
            f" use a batch_size <= {n_train}, or a larger train_limit or smaller val_fraction",
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
    index = (
        rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]
    )  # (N, H, W) into the padded image
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
