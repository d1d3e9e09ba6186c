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
    effective: float  # SGD: lr / (1 − momentum) · gradient_scale; others: lr
    band: LrBand
    # SGD's step grows with the gradient. The bands are set for cross-entropy, whose gradient
    # per logit is at most 1; an MSE's is 2·(ŷ − y), about 2·RMS(y) while the net still
    # outputs ≈ 0, so raw regression targets multiply SGD's step (adaptive steps do not grow).
    gradient_scale: float = 1.0

    @property
    def momentum(self) -> float:
        """SGD's momentum, read back from the effective step (0 for other optimizers)."""
        return 1.0 - self.learning_rate * self.gradient_scale / self.effective

    @property
    def decades_above(self) -> float:
        return math.log10(self.effective / self.band.high)

    @property
    def decades_below(self) -> float:
        return math.log10(self.band.low / self.effective)

    def describe(self) -> str:
        name = _DISPLAY.get(self.optimizer, self.optimizer)
        said = f"{name} learning_rate {self.learning_rate:g}"
        if self.gradient_scale != 1.0:
            said += (
                f" on MSE targets whose gradients are ≈ {self.gradient_scale:.3g}× a "
                "cross-entropy's"
            )
        if self.momentum > 1e-9:
            said += " with momentum"
        if self.effective != self.learning_rate:
            said += f" (effective step {self.effective:.3g})"
        return said


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


def read_lr(optimizer: Optimizer | None, mse_target_rms: float | None = None) -> LrReading | None:
    """The rate against its optimizer's band; `mse_target_rms`, for a regression under MSE
    with known targets, scales SGD's step by the gradient those targets make."""
    if optimizer is None:
        return None
    band = BANDS.get(optimizer.name)
    if band is None:
        return None
    lr = optimizer.learning_rate or DEFAULT_LR.get(optimizer.name, 1e-3)
    effective, scale = lr, 1.0
    if optimizer.name == "sgd":
        if optimizer.momentum:
            effective = lr / (1.0 - optimizer.momentum)
        if mse_target_rms:
            scale = 2.0 * mse_target_rms
            effective *= scale
    return LrReading(optimizer.name, lr, effective, band, scale)


def display(name: str) -> str:
    return _DISPLAY.get(name, name)
