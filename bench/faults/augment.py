"""Input-pipeline augmentation (outside the model), like ImageDataGenerator's shifts and flips."""

from __future__ import annotations

import math

import keras
import numpy as np

SHIFT = 0.1  # largest shift, as a fraction of the image side


class ShiftFlipBatches(keras.utils.PyDataset):
    """Shuffled batches with random shifts (zero fill) and horizontal flips, from a fixed seed."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed + 104729)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return np.stack([self._augment(self.x[i]) for i in idx]), self.y[idx]

    def _augment(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        dy, dx = (int(self.rng.integers(-round(SHIFT * s), round(SHIFT * s) + 1)) for s in (h, w))
        shifted = np.zeros_like(image)
        shifted[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        return shifted[:, ::-1] if self.rng.random() < 0.5 else shifted

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))
