"""Keras `LearningRateSchedule`s as a learning rate over optimizer steps, in pure Python.

A schedule serialized inside `optimizer.get_config()` is read into `KerasSchedule`: the class
name and its numeric arguments, validated, never deserialized. `lr(step)` follows the formula
of each class in `keras.optimizers.schedules` (Keras 3), so the service can say what learning
rate a run had at any step (warm-up, restarts and all) and the worker can rebuild the same
schedule from these fields. Every class Keras ships is modelled.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KerasScheduleClass = Literal[
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
]
SCHEDULE_CLASSES: tuple[str, ...] = KerasScheduleClass.__args__  # type: ignore[attr-defined]
# Points at which the peak and the end of a schedule are looked for, over its horizon.
_GRID = 512
# A growing schedule (decay_rate > 1) is evaluated over this many of its periods at most.
_GROWTH_PERIODS = 10
_MAX_LR = 1e6  # beyond this a learning rate is a number nobody trains with; keeps floats finite


class KerasSchedule(BaseModel):
    """One Keras LearningRateSchedule: its class and the arguments its formula uses."""

    model_config = ConfigDict(extra="forbid")

    class_name: KerasScheduleClass
    initial_learning_rate: float | None = Field(default=None, allow_inf_nan=False)
    decay_steps: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    decay_rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    staircase: bool = False
    boundaries: list[float] | None = Field(default=None, max_length=10_000)
    values: list[float] | None = Field(default=None, max_length=10_001)
    end_learning_rate: float | None = Field(default=None, allow_inf_nan=False)
    power: float | None = Field(default=None, allow_inf_nan=False)
    cycle: bool = False
    alpha: float | None = Field(default=None, allow_inf_nan=False)
    warmup_target: float | None = Field(default=None, allow_inf_nan=False)
    warmup_steps: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    first_decay_steps: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    t_mul: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    m_mul: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def lr(self, step: float) -> float:
        """The learning rate Keras' schedule gives at optimizer step `step` (0-based)."""
        value = _FORMULAS[self.class_name](self, max(0.0, float(step)))
        return min(value, _MAX_LR) if math.isfinite(value) else _MAX_LR

    def horizon(self) -> float:
        """Steps over which the schedule's shape plays out (decay, warm-up, boundaries)."""
        c = self
        if c.class_name == "PiecewiseConstantDecay":
            return max(c.boundaries or [0.0]) + 1
        if c.class_name == "CosineDecay":
            return (c.warmup_steps or 0.0) + (c.decay_steps or 1.0)
        if c.class_name == "CosineDecayRestarts":
            return c.first_decay_steps or 1.0
        periods = _GROWTH_PERIODS if (c.decay_rate or 0.0) > 1 else 1
        return (c.decay_steps or 1.0) * periods

    def curve(self) -> list[float]:
        """The learning rate at _GRID + 1 evenly spread steps over the horizon, and boundaries."""
        horizon = self.horizon()
        steps = [horizon * i / _GRID for i in range(_GRID + 1)]
        steps += [b + 1 for b in self.boundaries or []]  # where a piece starts
        steps += [self.warmup_steps] if self.warmup_steps else []  # where warm-up peaks
        return [self.lr(step) for step in sorted(steps)]

    def peak(self) -> float:
        return max(self.curve())

    def decays(self) -> bool:
        """Whether the rate ends lower than its peak (warm-up alone is not a decay)."""
        curve = self.curve()
        return curve[-1] < 0.999 * max(curve)


def read_keras_schedule(obj: dict[str, Any]) -> KerasSchedule:
    """A serialized schedule ({"class_name", "config"}) -> KerasSchedule, or ValueError."""
    cls = obj.get("class_name")
    config = obj.get("config")
    module = obj.get("module")
    if module is not None and not str(module).startswith("keras"):
        raise ValueError(f"learning-rate schedule from module {module!r} is not a Keras schedule")
    if cls not in SCHEDULE_CLASSES or not isinstance(config, dict):
        raise ValueError(
            f"learning-rate schedule {cls!r} is not a Keras schedule (known: "
            f"{', '.join(SCHEDULE_CLASSES)}); send the optimizer's get_config() as Keras wrote it"
        )
    fields = {k: v for k, v in config.items() if k in KerasSchedule.model_fields and v is not None}
    try:
        schedule = KerasSchedule(class_name=cls, **fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"learning-rate schedule {cls}: {problems}") from None
    _check_required(schedule)
    return schedule


_REQUIRED = {
    "ExponentialDecay": ("initial_learning_rate", "decay_steps", "decay_rate"),
    "PiecewiseConstantDecay": ("boundaries", "values"),
    "PolynomialDecay": ("initial_learning_rate", "decay_steps"),
    "InverseTimeDecay": ("initial_learning_rate", "decay_steps", "decay_rate"),
    "CosineDecay": ("initial_learning_rate", "decay_steps"),
    "CosineDecayRestarts": ("initial_learning_rate", "first_decay_steps"),
}


def _check_required(s: KerasSchedule) -> None:
    missing = [k for k in _REQUIRED[s.class_name] if getattr(s, k) is None]
    if missing:
        raise ValueError(f"learning-rate schedule {s.class_name} needs {', '.join(missing)}")
    if s.class_name == "PiecewiseConstantDecay":
        bounds, values = s.boundaries or [], s.values or []
        if len(values) != len(bounds) + 1:
            raise ValueError(
                "PiecewiseConstantDecay needs one more value than boundaries "
                f"(got {len(values)} values, {len(bounds)} boundaries)"
            )
        if not all(map(math.isfinite, [*bounds, *values])):
            raise ValueError("PiecewiseConstantDecay boundaries and values must be finite")


# ---------------------------------------------------------------- Keras' formulas


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _exponential(s: KerasSchedule, step: float) -> float:
    p = step / (s.decay_steps or 1.0)
    p = math.floor(p) if s.staircase else p
    try:
        return _or(s.initial_learning_rate, 0.0) * math.pow(_or(s.decay_rate, 1.0), p)
    except OverflowError:
        return math.inf


def _piecewise(s: KerasSchedule, step: float) -> float:
    # Keras: values[i] while boundaries[i-1] < step <= boundaries[i].
    values = s.values or [0.0]
    for boundary, value in zip(s.boundaries or [], values, strict=False):
        if step <= boundary:
            return value
    return values[-1]


def _polynomial(s: KerasSchedule, step: float) -> float:
    decay = s.decay_steps or 1.0
    if s.cycle:
        decay = decay * max(1.0, math.ceil(step / decay))
    else:
        step = min(step, decay)
    start, end = _or(s.initial_learning_rate, 0.0), _or(s.end_learning_rate, 1e-4)
    return (start - end) * math.pow(1 - step / decay, _or(s.power, 1.0)) + end


def _inverse_time(s: KerasSchedule, step: float) -> float:
    p = step / (s.decay_steps or 1.0)
    p = math.floor(p) if s.staircase else p
    return _or(s.initial_learning_rate, 0.0) / (1 + _or(s.decay_rate, 0.0) * p)


def _cosine(s: KerasSchedule, step: float) -> float:
    initial = _or(s.initial_learning_rate, 0.0)
    warmup = _or(s.warmup_steps, 0.0)
    target = s.warmup_target
    if target is not None and step < warmup:
        return initial + (target - initial) * step / warmup  # linear warm-up
    top = initial if target is None else target
    done = min(step - (warmup if target is not None else 0.0), s.decay_steps or 1.0)
    cosine = 0.5 * (1 + math.cos(math.pi * done / (s.decay_steps or 1.0)))
    alpha = _or(s.alpha, 0.0)
    return top * ((1 - alpha) * cosine + alpha)


def _restarts(s: KerasSchedule, step: float) -> float:
    first = s.first_decay_steps or 1.0
    t_mul, m_mul, alpha = _or(s.t_mul, 2.0), _or(s.m_mul, 1.0), _or(s.alpha, 0.0)
    fraction = step / first
    initial = _or(s.initial_learning_rate, 0.0)
    try:
        if t_mul == 1.0:
            restarts = math.floor(fraction)
            done = fraction - restarts
        else:
            restarts = math.floor(math.log(1 - fraction * (1 - t_mul)) / math.log(t_mul))
            total = (1 - t_mul**restarts) / (1 - t_mul)
            done = (fraction - total) / t_mul**restarts
        cosine = 0.5 * m_mul**restarts * (1 + math.cos(math.pi * done))
    except (ValueError, OverflowError, ZeroDivisionError):
        # t_mul < 1 shrinks the periods to a finite total length; past it (where Keras yields
        # NaN) the schedule has ended, at its floor.
        return initial * alpha
    return initial * ((1 - alpha) * cosine + alpha)


_FORMULAS = {
    "ExponentialDecay": _exponential,
    "PiecewiseConstantDecay": _piecewise,
    "PolynomialDecay": _polynomial,
    "InverseTimeDecay": _inverse_time,
    "CosineDecay": _cosine,
    "CosineDecayRestarts": _restarts,
}
