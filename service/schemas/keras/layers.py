"""Per-class readers: one Keras layer config -> one public `Layer`, every error naming it."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from service.schemas.layer import ACTIVATIONS, Initializer, Layer, LayerType, Regularizer

MAX_UNITS = 1_000_000
MAX_KERNEL = 10_000
MAX_DIM = 100_000

LAYER_TYPES: dict[str, LayerType] = {
    "Conv1D": "conv1d",
    "Conv2D": "conv2d",
    "Conv3D": "conv3d",
    "Conv1DTranspose": "conv1d_transpose",
    "Conv2DTranspose": "conv2d_transpose",
    "Conv3DTranspose": "conv3d_transpose",
    "SeparableConv2D": "separable_conv2d",
    "DepthwiseConv2D": "depthwise_conv2d",
    "Dense": "dense",
    "MaxPooling1D": "max_pooling1d",
    "MaxPooling2D": "max_pooling2d",
    "MaxPooling3D": "max_pooling3d",
    "AveragePooling1D": "average_pooling1d",
    "AveragePooling2D": "average_pooling2d",
    "AveragePooling3D": "average_pooling3d",
    "GlobalAveragePooling1D": "global_average_pooling1d",
    "GlobalAveragePooling2D": "global_average_pooling2d",
    "GlobalAveragePooling3D": "global_average_pooling3d",
    "GlobalMaxPooling1D": "global_max_pooling1d",
    "GlobalMaxPooling2D": "global_max_pooling2d",
    "GlobalMaxPooling3D": "global_max_pooling3d",
    "Cropping1D": "cropping1d",
    "Cropping2D": "cropping2d",
    "Cropping3D": "cropping3d",
    "Embedding": "embedding",
    "Flatten": "flatten",
    "Dropout": "dropout",
    "SpatialDropout2D": "spatial_dropout2d",
    "BatchNormalization": "batch_normalization",
    "LayerNormalization": "layer_normalization",
    "Activation": "activation",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "Softmax": "softmax",
    "Rescaling": "rescaling",
    "Normalization": "normalization",
    "Reshape": "reshape",
    "ZeroPadding2D": "zero_padding2d",
    "Add": "add",
    "Multiply": "multiply",
    "GroupNormalization": "group_normalization",
    "ELU": "activation",
    "PReLU": "prelu",
    "LayerScale": "layer_scale",
    "Concatenate": "concatenate",
    "RandomFlip": "random_flip",
    "RandomRotation": "random_rotation",
    "RandomTranslation": "random_translation",
}

INITIALIZERS: dict[str, str] = {
    "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform",
    "TruncatedNormal": "truncated_normal",
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "LecunNormal": "lecun_normal",
    "LecunUniform": "lecun_uniform",
    "Zeros": "zeros",
    "Ones": "ones",
    "Constant": "constant",
    "VarianceScaling": "variance_scaling",
    "Orthogonal": "orthogonal",
    "Identity": "identity",
}
# Keras also accepts these string aliases for the same classes.
_INIT_ALIASES = {
    "zero": "zeros",
    "one": "ones",
    "normal": "random_normal",
    "uniform": "random_uniform",
}
_INIT_ARGS = (
    "mean",
    "stddev",
    "minval",
    "maxval",
    "value",
    "scale",
    "mode",
    "distribution",
    "gain",
)

_SNAKE_RE = re.compile(r"(?<!^)(?=[A-Z])")
# Keras classes (layers and keras.ops calls) whose output has their (single) input's shape:
# an opaque node of one of these still lets shapes flow past it.
SAME_SHAPE = frozenset(
    {
        *("ReLU", "PReLU", "ELU", "LeakyReLU", "Softmax", "Activation", "LayerScale"),
        *("GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"),
        *("SpatialDropout1D", "SpatialDropout3D", "UnitNormalization", "Identity", "Masking"),
        *("RandomZoom", "RandomContrast", "RandomBrightness", "RandomFlip", "RandomRotation"),
        *("RandomTranslation", "RandomGrayscale", "RandomHue", "RandomSaturation"),
        *("RandomSharpness", "RandomShear", "RandomColorJitter", "RandomPosterization"),
        *("RandomInvert", "RandomErasing", "RandomGaussianBlur", "RandomElasticTransform"),
        *("RandomPerspective", "AutoContrast", "Equalization", "Solarization", "Rescaling"),
        *("Normalization", "BatchNormalization", "LayerNormalization", "GroupNormalization"),
        *("Relu", "Relu6", "Sigmoid", "Tanh", "Silu", "Gelu", "Elu", "Selu", "HardSigmoid"),
        *("HardSilu", "LeakyRelu", "Softplus", "Exp", "Log", "Sqrt", "Square", "Abs"),
        *("Negative", "Clip", "Cast", "Add", "Subtract", "Multiply", "Divide", "TrueDivide"),
        *("Power", "Maximum", "Minimum"),
    }
)


class Unmodelled(ValueError):
    """A valid Keras setting the analysis does not model: the layer is kept as an opaque node."""


def read_layer(
    name: str,
    cls: str,
    config: dict[str, Any],
    inputs: list[str],
    recorded_shape: list[int | None] | None = None,
    opaque_reason: str | None = None,
) -> Layer:
    """One layer entry -> Layer; `opaque_reason` (or an unmodelled setting) keeps it opaque."""
    if opaque_reason is None:
        fields: dict[str, Any] = {"type": LAYER_TYPES[cls], "name": name, "inputs": inputs}
        reader = _Reader(name, cls, config)
        try:
            fields.update(_READERS.get(cls, _no_fields)(reader))
        except Unmodelled as exc:
            opaque_reason = str(exc)
        else:
            return _validated({k: v for k, v in fields.items() if v is not None}, name, cls)
    return _validated(
        {
            "type": "opaque",
            "name": name,
            "inputs": inputs,
            "keras_class": cls,
            "opaque_reason": opaque_reason[:300],
            "output_shape": recorded_shape,
            "same_shape": cls in SAME_SHAPE or None,
            "keras_config": _shape_args(config),
        },
        name,
        cls,
    )


# Config keys that decide an opaque layer's output shape (see analysis/opaque_shapes.py).
SHAPE_KEYS = (
    "filters", "kernel_size", "strides", "padding", "dilation_rate", "data_format",
    "output_padding", "pool_size", "keepdims", "cropping", "height", "width", "size",
    "output_dim", "depth_multiplier",
)  # fmt: skip


def _shape_args(config: dict[str, Any]) -> dict[str, Any] | None:
    """The shape-deciding settings, when each is a plain value Keras would write."""
    kept = {k: config[k] for k in SHAPE_KEYS if k in config and _plain_arg(config[k])}
    return kept or None


def _plain_arg(value: Any) -> bool:
    if value is None or (isinstance(value, bool | str) and len(str(value)) <= 32):
        return True
    if is_int(value) or is_number(value):
        return True
    if isinstance(value, list) and len(value) <= 4:
        return all(
            v is None or is_int(v) or (isinstance(v, list) and len(v) <= 4 and all(map(is_int, v)))
            for v in value
        )
    return False


def _validated(fields: dict[str, Any], name: str, cls: str) -> Layer:
    try:
        return Layer(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"layer {name!r} ({cls}) has invalid settings: {problems}") from None


class _Reader:
    """Typed access to one layer's config; every error names the layer."""

    def __init__(self, name: str, cls: str, config: dict[str, Any]) -> None:
        self.name, self.cls, self.config = name, cls, config
        # Spatial dims of a ConvND / PoolingND / CroppingND class (its name ends in "ND").
        self.rank = next((int(c) for c in ("1", "3") if f"{c}D" in cls), 2)

    def fail(self, message: str) -> ValueError:
        return ValueError(f"layer {self.name!r} ({self.cls}): {message}")

    def integer(self, key: str, hi: int) -> int | None:
        value = self.config.get(key)
        if value is None:
            return None
        if not is_int(value) or not 1 <= value <= hi:
            raise self.fail(f"{key} must be an integer between 1 and {hi}, got {value!r}")
        return int(value)

    def window(self, key: str, low: int = 1) -> tuple[int, ...] | None:
        """A per-spatial-dim setting (kernel_size, strides...): one int per dim of the class."""
        value = self.config.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value] * self.rank
        if len(items) == 1:
            items = items * self.rank
        if len(items) != self.rank or not all(is_int(v) and low <= v <= MAX_KERNEL for v in items):
            raise self.fail(
                f"{key} must be one or {self.rank} integers between {low} and {MAX_KERNEL}, "
                f"got {value!r}"
            )
        return tuple(int(v) for v in items)

    def margins(self, key: str) -> tuple[tuple[int, int], ...] | None:
        """Cropping: an int, one int per dim, or a (before, after) pair per dim."""
        value = self.config.get(key)
        if value is None:
            return None
        if is_int(value):
            value = [value] * (2 if self.rank == 1 else self.rank)
        if self.rank == 1 and isinstance(value, list) and len(value) == 2:
            value = [value]  # Cropping1D's (before, after)
        pairs = (
            [v if isinstance(v, list) else [v, v] for v in value]
            if isinstance(value, list) and len(value) == self.rank
            else None
        )
        if pairs is None or not all(
            len(p) == 2 and all(is_int(m) and 0 <= m <= MAX_DIM for m in p) for p in pairs
        ):
            raise self.fail(f"{key} must be {self.rank} (before, after) pairs, got {value!r}")
        return tuple((int(a), int(b)) for a, b in pairs)

    def number(self, key: str) -> float | None:
        value = self.config.get(key)
        if value is None:
            return None
        if not is_number(value):
            raise self.fail(f"{key} must be a number, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.config.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def padding(self) -> str | None:
        value = self.config.get("padding")
        causal = value == "causal" and self.cls == "Conv1D"
        if value is not None and value not in ("valid", "same") and not causal:
            raise Unmodelled(f"padding {value!r}")
        return value

    def axis(self) -> int | None:
        value = self.config.get("axis")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is not None and not is_int(value):
            raise Unmodelled(f"axis {value!r} (only a single integer axis is modelled)")
        return value

    def factor(self, key: str) -> float | tuple[float, float] | None:
        value = self.config.get(key)
        if isinstance(value, list) and len(value) == 2 and all(map(is_number, value)):
            return (float(value[0]), float(value[1]))
        if value is None or is_number(value):
            return None if value is None else float(value)
        raise self.fail(f"{key} must be a number or a pair of numbers, got {value!r}")

    def floats(self, key: str) -> float | list[float] | None:
        value = self.config.get(key)
        if isinstance(value, list) and all(map(is_number, value)) and len(value) <= MAX_UNITS:
            return [float(v) for v in value]
        if value is None or is_number(value):
            return None if value is None else float(value)
        raise self.fail(f"{key} must be a number or a flat list of numbers")

    def activation(self, key: str = "activation") -> str | None:
        return _activation(self.config.get(key), self)

    def initializer(self, key: str) -> Initializer | None:
        return _initializer(self.config.get(key), self, key)

    def regularizer(self, key: str) -> Regularizer | None:
        return _regularizer(self.config.get(key), self, key)


def _no_fields(r: _Reader) -> dict[str, Any]:
    return {}


def _conv_common(r: _Reader) -> dict[str, Any]:
    return {
        "kernel_size": r.window("kernel_size"),
        "strides": r.window("strides"),
        "padding": r.padding(),
        "dilation_rate": r.window("dilation_rate"),
        "activation": r.activation(),
        "use_bias": r.flag("use_bias"),
        "bias_regularizer": r.regularizer("bias_regularizer"),
    }


def _conv2d(r: _Reader) -> dict[str, Any]:
    return {
        **_conv_common(r),
        "filters": r.integer("filters", MAX_UNITS),
        "groups": r.integer("groups", MAX_UNITS),
        "kernel_initializer": r.initializer("kernel_initializer"),
        "kernel_regularizer": r.regularizer("kernel_regularizer"),
    }


def _conv_transpose(r: _Reader) -> dict[str, Any]:
    return {
        **_conv_common(r),
        "filters": r.integer("filters", MAX_UNITS),
        "output_padding": r.window("output_padding", low=0),
        "kernel_initializer": r.initializer("kernel_initializer"),
        "kernel_regularizer": r.regularizer("kernel_regularizer"),
    }


def _embedding(r: _Reader) -> dict[str, Any]:
    if r.config.get("quantization_config") is not None or r.config.get("lora_rank"):
        raise Unmodelled("a quantized or LoRA Embedding")
    return {
        "input_dim": r.integer("input_dim", 100_000_000),
        "output_dim": r.integer("output_dim", MAX_UNITS),
        "embeddings_initializer": r.initializer("embeddings_initializer"),
        "embeddings_regularizer": r.regularizer("embeddings_regularizer"),
        "mask_zero": r.flag("mask_zero"),
    }


def _cropping(r: _Reader) -> dict[str, Any]:
    return {"cropping": r.margins("cropping")}


def _global_pool(r: _Reader) -> dict[str, Any]:
    return {"keepdims": r.flag("keepdims")}


def _depthwise(r: _Reader) -> dict[str, Any]:
    return {
        **_conv_common(r),
        "depth_multiplier": r.integer("depth_multiplier", 1024),
        "depthwise_initializer": r.initializer("depthwise_initializer"),
        "depthwise_regularizer": r.regularizer("depthwise_regularizer"),
    }


def _separable(r: _Reader) -> dict[str, Any]:
    return {
        **_depthwise(r),
        "filters": r.integer("filters", MAX_UNITS),
        "pointwise_initializer": r.initializer("pointwise_initializer"),
        "pointwise_regularizer": r.regularizer("pointwise_regularizer"),
    }


def _dense(r: _Reader) -> dict[str, Any]:
    return {
        "units": r.integer("units", MAX_UNITS),
        "activation": r.activation(),
        "use_bias": r.flag("use_bias"),
        "kernel_initializer": r.initializer("kernel_initializer"),
        "kernel_regularizer": r.regularizer("kernel_regularizer"),
        "bias_regularizer": r.regularizer("bias_regularizer"),
    }


def _pool(r: _Reader) -> dict[str, Any]:
    return {
        "pool_size": r.window("pool_size"),
        "strides": r.window("strides"),
        "padding": r.padding(),
    }


def _norm(r: _Reader) -> dict[str, Any]:
    return {"axis": r.axis(), "center": r.flag("center"), "learn_scale": r.flag("scale")}


def _relu(r: _Reader) -> dict[str, Any]:
    return {
        "negative_slope": r.number("negative_slope"),
        "max_value": r.number("max_value"),
        "threshold": r.number("threshold") or None,
    }


def _prelu(r: _Reader) -> dict[str, Any]:
    axes = r.config.get("shared_axes")
    if isinstance(axes, int) and not isinstance(axes, bool):
        axes = [axes]
    if axes is not None and not (isinstance(axes, list) and all(is_int(a) for a in axes)):
        raise r.fail(f"shared_axes must be a list of integers, got {axes!r}")
    if r.config.get("alpha_regularizer") is not None:
        raise Unmodelled("PReLU with an alpha_regularizer")
    return {"shared_axes": axes}


def _elu(r: _Reader) -> dict[str, Any]:
    if r.number("alpha") not in (None, 1.0):
        raise Unmodelled("ELU with alpha other than 1")
    return {"activation": "elu"}


def _leaky(r: _Reader) -> dict[str, Any]:
    slope = r.number("negative_slope")
    return {"negative_slope": slope if slope is not None else r.number("alpha")}


def _rescaling(r: _Reader) -> dict[str, Any]:
    return {"scale": r.number("scale"), "offset": r.number("offset")}


def _normalization(r: _Reader) -> dict[str, Any]:
    if r.flag("invert"):
        raise Unmodelled("Normalization with invert=True")
    return {"axis": r.axis(), "mean": r.floats("mean"), "variance": r.floats("variance")}


def _reshape(r: _Reader) -> dict[str, Any]:
    target = r.config.get("target_shape")
    if not isinstance(target, list) or not all(
        is_int(v) and (v == -1 or 1 <= v <= MAX_DIM) for v in target
    ):
        raise r.fail(f"target_shape must be a list of positive integers or -1, got {target!r}")
    return {"target_shape": target}


def _zero_padding(r: _Reader) -> dict[str, Any]:
    value = r.config.get("padding", 1)
    if is_int(value):
        value = [[value, value], [value, value]]
    elif isinstance(value, list) and len(value) == 2 and all(map(is_int, value)):
        value = [[value[0], value[0]], [value[1], value[1]]]
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(is_int(v) and 0 <= v <= MAX_KERNEL for v in p)
            for p in value
        )
    )
    if not ok:
        raise r.fail(f"padding must be an int, a pair or a pair of pairs, got {value!r}")
    return {"padding": ((value[0][0], value[0][1]), (value[1][0], value[1][1]))}


def _dropout(r: _Reader) -> dict[str, Any]:
    return {"rate": r.number("rate")}


_READERS = {
    "Conv1D": _conv2d,
    "Conv2D": _conv2d,
    "Conv3D": _conv2d,
    "Conv1DTranspose": _conv_transpose,
    "Conv2DTranspose": _conv_transpose,
    "Conv3DTranspose": _conv_transpose,
    "SeparableConv2D": _separable,
    "DepthwiseConv2D": _depthwise,
    "Dense": _dense,
    **{f"{kind}Pooling{n}D": _pool for kind in ("Max", "Average") for n in (1, 2, 3)},
    **{f"Global{kind}Pooling{n}D": _global_pool for kind in ("Max", "Average") for n in (1, 2, 3)},
    **{f"Cropping{n}D": _cropping for n in (1, 2, 3)},
    "Embedding": _embedding,
    "Dropout": _dropout,
    "SpatialDropout2D": _dropout,
    "BatchNormalization": _norm,
    "LayerNormalization": _norm,
    "Activation": lambda r: {"activation": r.activation() or "linear"},
    "ReLU": _relu,
    "LeakyReLU": _leaky,
    "Softmax": lambda r: {"axis": r.axis()},
    "Rescaling": _rescaling,
    "Normalization": _normalization,
    "Reshape": _reshape,
    "ZeroPadding2D": _zero_padding,
    "ELU": _elu,
    "PReLU": _prelu,
    "LayerScale": lambda r: {"init_value": r.number("init_values")},
    "GroupNormalization": lambda r: {**_norm(r), "groups": r.integer("groups", 100_000)},
    "Concatenate": lambda r: {"axis": r.axis()},
    "RandomFlip": lambda r: {"mode": r.config.get("mode")},
    "RandomRotation": lambda r: {"factor": r.factor("factor")},
    "RandomTranslation": lambda r: {
        "height_factor": r.factor("height_factor"),
        "width_factor": r.factor("width_factor"),
    },
}


# ---------------------------------------------------------------- serialized objects


def _activation(value: Any, r: _Reader) -> str | None:
    """Built-in activation name from a string or a serialized function dict."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")  # {"module": "keras.activations", "config": "relu", ...}
    if isinstance(value, str) and value in ACTIVATIONS:
        return value
    raise r.fail(f"activation {_short(value)} is not a built-in Keras activation")


def _snake(name: str) -> str:
    return _SNAKE_RE.sub("_", name).lower()


def _initializer(value: Any, r: _Reader, key: str) -> Initializer | None:
    if value is None:
        return None
    if isinstance(value, str):
        name = _INIT_ALIASES.get(_snake(value), _snake(value))
        if name not in INITIALIZERS.values():
            raise r.fail(f"{key} {value!r} is not a supported initializer")
        return Initializer(name=name)
    cls = value.get("class_name") if isinstance(value, dict) else None
    if not isinstance(cls, str) or cls not in INITIALIZERS:
        raise Unmodelled(f"{key} {_short(value)}")
    config = value.get("config") or {}
    if not isinstance(config, dict):
        raise r.fail(f"{key} config must be an object")
    if config.get("input_axes") is not None or config.get("output_axes") is not None:
        raise Unmodelled(f"{key} with input_axes/output_axes")
    args = {k: config[k] for k in _INIT_ARGS if config.get(k) is not None}
    try:
        return Initializer(name=INITIALIZERS[cls], **args)
    except ValidationError as exc:
        raise r.fail(f"{key} has invalid arguments: {exc.errors()[0]['msg']}") from None


def _regularizer(value: Any, r: _Reader, key: str) -> Regularizer | None:
    if value is None:
        return None
    if isinstance(value, str):
        defaults = {"l1": (0.01, 0.0), "l2": (0.0, 0.01), "l1_l2": (0.0, 0.0), "l1l2": (0.0, 0.0)}
        if value.lower() not in defaults:
            raise r.fail(f"{key} {value!r} is not a supported regularizer")
        l1, l2 = defaults[value.lower()]
        return Regularizer(l1=l1, l2=l2)
    cls = value.get("class_name") if isinstance(value, dict) else None
    config = value.get("config") if isinstance(value, dict) else None
    if cls == "OrthogonalRegularizer" and isinstance(config, dict):
        factor, mode = config.get("factor", 0.01), config.get("mode", "rows")
        if not (is_number(factor) and factor >= 0 and mode in ("rows", "columns")):
            raise r.fail(f"{key} OrthogonalRegularizer needs a factor ≥ 0 and mode rows/columns")
        return Regularizer(orthogonal=float(factor), mode=mode)
    if cls not in ("L1", "L2", "L1L2") or not isinstance(config, dict):
        raise Unmodelled(f"{key} {_short(value)}")
    l1, l2 = config.get("l1", 0.0), config.get("l2", 0.0)
    if not (is_number(l1) and is_number(l2) and l1 >= 0 and l2 >= 0):
        raise r.fail(f"{key} factors must be non-negative numbers")
    return Regularizer(l1=float(l1), l2=float(l2))


def _short(value: Any) -> str:
    text = repr(value.get("class_name") if isinstance(value, dict) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
