"""The training-run spec: model, optimizer, schedule, loss, batch size, preprocessing, data."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.schemas.model import ModelSpec
from service.schemas.schedules import KerasSchedule, read_keras_schedule

# Keras optimizer classes by the key the service uses for them (snake_case without "_").
OPTIMIZER_CLASSES = {
    "SGD": "sgd",
    "Adam": "adam",
    "AdamW": "adamw",
    "RMSprop": "rmsprop",
    "Adagrad": "adagrad",
    "Adadelta": "adadelta",
    "Nadam": "nadam",
    "Adamax": "adamax",
    "Ftrl": "ftrl",
    "Lion": "lion",
    "Adafactor": "adafactor",
    "Lamb": "lamb",
    "Muon": "muon",
    "ScheduleFreeAdamW": "schedulefreeadamw",
    "MultiOptimizer": "multioptimizer",
}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES.values())
# Keras names the n-th optimizer of a class in a process "adam_1", "rm_sprop_2"...
_UNIQUIFIER = re.compile(r"_\d+$")
_WRAPPERS = ("LossScaleOptimizer",)  # read through: the step is the inner optimizer's


class LrSchedule(BaseModel):
    """A learning-rate schedule; `step_decay`: lr = initial_lr · drop^floor(epoch / epochs_drop).

    `keras` holds a Keras LearningRateSchedule read from an optimizer config, modelled exactly
    over steps; its `name` is then "keras", or "constant" when it never decays (warm-up only).
    """

    model_config = ConfigDict(extra="forbid")

    name: Literal["constant", "step_decay", "exponential", "cosine", "reduce_on_plateau", "keras"]
    initial_lr: float | None = Field(default=None, gt=0)
    drop: float | None = Field(default=None, gt=0, le=1)
    epochs_drop: float | None = Field(default=None, gt=0)
    decay_rate: float | None = Field(default=None, gt=0, le=1)
    decay_steps: int | None = Field(default=None, ge=1)
    alpha: float | None = Field(default=None, ge=0, le=1)
    warmup_epochs: float | None = Field(default=None, ge=0)
    factor: float | None = Field(default=None, gt=0, lt=1)
    patience: int | None = Field(default=None, ge=0)
    min_lr: float | None = Field(default=None, ge=0)
    keras: KerasSchedule | None = None

    @model_validator(mode="after")
    def _keras_has_its_schedule(self) -> LrSchedule:
        if self.name == "keras" and self.keras is None:
            raise ValueError('a "keras" schedule needs its "keras" fields')
        return self


class Optimizer(BaseModel):
    """Keras' `optimizer.get_config()` or `keras.optimizers.serialize()` as is, or a name + lr.

    The optimizer is identified by its class: Keras' uniquifying suffix (`adam_1`) is dropped,
    `LossScaleOptimizer` (mixed_float16) is read through its inner optimizer, and a schedule
    in `learning_rate` becomes `schedule` with `learning_rate` set to its peak.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["sgd", "adam"])
    learning_rate: float | None = Field(default=None, gt=0)
    momentum: float | None = Field(default=None, ge=0, lt=1)
    nesterov: bool | None = None
    beta_1: float | None = Field(default=None, ge=0, lt=1)
    beta_2: float | None = Field(default=None, ge=0, lt=1)
    rho: float | None = Field(default=None, ge=0, lt=1)
    epsilon: float | None = Field(default=None, ge=0)
    weight_decay: float | None = Field(default=None, ge=0)
    clipnorm: float | None = Field(default=None, gt=0)
    clipvalue: float | None = Field(default=None, gt=0)
    global_clipnorm: float | None = Field(default=None, gt=0)
    schedule: LrSchedule | None = Field(
        default=None, description="Filled when learning_rate was a serialized Keras schedule."
    )

    @model_validator(mode="before")
    @classmethod
    def _as_keras_wrote_it(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _unwrapped(data)
        # Keras writes a LearningRateSchedule into learning_rate as a nested object.
        if isinstance(data.get("learning_rate"), dict):
            data["learning_rate"], data["schedule"] = _read_keras_schedule(data["learning_rate"])
        return data

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        # Keras' own spellings vary ("RMSprop", "rmsprop", "rm_sprop_2"); so do clients'.
        name = _UNIQUIFIER.sub("", value.strip()).lower().replace("_", "").replace("-", "")
        if name not in OPTIMIZERS:
            raise ValueError(
                f"optimizer name {value!r} is not a Keras optimizer class; a custom name hides "
                "the class: send keras.optimizers.serialize(optimizer) (it carries class_name), "
                f"or set name to the class (known: {', '.join(OPTIMIZER_CLASSES)})"
            )
        return name


def _unwrapped(data: dict[str, Any]) -> dict[str, Any]:
    """The serialize() form and LossScaleOptimizer down to one optimizer config."""
    for _ in range(4):  # serialize(LossScaleOptimizer(...)) nests two levels; more is not Keras
        if isinstance(data.get("config"), dict) and "class_name" in data:
            module = data.get("module")
            if module is not None and not str(module).startswith("keras"):
                raise ValueError(f"optimizer from module {module!r} is not a Keras optimizer")
            data = {**data["config"], "name": str(data["class_name"])}
        if data.get("name") in _WRAPPERS or isinstance(data.get("inner_optimizer"), dict):
            inner = data.get("inner_optimizer")
            if not isinstance(inner, dict):
                raise ValueError("LossScaleOptimizer needs its inner_optimizer")
            data = inner
            continue
        if "optimizer_map" in data:  # MultiOptimizer: per-layer optimizers, no single step
            return {"name": "MultiOptimizer"}
        return dict(data)
    raise ValueError("the optimizer config is nested deeper than Keras writes it")


def _read_keras_schedule(obj: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """(learning_rate to report, LrSchedule fields): the rate is the schedule's peak."""
    schedule = read_keras_schedule(obj)
    peak = schedule.peak()
    lr = peak if peak > 0 else None  # an all-zero schedule trains nothing; no rate to judge
    return lr, {
        "name": "keras" if schedule.decays() else "constant",
        "initial_lr": lr,
        "keras": schedule,
    }


class Loss(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["sparse_categorical_crossentropy"])
    from_logits: bool = False
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _as_keras_wrote_it(cls, data: Any) -> Any:
        # keras.losses.serialize(): {"module", "class_name", "config": loss.get_config()}.
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "class_name" in data:
            module = data.get("module")
            if module is not None and not str(module).startswith("keras"):
                raise ValueError(f"loss from module {module!r} is not a Keras loss")
            return {"name": str(data["class_name"]), **data["config"]}
        return data

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        return _snake(value)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name.strip()):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Augmentation(BaseModel):
    """ImageDataGenerator-style settings; any unset field means "not used"."""

    model_config = ConfigDict(extra="allow")

    rotation_range: float | None = Field(default=None, ge=0, le=360)
    width_shift_range: float | None = Field(default=None, ge=0)
    height_shift_range: float | None = Field(default=None, ge=0)
    horizontal_flip: bool | None = None
    vertical_flip: bool | None = None
    zoom_range: float | None = Field(default=None, ge=0)


class Preprocessing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    normalization: Literal["none", "rescale", "standardize", "unknown"] = "unknown"
    augmentation: Augmentation | None = None


_Finite = Annotated[float, Field(allow_inf_nan=False)]
_NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class DataInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(default=None, max_length=64)
    num_classes: int | None = Field(default=None, ge=2, le=100_000)
    num_examples: int | None = Field(default=None, ge=1)
    input_min: float | None = None
    input_max: float | None = None
    input_mean: _Finite | list[_Finite] | None = Field(
        default=None, description="Mean of the inputs, overall or per channel."
    )
    input_std: _NonNegative | list[_NonNegative] | None = Field(
        default=None, description="Standard deviation of the inputs, overall or per channel."
    )
    # Regression targets, for a run sent without a sample (an uploaded y gives them too).
    target_min: _Finite | None = None
    target_max: _Finite | None = None
    target_mean: _Finite | None = None
    target_std: _NonNegative | None = None
    drop_examples: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=100_000,
        description="Rows of the uploaded sample (0-based) that a label fix drops from training.",
    )

    @model_validator(mode="after")
    def _ordered_range(self) -> DataInfo:
        low, high = self.input_min, self.input_max
        if low is not None and high is not None and low > high:
            raise ValueError("input_min is larger than input_max")
        means, stds = self.input_mean, self.input_std
        if isinstance(means, list) and isinstance(stds, list) and len(means) != len(stds):
            raise ValueError(f"input_mean has {len(means)} channels, input_std {len(stds)}")
        for values in (means, stds):
            if isinstance(values, list) and not 1 <= len(values) <= 10_000:
                raise ValueError("per-channel statistics need 1 to 10000 values")
        low, high = self.target_min, self.target_max
        if low is not None and high is not None and low > high:
            raise ValueError("target_min is larger than target_max")
        return self

    def typical_range(self) -> tuple[float, float] | None:
        """mean ± one std (over channels): where most inputs lie, when only moments are known."""
        if self.input_mean is None or self.input_std is None:
            return None
        means = self.input_mean if isinstance(self.input_mean, list) else [self.input_mean]
        stds = self.input_std if isinstance(self.input_std, list) else [self.input_std] * len(means)
        if len(stds) == 1:
            stds = stds * len(means)
        if len(means) == 1:
            means = means * len(stds)
        return min(m - s for m, s in zip(means, stds, strict=True)), max(
            m + s for m, s in zip(means, stds, strict=True)
        )


class RunSpec(BaseModel):
    """How the model was trained. Every part is optional; each one sharpens the diagnosis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelSpec | None = None
    optimizer: Optimizer | None = None
    lr_schedule: LrSchedule | None = None
    loss: Loss | None = Field(default=None, examples=["sparse_categorical_crossentropy"])
    batch_size: int | None = Field(default=None, ge=1, le=10_000_000)
    epochs: int | None = Field(default=None, ge=1, le=1_000_000)
    preprocessing: Preprocessing | None = None
    data: DataInfo | None = None

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value
