"""Shapes, parameter counts and initializer statistics of a layer list, without TensorFlow.

Shape and parameter rules follow Keras 3 (channels_last): `describe` raises ValueError naming
the layer wherever Keras itself could not build the model (a kernel larger than its valid-padded
input, an Add of unequal shapes, an unknown input name...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from service.analysis.opaque_shapes import opaque_shape
from service.schemas.layer import MODEL_INPUT, Initializer, Layer, Regularizer

# Convolutions whose kernel slides over their input (kernel-size checks apply to them).
CONVS = frozenset({"conv1d", "conv2d", "conv3d", "separable_conv2d", "depthwise_conv2d"})
TRANSPOSED = frozenset({"conv1d_transpose", "conv2d_transpose", "conv3d_transpose"})
WEIGHTED = CONVS | TRANSPOSED | {"dense"}
POOLS = frozenset(f"{kind}_pooling{n}d" for kind in ("max", "average") for n in (1, 2, 3))
GLOBAL_POOLS = frozenset(
    f"global_{kind}_pooling{n}d" for kind in ("max", "average") for n in (1, 2, 3)
)
CROPPINGS = frozenset({"cropping1d", "cropping2d", "cropping3d"})
ACTIVATION_LAYERS = frozenset({"activation", "relu", "leaky_relu", "prelu", "softmax"})
NORMALIZERS = frozenset({"batch_normalization", "layer_normalization", "group_normalization"})
MERGES = frozenset({"add", "multiply", "concatenate"})
DROPOUTS = frozenset({"dropout", "spatial_dropout2d"})
AUGMENTATION = frozenset({"random_flip", "random_rotation", "random_translation"})
INPUT_SCALING = frozenset({"rescaling", "normalization"})
# Keras classes (layers and keras.ops calls) that hold no weights: an opaque one of these
# leaves the parameter count exact.
WEIGHTLESS_CLASSES = frozenset(
    {
        *("InputLayer", "Activation", "ReLU", "ELU", "LeakyReLU", "Softmax", "Identity"),
        *("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "Masking"),
        *("GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"),
        *("UnitNormalization", "Flatten", "Reshape", "Permute", "RepeatVector", "Rescaling"),
        *("Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding3D"),
        *("UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing", "CenterCrop"),
        *("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D"),
        *("AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D"),
        *("GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D"),
        *("GlobalAveragePooling3D", "Add", "Subtract", "Multiply", "Average", "Maximum"),
        *("Minimum", "Concatenate", "Dot", "RandomCrop", "RandomFlip", "RandomRotation"),
        *("RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness"),
        *("RandomGrayscale", "RandomHue", "RandomSaturation", "RandomSharpness"),
        *("RandomShear", "RandomColorJitter", "RandomPosterization", "RandomInvert"),
        *("RandomErasing", "RandomGaussianBlur", "RandomElasticTransform"),
        *("RandomPerspective", "AutoContrast", "Equalization", "Solarization"),
        # keras.ops calls recorded in Functional JSON
        *("Mean", "Sum", "Max", "Min", "Relu", "Relu6", "Sigmoid", "Tanh", "Silu", "Gelu"),
        *("Elu", "Selu", "HardSigmoid", "HardSilu", "Softplus", "Exp", "Log", "Sqrt"),
        *("Square", "Abs", "Negative", "Clip", "Cast", "Divide", "TrueDivide", "Power"),
        *("Transpose", "ExpandDims", "Squeeze", "GetItem", "Matmul", "Einsum"),
    }
)
CONSTANT_INITIALIZERS = frozenset({"zeros", "ones", "constant"})
# std of a unit normal truncated at +-2 std (what Keras' TruncatedNormal samples).
TRUNCATED_STD_FACTOR = 0.87962566103423978
# (scale, mode) of the variance-scaling family; the std is sqrt(scale / n) for every
# distribution because Keras corrects its truncated normal for the truncation.
VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg"),
    "glorot_normal": (1.0, "fan_avg"),
    "he_normal": (2.0, "fan_in"),
    "he_uniform": (2.0, "fan_in"),
    "lecun_normal": (1.0, "fan_in"),
    "lecun_uniform": (1.0, "fan_in"),
}
DEFAULT_KERNEL_INITIALIZER = "glorot_uniform"

Shape = tuple[int, ...]


class ShapeUnknown(ValueError):
    """The model is valid but its shapes cannot be followed (an open input size, an opaque
    layer whose output shape the Keras JSON does not record): no architecture, not an error."""


@dataclass(frozen=True)
class KernelInfo:
    """One weight tensor of a weighted layer (separable convs have two)."""

    role: str  # "kernel", "depthwise" or "pointwise"
    shape: Shape
    fan_in: int
    fan_out: int
    initializer: Initializer
    init_std: float
    init_constant: bool
    regularizer: Regularizer | None


@dataclass(frozen=True)
class LayerInfo:
    """One layer; the weight fields are None/empty for layers without a kernel."""

    name: str
    type: str
    inputs: tuple[str, ...]
    input_shape: Shape  # of the first input
    output_shape: Shape
    params: int
    weighted: bool
    activation: str | None  # effective activation of weighted/activation layers
    normalized_after: bool  # a BN/LayerNorm follows before the next weighted layer
    fan_in: int | None
    fan_out: int | None
    initializer: Initializer | None
    init_std: float | None
    init_constant: bool
    regularizer: Regularizer | None
    kernels: tuple[KernelInfo, ...]
    spatial_in: tuple[int, ...] | None  # conv/pool layers only: 1, 2 or 3 spatial dims
    spatial_out: tuple[int, ...] | None
    kernel_exceeds_input: bool  # (dilated) kernel/pool larger than its input: 'same' only
    shares: str | None = None  # a shared layer's later call: the node whose weights it uses


@dataclass(frozen=True)
class Narrowest:
    name: str
    width: int


@dataclass(frozen=True)
class Architecture:
    input_shape: Shape
    layers: tuple[LayerInfo, ...]
    total_params: int
    weighted_layers: int
    narrowest: Narrowest | None  # between the first weighted layer and the output head
    has_input_scaling: bool  # a Rescaling or Normalization layer is present
    has_normalization_layer: bool
    rescaling_scale: float | None  # of the first Rescaling layer
    rescaling_offset: float | None
    augmentation_layers: tuple[str, ...]
    output_shape: Shape
    output_units: int
    output_activation: str
    # Opaque layers that may hold weights: total_params leaves theirs out, so it is a floor.
    uncounted: tuple[str, ...] = ()

    @property
    def params_known(self) -> bool:
        return not self.uncounted

    def layer(self, name: str) -> LayerInfo:
        """The layer called `name` (KeyError if none)."""
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(name)


# ---------------------------------------------------------------- entry point


def require_sized(input_shape: Sequence[int | None]) -> None:
    """ShapeUnknown for an input shape that leaves sizes open (None)."""
    if input_shape and any(d is None for d in input_shape):
        raise ShapeUnknown(
            f"the input shape {list(input_shape)} leaves sizes open (None), so layer shapes "
            "and parameter counts that depend on them are unknown"
        )


def describe(input_shape: Sequence[int | None], layers: Sequence[Layer]) -> Architecture:
    """Shapes, parameters and initializer statistics per layer, plus model-wide totals."""
    require_sized(input_shape)
    if not input_shape or not all(isinstance(d, int) and d >= 1 for d in input_shape):
        raise ValueError(f"input_shape must be positive integers, got {list(input_shape)}")
    if not layers:
        raise ValueError("the model has no layers")
    names = _names(layers)
    inputs = _resolve_inputs(layers, names)
    layers = _owners_settings(layers, names)
    shapes: dict[str, Shape] = {MODEL_INPUT: tuple(d or 1 for d in input_shape)}
    partial: list[LayerInfo] = []
    for layer, name, sources in zip(layers, names, inputs, strict=True):
        in_shapes = [shapes[s] for s in sources]
        info = _describe_layer(layer, name, sources, in_shapes)
        if layer.shares is not None:
            info = _shared_call(info, partial[names.index(layer.shares)])
        partial.append(info)
        shapes[name] = partial[-1].output_shape
    consumers = _consumers(names, inputs)
    infos = tuple(_with_followers(i, partial, layers, consumers) for i in range(len(partial)))
    return _totals(shapes[MODEL_INPUT], infos, layers)


def _owners_settings(layers: Sequence[Layer], names: list[str]) -> list[Layer]:
    """A shared layer's later calls (`shares`) take the settings of the node they call again:
    one Keras layer has one config, whatever each call's copy says."""
    out: list[Layer] = []
    for i, layer in enumerate(layers):
        if layer.shares is None:
            out.append(layer)
            continue
        if layer.shares not in names[:i]:
            raise ValueError(
                f"layer {names[i]!r} shares the weights of {layer.shares!r}, which is not an "
                "earlier layer"
            )
        owner = out[names.index(layer.shares)]
        if owner.shares is not None:
            raise ValueError(f"layer {names[i]!r} shares {layer.shares!r}, itself a shared call")
        out.append(
            owner.model_copy(
                update={"name": names[i], "inputs": layer.inputs, "shares": layer.shares}
            )
        )
    return out


def _shared_call(info: LayerInfo, owner: LayerInfo) -> LayerInfo:
    """A later call of a shared layer: the same weights, so they must fit this call's input,
    and they are counted once (at the owner)."""
    kernels = [k.shape for k in info.kernels]
    if kernels != [k.shape for k in owner.kernels] or info.params != owner.params:
        raise ValueError(
            f"layer {info.name!r} calls the layer of {owner.name!r} again on an input of shape "
            f"{info.input_shape}, which its weights (built for {owner.input_shape}) do not fit"
        )
    return replace(info, params=0, shares=owner.name)


def _names(layers: Sequence[Layer]) -> list[str]:
    names = [layer.name or f"{layer.type}_{i}" for i, layer in enumerate(layers)]
    seen: set[str] = set()
    for name in names:
        if name in seen or name == MODEL_INPUT:
            raise ValueError(f"layer name {name!r} is used twice or is reserved")
        seen.add(name)
    return names


def _resolve_inputs(layers: Sequence[Layer], names: list[str]) -> list[tuple[str, ...]]:
    """Explicit inputs must name earlier layers; absent inputs mean the previous layer."""
    resolved: list[tuple[str, ...]] = []
    for i, layer in enumerate(layers):
        if layer.inputs is None:
            resolved.append((names[i - 1] if i else MODEL_INPUT,))
            continue
        if not layer.inputs:
            raise ValueError(f"layer {names[i]!r} has an empty inputs list")
        for source in layer.inputs:
            if source != MODEL_INPUT and source not in names[:i]:
                raise ValueError(
                    f"layer {names[i]!r} takes input from {source!r}, which is not an earlier layer"
                )
        resolved.append(tuple(layer.inputs))
    return resolved


def _consumers(names: list[str], inputs: list[tuple[str, ...]]) -> dict[str, list[int]]:
    consumers: dict[str, list[int]] = {name: [] for name in names}
    for i, sources in enumerate(inputs):
        for source in sources:
            if source != MODEL_INPUT:
                consumers[source].append(i)
    return consumers


# ---------------------------------------------------------------- one layer


def _describe_layer(
    layer: Layer, name: str, sources: tuple[str, ...], in_shapes: list[Shape]
) -> LayerInfo:
    _check_arity(layer, name, in_shapes)
    in_shape = in_shapes[0]
    out_shape = _output_shape(layer, name, in_shapes)
    kernels = _kernels(layer, name, in_shape)
    primary = kernels[0] if kernels else None
    spatial = layer.type in CONVS or layer.type in POOLS
    rank = len(in_shape) - 1
    return LayerInfo(
        name=name,
        type=layer.type,
        inputs=sources,
        input_shape=in_shape,
        output_shape=out_shape,
        params=_params(layer, name, in_shape, kernels),
        weighted=layer.type in WEIGHTED,
        activation=_own_activation(layer),
        normalized_after=False,
        fan_in=primary.fan_in if primary else None,
        fan_out=primary.fan_out if primary else None,
        initializer=primary.initializer if primary else None,
        init_std=primary.init_std if primary else None,
        init_constant=primary.init_constant if primary else False,
        regularizer=primary.regularizer if primary else None,
        kernels=kernels,
        spatial_in=in_shape[:rank] if spatial else None,
        spatial_out=out_shape[:rank] if spatial else None,
        kernel_exceeds_input=spatial and _window_exceeds(layer, in_shape),
    )


def _check_arity(layer: Layer, name: str, in_shapes: list[Shape]) -> None:
    if layer.type == "opaque":
        return  # a Keras layer or keras.ops call takes what Keras let it take
    merging = layer.type in MERGES
    if merging and len(in_shapes) < 2:
        raise ValueError(f"layer {name!r} ({layer.type}) needs at least two inputs")
    if not merging and len(in_shapes) != 1:
        raise ValueError(
            f"layer {name!r} ({layer.type}) takes exactly one input, got {len(in_shapes)}"
        )


def rank_of(kind: str) -> int:
    """Spatial dims of a conv/pool/cropping type: 1 for "…1d", 3 for "…3d", else 2."""
    return (
        1
        if kind.endswith(("1d", "1d_transpose"))
        else 3
        if kind.endswith(("3d", "3d_transpose"))
        else 2
    )


def _dims(value: int | tuple[int, ...] | None, rank: int, default: int, name: str) -> Shape:
    """A per-spatial-dim setting as `rank` ints (an int or a single value is repeated)."""
    if value is None:
        return (default,) * rank
    if isinstance(value, int):
        return (value,) * rank
    if len(value) == 1:
        return (value[0],) * rank
    if len(value) != rank:
        raise ValueError(f"layer {name!r}: {list(value)} needs {rank} values, one per spatial dim")
    return tuple(value)


def _need_rank(name: str, layer: Layer, shape: Shape, rank: int) -> None:
    if len(shape) != rank:
        raise ValueError(
            f"layer {name!r} ({layer.type}) needs a rank-{rank} input "
            f"(without batch), got shape {shape}"
        )


def _axis(name: str, axis: int | None, rank: int) -> int:
    """Keras axis (positive values count the batch dim) -> index into a batchless shape."""
    axis = -1 if axis is None else axis
    index = axis + rank if axis < 0 else axis - 1
    if not 0 <= index < rank:
        raise ValueError(f"layer {name!r}: axis {axis} is out of range for rank {rank}")
    return index


# ---------------------------------------------------------------- shapes


def _output_shape(layer: Layer, name: str, in_shapes: list[Shape]) -> Shape:
    shape = in_shapes[0]
    kind = layer.type
    if kind in CONVS or kind in POOLS:
        return _spatial_output(layer, name, shape)
    if kind in TRANSPOSED:
        return _transposed_output(layer, name, shape)
    if kind == "dense":
        return (*shape[:-1], _require(layer.units, name, "units"))
    if kind in GLOBAL_POOLS:
        rank = rank_of(kind)
        _need_rank(name, layer, shape, rank + 1)
        return (*(1,) * rank, shape[-1]) if layer.keepdims else (shape[-1],)
    if kind in CROPPINGS:
        return _cropped(layer, name, shape)
    if kind == "embedding":
        _require(layer.input_dim, name, "input_dim")
        return (*shape, _require(layer.output_dim, name, "output_dim"))
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "reshape":
        return _reshape(layer, name, shape)
    if kind == "zero_padding2d":
        return _zero_pad(layer, name, shape)
    if kind == "add":
        return _add(name, in_shapes)
    if kind == "multiply":
        return _broadcast(name, in_shapes)
    if kind == "opaque":
        return _opaque(layer, name, in_shapes)
    if kind == "concatenate":
        return _concatenate(layer, name, in_shapes)
    return shape


def _require(value: int | None, name: str, what: str) -> int:
    if value is None:
        raise ValueError(f"layer {name!r} needs {what}")
    return value


def _window(layer: Layer, name: str) -> tuple[Shape, Shape, Shape]:
    """(window, strides, dilation) of a conv or pool; pool strides default to pool_size."""
    rank = rank_of(layer.type)
    if layer.type in POOLS:
        window = _dims(layer.pool_size, rank, 2, name)
        strides = _dims(layer.strides, rank, 1, name) if layer.strides else window
        return window, strides, (1,) * rank
    if layer.kernel_size is None:
        raise ValueError(f"layer {name!r} needs kernel_size")
    window = _dims(layer.kernel_size, rank, 1, name)
    return window, _dims(layer.strides, rank, 1, name), _dims(layer.dilation_rate, rank, 1, name)


def _padding(layer: Layer, name: str) -> str:
    padding = layer.padding or "valid"
    allowed = ("valid", "same", "causal") if layer.type == "conv1d" else ("valid", "same")
    if padding not in allowed:
        raise ValueError(f"layer {name!r}: padding must be one of {allowed}, got {padding!r}")
    return str(padding)


def _by(dims: Sequence[int]) -> str:
    return "x".join(map(str, dims))


def _spatial_output(layer: Layer, name: str, shape: Shape) -> Shape:
    rank = rank_of(layer.type)
    _need_rank(name, layer, shape, rank + 1)
    window, strides, dilation = _window(layer, name)
    padding = _padding(layer, name)
    dims = []
    for n, k, s, d in zip(shape[:rank], window, strides, dilation, strict=True):
        effective = (k - 1) * d + 1
        # 'causal' (Conv1D) pads the start only, to the same length as 'same'.
        out = -(-n // s) if padding != "valid" else (n - effective) // s + 1
        if out < 1:
            what = "pool" if layer.type in POOLS else "kernel"
            raise ValueError(
                f"layer {name!r}: {what} {_by(window)} does not fit its {_by(shape[:rank])} input"
            )
        dims.append(out)
    return (*dims, _out_channels(layer, name, shape[-1]))


def _transposed_output(layer: Layer, name: str, shape: Shape) -> Shape:
    """Keras' ConvNDTranspose lengths (compute_conv_transpose_output_shape, TF padding)."""
    rank = rank_of(layer.type)
    _need_rank(name, layer, shape, rank + 1)
    window, strides, dilation = _window(layer, name)
    padding = _padding(layer, name)
    extra = None if layer.output_padding is None else _dims(layer.output_padding, rank, 0, name)
    dims = []
    for i, (n, k, s, d) in enumerate(zip(shape[:rank], window, strides, dilation, strict=True)):
        effective = (k - 1) * d + 1
        if extra is not None and extra[i] >= s:
            raise ValueError(f"layer {name!r}: output_padding must be below strides")
        if padding == "valid":
            pad = max(effective, s) - effective if extra is None else extra[i]
            dims.append((n - 1) * s + effective + pad)
        else:
            dims.append(n * s if extra is None else (n - 1) * s + effective % 2 + extra[i])
    return (*dims, _require(layer.filters, name, "filters"))


def _cropped(layer: Layer, name: str, shape: Shape) -> Shape:
    rank = rank_of(layer.type)
    _need_rank(name, layer, shape, rank + 1)
    default = (1, 1) if rank == 1 else (0, 0)  # Keras' defaults: Cropping1D trims one step
    margins: tuple[tuple[int, int], ...] = layer.cropping or (default,) * rank
    if len(margins) != rank or any(m < 0 for pair in margins for m in pair):
        raise ValueError(
            f"layer {name!r}: cropping needs {rank} non-negative (before, after) pairs"
        )
    dims = [n - a - b for n, (a, b) in zip(shape[:rank], margins, strict=True)]
    if any(d < 1 for d in dims):
        raise ValueError(
            f"layer {name!r}: cropping {[list(m) for m in margins]} leaves nothing of its "
            f"{_by(shape[:rank])} input"
        )
    return (*dims, shape[-1])


def _out_channels(layer: Layer, name: str, channels: int) -> int:
    if layer.type in CONVS and layer.type != "depthwise_conv2d":
        return _require(layer.filters, name, "filters")
    if layer.type == "depthwise_conv2d":
        return channels * (layer.depth_multiplier or 1)
    return channels


def _window_exceeds(layer: Layer, shape: Shape) -> bool:
    window, _, dilation = _window(layer, "")
    return any((k - 1) * d + 1 > n for n, k, d in zip(shape, window, dilation, strict=False))


def _reshape(layer: Layer, name: str, shape: Shape) -> Shape:
    target = list(_require_list(layer.target_shape, name))
    total = math.prod(shape)
    unknown = [i for i, d in enumerate(target) if d == -1]
    known = math.prod(d for d in target if d != -1)
    if len(unknown) > 1 or any(d < 1 and d != -1 for d in target):
        raise ValueError(f"layer {name!r}: target_shape {target} may hold one -1 at most")
    if unknown and known and total % known == 0:
        target[unknown[0]] = total // known
    if math.prod(target) != total:
        raise ValueError(
            f"layer {name!r}: cannot reshape {shape} ({total} values) to {layer.target_shape}"
        )
    return tuple(target)


def _require_list(value: list[int] | None, name: str) -> list[int]:
    if value is None:
        raise ValueError(f"layer {name!r} needs target_shape")
    return value


def _zero_pad(layer: Layer, name: str, shape: Shape) -> Shape:
    _need_rank(name, layer, shape, 3)
    padding = layer.padding if layer.padding is not None else 1
    if isinstance(padding, str):
        raise ValueError(f"layer {name!r}: zero padding must be numbers, got {padding!r}")
    if isinstance(padding, int):
        rows = cols = (padding, padding)
    elif isinstance(padding[0], int) and isinstance(padding[1], int):
        rows, cols = (padding[0], padding[0]), (padding[1], padding[1])
    else:
        rows, cols = padding[0], padding[1]  # type: ignore[assignment]
    return (shape[0] + sum(rows), shape[1] + sum(cols), shape[2])


def _add(name: str, in_shapes: list[Shape]) -> Shape:
    if any(s != in_shapes[0] for s in in_shapes):
        raise ValueError(
            f"layer {name!r} (add) needs inputs of equal shape, got "
            f"{', '.join(map(str, in_shapes))}"
        )
    return in_shapes[0]


def _broadcast(name: str, in_shapes: list[Shape]) -> Shape:
    """Keras' Multiply broadcasts like numpy (a squeeze-excite gate (1, 1, C) over (H, W, C))."""
    rank = max(len(s) for s in in_shapes)
    padded = [(1,) * (rank - len(s)) + s for s in in_shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(
                f"layer {name!r} (multiply) cannot broadcast {', '.join(map(str, in_shapes))}"
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _opaque(layer: Layer, name: str, in_shapes: list[Shape]) -> Shape:
    if layer.output_shape is not None and all(d is not None for d in layer.output_shape):
        return tuple(int(d) for d in layer.output_shape if d is not None)
    if layer.same_shape and len(in_shapes) == 1:
        return in_shapes[0]
    computed = opaque_shape(layer.keras_class or "", layer.keras_config or {}, in_shapes[0])
    if computed is not None and len(in_shapes) == 1:
        return computed
    raise ShapeUnknown(
        f"layer {name!r} ({layer.keras_class}) is not modelled and the Keras JSON does not "
        "record its output shape"
    )


def _concatenate(layer: Layer, name: str, in_shapes: list[Shape]) -> Shape:
    rank = len(in_shapes[0])
    axis = _axis(name, layer.axis, rank)
    for shape in in_shapes:
        others = [d for i, d in enumerate(shape) if i != axis]
        expected = [d for i, d in enumerate(in_shapes[0]) if i != axis]
        if len(shape) != rank or others != expected:
            raise ValueError(
                f"layer {name!r} (concatenate) cannot join shapes "
                f"{', '.join(map(str, in_shapes))} along axis {axis - rank}"
            )
    joined = sum(shape[axis] for shape in in_shapes)
    return (*in_shapes[0][:axis], joined, *in_shapes[0][axis + 1 :])


# ---------------------------------------------------------------- kernels and parameters


def _kernels(layer: Layer, name: str, in_shape: Shape) -> tuple[KernelInfo, ...]:
    kind = layer.type
    if kind == "dense":
        return (
            _kernel(
                "kernel",
                (in_shape[-1], layer.units or 1),
                layer.kernel_initializer,
                layer.kernel_regularizer,
                name,
            ),
        )
    if kind not in WEIGHTED:
        return ()
    window = _window(layer, name)[0]
    channels = in_shape[-1]
    if kind in TRANSPOSED:  # Keras' kernel: (*window, filters, input channels)
        shape = (*window, layer.filters or 1, channels)
        return (_kernel("kernel", shape, layer.kernel_initializer, layer.kernel_regularizer, name),)
    if kind in ("conv1d", "conv2d", "conv3d"):
        groups = _groups(layer, name, channels)
        return (
            _kernel(
                "kernel",
                (*window, channels // groups, layer.filters or 1),
                layer.kernel_initializer,
                layer.kernel_regularizer,
                name,
            ),
        )
    kh, kw = window
    multiplier = layer.depth_multiplier or 1
    depthwise = _kernel(
        "depthwise",
        (kh, kw, channels, multiplier),
        layer.depthwise_initializer,
        layer.depthwise_regularizer,
        name,
    )
    if kind == "depthwise_conv2d":
        return (depthwise,)
    pointwise = _kernel(
        "pointwise",
        (1, 1, channels * multiplier, layer.filters or 1),
        layer.pointwise_initializer,
        layer.pointwise_regularizer,
        name,
    )
    return (depthwise, pointwise)


def _groups(layer: Layer, name: str, channels: int) -> int:
    groups = layer.groups or 1
    if channels % groups or (layer.filters or 1) % groups:
        raise ValueError(
            f"layer {name!r}: groups={groups} must divide both the {channels} "
            f"input channels and the {layer.filters} filters"
        )
    return groups


def _kernel(
    role: str,
    shape: Shape,
    initializer: str | Initializer | None,
    regularizer: Regularizer | None,
    name: str,
) -> KernelInfo:
    init = normalize_initializer(initializer)
    fan_in, fan_out = compute_fans(shape)
    try:
        std = initializer_std(init, shape)
    except ValueError as exc:
        raise ValueError(f"layer {name!r}: {exc}") from None
    return KernelInfo(
        role=role,
        shape=shape,
        fan_in=fan_in,
        fan_out=fan_out,
        initializer=init,
        init_std=std,
        init_constant=init.name in CONSTANT_INITIALIZERS,
        regularizer=regularizer,
    )


def _params(layer: Layer, name: str, in_shape: Shape, kernels: tuple[KernelInfo, ...]) -> int:
    """Parameter count as Keras' count_params() (trainable and non-trainable weights)."""
    weights = sum(math.prod(k.shape) for k in kernels)
    if kernels and layer.use_bias is not False:
        if layer.type == "depthwise_conv2d":
            weights += in_shape[-1] * (layer.depth_multiplier or 1)
        elif layer.type in TRANSPOSED:
            weights += kernels[-1].shape[-2]  # one bias per filter
        else:
            weights += kernels[-1].shape[-1]
    if layer.type == "embedding":
        weights += (layer.input_dim or 1) * (layer.output_dim or 1)
    if layer.type in NORMALIZERS:
        channels = in_shape[_axis(name, layer.axis, len(in_shape))]
        learned = (layer.center is not False) + (layer.learn_scale is not False)
        moving = 2 if layer.type == "batch_normalization" else 0  # moving mean and variance
        weights += channels * (learned + moving)
    if layer.type == "normalization":
        weights += _normalization_params(layer, name, in_shape)
    if layer.type == "layer_scale":  # ConvNeXt: one learned scale per channel
        weights += in_shape[-1]
    if layer.type == "prelu":  # one slope per value, except along shared axes
        shared = {a - 1 for a in layer.shared_axes or []}  # Keras axes count the batch
        weights += math.prod(d for i, d in enumerate(in_shape) if i not in shared)
    return weights


def _normalization_params(layer: Layer, name: str, in_shape: Shape) -> int:
    channels = in_shape[_axis(name, layer.axis, len(in_shape))]
    for stat in (layer.mean, layer.variance):
        if isinstance(stat, list) and len(stat) not in (1, channels):
            raise ValueError(
                f"layer {name!r}: {len(stat)} mean/variance values for {channels} channels"
            )
    # Without given statistics Keras adds adapt() weights: mean, variance and a count.
    return 2 * channels + 1 if layer.mean is None else 0


# ---------------------------------------------------------------- initializers


def normalize_initializer(initializer: str | Initializer | None) -> Initializer:
    """An Initializer with Keras' default for a missing kernel initializer."""
    if initializer is None:
        return Initializer(name=DEFAULT_KERNEL_INITIALIZER)
    if isinstance(initializer, str):
        return Initializer(name=initializer)
    return initializer


def compute_fans(shape: Shape) -> tuple[int, int]:
    """Keras' fan_in/fan_out: a conv kernel's receptive field times in/out channels."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def initializer_std(init: Initializer, shape: Shape) -> float:
    """The standard deviation of the weights the initializer draws for `shape`."""
    name = init.name
    if name in CONSTANT_INITIALIZERS:
        return 0.0
    if name == "random_normal":
        return _or(init.stddev, 0.05)
    if name == "truncated_normal":
        return _or(init.stddev, 0.05) * TRUNCATED_STD_FACTOR
    if name == "random_uniform":
        return (_or(init.maxval, 0.05) - _or(init.minval, -0.05)) / math.sqrt(12)
    if name in VARIANCE_SCALING or name == "variance_scaling":
        return _variance_scaling_std(init, shape)
    if name in ("orthogonal", "identity"):
        return _matrix_std(init, shape)
    raise ValueError(f"initializer {name!r} is not supported")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _variance_scaling_std(init: Initializer, shape: Shape) -> float:
    scale, mode = VARIANCE_SCALING.get(init.name, (1.0, "fan_in"))
    if init.name == "variance_scaling":
        scale, mode = _or(init.scale, 1.0), init.mode or "fan_in"
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / max(1.0, n))


def _matrix_std(init: Initializer, shape: Shape) -> float:
    gain = _or(init.gain, 1.0)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    if init.name == "orthogonal":
        # Orthonormal rows/columns: mean square entry 1/max(rows, cols).
        return gain / math.sqrt(max(rows, cols))
    if len(shape) != 2:
        raise ValueError("the identity initializer needs a 2D (Dense) kernel")
    ones = min(rows, cols) / (rows * cols)
    return gain * math.sqrt(ones * (1 - ones))


# ---------------------------------------------------------------- activations and followers


def _own_activation(layer: Layer) -> str | None:
    """The activation a layer itself applies; None for layers that apply none."""
    kind = layer.type
    if kind in WEIGHTED or kind == "activation":
        return layer.activation or "linear"
    if kind == "relu":
        if layer.negative_slope:
            return "leaky_relu"
        return "relu6" if layer.max_value == 6 else "relu"
    if kind in ("leaky_relu", "prelu"):
        return "leaky_relu"
    if kind == "softmax":
        return "softmax"
    return None


def _with_followers(
    i: int, infos: list[LayerInfo], layers: Sequence[Layer], consumers: dict[str, list[int]]
) -> LayerInfo:
    """Fill a weighted layer's effective activation and normalized_after from its successors."""
    info = infos[i]
    if not info.weighted:
        return info
    activation = info.activation or "linear"
    normalized = False
    searching_activation = activation == "linear"
    j = i
    while len(consumers[infos[j].name]) == 1:
        j = consumers[infos[j].name][0]
        kind = layers[j].type
        if kind in WEIGHTED:
            break
        normalized = normalized or kind in NORMALIZERS
        if searching_activation and kind in ACTIVATION_LAYERS:
            activation = infos[j].activation or "linear"
            searching_activation = activation == "linear"
        elif kind not in NORMALIZERS and kind not in DROPOUTS:
            searching_activation = False  # activations only count through BN/Dropout
    return replace(info, activation=activation, normalized_after=normalized)


# ---------------------------------------------------------------- totals


def _totals(
    input_shape: Shape, infos: tuple[LayerInfo, ...], layers: Sequence[Layer]
) -> Architecture:
    scale, offset = _input_rescaling(infos, layers)
    types = {info.type for info in infos}
    return Architecture(
        input_shape=input_shape,
        layers=infos,
        total_params=sum(info.params for info in infos),
        weighted_layers=sum(info.weighted for info in infos),
        narrowest=_narrowest(infos),
        has_input_scaling=bool(types & INPUT_SCALING),
        has_normalization_layer="normalization" in types,
        rescaling_scale=scale,
        rescaling_offset=offset,
        augmentation_layers=tuple(i.name for i in infos if i.type in AUGMENTATION),
        output_shape=infos[-1].output_shape,
        output_units=infos[-1].output_shape[-1],
        output_activation=_output_activation(infos),
        uncounted=tuple(
            info.name
            for info, layer in zip(infos, layers, strict=True)
            if layer.type == "opaque"
            and layer.keras_class not in WEIGHTLESS_CLASSES
            and layer.shares is None
        ),
    )


def _input_rescaling(
    infos: tuple[LayerInfo, ...], layers: Sequence[Layer]
) -> tuple[float | None, float | None]:
    """(scale, offset) the inputs get before the first weighted layer, or (None, None).

    The first Rescaling before any weighted layer, composed with the Rescalings that directly
    follow it (`inputs / 255.0 - 0.5` in Functional JSON is two of them): a Rescaling deeper
    in the network (MobileNetV3's x + 3) scales activations, not inputs.
    """
    scale = offset = None
    chain_end = ""
    for info, layer in zip(infos, layers, strict=True):
        if info.weighted:
            break
        if layer.type != "rescaling":
            continue
        if scale is None:
            scale, offset = 1.0, 0.0
        elif info.inputs != (chain_end,):
            break
        s, o = _or(layer.scale, 1.0), _or(layer.offset, 0.0)
        scale, offset = scale * s, (offset or 0.0) * s + o
        chain_end = info.name
    return scale, offset


def _narrowest(infos: tuple[LayerInfo, ...]) -> Narrowest | None:
    """Fewest channels/units after a weighted layer, up to (not into) the output head.

    Layers fed only by the raw input carry its channels (1 or 3), and the last weighted
    layer's width is the number of classes, so neither says anything about a bottleneck.
    """
    weighted = [i for i, info in enumerate(infos) if info.weighted]
    if len(weighted) < 2:
        return None
    past_weighted: set[str] = set()
    body = []
    for info in infos[: weighted[-1]]:
        if info.weighted or any(source in past_weighted for source in info.inputs):
            past_weighted.add(info.name)
            body.append(info)
    best = min(body, key=lambda info: info.output_shape[-1])
    return Narrowest(name=best.name, width=best.output_shape[-1])


def _output_activation(infos: tuple[LayerInfo, ...]) -> str:
    """Activation of the model's output, looking back through Dropout/BN/activation layers."""
    by_name = {info.name: info for info in infos}
    info: LayerInfo | None = infos[-1]
    while info is not None:
        if info.weighted:
            return info.activation or "linear"
        own = info.activation
        if own is not None and own != "linear":
            return own
        if info.type not in ACTIVATION_LAYERS | DROPOUTS | NORMALIZERS:
            return "linear"
        info = by_name.get(info.inputs[0])
    return "linear"
