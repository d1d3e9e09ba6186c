"""Data sample: safe loading of an uploaded .npz, its statistics, and the checks they allow."""

from __future__ import annotations

import io
import warnings
import zipfile
from typing import Any

import numpy as np

from service.errors import InvalidDataset, PayloadTooLarge


def load_sample(
    blob: bytes, max_examples: int, max_unpacked_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """`x` and `y` from an `np.savez` file, refusing pickles, zip bombs and mismatched shapes."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise InvalidDataset(
            "the file is not an .npz archive (np.savez / np.savez_compressed)"
        ) from exc
    # Sizes in the zip directory are what decompression will produce: check before inflating.
    if declared > max_unpacked_bytes:
        raise PayloadTooLarge(
            f"the archive unpacks to {declared} bytes; the limit is {max_unpacked_bytes}"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"x", "y"} <= names:
                raise InvalidDataset(
                    f"the archive needs arrays 'x' and 'y'; it has {sorted(names)}"
                )
            x, y = npz["x"], npz["y"]
    except ValueError as exc:  # numpy's answer to object arrays under allow_pickle=False
        raise InvalidDataset(f"the arrays cannot be read without pickle: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidDataset(f"the archive is damaged: {exc}") from exc
    return _validated(x, y, max_examples)


# Average examples per distinct value above which whole-number float targets read as labels.
MIN_PER_CLASS = 3


def _validated(x: np.ndarray, y: np.ndarray, max_examples: int) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise InvalidDataset(f"x and y must be numeric arrays (x is {x.dtype}, y is {y.dtype})")
    if x.ndim < 2 or x.ndim > 5:
        raise InvalidDataset(
            f"x must be (N, features), (N, H, W[, C]) or (N, D, H, W, C); its shape is {x.shape}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(len(y))
    if y.ndim not in (1, 2):
        raise InvalidDataset(f"y must be (N,) targets or (N, K) one-/multi-hot; shape {y.shape}")
    if len(x) != len(y):
        raise InvalidDataset(f"x has {len(x)} examples but y has {len(y)} labels")
    if len(x) == 0:
        raise InvalidDataset("the sample is empty")
    if len(x) > max_examples:
        raise PayloadTooLarge(f"the sample has {len(x)} examples; the limit is {max_examples}")
    if x.ndim == 3:
        x = x[..., np.newaxis]  # (N, H, W) grayscale → (N, H, W, 1), as Keras expects
    return x, _targets(y)


def _targets(y: np.ndarray) -> np.ndarray:
    """Class ids (int64) when y holds class labels; otherwise y as float64, as the user fit it.

    One-hot rows become their class id and {-1, +1} labels (hinge losses) classes 0 and 1.
    Regression targets and multi-hot rows (several labels per example) stay as they are.
    """
    with np.errstate(all="ignore"):
        finite = bool(np.all(np.isfinite(y)))
        integral = finite and bool(np.all(y == np.round(y)))
    if y.ndim == 2:
        one_hot = integral and bool(np.all((y == 0) | (y == 1))) and bool(np.all(y.sum(1) == 1))
        return np.argmax(y, axis=1).astype(np.int64) if one_hot else y.astype(np.float64)
    values = np.unique(y) if integral else np.empty(0)
    if integral and set(values.tolist()) <= {-1, 1}:
        return (y > 0).astype(np.int64)
    # Integer arrays are labels. Whole numbers stored as floats are labels when each value
    # recurs (≥ MIN_PER_CLASS examples on average); a regression target such as diabetes
    # progression (214 distinct whole numbers in 442 examples) does not.
    labels = y.dtype.kind in "iub" or len(y) >= MIN_PER_CLASS * len(values)
    if integral and bool(np.all(y >= 0)) and labels:
        return y.astype(np.int64)
    return y.astype(np.float64)


def is_labels(y: np.ndarray) -> bool:
    """Whether y holds one class id per example (as `_targets` returns them)."""
    return y.ndim == 1 and y.dtype.kind in "iu"


def num_classes_of(y: np.ndarray) -> int | None:
    """Classes the targets name: max id + 1, the columns of multi-hot rows, None for regression."""
    if is_labels(y):
        return int(y.max()) + 1
    if y.ndim == 2 and y.shape[1] > 1:  # one column is a regression target, not a class
        return int(y.shape[1])
    return None


def sample_stats(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics, non-finite counts, class counts and duplicates."""
    xf = x.astype(np.float64, copy=False)
    channels = xf.reshape(-1, xf.shape[-1])
    finite = np.isfinite(channels)
    clean = np.where(finite, channels, np.nan)
    # An all-NaN channel is a finding (nan_count), not an error: silence numpy's warnings.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            "min": np.nanmin(clean, axis=0),
            "max": np.nanmax(clean, axis=0),
            "mean": np.nanmean(clean, axis=0),
            "std": np.nanstd(clean, axis=0),
        }
    counts: dict[str, int] = {}
    if is_labels(y):  # regression targets and multi-hot rows have no classes to count
        labels, n = np.unique(y, return_counts=True)
        counts = {str(int(k)): int(c) for k, c in zip(labels, n, strict=True)}
    dup, conflicting = _duplicates(x, y)
    return {
        "targets": _target_stats(y),
        "channels": {k: [_num(v) for v in vals] for k, vals in stats.items()},
        "nan_count": int(np.isnan(channels).sum()) if x.dtype.kind == "f" else 0,
        "inf_count": int(np.isinf(channels).sum()) if x.dtype.kind == "f" else 0,
        "class_counts": counts,
        "duplicate_count": dup,
        "conflicting_duplicates": conflicting,
        "dtype": str(x.dtype),
    }


def _target_stats(y: np.ndarray) -> dict[str, float | None] | None:
    """Range and moments of regression targets (one float per example); None for labels."""
    if y.dtype.kind != "f" or y.size == 0 or not (y.ndim == 1 or y.shape[1:] == (1,)):
        return None
    t = y.astype(np.float64).ravel()
    t = t[np.isfinite(t)]
    if t.size == 0:
        return None
    moments = {"min": t.min(), "max": t.max(), "mean": t.mean(), "std": t.std()}
    return {k: _num(float(v)) for k, v in moments.items()}


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _duplicates(x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Examples that repeat an earlier one, and how many repeated inputs carry several labels."""
    rows = np.ascontiguousarray(x.reshape(len(x), -1))
    targets = np.ascontiguousarray(y.reshape(len(y), -1))
    labels_of: dict[bytes, set[bytes]] = {}
    dup = 0
    for row, target in zip(rows, targets, strict=True):
        seen = labels_of.setdefault(row.tobytes(), set())
        dup += bool(seen)
        seen.add(target.tobytes())
    return dup, sum(1 for labels in labels_of.values() if len(labels) > 1)
