"""The user's own model and data set, in the training layer: torchvision and timm models with their
stems fitted to the data, the user's factory and loader named by import string, an image folder of
PNGs written here, and every bad input named by field, value and the file or item at fault."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from taso_tune.cli import main
from taso_tune.core.errors import ConfigError
from taso_tune.training.data.sets import load_dataset
from taso_tune.training.models import build_model_with_notes, check_model
from taso_tune.training.run import TrainConfig
from taso_tune.training.stacked import check_stackable
from taso_tune.training.user_code import imported_modules, module_source, spec_of

USER_MODULE = """
import torch
from torch import nn


def mlp(num_classes, in_channels, image_size):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 16), nn.ReLU(),
        nn.Linear(16, num_classes),
    )


def with_dropout(num_classes, in_channels, image_size):
    return nn.Sequential(
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(in_channels * image_size * image_size, num_classes)
    )


def wrong_width(num_classes, in_channels, image_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 5))


def raises(num_classes, in_channels, image_size):
    raise RuntimeError("no GPU for this model")


def not_a_module(num_classes, in_channels, image_size):
    return "a string"


def tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)
    y = torch.arange(40) % 4
    return (x[:30], y[:30]), (x[30:], y[30:])


class Pairs(torch.utils.data.Dataset):
    classes = ["a", "b", "c"]

    def __init__(self, n, label_shift=0):
        self.n, self.shift = n, label_shift

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        from PIL import Image
        import numpy as np

        return Image.fromarray(np.full((6, 6, 3), i * 5, dtype=np.uint8)), (i % 3) + self.shift


def pil_pairs():
    return Pairs(12), Pairs(6)


def labels_out_of_range():
    return Pairs(12), Pairs(6, label_shift=2)


def a_dict():
    return {"train": 1}


def loader_raises():
    raise FileNotFoundError("/data/mine.npz")


def floats_too_large():
    return (torch.full((4, 1, 8, 8), 3.0), torch.zeros(4)), (torch.zeros(2, 1, 8, 8), torch.zeros(2))


def not_square():
    return (torch.zeros(4, 1, 8, 6), torch.zeros(4)), (torch.zeros(2, 1, 8, 6), torch.zeros(2))


def takes_root(data_root):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, 1, 8, 8, generator=g)
    return (x[:16], torch.arange(16) % 2), (x[16:], torch.arange(4) % 2)
"""


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user package outside the source tree, importable as ``mine.nets``."""
    package = tmp_path / "userpkg" / "mine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(USER_MODULE))
    (package / "broken.py").write_text("import not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path / "userpkg"))
    for name in [m for m in sys.modules if m == "mine" or m.startswith("mine.")]:
        monkeypatch.delitem(sys.modules, name)
    return "mine.nets"


def _error(call) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


# --- models --------------------------------------------------------------------------------------


def test_torchvision_resnet18_takes_one_channel_small_images_at_full_resolution():
    model, notes = build_model_with_notes(
        "torchvision/resnet18", in_channels=1, image_size=28, num_classes=7
    )
    assert model.conv1.in_channels == 1 and model.conv1.stride == (1, 1)
    assert notes == [
        "first convolution (conv1) takes 1 channel(s), not 3",
        "first convolution (conv1) has stride 1, not 2, for 28-pixel images",
    ]
    assert check_model("torchvision/resnet18", in_channels=1, image_size=28, num_classes=7) == notes


def test_torchvision_model_at_its_own_input_is_left_alone():
    _, notes = build_model_with_notes(
        "torchvision/resnet18", in_channels=3, image_size=64, num_classes=10
    )
    assert notes == []


def test_a_model_whose_pooling_cannot_take_small_images_gets_them_upsampled():
    model, notes = build_model_with_notes(
        "torchvision/vgg11", in_channels=1, image_size=28, num_classes=10
    )
    assert notes[-1] == "images upsampled from 28 to 32 pixels (its pooling needs 32)"
    assert isinstance(model[0], torch.nn.Upsample)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_torchvision_model_with_auxiliary_outputs_is_refused_by_the_probe():
    message = _error(
        lambda: check_model("torchvision/googlenet", in_channels=3, image_size=32, num_classes=10)
    )
    assert "model: " in message and "[2, 10]" in message and "GoogLeNetOutputs" in message


def test_an_unknown_torchvision_name_lists_the_close_ones():
    message = _error(
        lambda: check_model("torchvision/resnet", in_channels=3, image_size=32, num_classes=10)
    )
    assert "torchvision has no classification model 'resnet'" in message
    assert "resnet18" in message


def test_timm_model():
    pytest.importorskip("timm")
    notes = check_model("timm/resnet10t", in_channels=1, image_size=28, num_classes=10)
    assert notes == []
    assert "timm has no model 'not_a_model'" in _error(
        lambda: check_model("timm/not_a_model", in_channels=1, image_size=28, num_classes=10)
    )


def test_a_built_in_model_that_cannot_take_such_small_images_is_a_config_error(tmp_path):
    message = _error(lambda: check_model("lenet5", in_channels=1, image_size=8, num_classes=2))
    assert message.startswith("model: image_size 8 is too small for LeNet5 (needs >= 12)")
    root = write_image_folder(tmp_path / "tiny", size=8)
    data = load_dataset("imagefolder", str(root), val_fraction=0.25)
    assert data.info.image_size == 8
    assert "too small for LeNet5" in _error(
        lambda: check_model(
            "lenet5",
            in_channels=data.info.in_channels,
            image_size=data.info.image_size,
            num_classes=data.info.num_classes,
        )
    )


def test_the_users_factory(user_package):
    notes = check_model(f"{user_package}:mlp", in_channels=1, image_size=8, num_classes=4)
    assert notes == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mine.broken:mlp", "module 'mine.broken' does not import: ModuleNotFoundError: No module"),
        ("mine.nowhere:mlp", "module 'mine.nowhere' does not import: ModuleNotFoundError"),
        ("mine.nets:absent", "module 'mine.nets' has no attribute 'absent'"),
        ("mine.nets:raises", "the factory raised RuntimeError: no GPU for this model when called"),
        ("mine.nets:not_a_module", "the factory returned a str, not a torch nn.Module"),
        ("mine.nets:wrong_width", "must return (batch, num_classes) = [2, 4] scores"),
        ("mine.nets", "unknown model"),
    ],
)
def test_bad_factories_are_named(user_package, name, expected):
    message = _error(lambda: check_model(name, in_channels=1, image_size=8, num_classes=4))
    assert message.startswith("model: ") and expected in message and repr(name) in message


def test_a_model_vmap_cannot_batch_is_refused_for_stacked_seeds(user_package):
    check_stackable(f"{user_package}:mlp", in_channels=1, image_size=8, num_classes=4)
    message = _error(lambda: check_stackable(f"{user_package}:with_dropout", 1, 8, num_classes=4))
    assert message.startswith("seed_packing: model 'mine.nets:with_dropout' cannot train its seeds")
    assert "random operation" in message and "use seed_packing: separate or auto" in message


def test_user_code_that_calls_sys_exit_is_an_error_not_the_exit_of_taso_tune(
    user_package, tmp_path
):
    package = tmp_path / "userpkg" / "mine"
    (package / "exits.py").write_text(
        "import sys\n\n\ndef make(**kwargs):\n    sys.exit(3)\n\n\ndef load():\n    sys.exit(0)\n"
    )
    (package / "exits_on_import.py").write_text("import sys\n\nsys.exit(0)\n")
    message = _error(
        lambda: check_model("mine.exits_on_import:make", in_channels=1, image_size=8, num_classes=4)
    )
    assert "module 'mine.exits_on_import' does not import: SystemExit: 0" in message
    message = _error(
        lambda: check_model("mine.exits:make", in_channels=1, image_size=8, num_classes=4)
    )
    assert "the factory raised SystemExit: 3" in message
    assert "the loader raised SystemExit: 0" in _error(lambda: load_dataset("mine.exits:load"))


def test_a_module_name_of_the_standard_library_says_which_file_was_imported(user_package):
    import json

    message = _error(lambda: check_model("json:make", in_channels=1, image_size=8, num_classes=4))
    assert f"module 'json' has no attribute 'make' (imported from {json.__file__})" in message
    # the standard library is on every node: never shipped to Ray's workers
    assert module_source("json") is None and module_source("random") is None


def test_a_module_in_the_working_directory_imports_from_the_console_script(tmp_path, monkeypatch):
    # the taso-tune command starts with its bin folder on sys.path, not the working directory
    (tmp_path / "beside_space.py").write_text(
        textwrap.dedent(USER_MODULE).replace("def mlp(", "def make(")
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "beside_space", raising=False)
    assert check_model("beside_space:make", in_channels=1, image_size=8, num_classes=4) == []
    assert module_source("beside_space") == str(tmp_path / "beside_space.py")


def test_a_package_folder_without_init_is_shipped_as_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "userpkg" / "loose"
    folder.mkdir(parents=True)
    (folder / "nets.py").write_text(textwrap.dedent(USER_MODULE))  # no __init__.py
    monkeypatch.syspath_prepend(str(tmp_path / "userpkg"))
    for name in [m for m in sys.modules if m == "loose" or m.startswith("loose.")]:
        monkeypatch.delitem(sys.modules, name)
    assert check_model("loose.nets:mlp", in_channels=1, image_size=8, num_classes=4) == []
    assert module_source("loose.nets") == str(folder)


def test_a_callable_in_main_has_no_import_string():
    def local():
        return None

    assert "not in __main__ or inside a function" in _error(lambda: spec_of(local, "model"))
    assert spec_of(check_model, "model") == "taso_tune.training.models:check_model"


def test_modules_named_and_where_ray_ships_them_from(user_package, tmp_path):
    assert imported_modules(["lenet5", "mine.nets:mlp", "mine.nets:tensors", "digits"]) == [
        "mine.nets"
    ]
    assert module_source("mine.nets") == str(tmp_path / "userpkg" / "mine")
    assert module_source("torch") is None  # installed on every node


# --- image folders -------------------------------------------------------------------------------


def write_image_folder(
    root: Path, classes=("cat", "dog"), per_class=6, mode="L", size=10, splits=("train", "test")
) -> Path:
    """An image folder in torchvision's layout: PNGs whose pixels encode their class."""
    from PIL import Image

    for split in splits:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value = 40 + 100 * label + i
                shape = (size, size) if mode == "L" else (size, size, 3)
                Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(
                    folder / f"{i}.png"
                )
    return root


def test_an_image_folder_of_pngs(tmp_path):
    root = write_image_folder(tmp_path / "pets")
    data = load_dataset("imagefolder", str(root), val_fraction=0.25)
    assert (data.info.in_channels, data.info.image_size, data.info.num_classes) == (1, 10, 2)
    assert data.sizes() == {"train": 9, "val": 3, "test": 12}
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape[1:] == (1, 10, 10)
    # the pixels say the class: 40.. for cat (0), 140.. for dog (1)
    assert torch.equal(data.x_test[:, 0, 0, 0] >= 140, data.y_test == 1)


def test_an_image_folder_resized_in_rgb_with_its_own_validation_part(tmp_path):
    root = write_image_folder(tmp_path / "pets", mode="RGB", splits=("train", "val", "test"))
    data = load_dataset("imagefolder", str(root), image_size=16)
    assert data.x_train.shape[1:] == (3, 16, 16)
    assert data.sizes() == {"train": 12, "val": 12, "test": 12}  # val/ replaces the split


def test_image_folder_problems_are_named(tmp_path):
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    assert "train/ holds no class folders" in _error(
        lambda: load_dataset("imagefolder", str(empty))
    )

    differ = write_image_folder(tmp_path / "differ")
    write_image_folder(differ, classes=("cow",), splits=("test",))
    message = _error(lambda: load_dataset("imagefolder", str(differ)))
    assert "the classes of test/ differ from train/'s: only in test/: ['cow']" in message

    broken = write_image_folder(tmp_path / "broken")
    (broken / "train" / "cat" / "3.png").write_bytes(b"not a png at all")
    message = _error(lambda: load_dataset("imagefolder", str(broken)))
    assert (
        str(broken / "train" / "cat" / "3.png") in message and "cannot read this image" in message
    )

    big = write_image_folder(tmp_path / "big")
    message = _error(
        lambda: load_dataset("imagefolder", str(big), image_size=4096, data_memory_gb=0.001)
    )
    assert message.startswith("data_memory_gb: ") and "24 images at 4096x4096x1 need" in message

    assert "imagefolder needs a data root" in _error(lambda: load_dataset("imagefolder", None))
    assert "no such folder" in _error(lambda: load_dataset("imagefolder", str(tmp_path / "none")))


def test_sixteen_bit_pngs_are_scaled_to_eight_bits_not_clipped(tmp_path):
    from PIL import Image

    root = write_image_folder(tmp_path / "scans")
    deep = np.full((10, 10), 40000, dtype=np.uint16)
    deep[0, 0] = 65535
    for path in (root / "test" / "dog").glob("*.png"):
        Image.fromarray(deep).save(path)  # 16-bit greyscale PNGs (mode I;16)
    assert Image.open(root / "test" / "dog" / "0.png").mode == "I;16"
    data = load_dataset("imagefolder", str(root), val_fraction=0.25)
    dogs = data.x_test[data.y_test == 1]
    assert dogs[:, 0, 0, 0].tolist() == [255] * 6  # 65535 -> 255
    assert dogs[:, 0, 1, 1].tolist() == [156] * 6  # 40000 / 257, where clipping gave 255
    # beside RGB images, the 16-bit ones are scaled before they become RGB
    Image.fromarray(np.full((10, 10, 3), 7, dtype=np.uint8)).save(root / "train" / "cat" / "9.png")
    data = load_dataset("imagefolder", str(root), val_fraction=0.25)
    assert data.info.in_channels == 3
    assert data.x_test[data.y_test == 1][:, :, 1, 1].unique().tolist() == [156]


def test_a_class_folder_without_images_in_test_or_val_is_named(tmp_path):
    root = write_image_folder(tmp_path / "pets", splits=("train", "val", "test"))
    for image in (root / "test" / "dog").iterdir():
        image.unlink()
    (root / "test" / "dog" / "notes.txt").write_text("no images here")
    message = _error(lambda: load_dataset("imagefolder", str(root)))
    assert message.startswith("data_root: test/dog/ holds no .png or .jpg images")
    write_image_folder(root, splits=("test",))
    for image in (root / "val" / "cat").iterdir():
        image.unlink()
    message = _error(lambda: load_dataset("imagefolder", str(root)))
    assert message.startswith("data_root: val/cat/ holds no .png or .jpg images")


STATS_MEMORY_PROBE = """
import resource, torch
from taso_tune.training.data.sets import _stats
images = torch.randint(0, 256, (24000, 3, 64, 64), dtype=torch.uint8)  # 281 MiB, > 2**28 values
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_stats(images)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_the_statistics_of_a_large_image_folder_need_less_memory_than_its_images():
    import subprocess

    from taso_tune.training.data import sets

    images = torch.randint(0, 256, (600, 3, 16, 16), dtype=torch.uint8)
    in_one_go = sets._stats(images)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sets, "STATS_IN_ONE_GO", 0)
        patch.setattr(sets, "STATS_CHUNK", 5000)
        chunked = sets._stats(images)
    assert np.allclose(chunked, in_one_go, atol=1e-5)
    grown_mib = float(
        subprocess.run(
            [sys.executable, "-c", STATS_MEMORY_PROBE], capture_output=True, text=True, check=True
        ).stdout
    )
    assert grown_mib < 281  # float copies of every image took eight times their 281 MiB


def test_an_image_too_large_for_pillow_is_named(tmp_path):
    from PIL import Image

    root = write_image_folder(tmp_path / "pets")
    huge = root / "train" / "dog" / "huge.png"
    Image.new("L", (14000, 14000)).save(huge)  # over Pillow's decompression-bomb limit
    message = _error(lambda: load_dataset("imagefolder", str(root)))
    assert message.startswith("data_root: cannot read this image: PIL.Image.DecompressionBombError")
    assert repr(str(huge)) in message


def test_every_image_size_of_a_folder_is_probed_before_ray_starts(tmp_path):
    from taso_tune.spaces import load_space_dict
    from taso_tune.tuning.data import check_models, load_sweep_data
    from taso_tune.tuning.trials import trial_source

    root = write_image_folder(tmp_path / "pets", size=16)
    spec = load_space_dict(
        {
            "name": "sizes",
            "train": {
                "dataset": "imagefolder",
                "data_root": str(root),
                "epochs": 3,
                "batch_size": 4,
            },
            "seeds": 1,
            "search": "grid",
            "scheduler": "none",
            "blocks": [{"optimizer": "taso", "image_size": {"grid": [16, 8]}}],
        },
        source="sizes.yaml",
    )
    source = trial_source(spec)
    datasets = load_sweep_data(source)
    assert sorted(d.info.image_size for d in datasets.values()) == [8, 16]
    message = _error(lambda: check_models(source, datasets))
    assert "too small for LeNet5" in message and "sizes.yaml" in message


def test_image_size_and_memory_fields_are_checked():
    assert "applies to imagefolder only" in _error(lambda: TrainConfig(image_size=32))
    for bad in (0, -1.0, float("inf"), "1"):
        message = _error(lambda bad=bad: TrainConfig(dataset="imagefolder", data_memory_gb=bad))
        assert message.startswith("data_memory_gb: must be a number > 0")
    assert "unknown dataset" in _error(lambda: TrainConfig(dataset="my_folder"))


# --- the user's loader ---------------------------------------------------------------------------


def test_a_loader_of_tensors(user_package):
    data = load_dataset(f"{user_package}:tensors", val_fraction=0.2)
    assert (data.info.in_channels, data.info.image_size, data.info.num_classes) == (1, 8, 4)
    assert data.sizes() == {"train": 24, "val": 6, "test": 10}
    assert data.x_train.dtype == torch.uint8


def test_a_loader_of_pil_pairs_with_classes_and_one_with_a_data_root(user_package, tmp_path):
    data = load_dataset(f"{user_package}:pil_pairs", val_fraction=0.0)
    assert (data.info.in_channels, data.info.image_size, data.info.num_classes) == (3, 6, 3)
    assert data.sizes() == {"train": 12, "val": 0, "test": 6}
    data = load_dataset(f"{user_package}:takes_root", str(tmp_path), val_fraction=0.25)
    assert data.info.num_classes == 2


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        ("a_dict", "the loader must return (train, test), got dict"),
        ("labels_out_of_range", "test: label 3 is outside [0, 3) (3 classes)"),
        ("loader_raises", "the loader raised FileNotFoundError: /data/mine.npz"),
        ("floats_too_large", "float images must hold values in [0, 1], got [3, 3]"),
        ("not_square", "images must be square, got 8x6"),
        ("absent", "has no attribute 'absent'"),
    ],
)
def test_bad_loaders_are_named(user_package, loader, expected):
    name = f"{user_package}:{loader}"
    message = _error(lambda: load_dataset(name))
    assert message.startswith("dataset: ") and expected in message and repr(name) in message


HOSTILE_LOADERS = """
import numpy as np
import torch


def _images(n):
    return torch.zeros(n, 1, 8, 8, dtype=torch.uint8)


def empty_test():
    return (_images(8), torch.arange(8) % 2), (_images(0), torch.zeros(0, dtype=torch.int64))


def empty_train_of_floats():
    return (torch.zeros(0, 1, 8, 8), torch.zeros(0)), (_images(4), torch.arange(4) % 2)


def fractional_labels():
    return (_images(8), torch.linspace(0, 1.75, 8)), (_images(4), torch.arange(4) % 2)


def fractional_labels_in_pairs():
    images = _images(4)
    return [(images[i], np.float32(i % 2 + 0.5)) for i in range(4)], [(images[0], 0)]


def labels_as_text():
    images = _images(4)
    return [(images[i], str(i % 2)) for i in range(4)], [(images[0], "0")]


def channels_last():
    images = np.zeros((8, 12, 12, 3), dtype=np.uint8)
    return (images, np.arange(8) % 2), (images[:4], np.arange(4) % 2)


def whole_float_labels():
    return (_images(8), (torch.arange(8) % 2).double()), (_images(4), torch.ones(4))
"""


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        ("empty_test", "test: the set is empty"),
        ("empty_train_of_floats", "train: the set is empty"),
        ("fractional_labels", "train: labels must be integers, got 0.25 at train[1]"),
        ("fractional_labels_in_pairs", "train: labels must be integers, got 0.5 at train[0]"),
        ("labels_as_text", "train: labels must be integers"),
        ("channels_last", "images of shape [12, 12, 3] look channels-last (H, W, C)"),
    ],
)
def test_loaders_of_empty_sets_or_non_integer_labels_are_named(
    user_package, tmp_path, loader, expected
):
    (tmp_path / "userpkg" / "mine" / "hostile.py").write_text(textwrap.dedent(HOSTILE_LOADERS))
    name = f"mine.hostile:{loader}"
    message = _error(lambda: load_dataset(name))
    assert message.startswith("dataset: ") and expected in message and repr(name) in message


def test_whole_number_float_labels_are_taken(user_package, tmp_path):
    (tmp_path / "userpkg" / "mine" / "hostile.py").write_text(textwrap.dedent(HOSTILE_LOADERS))
    data = load_dataset("mine.hostile:whole_float_labels", val_fraction=0.25)
    assert data.info.num_classes == 2 and data.y_test.dtype == torch.int64
    assert data.y_test.tolist() == [1, 1, 1, 1]


# --- the train command ---------------------------------------------------------------------------


def test_train_command_on_the_users_model_and_loader(user_package, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--model",
            f"{user_package}:mlp",
            "--dataset",
            f"{user_package}:tensors",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and (out / "metrics.csv").exists()


def test_train_command_says_what_it_adapted(tmp_path, capsys):
    code = main(
        [
            "train",
            "--model",
            "torchvision/resnet18",
            "--train-limit",
            "40",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    assert "torchvision/resnet18: first convolution (conv1) takes 1 channel(s), not 3" in (
        capsys.readouterr().out
    )


def test_train_command_refuses_a_bad_factory_before_writing(user_package, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["train", "--model", f"{user_package}:raises", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("taso-tune train: error: model: the factory raised RuntimeError")
    assert not out.exists()
