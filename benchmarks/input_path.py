"""Input path: our batched augmentation on the training device against torchvision's DataLoader.

Both sides read the same synthetic CIFAR-size data (uint8, 3 x 32 x 32, random pixels and labels) and
make the paper's CIFAR batches: random crop with padding 4, horizontal flip, normalisation, batch 128,
shuffled, last partial batch dropped.

* ours: :class:`taso_tune.training.data.sets.DeviceBatches` with ``augment=True`` on tensors already on the device
  (here the CPU, 1 torch thread): whole-batch crop/flip/normalise, no PIL, no per-image Python;
* torchvision: a Dataset that makes a PIL image per item, as ``torchvision.datasets.CIFAR10`` does,
  with ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, in a
  ``DataLoader`` with 0 and 2 worker processes (started each epoch, the DataLoader default).

Then one end-to-end epoch of LeNet5 (3-channel 32 px input, SGD) fed by each path, same model, same
step, same thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from common import Row, Target, add_repo_to_path, interleaved, median, section_main
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

add_repo_to_path()

from taso_tune.training.data.sets import DatasetInfo, DeviceBatches  # noqa: E402
from taso_tune.training.models import LeNet5  # noqa: E402

SECTION = "3 input path"
BATCH = 128
MEAN, STD = (0.491, 0.482, 0.446), (0.247, 0.243, 0.261)
CIFAR_INFO = DatasetInfo("cifar10-size", 3, 32, 10, MEAN, STD, augment=True)


class PILImages(Dataset):
    """uint8 images (N, H, W, C) served like torchvision's CIFAR10: one PIL image per item."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose
    ) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def synthetic_cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 images (N, 32, 32, 3), CIFAR's layout on disk, and labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def our_batches(images: np.ndarray, labels: np.ndarray) -> DeviceBatches:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    generator = torch.Generator().manual_seed(0)
    return DeviceBatches(
        x,
        torch.from_numpy(labels),
        CIFAR_INFO,
        BATCH,
        generator=generator,
        augment=True,
        drop_last=True,
    )


def torchvision_batches(images: np.ndarray, labels: np.ndarray, workers: int) -> DataLoader:
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    return DataLoader(
        PILImages(images, labels, transform),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )


def images_per_second(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Images/s of one pass over ``batches`` (the batches only, nothing done with them)."""
    start, seen = time.perf_counter(), 0
    for _, yb in batches:
        seen += len(yb)
    return seen / (time.perf_counter() - start)


def lenet_epoch_seconds(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds of one LeNet5 training epoch fed by ``batches`` (same model, seed and step each time)."""
    torch.manual_seed(0)
    model = LeNet5(in_channels=3, image_size=32, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    start = time.perf_counter()
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[Row]:
    n, repeats = (1024, 1) if quick else (5_000, 3)
    torch.set_num_threads(1)
    images, labels = synthetic_cifar(n)
    paths = {
        "ours": lambda: our_batches(images, labels),
        "torchvision, 0 workers": lambda: torchvision_batches(images, labels, 0),
        "torchvision, 2 workers": lambda: torchvision_batches(images, labels, 2),
    }
    rates = interleaved(
        {name: (lambda make=make: images_per_second(make())) for name, make in paths.items()},
        repeats,
    )
    epochs = interleaved(
        {name: (lambda make=make: lenet_epoch_seconds(make())) for name, make in paths.items()},
        repeats,
    )
    what = f"{n} images of 3x32x32 uint8, batch {BATCH}, 1 torch thread, n={repeats}"
    ours_rate, ours_epoch = median(rates["ours"]), median(epochs["ours"])
    rows = []
    for name in ("torchvision, 0 workers", "torchvision, 2 workers"):
        paired = median([a / b for a, b in zip(rates["ours"], rates[name], strict=True)])
        rows.append(
            Row(
                SECTION,
                f"augmented batches: ours vs {name}",
                f"{ours_rate:,.0f} img/s",
                f"{median(rates[name]):,.0f} img/s",
                paired,
                Target(">=", 5),
                what,
            )
        )
    for name in ("torchvision, 0 workers", "torchvision, 2 workers"):
        paired = median([a / b for a, b in zip(epochs["ours"], epochs[name], strict=True)])
        rows.append(
            Row(
                SECTION,
                f"LeNet5 epoch (3x32 px): ours vs {name}",
                f"{ours_epoch:.2f} s",
                f"{median(epochs[name]):.2f} s",
                paired,
                Target("<=", 1.0),
                f"{n // BATCH} steps of SGD; ratio of seconds",
            )
        )
    return rows


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
