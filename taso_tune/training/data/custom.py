"""Data sets the user brings: an image folder in torchvision's layout, or a loader function.

- ``imagefolder``: ``data_root`` holds ``train/CLASS/*.png|jpg`` and ``test/CLASS/...`` (and, if
  present, ``val/CLASS/...``), the layout of ``torchvision.datasets.ImageFolder``. Every image is
  decoded once, resized to ``image_size`` (default: the first training image's size) and kept as
  uint8, greyscale when every image is, else RGB. A folder whose images would take more memory than
  ``data_memory_gb`` (default a quarter of the machine's memory) is refused before decoding.
- ``package.module:callable``: the user's loader, called as ``callable()`` or, with a data root,
  ``callable(data_root=...)``. It returns ``(train, test)``, each a torch ``Dataset`` of
  ``(image, label)`` pairs or a pair of tensors ``(images, labels)``. The channels, the image size
  and the classes (``len(train.classes)`` when the set has ``classes``, else the largest label + 1)
  are read from what it returns.

Both end as the uint8 tensors every built-in data set becomes, so the device-resident batches and
the rest of the training loop are the same. Every problem is a :class:`ConfigError` naming the field,
the value and the file or item at fault.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from taso_tune.core.errors import ConfigError
from taso_tune.training.user_code import error_line, import_callable

IMAGE_FOLDER = "imagefolder"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: The share of the machine's memory an image folder may take when ``data_memory_gb`` is not set.
DEFAULT_MEMORY_SHARE = 0.25
SPLITS = ("train", "val", "test")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: Greyscale modes of more than 8 bits a pixel, scaled to 8 bits (:func:`_grey_as_uint8`).
DEEP_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def machine_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def default_memory_gb() -> float:
    """The memory budget of an image folder when ``data_memory_gb`` is not set."""
    return round(DEFAULT_MEMORY_SHARE * machine_memory_gb(), 1)


@dataclass(frozen=True)
class Loaded:
    """A data set the user brought, before the validation split: uint8 images (N, C, S, S)."""

    in_channels: int
    image_size: int
    num_classes: int
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None  # an image folder's own val/ part


# --- image folders -------------------------------------------------------------------------------


def _class_folders(root: str, split: str) -> list[str]:
    folder = os.path.join(root, split)
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _listing(root: str) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """The classes and, per split, every image file with its label."""
    if not os.path.isdir(root):
        raise ConfigError("data_root", root, "no such folder (imagefolder reads train/ and test/)")
    for split in ("train", "test"):
        if not os.path.isdir(os.path.join(root, split)):
            raise ConfigError(
                "data_root", root, f"has no {split}/ folder (imagefolder needs train/CLASS/*.png)"
            )
    classes = _class_folders(root, "train")
    if not classes:
        raise ConfigError("data_root", root, "train/ holds no class folders (train/CLASS/*.png)")
    files: dict[str, list[tuple[str, int]]] = {}
    for split in SPLITS:
        if split == "val" and not os.path.isdir(os.path.join(root, "val")):
            continue
        found = _class_folders(root, split)
        if found != classes:
            only_here = sorted(set(found) - set(classes))
            missing = sorted(set(classes) - set(found))
            raise ConfigError(
                "data_root",
                root,
                f"the classes of {split}/ differ from train/'s: only in {split}/: {only_here}; "
                f"missing from {split}/: {missing}",
            )
        files[split] = []
        for label, name in enumerate(classes):
            folder = os.path.join(root, split, name)
            images = sorted(
                os.path.join(folder, f)
                for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_SUFFIXES)
            )
            if not images:  # as torchvision's ImageFolder: a class with no image in a split
                raise ConfigError(
                    "data_root", root, f"{split}/{name}/ holds no .png or .jpg images"
                )
            files[split] += [(path, label) for path in images]
        if not files[split]:
            raise ConfigError("data_root", root, f"{split}/ holds no .png or .jpg images")
    return classes, files


def _open(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise ConfigError("data_root", path, f"cannot read this image: {error_line(err)}") from err


def load_image_folder(root: str, image_size: int | None, memory_gb: float | None) -> Loaded:
    """Read an image folder in torchvision's layout (see the module docstring)."""
    classes, files = _listing(root)
    every = [path for split in files.values() for path, _ in split]
    modes, first_size = set(), None
    for path in every:  # headers only: a bad file is named before any decoding
        with _open(path) as image:
            modes.add(image.mode)
            first_size = first_size or image.size
    grey = modes <= set(GREY_MODES)
    channels = 1 if grey else 3
    if image_size is None:
        width, height = first_size
        if width != height:
            raise ConfigError(
                "image_size",
                None,
                f"{root}: the images are {width}x{height}, not square: set image_size",
            )
        image_size = width
    budget = default_memory_gb() if memory_gb is None else memory_gb
    need = len(every) * channels * image_size * image_size / 2**30
    if need > budget:
        raise ConfigError(
            "data_memory_gb",
            budget,
            f"{root}: {len(every)} images at {image_size}x{image_size}x{channels} need "
            f"{need:.2f} GB in memory, over the budget; lower image_size, use a smaller folder, "
            "or raise data_memory_gb",
        )
    tensors = {}
    for split, items in files.items():
        x = torch.empty((len(items), channels, image_size, image_size), dtype=torch.uint8)
        for i, (path, _) in enumerate(items):
            x[i] = _decode(path, grey, image_size)
        y = torch.tensor([label for _, label in items], dtype=torch.int64)
        tensors[split] = (x, y)
    return Loaded(
        channels,
        image_size,
        len(classes),
        tensors["train"],
        tensors["test"],
        tensors.get("val"),
    )


def _grey_as_uint8(array: np.ndarray, mode: str, path: str) -> np.ndarray:
    """A 16-bit, 32-bit or float greyscale image in 8 bits, scaled, not clipped: Pillow's own
    conversion to ``L`` clips, which turns a 16-bit PNG's every pixel above 255 white."""
    values = array.astype(np.float64)
    high = float(values.max()) if values.size else 0.0
    low = float(values.min()) if values.size else 0.0
    if not np.isfinite(values).all() or low < 0 or high > 65535:
        raise ConfigError(
            "data_root",
            path,
            f"cannot read this image: its {mode} pixels lie in [{low:.3g}, {high:.3g}], "
            "outside the 8- or 16-bit range",
        )
    if mode.startswith("I;16") or high > 255:
        values = values / 257  # 16 bits to 8: 65535 -> 255
    return np.round(values).astype(np.uint8)


def _decode(path: str, grey: bool, size: int) -> torch.Tensor:
    from PIL import Image

    with _open(path) as image:
        try:
            if image.mode in DEEP_GREY_MODES:
                image = Image.fromarray(_grey_as_uint8(np.asarray(image), image.mode, path))
            image = image.convert("L" if grey else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
        except OSError as err:  # a truncated file fails when its pixels are read
            raise ConfigError(
                "data_root", path, f"cannot read this image: {error_line(err)}"
            ) from err
    return torch.from_numpy(array.copy()).reshape(size, size, -1).permute(2, 0, 1)


# --- the user's loader ---------------------------------------------------------------------------


def _image_tensor(image: Any, where: str, field: str, spec: str) -> torch.Tensor:
    """One image as uint8 (C, H, W) from a tensor, an array or a PIL image."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image)
        if image.ndim == 3:
            image = image.transpose(2, 0, 1)  # PIL arrays are (H, W, C)
    x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ConfigError(
            field, spec, f"{where}: an image must be (C, H, W) or (H, W), got {list(x.shape)}"
        )
    return _as_uint8(x, where, field, spec)


def _as_uint8(x: torch.Tensor, where: str, field: str, spec: str) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < -1e-6 or high > 1 + 1e-6:
            raise ConfigError(
                field,
                spec,
                f"{where}: float images must hold values in [0, 1], got [{low:.3g}, {high:.3g}]",
            )
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)
    if x.dtype in (torch.int16, torch.int32, torch.int64, torch.uint16) and (
        x.numel() == 0 or (int(x.min()) >= 0 and int(x.max()) <= 255)
    ):
        return x.to(torch.uint8)
    raise ConfigError(
        field, spec, f"{where}: images must be uint8, or floats in [0, 1]; got {x.dtype}"
    )


def _split_tensors(
    part: Any, split: str, field: str, spec: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of one split the loader returned."""
    if (
        isinstance(part, (tuple, list))
        and len(part) == 2
        and all(isinstance(p, (torch.Tensor, np.ndarray)) for p in part)
    ):
        images, labels = (torch.as_tensor(p) for p in part)
        if len(images) == 0:
            raise ConfigError(field, spec, f"{split}: the set is empty")
        if images.ndim == 3:
            images = images.unsqueeze(1)
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise ConfigError(
                field,
                spec,
                f"{split}: tensors must be images (N, C, H, W) or (N, H, W) and labels (N,), got "
                f"{list(images.shape)} and {list(labels.shape)}",
            )
        return _as_uint8(images, f"{split} images", field, spec), _labels(
            labels, split, field, spec
        )
    if not (hasattr(part, "__getitem__") and hasattr(part, "__len__")):
        raise ConfigError(
            field,
            spec,
            f"{split}: must be a torch Dataset of (image, label) or a pair of tensors "
            f"(images, labels), got {type(part).__name__}",
        )
    images, labels = [], []
    for i in range(len(part)):
        item = part[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ConfigError(
                field,
                spec,
                f"{split}[{i}]: must be an (image, label) pair, got {type(item).__name__}",
            )
        image = _image_tensor(item[0], f"{split}[{i}]", field, spec)
        if images and image.shape != images[0].shape:
            raise ConfigError(
                field,
                spec,
                f"{split}[{i}]: image of shape {list(image.shape)}, while {split}[0] is "
                f"{list(images[0].shape)}: every image must have the same shape",
            )
        images.append(image)
        labels.append(item[1])
    if not images:
        raise ConfigError(field, spec, f"{split}: the set is empty")
    return torch.stack(images), _labels(labels, split, field, spec)


def _labels(values: Any, split: str, field: str, spec: str) -> torch.Tensor:
    """Integer class labels; floats only when every one is a whole number (``3.0``), never cut."""
    try:
        if isinstance(values, (torch.Tensor, np.ndarray)):
            labels = torch.as_tensor(values)
        else:
            labels = torch.as_tensor(
                [v.item() if isinstance(v, (torch.Tensor, np.generic)) else v for v in values]
            )
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(
            field, spec, f"{split}: labels must be integers ({error_line(err)})"
        ) from err
    if labels.dtype == torch.bool or labels.is_complex():
        raise ConfigError(field, spec, f"{split}: labels must be integers, got {labels.dtype}")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == labels.round())
        if not bool(whole.all()):
            i = int((~whole).nonzero()[0, 0])
            raise ConfigError(
                field,
                spec,
                f"{split}: labels must be integers, got {float(labels[i])!r} at {split}[{i}]",
            )
    return labels.to(torch.int64)


def load_user_data(spec: str, data_root: str | None, field: str = "dataset") -> Loaded:
    """Call the user's loader ``spec`` and check what it returns (see the module docstring)."""
    loader = import_callable(spec, field)
    try:
        result = loader() if data_root is None else loader(data_root=data_root)
    except (Exception, SystemExit) as err:  # the user's loader: its own error, named
        raise ConfigError(field, spec, f"the loader raised {error_line(err)}") from err
    if not (isinstance(result, Sequence) and len(result) == 2):
        raise ConfigError(
            field,
            spec,
            f"the loader must return (train, test), got {type(result).__name__}"
            + (f" of {len(result)}" if isinstance(result, Sequence) else ""),
        )
    train_part, test_part = result
    train = _split_tensors(train_part, "train", field, spec)
    test = _split_tensors(test_part, "test", field, spec)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ConfigError(
            field,
            spec,
            f"train images are {list(train[0].shape[1:])} and test images "
            f"{list(test[0].shape[1:])}: they must match",
        )
    channels, height, width = train[0].shape[1:]
    if height != width:
        if width in (1, 3, 4) and channels == height:  # (N, H, W, C), as numpy and PIL lay out
            raise ConfigError(
                field,
                spec,
                f"images of shape {list(train[0].shape[1:])} look channels-last (H, W, C): "
                "give them as (C, H, W), e.g. images.permute(0, 3, 1, 2)",
            )
        raise ConfigError(
            field, spec, f"images must be square, got {height}x{width}: resize them in the loader"
        )
    classes = getattr(train_part, "classes", None)
    num_classes = (
        len(classes) if classes is not None else int(max(train[1].max(), test[1].max())) + 1
    )
    for split, (_, labels) in (("train", train), ("test", test)):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ConfigError(
                field,
                spec,
                f"{split}: label {int(bad[0])} is outside [0, {num_classes}) "
                f"({num_classes} classes)",
            )
    return Loaded(int(channels), int(height), num_classes, train, test, None)
