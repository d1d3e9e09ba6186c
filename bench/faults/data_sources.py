"""Real image data for the fault benchmark, read from local files only (nothing downloads).

Fashion-MNIST comes from the idx files under /usr/share/datasets/fashion-mnist/; the 8x8 digits
ship inside scikit-learn. Every loader returns raw integer pixels (uint8): how they are scaled is
part of a run's recipe, because unnormalized inputs are one of the faults.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Validation examples per dataset; digits only has 1,797 images, so it keeps 500 aside.
FASHION_VAL = 1000
DIGITS_VAL = 500


@dataclass(frozen=True)
class Split:
    """Raw pixels (N, H, W) uint8 and int64 labels, for training and validation."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    raw_max: int  # the largest pixel value the format can hold (255, or 16 for digits)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format): magic, dimension sizes (big-endian int32), then bytes."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:  # 0x08: unsigned byte payload
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@cache
def _fashion_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")
    y_train = read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return x_train, y_train, x_test, y_test


@cache
def fashion_mnist(n_train: int, seed: int) -> Split:
    """A class-shuffled subset: n_train from the training file, 1,000 from the test file.

    Smaller subsets are prefixes of larger ones (same seed), so a run on 300 examples sees a
    subset of what its 3,000-example twin sees.
    """
    x_all, y_all, x_test, y_test = _fashion_arrays()
    rng = np.random.default_rng(seed)
    train_idx = rng.permutation(len(x_all))[:n_train]
    val_idx = rng.permutation(len(x_test))[:FASHION_VAL]
    return Split(
        "fashion_mnist",
        x_all[train_idx],
        y_all[train_idx],
        x_test[val_idx],
        y_test[val_idx],
        num_classes=10,
        raw_max=255,
    )


@cache
def digits(n_train: int, seed: int) -> Split:
    """scikit-learn's 8x8 digits (pixel values 0..16), 500 images held out for validation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    val_idx, train_idx = order[:DIGITS_VAL], order[DIGITS_VAL:][:n_train]
    return Split(
        "digits",
        images[train_idx],
        labels[train_idx],
        images[val_idx],
        labels[val_idx],
        num_classes=10,
        raw_max=16,
    )


def resize(images: np.ndarray, mode: str) -> np.ndarray:
    """Image variants of Fashion-MNIST: "full" 28x28, "half" 14x14 (2x2 mean), "crop20"."""
    if mode == "full":
        return images
    if mode == "half":
        n, h, w = images.shape
        pooled = images.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
        return np.rint(pooled).astype(np.uint8)
    if mode == "crop20":
        return images[:, 4:24, 4:24]
    raise ValueError(f"unknown image mode {mode!r}")


def load(dataset: str, n_train: int, image: str, seed: int) -> Split:
    """The split a recipe asks for, images already resized (labels untouched)."""
    if dataset == "fashion_mnist":
        split = fashion_mnist(n_train, seed)
    elif dataset == "digits":
        if image != "full":
            raise ValueError("digits images are 8x8 and have no resized variants")
        split = digits(n_train, seed)
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    if image == "full":
        return split
    return Split(
        split.name,
        resize(split.x_train, image),
        split.y_train,
        resize(split.x_val, image),
        split.y_val,
        split.num_classes,
        split.raw_max,
    )


def flip_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """Symmetric label noise: `fraction` of the labels replaced by a different, random class."""
    rng = np.random.default_rng(seed + 7919)  # its own stream: independent of the subset draw
    noisy = labels.copy()
    chosen = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
    # Adding 1..C-1 modulo C always lands on another class, uniformly.
    noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, size=len(chosen))) % num_classes
    return noisy
