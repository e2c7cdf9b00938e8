"""Write a class-balanced part of Fashion-MNIST as PNGs in torchvision's image-folder layout
(``OUT/train/CLASS/*.png``, ``OUT/test/CLASS/*.png``): an image folder like the one you would have.

    python docs/examples/fashion_to_folder.py /usr/share/datasets/fashion-mnist fashion-pngs
"""

import argparse
import gzip
import os

import numpy as np
from PIL import Image

CLASSES = [
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]


def read_idx(path: str, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def write(root: str, prefix: str, out: str, per_class: int) -> int:
    images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), 8)
    written = 0
    for label, name in enumerate(CLASSES):
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        for i in np.flatnonzero(labels == label)[:per_class]:  # the first N of each class
            Image.fromarray(images[i]).save(os.path.join(folder, f"{i}.png"))
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", help="folder of Fashion-MNIST's four .gz files")
    parser.add_argument("out", help="the image folder to write")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args()
    n_train = write(args.data_root, "train", os.path.join(args.out, "train"), args.train_per_class)
    n_test = write(args.data_root, "t10k", os.path.join(args.out, "test"), args.test_per_class)
    print(f"wrote {n_train} training and {n_test} test images to {args.out}")


if __name__ == "__main__":
    main()
