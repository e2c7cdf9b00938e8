"""The paper's models: output shapes on each input geometry, parameter counts, the registry."""

from __future__ import annotations

import pytest
import torch

from taso_tune.core.errors import ConfigError
from taso_tune.training.models import MODELS, build_model, count_parameters

ALL_MODELS = sorted(MODELS)
GEOMETRIES = [(1, 28, 10), (3, 32, 10), (3, 32, 100)]  # (channels, image size, classes)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize(("channels", "size", "classes"), GEOMETRIES)
def test_output_shape(name: str, channels: int, size: int, classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, image_size=size, num_classes=classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "channels", "size", "classes", "expected"),
    [
        # kuangliu pytorch-cifar ResNet18 on CIFAR10: 11,173,962
        ("resnet18", 3, 32, 10, 11.17e6),
        # VGG19-BN, bias-free convs, one Linear(512, 10) head: 20,035,018
        ("vgg19", 3, 32, 10, 20.0e6),
        # LeNet5 on MNIST: conv 156 + conv 2,416 + fc 48,120 + fc 10,164 + fc 850 = 61,706
        ("lenet5", 1, 28, 10, 61.7e3),
    ],
)
def test_parameter_counts(
    name: str, channels: int, size: int, classes: int, expected: float
) -> None:
    model = build_model(name, in_channels=channels, image_size=size, num_classes=classes)
    assert count_parameters(model) == pytest.approx(expected, rel=0.01)


def test_lenet5_parameter_count_is_exact() -> None:
    model = build_model("lenet5", in_channels=1, image_size=28, num_classes=10)
    assert count_parameters(model) == 61_706


def test_count_parameters_skips_frozen_ones() -> None:
    model = build_model("lenet5", in_channels=1, image_size=28, num_classes=10)
    head = model.classifier[-1]
    for p in head.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == 61_706 - (84 * 10 + 10)


def test_the_head_follows_the_class_count() -> None:
    ten = build_model("resnet18", in_channels=3, image_size=32, num_classes=10)
    hundred = build_model("resnet18", in_channels=3, image_size=32, num_classes=100)
    assert count_parameters(hundred) - count_parameters(ten) == 90 * (512 + 1)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ConfigError, match="model") as info:
        build_model("alexnet", in_channels=3, image_size=32, num_classes=10)
    assert info.value.choices == ALL_MODELS
    for name in ALL_MODELS:
        assert name in str(info.value)
