"""Learning-rate ranges per optimizer: SGD's step is lr·g, Adam's is ≈ lr whatever g is."""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.schemas.run import Optimizer


@dataclass(frozen=True)
class LrBand:
    """Where an optimizer's (effective) learning rate works for small CNNs: [low, high]."""

    low: float
    typical: float
    high: float


# Adaptive methods normalise the gradient, so their step is ≈ lr per weight: steps above ~1e-2
# move He-scaled weights (std ≈ 0.05) by a fifth of their size each update. SGD's step scales
# with the gradient, and momentum m multiplies it by 1/(1 − m), so its band is on lr/(1 − m).
BANDS: dict[str, LrBand] = {
    "sgd": LrBand(low=2e-3, typical=0.1, high=2.0),
    "adam": LrBand(low=1e-5, typical=1e-3, high=1e-2),
    "adamw": LrBand(low=1e-5, typical=1e-3, high=1e-2),
    "nadam": LrBand(low=1e-5, typical=1e-3, high=1e-2),
    "adamax": LrBand(low=2e-5, typical=2e-3, high=2e-2),
    "rmsprop": LrBand(low=1e-5, typical=1e-3, high=1e-2),
    "lamb": LrBand(low=1e-5, typical=1e-3, high=1e-2),
    "adagrad": LrBand(low=1e-3, typical=1e-2, high=0.5),
    "adadelta": LrBand(low=1e-2, typical=1.0, high=10.0),
    "ftrl": LrBand(low=1e-3, typical=1e-2, high=1.0),
    "lion": LrBand(low=1e-6, typical=1e-4, high=1e-3),
    "adafactor": LrBand(low=1e-5, typical=1e-3, high=1e-1),
}

# Keras' defaults, for an optimizer config that leaves learning_rate out.
DEFAULT_LR = {"sgd": 0.01, "adadelta": 0.001, "adagrad": 0.001, "ftrl": 0.001}


@dataclass(frozen=True)
class LrReading:
    optimizer: str
    learning_rate: float
    effective: float  # SGD: lr / (1 − momentum); others: lr
    band: LrBand

    @property
    def decades_above(self) -> float:
        return math.log10(self.effective / self.band.high)

    @property
    def decades_below(self) -> float:
        return math.log10(self.band.low / self.effective)

    def describe(self) -> str:
        name = _DISPLAY.get(self.optimizer, self.optimizer)
        if self.effective != self.learning_rate:
            return (
                f"{name} learning_rate {self.learning_rate:g} with momentum "
                f"(effective step {self.effective:.3g})"
            )
        return f"{name} learning_rate {self.learning_rate:g}"


_DISPLAY = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "nadam": "Nadam",
    "adamax": "Adamax",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "lion": "Lion",
}


def read_lr(optimizer: Optimizer | None) -> LrReading | None:
    if optimizer is None:
        return None
    band = BANDS.get(optimizer.name)
    if band is None:
        return None
    lr = optimizer.learning_rate or DEFAULT_LR.get(optimizer.name, 1e-3)
    effective = lr
    if optimizer.name == "sgd" and optimizer.momentum:
        effective = lr / (1.0 - optimizer.momentum)
    return LrReading(optimizer.name, lr, effective, band)


def display(name: str) -> str:
    return _DISPLAY.get(name, name)
