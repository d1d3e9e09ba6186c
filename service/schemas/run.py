"""The training-run spec: model, optimizer, schedule, loss, batch size, preprocessing, data."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.schemas.model import ModelSpec

OPTIMIZERS = (
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "nadam",
    "adamax",
    "ftrl",
    "lion",
    "adafactor",
    "lamb",
)


class LrSchedule(BaseModel):
    """A learning-rate schedule; `step_decay`: lr = initial_lr · drop^floor(epoch / epochs_drop)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["constant", "step_decay", "exponential", "cosine", "reduce_on_plateau"]
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


# Keras' serialized LearningRateSchedule classes, as found inside optimizer.get_config().
_KERAS_SCHEDULES = {
    "ExponentialDecay": "exponential",
    "CosineDecay": "cosine",
    "CosineDecayRestarts": "cosine",
    "PiecewiseConstantDecay": "step_decay",
    "InverseTimeDecay": "exponential",
    "PolynomialDecay": "exponential",
}


class Optimizer(BaseModel):
    """Keras' `optimizer.get_config()` as is, or just a name and a learning rate."""

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
    def _unpack_keras_schedule(cls, data: Any) -> Any:
        # Keras writes a LearningRateSchedule into learning_rate as a nested object.
        if isinstance(data, dict) and isinstance(data.get("learning_rate"), dict):
            data = dict(data)
            data["learning_rate"], data["schedule"] = _read_keras_schedule(data["learning_rate"])
        return data

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        # Keras' own spellings vary ("RMSprop", "rmsprop"); so do clients' ("rm_sprop").
        name = value.strip().lower().replace("_", "").replace("-", "")
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {value!r}; known: {', '.join(OPTIMIZERS)}")
        return name


def _read_keras_schedule(obj: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    kind = _KERAS_SCHEDULES.get(str(obj.get("class_name")))
    config = obj.get("config")
    if kind is None or not isinstance(config, dict):
        raise ValueError(f"unsupported learning-rate schedule {obj.get('class_name')!r}")
    if kind == "step_decay":
        values = config.get("values") or []
        boundaries = config.get("boundaries") or []
        if len(values) < 2 or not boundaries or not values[0]:
            raise ValueError("PiecewiseConstantDecay needs values and boundaries")
        # Keras' boundaries count optimizer steps, not epochs; keep the first drop as steps.
        return float(values[0]), {
            "name": "step_decay",
            "initial_lr": float(values[0]),
            "drop": float(values[1]) / float(values[0]),
            "decay_steps": int(boundaries[0]),
        }
    initial = config.get("initial_learning_rate")
    if not isinstance(initial, int | float) or initial <= 0:
        raise ValueError("the schedule needs a positive initial_learning_rate")
    schedule: dict[str, Any] = {"name": kind, "initial_lr": float(initial)}
    if "decay_steps" in config:
        schedule["decay_steps"] = int(config["decay_steps"])
    if kind == "exponential" and "decay_rate" in config:
        schedule["decay_rate"] = min(1.0, float(config["decay_rate"]))
    if kind == "cosine" and "alpha" in config:
        schedule["alpha"] = float(config["alpha"])
    return float(initial), schedule


class Loss(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["sparse_categorical_crossentropy"])
    from_logits: bool = False
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)

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


class DataInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(default=None, max_length=64)
    num_classes: int | None = Field(default=None, ge=2, le=100_000)
    num_examples: int | None = Field(default=None, ge=1)
    input_min: float | None = None
    input_max: float | None = None
    drop_examples: list[int] | None = Field(
        default=None,
        max_length=100_000,
        description="Rows of the uploaded sample (0-based) that a label fix drops from training.",
    )

    @model_validator(mode="after")
    def _ordered_range(self) -> DataInfo:
        low, high = self.input_min, self.input_max
        if low is not None and high is not None and low > high:
            raise ValueError("input_min is larger than input_max")
        return self


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
