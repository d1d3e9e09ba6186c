"""A small real sample: Fashion-MNIST from Debian's dataset-fashion-mnist package."""

from __future__ import annotations

import io

import numpy as np

from workers.data import fashion_mnist_train


def sample(n: int = 768, size: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images (uint8, size×size×1, block-averaged from 28×28) and their labels."""
    images, labels = fashion_mnist_train()
    idx = np.random.default_rng(seed).choice(len(images), n, replace=False)
    x = images[idx].astype(np.float32)
    factor = 28 // size
    x = x.reshape(n, size, factor, size, factor).mean(axis=(2, 4)).round().astype(np.uint8)
    return x[..., None], labels[idx].astype(np.int64)


def npz_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()
