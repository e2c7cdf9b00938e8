"""Data sets: fixed splits, real on-disk formats read back pixel for pixel, augmentation, batches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_helpers import chw_images, write_cifar10, write_mnist, write_pickle

from taso_tune.core.errors import ConfigError
from taso_tune.training.data.sets import (
    DATASETS,
    DIGITS_TEST_SIZE,
    DatasetInfo,
    DeviceBatches,
    ImageData,
    check_batch_size,
    load_dataset,
    random_crop_flip,
    stratified_subset,
    validation_split,
)

TORCHVISION_SETS = ["mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn"]


def _hashes(x: torch.Tensor, y: torch.Tensor) -> list[str]:
    return [
        hashlib.sha1(img.numpy().tobytes() + bytes([int(lbl)])).hexdigest()
        for img, lbl in zip(x, y, strict=True)
    ]


# --- digits ---------------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert set(DATASETS) == {"digits", "synthetic", "imagefolder", *TORCHVISION_SETS}


def test_digits_sizes_dtype_and_layout(digits_data: ImageData) -> None:
    sizes = digits_data.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == DIGITS_TEST_SIZE == 360
    assert sizes["val"] == int(0.1 * (1797 - 360)) == 143
    for x, y in [
        (digits_data.x_train, digits_data.y_train),
        (digits_data.x_val, digits_data.y_val),
        (digits_data.x_test, digits_data.y_test),
    ]:
        assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == torch.int64 and len(y) == len(x)
        assert set(y.tolist()) <= set(range(10))
    info = digits_data.info
    assert (info.name, info.in_channels, info.image_size, info.num_classes) == ("digits", 1, 28, 10)
    assert 0 < info.mean[0] < 1 and 0 < info.std[0] < 1
    assert digits_data.x_train.max() > 200  # the 0..16 grey levels are spread over 0..255


def test_digits_splits_are_disjoint_and_cover_the_data_set(digits_data: ImageData) -> None:
    train = _hashes(digits_data.x_train, digits_data.y_train)
    val = _hashes(digits_data.x_val, digits_data.y_val)
    test = _hashes(digits_data.x_test, digits_data.y_test)
    # every one of the 1,797 digits is a distinct image, so disjoint sets of hashes mean disjoint splits
    assert len(set(train) | set(val) | set(test)) == 1797
    assert not set(train) & set(val)
    assert not set(train) & set(test)
    assert not set(val) & set(test)


def test_digits_test_split_is_fixed_whatever_the_seed_or_val_fraction(
    digits_data: ImageData,
) -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    other = load_dataset("digits", val_fraction=0.3)
    assert torch.equal(other.x_test, digits_data.x_test)
    assert torch.equal(other.y_test, digits_data.y_test)
    assert other.sizes()["val"] == int(0.3 * 1437)
    # the test split is stratified: every class is present
    assert set(digits_data.y_test.tolist()) == set(range(10))


def test_digits_val_split_is_deterministic(digits_data: ImageData) -> None:
    torch.manual_seed(7)
    again = load_dataset("digits")
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(again, name), getattr(digits_data, name))


def test_train_limit_and_zero_val_fraction() -> None:
    data = load_dataset("digits", val_fraction=0.0, train_limit=50)
    assert data.sizes() == {"train": 50, "val": 0, "test": 360}


@pytest.mark.parametrize("limit", [1, 0, -5, True, 2.5, "100"])
def test_train_limit_must_be_an_integer_of_at_least_two(limit: object) -> None:
    with pytest.raises(ConfigError, match="train_limit") as info:
        load_dataset("digits", train_limit=limit)
    assert info.value.value == limit


def test_train_limit_keeps_class_proportions_whatever_the_seed(digits_data: ImageData) -> None:
    full = torch.cat([digits_data.y_train, digits_data.y_val]).bincount()
    torch.manual_seed(1)
    data = load_dataset("digits", train_limit=200)
    torch.manual_seed(2)
    again = load_dataset("digits", train_limit=200)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(data, name), getattr(again, name))
    assert data.sizes() == {"train": 180, "val": 20, "test": 360}
    assert torch.equal(data.x_test, digits_data.x_test)  # the test part is never limited
    counts = torch.cat([data.y_train, data.y_val]).bincount()
    shares = full.double() * 200 / full.sum()
    assert counts.sum() == 200 and ((counts - shares).abs() < 1).all()


def test_train_limit_above_the_training_set_keeps_all_of_it(digits_data: ImageData) -> None:
    data = load_dataset("digits", train_limit=10_000)
    assert torch.equal(data.x_train, digits_data.x_train) and torch.equal(
        data.x_val, digits_data.x_val
    )


def _class_counts(labels: torch.Tensor, picked: torch.Tensor) -> list[int]:
    return labels[picked].bincount(minlength=int(labels.max()) + 1).tolist()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (10, [5, 3, 2]),  # exact shares of 50/30/20
        (
            7,
            [4, 2, 1],
        ),  # 3.5, 2.1, 1.4: floors 3, 2, 1, the one left goes to the largest remainder (.5)
        (9, [4, 3, 2]),  # 4.5, 2.7, 1.8: floors 4, 2, 1, two left for the remainders .8 and .7
        (100, [50, 30, 20]),
    ],
)
def test_stratified_subset_counts_by_largest_remainder(size: int, expected: list[int]) -> None:
    labels = torch.tensor([1] * 30 + [0] * 50 + [2] * 20)  # classes interleaved in file order
    picked = stratified_subset(labels, size)
    assert _class_counts(labels, picked) == expected
    assert picked.tolist() == sorted(set(picked.tolist())) and len(picked) == size


def test_stratified_subset_breaks_ties_to_the_lower_class_and_is_fixed() -> None:
    labels = torch.tensor([2, 0, 1, 0, 1, 2])
    assert _class_counts(labels, stratified_subset(labels, 2)) == [1, 1, 0]
    torch.manual_seed(3)
    first = stratified_subset(labels, 4)
    torch.manual_seed(4)
    assert torch.equal(first, stratified_subset(labels, 4))
    five_classes = torch.arange(50) % 5
    assert not torch.equal(
        stratified_subset(five_classes, 10, seed=1), stratified_subset(five_classes, 10, seed=2)
    )


def test_validation_split_is_the_same_for_every_trial_seed() -> None:
    from taso_tune.training.run import Run, TrainConfig

    runs = [Run(TrainConfig(seed=seed, epochs=1, device="cpu", train_limit=300)) for seed in (0, 1)]
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test"):
        assert torch.equal(getattr(runs[0].data, name), getattr(runs[1].data, name))


def test_batch_size_larger_than_the_training_part_is_an_error() -> None:
    data = load_dataset("digits", train_limit=50)
    check_batch_size(45, data)  # exactly the training part: one full batch
    with pytest.raises(ConfigError) as info:
        check_batch_size(46, data)
    assert str(info.value) == (
        "batch_size: larger than the training part of dataset 'digits' (train 45, val 5, test 360 images):"
        " use a batch_size <= 45, or a larger train_limit or smaller val_fraction (got 46)"
    )


def test_synthetic_data_set() -> None:
    data = load_dataset("synthetic")
    assert data.sizes() == {"train": 461, "val": 51, "test": 128}
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape[1:] == (1, 28, 28)
    assert torch.equal(load_dataset("synthetic").x_test, data.x_test)


def test_unknown_data_set_lists_choices() -> None:
    with pytest.raises(ConfigError, match="dataset") as info:
        load_dataset("imagenet")
    assert info.value.choices == sorted(DATASETS)


def test_image_data_to_keeps_content(digits_data: ImageData) -> None:
    moved = digits_data.to("cpu")
    assert torch.equal(moved.x_val, digits_data.x_val)
    assert moved.sizes() == digits_data.sizes()


# --- validation_split -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "fraction"), [(1437, 0.1), (10, 0.5), (7, 0.0), (3, 0.99)])
def test_validation_split_partitions_the_indices(n: int, fraction: float) -> None:
    torch.manual_seed(0)
    train, val = validation_split(n, fraction)
    torch.manual_seed(1)  # the split ignores the global seed
    train2, val2 = validation_split(n, fraction)
    assert torch.equal(train, train2) and torch.equal(val, val2)
    assert len(val) == int(n * fraction)
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))


def test_validation_split_seed_changes_the_split() -> None:
    assert not torch.equal(
        validation_split(100, 0.2, seed=1)[1], validation_split(100, 0.2, seed=2)[1]
    )


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_validation_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        validation_split(10, fraction)


# --- real file formats, written by hand -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder"),
    [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")],
)
def test_mnist_family_idx_files_round_trip(tmp_data_root: Path, name: str, folder: str) -> None:
    x_train, y_train, x_test, y_test = write_mnist(tmp_data_root / folder / "raw")
    data = load_dataset(name, str(tmp_data_root), val_fraction=0.0)
    assert data.info.name == name and data.info.num_classes == 10 and data.info.in_channels == 1
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape == (20, 1, 28, 28)
    assert data.x_test.shape == (10, 1, 28, 28)
    assert np.array_equal(data.x_train[:, 0].numpy(), x_train)
    assert np.array_equal(data.x_test[:, 0].numpy(), x_test)
    assert data.y_train.tolist() == y_train.tolist()
    assert data.y_test.tolist() == y_test.tolist()


def test_mnist_validation_split_takes_images_from_the_training_files(tmp_data_root: Path) -> None:
    x_train, y_train, _, _ = write_mnist(tmp_data_root / "MNIST" / "raw")
    data = load_dataset("mnist", str(tmp_data_root), val_fraction=0.25)
    idx_train, idx_val = validation_split(20, 0.25)
    assert data.sizes() == {"train": 15, "val": 5, "test": 10}
    assert np.array_equal(data.x_train[:, 0].numpy(), x_train[idx_train.numpy()])
    assert np.array_equal(data.x_val[:, 0].numpy(), x_train[idx_val.numpy()])
    assert data.y_val.tolist() == y_train[idx_val.numpy()].tolist()


def test_cifar10_pickle_batches_round_trip(tmp_data_root: Path) -> None:
    train_images, train_labels, test_images, test_labels = write_cifar10(tmp_data_root)

    data = load_dataset("cifar10", str(tmp_data_root), val_fraction=0.0)
    assert data.info.name == "cifar10" and data.info.augment and data.info.num_classes == 10
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape == (20, 3, 32, 32)
    assert np.array_equal(data.x_train.numpy(), train_images)
    assert np.array_equal(data.x_test.numpy(), test_images)
    assert data.y_train.tolist() == train_labels
    assert data.y_test.tolist() == test_labels
    # a channel-mixing mistake (HWC read as CHW) would break this pixel
    assert int(data.x_test[2, 1, 5, 7]) == int(test_images[2].reshape(3072)[1024 + 5 * 32 + 7])


def test_cifar100_pickle_files_round_trip(tmp_data_root: Path) -> None:
    rng = np.random.default_rng(2)
    folder = tmp_data_root / "cifar-100-python"
    folder.mkdir()
    train_images, train_labels = chw_images(rng, 12), rng.integers(0, 100, 12).tolist()
    test_images, test_labels = chw_images(rng, 5), rng.integers(0, 100, 5).tolist()
    for file, images, labels in [
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ]:
        write_pickle(
            folder / file,
            {
                "data": images.reshape(len(images), 3072),
                "fine_labels": labels,
                "coarse_labels": [label // 5 for label in labels],
            },
        )
    write_pickle(
        folder / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"c{i}" for i in range(20)],
        },
    )

    data = load_dataset("cifar100", str(tmp_data_root), val_fraction=0.0)
    assert data.info.num_classes == 100 and data.info.in_channels == 3
    assert np.array_equal(data.x_train.numpy(), train_images)
    assert np.array_equal(data.x_test.numpy(), test_images)
    assert data.y_train.tolist() == train_labels  # fine labels, not coarse ones
    assert data.y_test.tolist() == test_labels


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_root_says_where_the_files_go(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="data_root") as info:
        load_dataset(name, str(missing))
    message = str(info.value)
    assert info.value.field == "data_root"
    assert str(missing) in message
    assert "--download" in message
    expected_part = {
        "mnist": "MNIST/raw/train-images-idx3-ubyte",
        "fashion_mnist": "FashionMNIST/raw",
        "kmnist": "KMNIST/raw",
        "cifar10": "cifar-10-batches-py",
        "cifar100": "cifar-100-python",
        "svhn": "train_32x32.mat",
    }[name]
    assert expected_part in message
    assert not missing.exists()  # nothing created without --download


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_empty_root_says_where_the_files_go(tmp_data_root: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="data_root") as info:
        load_dataset(name, str(tmp_data_root))
    message = str(info.value)
    assert "not found" in message and "--download" in message and "expected" in message
    assert list(tmp_data_root.iterdir()) == []


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_no_root_at_all_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="data_root"):
        load_dataset(name, None)


def test_incomplete_cifar_folder_is_a_config_error(tmp_data_root: Path) -> None:
    folder = tmp_data_root / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "data_batch_1", {"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    with pytest.raises(ConfigError, match="cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_data_root))


# --- augmentation ---------------------------------------------------------------------------------


def _images(n: int, channels: int = 3, side: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, side, side), generator=g, dtype=torch.uint8)


def test_crop_flip_with_no_padding_is_identity_or_flip() -> None:
    x = _images(32)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    flipped = 0
    for original, got in zip(x, out, strict=True):
        same, mirrored = torch.equal(got, original), torch.equal(got, original.flip(2))
        assert same or mirrored
        flipped += mirrored
    assert 0 < flipped < 32  # both happen


def test_crop_flip_output_is_a_crop_of_the_padded_image() -> None:
    x, padding, side = _images(12), 4, 8
    out = random_crop_flip(x, padding, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    padded = F.pad(x, (padding,) * 4)
    offsets = set()
    for image, got in zip(padded, out, strict=True):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            for flip in (False, True)
            if torch.equal(
                got, (lambda c: c.flip(2) if flip else c)(image[:, dy : dy + side, dx : dx + side])
            )
        ]
        assert matches, "output is not a crop (or mirrored crop) of the padded input"
        offsets.add(matches[0][:2])
    assert len(offsets) > 1  # the offsets are random, not one fixed crop


def test_crop_flip_is_deterministic_for_a_generator_seed() -> None:
    x = _images(16, side=32)
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 4, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, 4, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --- batches --------------------------------------------------------------------------------------

INFO = DatasetInfo("test", 1, 4, 10, (0.5,), (0.25,), augment=False)


def _indexed(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose labels are their own index, so batches can be traced back to examples."""
    return _images(n, channels=1, side=4), torch.arange(n)


@pytest.mark.parametrize(("n", "batch_size"), [(103, 10), (100, 10), (5, 10), (10, 10)])
def test_batches_cover_each_example_once_per_epoch(n: int, batch_size: int) -> None:
    x, y = _indexed(n)
    batches = DeviceBatches(x, y, INFO, batch_size, generator=torch.Generator().manual_seed(0))
    orders = []
    for _ in range(2):
        seen = [yb for _, yb in batches]
        assert len(seen) == len(batches) == -(-n // batch_size)
        order = torch.cat(seen).tolist()
        assert sorted(order) == list(range(n))
        orders.append(order)
    if n > 5:
        assert orders[0] != orders[1]  # reshuffled every epoch


def test_batches_without_generator_keep_the_order() -> None:
    x, y = _indexed(25)
    batches = DeviceBatches(x, y, INFO, 10)
    assert torch.cat([yb for _, yb in batches]).tolist() == list(range(25))
    assert [len(yb) for _, yb in batches] == [10, 10, 5]


def test_drop_last_keeps_every_batch_full() -> None:
    x, y = _indexed(103)
    batches = DeviceBatches(
        x, y, INFO, 10, generator=torch.Generator().manual_seed(0), drop_last=True
    )
    sizes = [len(yb) for _, yb in batches]
    assert sizes == [10] * 10 == [10] * len(batches)
    labels = torch.cat([yb for _, yb in batches]).tolist()
    assert len(set(labels)) == 100


def test_drop_last_never_drops_everything() -> None:
    x, y = _indexed(7)
    batches = DeviceBatches(
        x, y, INFO, 10, generator=torch.Generator().manual_seed(0), drop_last=True
    )
    assert [len(yb) for _, yb in batches] == [7]


def test_batches_are_normalised_float_images(digits_data: ImageData) -> None:
    batches = DeviceBatches(digits_data.x_train, digits_data.y_train, digits_data.info, 256)
    xs = torch.cat([xb for xb, _ in batches])
    assert xs.dtype == torch.float32 and xs.shape == digits_data.x_train.shape
    # the digits statistics come from the training images, so they normalise to ~zero mean, ~unit std
    assert abs(xs.mean().item()) < 1e-3
    assert xs.std().item() == pytest.approx(1.0, abs=1e-2)
    expected = (
        digits_data.x_train[:3].float() / 255 - digits_data.info.mean[0]
    ) / digits_data.info.std[0]
    assert torch.allclose(xs[:3], expected, atol=1e-5)


def test_augmented_batches_keep_shapes_and_are_reproducible() -> None:
    info = DatasetInfo("test", 3, 8, 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), augment=True)
    x, y = _images(20), torch.arange(20)

    def epoch(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return [xb for xb, _ in DeviceBatches(x, y, info, 8, generator=gen, augment=True)]

    first, again = epoch(0), epoch(0)
    assert [b.shape for b in first] == [(8, 3, 8, 8), (8, 3, 8, 8), (4, 3, 8, 8)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
