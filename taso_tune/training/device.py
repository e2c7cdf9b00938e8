"""Where a trial's seeds train: the device, its threads and kernels, the memory format, autocast,
and the data set on that device, set up once for every seed of a trial.

:class:`~taso_tune.training.run.Run` (one seed) and the two ways a trial trains its seeds
(:mod:`taso_tune.training.seeds`, :mod:`taso_tune.training.stacked`) all start here, so a seed
trains on the same device with the same settings whichever packing runs it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from taso_tune.training.data.sets import ImageData, check_batch_size, load_dataset

if TYPE_CHECKING:
    from taso_tune.training.run import TrainConfig

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device) -> torch.device:
    """``auto`` is CUDA when this machine has it, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class DeviceSetup:
    """The device a run trains on and how: ``memory_format`` of its models and batches, and
    ``autocast_dtype``, the dtype every forward autocasts to (``None``: none).

    :meth:`autocast` gives a new context for each forward: one ``torch.autocast`` entered twice,
    nested (an evaluation around a model's forward), would restore the wrong state on exit and
    leave autocast on for the whole process.
    """

    device: torch.device
    memory_format: torch.memory_format
    autocast_dtype: torch.dtype | None = None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """A fresh context for one forward: bf16 autocast, or one that does nothing."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    @classmethod
    def of(cls, config: TrainConfig) -> DeviceSetup:
        """Resolve ``config.device`` and set the process up for it: ``config.threads`` torch
        threads on the CPU; on CUDA cuDNN's autotuner (a run's shapes are fixed: training drops its
        last partial batch and evaluation batches are one size), channels-last conv nets and bf16
        autocast as the config asks (the CPU trains in the default dtype either way)."""
        device = resolve_device(config.device)
        on_cuda = device.type == "cuda"
        if on_cuda:
            torch.backends.cudnn.benchmark = True
        elif config.threads:
            torch.set_num_threads(config.threads)
        return cls(
            device=device,
            memory_format=(
                torch.channels_last if on_cuda and config.channels_last else torch.contiguous_format
            ),
            autocast_dtype=torch.bfloat16 if on_cuda and config.amp else None,
        )

    def data(self, config: TrainConfig, data: ImageData | None = None) -> ImageData:
        """``data`` (``config``'s data set, loaded, when ``None``) checked against the batch size
        and on this device: one copy that every seed of a trial reads (moving data already here
        is a no-op)."""
        if data is None:
            data = load_dataset(
                config.dataset,
                config.data_root,
                download=config.download,
                val_fraction=config.val_fraction,
                train_limit=config.train_limit,
                image_size=config.image_size,
                data_memory_gb=config.data_memory_gb,
            )
        check_batch_size(config.batch_size, data)
        return data.to(self.device)
