"""Models by name: the paper's (LeNet5, VGG19, ResNet18), torchvision's and timm's, or the user's own.

A model name is one of:

- ``lenet5``, ``vgg19``, ``resnet18``: the paper's models. VGG19 and ResNet18 follow the CIFAR
  variants the authors used (kuangliu pytorch-cifar style): VGG19 with BatchNorm and a single
  Linear(512, classes) head, no dropout; ResNet18 with a 3x3 stem and no max-pool.
- ``torchvision/NAME``: a classification model of torchvision's registry, built with
  ``torchvision.models.get_model(NAME, weights=None, num_classes=...)``. Its stem is adapted to the
  data (:func:`adapt_stem`): the first convolution takes the data's channels, and on images under
  64 pixels it keeps the full resolution (stride 1); a model whose pooling cannot take the image at
  all gets the images upsampled in front of it. Each change is said once by the driver and in the
  trial's log.
- ``timm/NAME``: a timm model, ``timm.create_model(NAME, pretrained=False, num_classes=...,
  in_chans=...)``, with the same upsampling rule; timm is the optional extra ``taso-tune[timm]``.
- ``package.module:callable``: the user's factory, called as ``callable(num_classes=...,
  in_channels=..., image_size=...)`` and returning an ``nn.Module``.

No weights are downloaded: every model starts from its random initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from taso_tune.core.errors import ConfigError, Registry
from taso_tune.training.user_code import error_line, import_callable, is_import_spec


class LeNet5(nn.Module):
    """LeCun et al. 1998: two 5x5 conv + pool stages, then 120-84-classes fully connected layers."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        # 28x28 inputs get padding 2 so the feature map sizes match the original 32x32 design
        pad = 2 if image_size < 32 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for LeNet5 (needs >= 12)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_VGG19_LAYOUT = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
]


class VGG19(nn.Module):
    """VGG19 with BatchNorm; a global average pool makes any image size >= 32 end in 512 features."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    nn.Conv2d(channels, int(item), 3, padding=1, bias=False),
                    nn.BatchNorm2d(int(item)),
                    nn.ReLU(inplace=True),
                ]
                channels = int(item)
        if image_size < 32:
            # keep the five pools valid on small images (MNIST, digits) by upsampling first
            layers.insert(0, nn.Upsample(size=(32, 32), mode="bilinear", align_corners=False))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18 for small images: 3x3 stem, no max-pool, global average pool, linear head."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        del image_size  # global pooling makes the network size-agnostic
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages: list[nn.Module] = []
        in_planes = 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(torch.flatten(self.pool(out), 1))


ModelFactory = Callable[..., nn.Module]

MODELS: Registry = Registry("model", {"lenet5": LeNet5, "vgg19": VGG19, "resnet18": ResNet18})
TORCHVISION_PREFIX = "torchvision/"
TIMM_PREFIX = "timm/"
#: Images under this size keep their full resolution through a torchvision stem (stride 1).
SMALL_IMAGE = 64
#: Sizes tried, smallest first, when a model's pooling cannot take the data's images.
UPSAMPLE_SIZES = (32, 64, 96, 128, 160, 224)
MODEL_FORMS = "a built-in name, torchvision/NAME, timm/NAME or package.module:callable"


def _torchvision_names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _timm(field: str, name: str):
    try:
        import timm
    except ImportError as err:
        raise ConfigError(
            field, name, "timm models need the timm extra: pip install 'taso-tune[timm]'"
        ) from err
    return timm


def check_model_name(name: object, field: str = "model") -> None:
    """Fail on a model name no builder takes, without importing the user's code."""
    if not isinstance(name, str):
        raise ConfigError(field, name, f"must be {MODEL_FORMS}")
    if name in MODELS or is_import_spec(name):
        return
    if name.startswith(TORCHVISION_PREFIX):
        arch = name.removeprefix(TORCHVISION_PREFIX)
        names = _torchvision_names()
        if arch not in names:
            close = [n for n in names if arch and (arch in n or n in arch)][:8]
            hint = f"; close: {', '.join(close)}" if close else ""
            raise ConfigError(
                field,
                name,
                f"torchvision has no classification model {arch!r}{hint} "
                "(torchvision.models.list_models() lists them)",
            )
        return
    if name.startswith(TIMM_PREFIX):
        arch = name.removeprefix(TIMM_PREFIX)
        timm = _timm(field, name)
        if not timm.is_model(arch):
            close = timm.list_models(f"*{arch}*")[:8] if arch else []
            hint = f"; close: {', '.join(close)}" if close else ""
            raise ConfigError(field, name, f"timm has no model {arch!r}{hint}")
        return
    raise ConfigError(field, name, f"unknown model (use {MODEL_FORMS})", choices=sorted(MODELS))


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return path, module
    return None


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attribute, new)


def adapt_stem(model: nn.Module, *, in_channels: int, image_size: int) -> list[str]:
    """Fit a torchvision model's first convolution to the data; what changed, in words.

    The convolution is rebuilt (same kernel, padding and width) to take ``in_channels``, and with
    stride 1 when the images are under :data:`SMALL_IMAGE` pixels, so a 28-pixel image is not cut
    to 14 before the first block (as the CIFAR variants of these networks do).
    """
    found = _first_conv(model)
    if found is None:
        return []
    path, conv = found
    small = image_size < SMALL_IMAGE and conv.stride != (1, 1)
    if conv.in_channels == in_channels and not small:
        return []
    if conv.groups != 1:
        return []  # a grouped stem cannot change its input channels by itself
    notes = []
    if conv.in_channels != in_channels:
        notes.append(
            f"first convolution ({path}) takes {in_channels} channel(s), not {conv.in_channels}"
        )
    if small:
        notes.append(
            f"first convolution ({path}) has stride 1, not {conv.stride[0]}, "
            f"for {image_size}-pixel images"
        )
    _set_submodule(
        model,
        path,
        nn.Conv2d(
            in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=1 if small else conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
        ),
    )
    return notes


def _takes(model: nn.Module, in_channels: int, size: int) -> bool:
    """Whether ``model`` runs on a batch of ``size``-pixel images (evaluated: no state changes)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, size, size))
        return True
    except RuntimeError:
        return False
    finally:
        model.train(was_training)


def _upsample_if_needed(
    model: nn.Module, *, in_channels: int, image_size: int
) -> tuple[nn.Module, list[str]]:
    if _takes(model, in_channels, image_size):
        return model, []
    for size in UPSAMPLE_SIZES:
        if size > image_size and _takes(model, in_channels, size):
            upsample = nn.Upsample(size=(size, size), mode="bilinear", align_corners=False)
            note = f"images upsampled from {image_size} to {size} pixels (its pooling needs {size})"
            return nn.Sequential(upsample, model), [note]
    return model, []  # the probe in check_model reports the error


def build_model_with_notes(
    name: str, *, in_channels: int, image_size: int, num_classes: int, field: str = "model"
) -> tuple[nn.Module, list[str]]:
    """Build the model ``name`` (see the module docstring) and say what was adapted to the data."""
    check_model_name(name, field)
    if name in MODELS:
        factory = MODELS[name]
        try:
            model = factory(in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        except ValueError as err:  # a built-in model that cannot take the data (LeNet5 under 12 px)
            raise ConfigError(field, name, str(err)) from err
        return model, []
    if name.startswith(TORCHVISION_PREFIX):
        import torchvision.models

        arch = name.removeprefix(TORCHVISION_PREFIX)
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        notes = adapt_stem(model, in_channels=in_channels, image_size=image_size)
        model, more = _upsample_if_needed(model, in_channels=in_channels, image_size=image_size)
        return model, notes + more
    if name.startswith(TIMM_PREFIX):
        timm = _timm(field, name)
        arch = name.removeprefix(TIMM_PREFIX)
        model = timm.create_model(
            arch, pretrained=False, num_classes=num_classes, in_chans=in_channels
        )
        return _upsample_if_needed(model, in_channels=in_channels, image_size=image_size)
    factory = import_callable(name, field)
    try:
        model = factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    except (Exception, SystemExit) as err:  # the user's factory: its own error, named
        raise ConfigError(
            field,
            name,
            f"the factory raised {error_line(err)} when called with num_classes={num_classes}, "
            f"in_channels={in_channels}, image_size={image_size}",
        ) from err
    if not isinstance(model, nn.Module):
        raise ConfigError(
            field, name, f"the factory returned a {type(model).__name__}, not a torch nn.Module"
        )
    return model, []


def build_model(
    name: str, *, in_channels: int, image_size: int, num_classes: int, field: str = "model"
) -> nn.Module:
    """Build the model ``name``; unknown names fail with the forms and built-in names."""
    model, _ = build_model_with_notes(
        name, in_channels=in_channels, image_size=image_size, num_classes=num_classes, field=field
    )
    return model


def check_model(
    name: str, *, in_channels: int, image_size: int, num_classes: int, field: str = "model"
) -> list[str]:
    """Build ``name`` once and train-mode probe it with a batch of 2 images, as the driver does
    before any trial starts: its output must be one row of ``num_classes`` scores per image.
    Returns what was adapted to the data (:func:`build_model_with_notes`)."""
    model, notes = build_model_with_notes(
        name, in_channels=in_channels, image_size=image_size, num_classes=num_classes, field=field
    )
    shape = (2, in_channels, image_size, image_size)
    try:
        with torch.no_grad():
            out = model.train()(torch.zeros(shape))
    except Exception as err:
        raise ConfigError(
            field, name, f"the model fails on a batch of shape {list(shape)}: {error_line(err)}"
        ) from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            field,
            name,
            f"for a batch of shape {list(shape)} the model must return (batch, num_classes) = "
            f"[2, {num_classes}] scores in training mode, got {got}",
        )
    return notes


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
