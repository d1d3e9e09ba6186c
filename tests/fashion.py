"""A small real sample: Fashion-MNIST from Debian's dataset-fashion-mnist package."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

ROOT = Path("/usr/share/datasets/fashion-mnist")


def sample(n: int = 768, size: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images (uint8, size×size×1, 2×2-averaged from 28×28) and their labels."""
    with gzip.open(ROOT / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(ROOT / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    idx = np.random.default_rng(seed).choice(len(images), n, replace=False)
    x = images[idx].astype(np.float32)
    factor = 28 // size
    x = x.reshape(n, size, factor, size, factor).mean(axis=(2, 4)).round().astype(np.uint8)
    return x[..., None], labels[idx].astype(np.int64)


def npz_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()
