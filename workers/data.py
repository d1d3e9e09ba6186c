"""Data a probe trains on: the user's sample, or Fashion-MNIST shaped like the user's input.

No TensorFlow here: resizing and splitting are numpy, so building the data costs milliseconds.
"""

from __future__ import annotations

import functools
import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = 10
STAND_IN_SOURCE: Final = "stand-in: fashion-mnist"
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

Source = Literal["sample", "stand-in: fashion-mnist"]
# What y holds: class ids (int32), float values (a regression: (N,) or (N, K)), or multi-hot
# rows (several labels per example, (N, K) of 0/1). Only class ids are one-hot in the loss.
Targets = Literal["classes", "values", "multi_hot"]


@dataclass(frozen=True)
class ProbeData:
    """Training and held-out arrays (x float32 (N, ...); y int32 class ids, or float32
    values / multi-hot rows, as `targets` says)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int | None  # None for regression values; multi-hot: the labels per row
    source: Source
    note: str = ""
    targets: Targets = "classes"


class StandInMissing(FileNotFoundError):
    """The Fashion-MNIST files are not installed."""


# ---------------------------------------------------------------- the user's sample


def from_sample(
    x: np.ndarray, y: np.ndarray, cap: int = 4096, seed: int = 0, val_fraction: float = 0.2
) -> ProbeData:
    """Up to `cap` examples (seeded choice), split into train and held-out parts (per class
    when y holds class ids). y as `load_sample` gives it: int class ids, else float values or
    multi-hot rows, which are trained on as they are."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x has {len(x)} examples and y {len(y)} labels")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    targets = target_kind(y)
    total = len(x)
    keep = rng.permutation(total)[:cap]
    kept = y[keep].astype(np.int32 if targets == "classes" else np.float32)
    if targets == "classes":
        train, val = stratified_split(kept, val_fraction, rng)
        classes: int | None = int(y.max()) + 1  # of the whole sample: a rare class may be left out
    else:
        train, val = _random_split(len(keep), val_fraction, rng)
        classes = int(y.shape[1]) if targets == "multi_hot" else None
    x = x[keep]
    return ProbeData(
        x_train=x[train].astype(np.float32),
        y_train=kept[train],
        x_val=x[val].astype(np.float32),
        y_val=kept[val],
        num_classes=classes,
        source="sample",
        note=f"probes use {len(keep)} of the sample's {total} examples" if total > cap else "",
        targets=targets,
    )


def target_kind(y: np.ndarray) -> Targets:
    """Class ids (integers, one per example), multi-hot rows (0/1 columns), or values."""
    if y.ndim == 1 and y.dtype.kind in "iu":
        return "classes"
    if y.ndim == 2 and y.shape[1] > 1 and bool(np.all((y == 0) | (y == 1))):
        return "multi_hot"
    return "values"


def _random_split(
    n: int, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a seeded ~val_fraction held out, at least one on each side."""
    held = min(n - 1, max(1, math.ceil(n * val_fraction))) if n > 1 else 0
    order = rng.permutation(n)
    return order[held:], np.sort(order[:held])


def without_rows(
    x: np.ndarray, y: np.ndarray, rows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The sample without `rows` (0-based rows of the upload, as a label fix lists them)."""
    drop = np.unique(np.asarray(rows, dtype=np.int64))
    if len(drop) and drop[-1] >= len(y):
        raise ValueError(
            f"data.drop_examples names row {int(drop[-1])}, but the sample has {len(y)} rows"
        )
    keep = np.setdiff1d(np.arange(len(y)), drop)
    if len(keep) < 2:
        raise ValueError(f"data.drop_examples leaves {len(keep)} of the sample's {len(y)} rows")
    return x[keep], y[keep]


def stratified_split(
    y: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices holding out ~val_fraction of every class that has 2+ examples.

    Classes with one example stay in training: holding it out would leave the class unlearnt.
    """
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        held = min(len(members) - 1, math.ceil(len(members) * val_fraction))
        val.append(members[:held])
        train.append(members[held:])
    train_idx, val_idx = np.concatenate(train), np.concatenate(val)
    if len(val_idx) == 0:  # every class a singleton: lend one example to the held-out side
        train_idx, val_idx = train_idx[1:], train_idx[:1]
    return rng.permutation(train_idx), np.sort(val_idx)


# ---------------------------------------------------------------- stand-in data


def stand_in(
    input_shape: Sequence[int | None],
    num_classes: int,
    n: int = 2048,
    seed: int = 0,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> ProbeData:
    """`n` Fashion-MNIST examples resized to the model's input, scaled into `value_range`.

    With num_classes <= 10 only classes 0..num_classes-1 are used; with more, all 10 are used
    (the model's extra outputs never see a label) and `note` says so.
    """
    if any(d is None for d in input_shape):
        raise ValueError(
            f"the model leaves its input size open ({list(input_shape)}); upload a sample "
            "(POST /v1/datasets) so probes know what to train on"
        )
    images, labels = fashion_mnist_train()
    classes = min(num_classes, FASHION_CLASSES)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(labels < classes)
    chosen = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))
    x = _shape_like(images[chosen], tuple(int(d or 1) for d in input_shape))
    low, high = value_range
    x = (low + (high - low) * (x / 255.0)).astype(np.float32)
    y = labels[chosen].astype(np.int32)
    train, val = stratified_split(y, 0.2, rng)
    note = (
        f"stand-in data has {FASHION_CLASSES} classes; the model's other "
        f"{num_classes - FASHION_CLASSES} outputs never see a label"
        if num_classes > FASHION_CLASSES
        else ""
    )
    return ProbeData(x[train], y[train], x[val], y[val], classes, STAND_IN_SOURCE, note)


@functools.cache
def fashion_mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 training images (uint8, 28x28) and labels, read once per process."""
    images = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    labels = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise StandInMissing(
            f"stand-in data needs Fashion-MNIST in {FASHION_MNIST_DIR}: "
            "apt-get install dataset-fashion-mnist"
        )
    return read_idx(images, IDX_IMAGES_MAGIC), read_idx(labels, IDX_LABELS_MAGIC)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (big-endian header: magic, one uint32 per dimension; then uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path} is not an IDX file of the expected kind (magic {found})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path} holds {data.size} values, its header says {dims}")
    return data.reshape(dims)


def _shape_like(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, 28, 28) uint8 -> float (N, *shape): resized, channels replicated, or flattened."""
    if len(shape) == 3:
        resized = resize(images, shape[0], shape[1])
        return np.repeat(resized[..., np.newaxis], shape[2], axis=-1)
    if len(shape) == 2:
        return resize(images, shape[0], shape[1])
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return resize(images, side, side).reshape(len(images), shape[0])
    raise ValueError(
        f"stand-in images cannot fill an input of shape {list(shape)}; upload a data sample"
    )


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) images, antialiased when shrinking (a triangle filter)."""
    rows = _resize_matrix(images.shape[1], height)
    cols = _resize_matrix(images.shape[2], width)
    return np.einsum("ih,nhw,jw->nij", rows, images.astype(np.float32), cols, optimize=True)


def _resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of a triangle filter, widened by the shrink factor."""
    scale = size_in / size_out
    support = max(1.0, scale)
    centers = (np.arange(size_out) + 0.5) * scale - 0.5  # half-pixel centres, as tf.image
    taps = np.arange(size_in)
    weights = np.clip(1.0 - np.abs(taps[None, :] - centers[:, None]) / support, 0.0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- preprocessing


def apply_preprocessing(data: ProbeData, normalization: str | None) -> ProbeData:
    """The run's input normalization, with statistics from the training split only.

    "rescale" maps the training [min, max] to [0, 1]; "standardize" subtracts the per-channel
    mean and divides by the per-channel std; "none"/"unknown" leave the data as it is.
    Augmentation is not done here: build_model prepends random layers for it.
    """
    if normalization == "rescale":
        low, high = float(data.x_train.min()), float(data.x_train.max())
        span = high - low if high > low else 1.0
        return _mapped(data, low, span)
    if normalization == "standardize":
        axes = tuple(range(data.x_train.ndim - 1))  # all but the channel axis
        mean = data.x_train.mean(axis=axes, dtype=np.float64)
        std = data.x_train.std(axis=axes, dtype=np.float64)
        return _mapped(data, mean, np.where(std > 0, std, 1.0))
    return data


def _mapped(data: ProbeData, shift: float | np.ndarray, scale: float | np.ndarray) -> ProbeData:
    def fix(x: np.ndarray) -> np.ndarray:
        return ((x - shift) / scale).astype(np.float32)

    return replace(data, x_train=fix(data.x_train), x_val=fix(data.x_val))
