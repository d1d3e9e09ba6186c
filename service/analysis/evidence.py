"""What the detectors read (the context) and what they return (weighted evidence)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from service.analysis.architecture import Architecture, LayerInfo
from service.analysis.curves import HIGH_LEVEL, CurveFacts
from service.analysis.optimizers import LrReading
from service.schemas.run import RunSpec

# Symptoms that mean "this run is in trouble" whatever loss a healthy run would reach.
SEVERE = (
    "non_finite_loss",
    "explosion",
    "divergence",
    "stuck_at_chance",
    "late_collapse",
    "high_initial_loss",
)


@dataclass(frozen=True)
class Evidence:
    """One reason for (weight > 0) or against (weight < 0) a cause, in log-odds."""

    weight: float
    text: str


@dataclass(frozen=True)
class Context:
    run: RunSpec
    curve: CurveFacts
    arch: Architecture | None
    lr: LrReading | None
    num_classes: int | None
    chance: float | None
    stats: dict[str, Any] | None  # the uploaded sample's statistics
    input_range: tuple[float, float] | None  # what reaches the first layer, after Rescaling
    num_examples: int | None
    lr_history: tuple[float, ...] = ()

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.arch.layers] if self.arch else []

    @cached_property
    def severe(self) -> list[str]:
        return [s for s in SEVERE if self.curve.has(s)]

    @cached_property
    def health(self) -> float:
        """How convincingly the run trains, 0…1: 1 at zero loss, 0 at 0.25·ln C or with a
        severe symptom. A run that trains well refutes the causes of a high training loss."""
        c = self.curve
        if self.severe or c.level is None:
            return 0.0
        if self.chance is not None:
            return max(0.0, 1.0 - c.level / HIGH_LEVEL)
        fell = (
            c.first_loss is not None
            and c.final_loss is not None
            and c.final_loss < 0.3 * c.first_loss
        )
        return 0.5 if fell else 0.0

    def weighted_layers(self) -> list[LayerInfo]:
        return [layer for layer in self.arch.layers if layer.weighted] if self.arch else []


def sigmoid(x: float) -> float:
    # Stable for any weight sum: exp() of a large negative sum would overflow.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
