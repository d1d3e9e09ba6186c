"""The model part of a run: a validated layer list, or Keras JSON translated into one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
    model_validator,
)

# Validation/serialization context of a request as stored at POST: Keras JSON together with its
# translation, so that what reads it back (the probe worker) never translates it again.
TRANSLATED = {"translated": True}

LayerType = Literal[
    "conv2d",
    "separable_conv2d",
    "depthwise_conv2d",
    "dense",
    "max_pooling2d",
    "average_pooling2d",
    "global_average_pooling2d",
    "global_max_pooling2d",
    "flatten",
    "dropout",
    "spatial_dropout2d",
    "batch_normalization",
    "layer_normalization",
    "activation",
    "relu",
    "leaky_relu",
    "softmax",
    "rescaling",
    "normalization",
    "reshape",
    "zero_padding2d",
    "add",
    "concatenate",
    "random_flip",
    "random_rotation",
    "random_translation",
]


class Initializer(BaseModel):
    """A weight initializer by Keras name (snake_case) and its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["he_normal", "random_normal"])
    mean: float | None = None
    stddev: float | None = Field(default=None, ge=0)
    minval: float | None = None
    maxval: float | None = None
    value: float | None = None
    scale: float | None = Field(default=None, ge=0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] | None = None
    distribution: Literal["truncated_normal", "untruncated_normal", "normal", "uniform"] | None = (
        None
    )
    gain: float | None = None


class Regularizer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    l1: float = Field(default=0.0, ge=0)
    l2: float = Field(default=0.0, ge=0)


IntOrPair = int | tuple[int, int]


class Layer(BaseModel):
    """One layer. `inputs` names earlier layers; absent means "the previous layer"."""

    model_config = ConfigDict(extra="forbid")

    type: LayerType
    name: str | None = Field(default=None, max_length=200)
    inputs: list[str] | None = Field(default=None, max_length=16)
    filters: int | None = Field(default=None, ge=1, le=1_000_000)
    units: int | None = Field(default=None, ge=1, le=10_000_000)
    kernel_size: IntOrPair | None = None
    strides: IntOrPair | None = None
    pool_size: IntOrPair | None = None
    padding: (
        Literal["valid", "same"] | IntOrPair | tuple[tuple[int, int], tuple[int, int]] | None
    ) = None
    depth_multiplier: int | None = Field(default=None, ge=1, le=1024)
    activation: str | None = Field(default=None, max_length=64)
    use_bias: bool | None = None
    kernel_initializer: str | Initializer | None = None
    depthwise_initializer: str | Initializer | None = None
    pointwise_initializer: str | Initializer | None = None
    kernel_regularizer: Regularizer | None = None
    depthwise_regularizer: Regularizer | None = None
    pointwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    rate: float | None = Field(default=None, ge=0, lt=1)
    scale: float | None = None
    offset: float | None = None
    mean: float | list[float] | None = None
    variance: float | list[float] | None = None
    target_shape: list[int] | None = Field(default=None, max_length=8)
    axis: int | None = None
    negative_slope: float | None = None
    factor: float | tuple[float, float] | None = None
    height_factor: float | tuple[float, float] | None = None
    width_factor: float | tuple[float, float] | None = None
    mode: str | None = Field(default=None, max_length=64)
    # Added for Keras configs whose shapes/params depend on them (all default to Keras defaults).
    dilation_rate: IntOrPair | None = None
    groups: int | None = Field(default=None, ge=1, le=100_000)
    keepdims: bool | None = None
    max_value: float | None = None
    center: bool | None = Field(default=None, description="BatchNorm/LayerNorm `center` (beta)")
    learn_scale: bool | None = Field(
        default=None,
        description="BatchNorm/LayerNorm `scale` (gamma); renamed as `scale` is Rescaling's factor",
    )


class ModelSpec(BaseModel):
    """Either `keras_json` (Keras 3 `model.to_json()`) or `input_shape` + `layers`."""

    model_config = ConfigDict(extra="forbid")

    keras_json: str | dict[str, Any] | None = Field(
        default=None,
        description="Keras 3 `model.to_json()`, as a string or parsed. Read as plain JSON "
        "against an allowlist of layer classes; never deserialized by Keras.",
    )
    input_shape: list[Annotated[int, Field(ge=1, le=100_000)]] | None = Field(
        default=None, min_length=1, max_length=4
    )
    layers: list[Layer] | None = Field(default=None, min_length=1, max_length=500)

    @model_serializer(mode="wrap")
    def _as_sent(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # The layer list translated from Keras JSON is derived data: dump what the client sent,
        # unless the dump is the stored request (context TRANSLATED), which keeps both.
        data: dict[str, Any] = handler(self)
        if self.keras_json is not None and not _translated(info.context):
            data.pop("layers", None)
            data.pop("input_shape", None)
        return data

    @model_validator(mode="after")
    def _translate(self, info: ValidationInfo) -> ModelSpec:
        from service.analysis.keras_json import translate

        if self.keras_json is not None:
            if self.layers is not None and _translated(info.context):
                return self  # stored at POST with its translation: translated once
            if self.layers is not None:
                raise ValueError("give either keras_json or layers, not both")
            self.input_shape, self.layers = translate(self.keras_json)
        elif self.layers is None:
            raise ValueError("give keras_json, or input_shape and layers")
        return self


def _translated(context: Any) -> bool:
    return isinstance(context, dict) and context.get("translated") is True
