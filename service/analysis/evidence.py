"""What the detectors read (the context) and what they return (weighted evidence)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from service.analysis.architecture import Architecture, LayerInfo
from service.analysis.curves import HIGH_LEVEL, CurveFacts
from service.analysis.optimizers import LrReading
from service.schemas.report import LabelAudit
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


# Losses that fit real-valued targets: they have no ln C, only the targets' own spread.
REGRESSION_LOSSES = frozenset(
    {
        "mean_squared_error",
        "mse",
        "mean_absolute_error",
        "mae",
        "huber",
        "log_cosh",
        "mean_squared_logarithmic_error",
        "msle",
    }
)
# A regression that explains less than this share of Var(y) on its own training data (loss above
# 0.7·Var(y)) has not learned much: the analogue of HIGH_LEVEL's 0.25·ln C for classifiers.
REGRESSION_HIGH = 0.7
# At or below this many training examples, what the curves show cannot tell causes apart: a
# validation split of a handful of examples moves by whole examples.
TINY_DATA = 50


@dataclass(frozen=True)
class Targets:
    """Statistics of regression targets, from the request (run.data.target_*)."""

    low: float | None
    high: float | None
    mean: float | None
    std: float | None


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
    targets: Targets | None = None
    label_audit: LabelAudit | None = None  # from the worker's label_audit step
    shape_gap: str | None = None  # why `arch` is None: the shape describe() could not follow

    @property
    def tiny(self) -> bool:
        return self.num_examples is not None and self.num_examples <= TINY_DATA

    @cached_property
    def regression(self) -> bool:
        """The loss fits real values: a regression, whatever the head looks like."""
        loss = self.run.loss
        return loss is not None and loss.name in REGRESSION_LOSSES and not self.num_classes

    @cached_property
    def baseline(self) -> float | None:
        """Loss of predicting the mean of y: Var(y) under MSE, E|y − mean| (≈ 0.8·std for a
        normal) under MAE. A regression's "chance"; None when the targets' spread is unknown."""
        t, loss = self.targets, self.run.loss
        if not self.regression or t is None or not t.std or loss is None:
            return None
        if loss.name in ("mean_squared_error", "mse"):
            return t.std**2
        if loss.name in ("mean_absolute_error", "mae"):
            return t.std * math.sqrt(2 / math.pi)
        return None

    @cached_property
    def explained_level(self) -> float | None:
        """Final training loss / baseline: 1 is no better than predicting the mean."""
        final = self.curve.final_loss
        if self.baseline is None or final is None:
            return None
        return final / self.baseline

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.arch.layers] if self.arch else []

    @cached_property
    def severe(self) -> list[str]:
        return [s for s in SEVERE if self.curve.has(s)]

    @cached_property
    def health(self) -> float:
        """How convincingly the run trains, 0…1: 1 at zero loss, 0 at 0.25·ln C (a regression:
        0.7·Var(y)) or with a severe symptom. A run that trains well refutes the causes of a
        high training loss."""
        c = self.curve
        if self.severe or c.level is None or c.level < 0:  # a negative loss is broken, not low
            return 0.0
        if self.explained_level is not None:  # regression: judged against Var(y)
            return max(0.0, 1.0 - self.explained_level / REGRESSION_HIGH)
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
