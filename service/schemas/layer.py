"""One layer of a model as the contract states it: type, settings, initializers, regularizers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The name by which `Layer.inputs` refers to the model's input (no layer may use it).
MODEL_INPUT = "input"

# Built-in Keras activations by name: what the Keras JSON reader accepts and the worker builds.
ACTIVATIONS = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "glu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    }
)

LayerType = Literal[
    "conv1d",
    "conv2d",
    "conv3d",
    "conv1d_transpose",
    "conv2d_transpose",
    "conv3d_transpose",
    "separable_conv2d",
    "depthwise_conv2d",
    "dense",
    "max_pooling1d",
    "max_pooling2d",
    "max_pooling3d",
    "average_pooling1d",
    "average_pooling2d",
    "average_pooling3d",
    "global_average_pooling1d",
    "global_average_pooling2d",
    "global_average_pooling3d",
    "global_max_pooling1d",
    "global_max_pooling2d",
    "global_max_pooling3d",
    "cropping1d",
    "cropping2d",
    "cropping3d",
    "embedding",
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
    "multiply",
    "concatenate",
    "group_normalization",
    "prelu",
    "layer_scale",
    "random_flip",
    "random_rotation",
    "random_translation",
    "opaque",
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
    orthogonal: float = Field(
        default=0.0, ge=0, description="Keras OrthogonalRegularizer factor (not weighed yet)."
    )
    mode: Literal["rows", "columns"] | None = Field(
        default=None, description="OrthogonalRegularizer mode (Keras' default: rows)."
    )


IntOrPair = int | tuple[int, int]
Size = Annotated[int, Field(ge=1, le=10_000)]  # a window, stride or dilation along one dim
Extra = Annotated[int, Field(ge=0, le=100_000)]  # padding or cropping along one dim
# A convolution or pooling window per spatial dim: 1 (Conv1D), 2 (Conv2D) or 3 (Conv3D) ints.
Window = Size | tuple[Size] | tuple[Size, Size] | tuple[Size, Size, Size]
Margins = tuple[Extra, Extra]  # (before, after) of one spatial dim
# A shape-related Keras setting kept on an opaque node: a number, a word or nested int lists.
ShapeArg = int | float | str | bool | list[int | list[int] | None] | None


class Layer(BaseModel):
    """One layer. `inputs` names earlier layers; absent means "the previous layer"."""

    model_config = ConfigDict(extra="forbid")

    type: LayerType
    name: str | None = Field(default=None, max_length=200)
    inputs: list[str] | None = Field(default=None, max_length=16)
    filters: int | None = Field(default=None, ge=1, le=1_000_000)
    units: int | None = Field(default=None, ge=1, le=10_000_000)
    kernel_size: Window | None = None
    strides: Window | None = None
    pool_size: Window | None = None
    padding: (
        Literal["valid", "same", "causal"]
        | IntOrPair
        | tuple[tuple[int, int], tuple[int, int]]
        | None
    ) = Field(default=None, description="'causal' is Conv1D's; numbers are ZeroPadding2D's.")
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
    dilation_rate: Window | None = None
    output_padding: (
        Extra | tuple[Extra] | tuple[Extra, Extra] | tuple[Extra, Extra, Extra] | None
    ) = Field(default=None, description="Transposed convolutions: extra rows/columns on one side.")
    cropping: tuple[Margins] | tuple[Margins, Margins] | tuple[Margins, Margins, Margins] | None = (
        Field(default=None, description="Cropping1D/2D/3D: (before, after) per spatial dim.")
    )
    input_dim: int | None = Field(default=None, ge=1, le=100_000_000, description="Embedding")
    output_dim: int | None = Field(default=None, ge=1, le=1_000_000, description="Embedding")
    embeddings_initializer: str | Initializer | None = None
    embeddings_regularizer: Regularizer | None = None
    mask_zero: bool | None = Field(default=None, description="Embedding: index 0 is padding.")
    groups: int | None = Field(default=None, ge=1, le=100_000)
    keepdims: bool | None = None
    max_value: float | None = None
    threshold: float | None = Field(default=None, description="ReLU: values below it are cut.")
    init_value: float | None = Field(
        default=None, description="LayerScale (ConvNeXt): the per-channel scale's initial value."
    )
    shared_axes: list[int] | None = Field(
        default=None, max_length=4, description="PReLU: axes sharing one slope."
    )
    center: bool | None = Field(default=None, description="BatchNorm/LayerNorm `center` (beta)")
    learn_scale: bool | None = Field(
        default=None,
        description="BatchNorm/LayerNorm `scale` (gamma); renamed as `scale` is Rescaling's factor",
    )
    shares: str | None = Field(
        default=None,
        max_length=200,
        description="A shared layer's later call: the name of the node whose layer (and "
        "weights) it calls again. Its settings are that node's; its parameters count once.",
    )
    # An "opaque" node: a Keras layer (or keras.ops call) kept in the graph but not modelled.
    keras_class: str | None = Field(default=None, max_length=100)
    opaque_reason: str | None = Field(default=None, max_length=300)
    output_shape: list[Annotated[int, Field(ge=1)] | None] | None = Field(
        default=None, max_length=8, description="Opaque node: its output shape, when recorded."
    )
    same_shape: bool | None = Field(
        default=None, description="Opaque node: its output has its input's shape."
    )
    keras_config: dict[str, ShapeArg] | None = Field(
        default=None,
        max_length=32,
        description="Opaque node: the shape-related settings of its Keras config.",
    )
