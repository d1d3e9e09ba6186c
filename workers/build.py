"""Keras models from a validated RunSpec, built layer by layer from our own fields.

User JSON never reaches Keras' deserializer: every `Layer.type` maps to one constructor below,
called only with fields the schema validated. Shapes, names and parameter counts come from
`service.analysis.architecture.describe`, so the model Keras builds is the one the service
analysed (same layer names, same parameter count), and a too-large model is refused before any
weight is allocated.

Class labels are integer ids in the workers. A loss that needs one-hot targets
(categorical_crossentropy, mse on a multi-unit head, ...) one-hots them inside the loss, so
the data pipeline stays the same for every loss and label smoothing works even for a sparse
loss spec (Keras' sparse loss has no label_smoothing). Regression values and multi-hot rows
(`targets` other than "classes") reach the run's loss as they are.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from service.analysis.architecture import MERGES, Architecture, describe, normalize_initializer
from service.schemas.layer import ACTIVATIONS, MODEL_INPUT, Initializer, Layer, Regularizer
from service.schemas.run import Augmentation, LrSchedule, RunSpec
from service.schemas.schedules import KerasSchedule

# Defaults for values Keras needs but a spec may leave out (Keras' own defaults where it has one).
DEFAULT_OPTIMIZER = "adam"  # the most common choice; Keras' compile() default is rmsprop
DEFAULT_EPOCHS_DROP = 10.0
DEFAULT_DECAY_RATE = 0.96
DEFAULT_PLATEAU_FACTOR = 0.1
DEFAULT_PLATEAU_PATIENCE = 10
DEFAULT_HORIZON_STEPS = 1000  # cosine decay length when neither epochs nor steps are known

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "adadelta": keras.optimizers.Adadelta,
    "nadam": keras.optimizers.Nadam,
    "adamax": keras.optimizers.Adamax,
    "ftrl": keras.optimizers.Ftrl,
    "lion": keras.optimizers.Lion,
    "adafactor": keras.optimizers.Adafactor,
    "lamb": keras.optimizers.Lamb,
    "muon": keras.optimizers.Muon,
    "schedulefreeadamw": keras.optimizers.ScheduleFreeAdamW,
}
OPTIMIZER_ARGS = (
    "momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon", "weight_decay", "clipnorm",
    "clipvalue", "global_clipnorm",
)  # fmt: skip

SPARSE_LOSS = "sparse_categorical_crossentropy"
# Per-example loss functions that take dense targets (one-hot for a multi-unit head).
DENSE_LOSSES: dict[str, Callable[..., Any]] = {
    "categorical_crossentropy": keras.losses.categorical_crossentropy,
    "categorical_focal_crossentropy": keras.losses.categorical_focal_crossentropy,
    "binary_crossentropy": keras.losses.binary_crossentropy,
    "binary_focal_crossentropy": keras.losses.binary_focal_crossentropy,
    "mean_squared_error": keras.losses.mean_squared_error,
    "mean_absolute_error": keras.losses.mean_absolute_error,
    "mean_squared_logarithmic_error": keras.losses.mean_squared_logarithmic_error,
    "huber": keras.losses.huber,
    "log_cosh": keras.losses.log_cosh,
    "kl_divergence": keras.losses.kl_divergence,
    "poisson": keras.losses.poisson,
    "hinge": keras.losses.hinge,
    "squared_hinge": keras.losses.squared_hinge,
    "categorical_hinge": keras.losses.categorical_hinge,
}
LOSS_ALIASES = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "msle": "mean_squared_logarithmic_error",
    "huber_loss": "huber",
    "logcosh": "log_cosh",
    "kld": "kl_divergence",
    "kullback_leibler_divergence": "kl_divergence",
}


class BuildError(ValueError):
    """The spec cannot become a Keras model; the message names the layer where it can."""


class ModelTooLarge(BuildError):
    """The model has more parameters than the probe may train."""

    def __init__(self, params: int, budget: int) -> None:
        super().__init__(f"the model has {params:,} parameters; the probe budget is {budget:,}")
        self.params = params
        self.budget = budget


# ---------------------------------------------------------------- model


def architecture_of(run: RunSpec) -> Architecture:
    """`describe()` of the run's model: what `build_model` builds it from."""
    if run.model is None or run.model.layers is None or run.model.input_shape is None:
        raise BuildError("the run has no model (input_shape and layers)")
    return describe(run.model.input_shape, run.model.layers)  # ValueError naming the layer


def build_model(
    run: RunSpec,
    num_classes: int | None = None,
    seed: int = 0,
    param_budget: int | None = None,
    arch: Architecture | None = None,
) -> keras.Model:
    """The run's model with seeded initializers; augmentation layers first if the run had any.

    `num_classes` (of the data it will train on) checks that the head can take those labels.
    `arch`: `architecture_of(run)`, when the caller has it already.
    """
    if arch is None:
        arch = architecture_of(run)
    assert run.model is not None and run.model.layers is not None
    if param_budget is not None and arch.total_params > param_budget:
        raise ModelTooLarge(arch.total_params, param_budget)  # before allocating any weight
    _check_head(arch, num_classes)
    inputs = keras.Input(shape=tuple(arch.input_shape), name=MODEL_INPUT)
    augmentation = run.preprocessing.augmentation if run.preprocessing else None
    tensors = {MODEL_INPUT: _augment(inputs, augmentation, arch.input_shape, seed)}
    built: dict[str, keras.layers.Layer] = {}  # by node name: a shared layer's calls reuse it
    for index, (layer, info) in enumerate(zip(run.model.layers, arch.layers, strict=True)):
        sources = [tensors[source] for source in info.inputs]
        if info.shares is not None:
            built[info.name] = built[info.shares]
        tensors[info.name] = _apply(layer, info.name, sources, _Seeds(seed, index), built)
    model = keras.Model(inputs, tensors[arch.layers[-1].name], name="probe")
    if param_budget is not None and model.count_params() > param_budget:
        raise ModelTooLarge(model.count_params(), param_budget)
    return model


def _check_head(arch: Architecture, num_classes: int | None) -> None:
    """Labels beyond the head's units crash Keras mid-training; say so up front instead."""
    if num_classes is None:
        return
    last = arch.layers[-1].name
    if len(arch.output_shape) != 1:
        raise BuildError(
            f"the output layer {last!r} gives shape {arch.output_shape}; a classifier "
            f"needs one value per class"
        )
    units = arch.output_units
    if units < num_classes and not (units == 1 and num_classes == 2):
        raise BuildError(
            f"the output layer {last!r} has {units} units but the data has {num_classes} classes"
        )


def _apply(
    layer: Layer, name: str, sources: list[Any], seeds: _Seeds, built: dict[str, Any]
) -> Any:
    """Construct (or, for a shared layer's later call, reuse) and call one layer, turning
    Keras' complaints into errors naming the layer."""
    try:
        if name not in built:
            built[name] = LAYER_BUILDERS[layer.type](layer, name, seeds)
        return built[name](sources if layer.type in MERGES else sources[0])
    except BuildError:
        raise
    except (ValueError, TypeError) as exc:
        raise BuildError(f"layer {name!r} ({layer.type}): {exc}") from exc


class _Seeds:
    """Distinct, reproducible seeds per layer and weight role.

    Keras initializers given the same int seed draw the same values, so two same-shaped
    kernels would be identical; derive one seed per (run seed, layer index, role) instead.
    """

    def __init__(self, seed: int, index: int) -> None:
        self.seed = seed
        self.index = index

    def __call__(self, role: str) -> int:
        entropy = [self.seed & 0xFFFFFFFF, self.index + 1, zlib.crc32(role.encode())]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


def _augment(x: Any, aug: Augmentation | None, shape: tuple[int, ...], seed: int) -> Any:
    """ImageDataGenerator-style settings as Keras random layers (active only in training)."""
    if aug is None or len(shape) != 3:
        return x
    seeds = _Seeds(seed, -1)  # index -1: before every layer of the spec
    layers: list[keras.layers.Layer] = []
    if aug.rotation_range:
        layers.append(keras.layers.RandomRotation(aug.rotation_range / 360.0, seed=seeds("rot")))
    height = _shift_fraction(aug.height_shift_range, shape[0])
    width = _shift_fraction(aug.width_shift_range, shape[1])
    if height or width:
        layers.append(keras.layers.RandomTranslation(height, width, seed=seeds("shift")))
    flips = [
        way
        for way, on in (("horizontal", aug.horizontal_flip), ("vertical", aug.vertical_flip))
        if on
    ]
    if flips:  # "horizontal", "vertical" or "horizontal_and_vertical"
        layers.append(keras.layers.RandomFlip("_and_".join(flips), seed=seeds("flip")))
    if aug.zoom_range:
        zoom = (-aug.zoom_range, aug.zoom_range)
        layers.append(keras.layers.RandomZoom(zoom, zoom, seed=seeds("zoom")))
    for layer in layers:
        x = layer(x)
    return x


def _shift_fraction(value: float | None, size: int) -> float:
    """ImageDataGenerator reads shifts >= 1 as pixels; RandomTranslation wants fractions."""
    if not value:
        return 0.0
    return min(1.0, value / size if value >= 1 else value)


# ---------------------------------------------------------------- weights and activations


def make_initializer(spec: str | Initializer | None, seed: int) -> keras.initializers.Initializer:
    """A seeded Keras initializer from our spec (glorot_uniform when absent, as in Keras)."""
    init = normalize_initializer(spec)
    name, mean = init.name, _or(init.mean, 0.0)
    if name == "zeros":
        return keras.initializers.Zeros()
    if name == "ones":
        return keras.initializers.Ones()
    if name == "constant":
        return keras.initializers.Constant(_or(init.value, 0.0))
    if name == "random_normal":
        return keras.initializers.RandomNormal(mean, _or(init.stddev, 0.05), seed=seed)
    if name == "truncated_normal":
        return keras.initializers.TruncatedNormal(mean, _or(init.stddev, 0.05), seed=seed)
    if name == "random_uniform":
        low, high = _or(init.minval, -0.05), _or(init.maxval, 0.05)
        return keras.initializers.RandomUniform(low, high, seed=seed)
    if name == "variance_scaling":
        # Keras 2 called the truncated normal "normal"; Keras 3 only knows the long name.
        distribution = init.distribution or "truncated_normal"
        distribution = "truncated_normal" if distribution == "normal" else distribution
        return keras.initializers.VarianceScaling(
            _or(init.scale, 1.0), init.mode or "fan_in", distribution, seed=seed
        )
    if name == "orthogonal":
        return keras.initializers.Orthogonal(_or(init.gain, 1.0), seed=seed)
    if name == "identity":
        return keras.initializers.Identity(_or(init.gain, 1.0))
    named = NAMED_INITIALIZERS.get(name)
    if named is None:
        raise BuildError(f"initializer {name!r} is not supported")
    return named(seed=seed)


NAMED_INITIALIZERS: dict[str, Callable[..., keras.initializers.Initializer]] = {
    "glorot_uniform": keras.initializers.GlorotUniform,
    "glorot_normal": keras.initializers.GlorotNormal,
    "he_normal": keras.initializers.HeNormal,
    "he_uniform": keras.initializers.HeUniform,
    "lecun_normal": keras.initializers.LecunNormal,
    "lecun_uniform": keras.initializers.LecunUniform,
}


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def make_regularizer(spec: Regularizer | None) -> Callable[[Any], Any] | None:
    if spec is None or not (spec.l1 or spec.l2 or spec.orthogonal):
        return None
    parts: list[Callable[[Any], Any]] = []
    if spec.l1 or spec.l2:
        parts.append(keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2))
    if spec.orthogonal:
        mode = spec.mode or "rows"
        parts.append(keras.regularizers.OrthogonalRegularizer(spec.orthogonal, mode=mode))
    if len(parts) == 1:
        return parts[0]
    return lambda weights: parts[0](weights) + parts[1](weights)


def make_activation(name: str | None, layer: str) -> Callable[..., Any]:
    """An activation function from an allowlist of Keras names (None means linear)."""
    key = (name or "linear").strip().lower()
    if key not in ACTIVATIONS:
        raise BuildError(f"layer {layer!r}: unknown activation {name!r}")
    fn: Callable[..., Any] = keras.activations.get(key)
    return fn


# ---------------------------------------------------------------- one constructor per type

Builder = Callable[[Layer, str, _Seeds], keras.layers.Layer]


def _bias(layer: Layer) -> bool:
    return layer.use_bias is not False


def _spread(value: Any) -> Any:
    """A one-value window, (3,), as the int Keras repeats over every spatial dim."""
    return value[0] if isinstance(value, tuple) and len(value) == 1 else value


def _need(value: Any, name: str, what: str) -> Any:
    if value is None:
        raise BuildError(f"layer {name!r} needs {what}")
    return value


def _conv_args(layer: Layer, name: str) -> dict[str, Any]:
    """What every convolution takes the same way."""
    return {
        "kernel_size": _spread(_need(layer.kernel_size, name, "kernel_size")),
        "strides": _spread(layer.strides or 1),
        "padding": layer.padding or "valid",
        "dilation_rate": _spread(layer.dilation_rate or 1),
        "activation": make_activation(layer.activation, name),
        "use_bias": _bias(layer),
        "bias_regularizer": make_regularizer(layer.bias_regularizer),
        "name": name,
    }


def _conv_nd(cls: type[keras.layers.Layer]) -> Builder:
    """Conv1D / Conv2D / Conv3D (Conv1D also takes padding='causal')."""

    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(
            filters=_need(layer.filters, name, "filters"),
            groups=layer.groups or 1,
            kernel_initializer=make_initializer(layer.kernel_initializer, seeds("kernel")),
            kernel_regularizer=make_regularizer(layer.kernel_regularizer),
            **_conv_args(layer, name),
        )

    return build


def _conv_transpose(cls: type[keras.layers.Layer]) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(
            filters=_need(layer.filters, name, "filters"),
            output_padding=_spread(layer.output_padding),
            kernel_initializer=make_initializer(layer.kernel_initializer, seeds("kernel")),
            kernel_regularizer=make_regularizer(layer.kernel_regularizer),
            **_conv_args(layer, name),
        )

    return build


def _cropping(cls: type[keras.layers.Layer], default: Any) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        margins: Any = layer.cropping
        if margins is not None and len(margins) == 1:
            margins = margins[0]  # Cropping1D takes one (before, after) pair
        return cls(cropping=default if margins is None else margins, name=name)

    return build


def _embedding(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    # Keras' default embeddings initializer is RandomUniform(-0.05, 0.05), not Glorot.
    init = layer.embeddings_initializer or Initializer(name="random_uniform")
    return keras.layers.Embedding(
        input_dim=_need(layer.input_dim, name, "input_dim"),
        output_dim=_need(layer.output_dim, name, "output_dim"),
        embeddings_initializer=make_initializer(init, seeds("embeddings")),
        embeddings_regularizer=make_regularizer(layer.embeddings_regularizer),
        mask_zero=bool(layer.mask_zero),
        name=name,
    )


def _separable_conv2d(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.SeparableConv2D(
        filters=_need(layer.filters, name, "filters"),
        depth_multiplier=layer.depth_multiplier or 1,
        depthwise_initializer=make_initializer(layer.depthwise_initializer, seeds("depthwise")),
        pointwise_initializer=make_initializer(layer.pointwise_initializer, seeds("pointwise")),
        depthwise_regularizer=make_regularizer(layer.depthwise_regularizer),
        pointwise_regularizer=make_regularizer(layer.pointwise_regularizer),
        **_conv_args(layer, name),
    )


def _depthwise_conv2d(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.DepthwiseConv2D(
        depth_multiplier=layer.depth_multiplier or 1,
        depthwise_initializer=make_initializer(layer.depthwise_initializer, seeds("depthwise")),
        depthwise_regularizer=make_regularizer(layer.depthwise_regularizer),
        **_conv_args(layer, name),
    )


def _dense(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Dense(
        units=_need(layer.units, name, "units"),
        activation=make_activation(layer.activation, name),
        use_bias=_bias(layer),
        kernel_initializer=make_initializer(layer.kernel_initializer, seeds("kernel")),
        kernel_regularizer=make_regularizer(layer.kernel_regularizer),
        bias_regularizer=make_regularizer(layer.bias_regularizer),
        name=name,
    )


def _pool(cls: type[keras.layers.Layer]) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(
            pool_size=_spread(layer.pool_size or 2),
            strides=_spread(layer.strides),  # None: Keras uses pool_size, as describe() does
            padding=layer.padding or "valid",
            name=name,
        )

    return build


def _global_pool(cls: type[keras.layers.Layer]) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(keepdims=bool(layer.keepdims), name=name)

    return build


def _dropout(cls: type[keras.layers.Layer]) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(rate=_need(layer.rate, name, "rate"), seed=seeds("dropout"), name=name)

    return build


def _norm(cls: type[keras.layers.Layer]) -> Builder:
    def build(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
        return cls(
            axis=-1 if layer.axis is None else layer.axis,
            center=layer.center is not False,
            scale=layer.learn_scale is not False,
            name=name,
        )

    return build


def _activation(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Activation(make_activation(layer.activation, name), name=name)


def _relu(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.ReLU(
        max_value=layer.max_value,
        negative_slope=layer.negative_slope or 0.0,
        threshold=layer.threshold or 0.0,
        name=name,
    )


def _leaky_relu(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    slope = 0.3 if layer.negative_slope is None else layer.negative_slope
    return keras.layers.LeakyReLU(negative_slope=slope, name=name)


class LayerScale(keras.layers.Layer):  # type: ignore[misc]
    """ConvNeXt's per-channel learned scale (keras.applications.convnext.LayerScale)."""

    def __init__(self, init_value: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_value = init_value

    def build(self, input_shape: Any) -> None:
        self.gamma = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init_value),
            name="gamma",
        )

    def call(self, x: Any) -> Any:
        return x * self.gamma


def _layer_scale(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return LayerScale(1e-6 if layer.init_value is None else layer.init_value, name=name)


def _prelu(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.PReLU(shared_axes=layer.shared_axes, name=name)


def _softmax(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Softmax(axis=-1 if layer.axis is None else layer.axis, name=name)


def _rescaling(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Rescaling(
        scale=_or(layer.scale, 1.0), offset=_or(layer.offset, 0.0), name=name
    )


def _normalization(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    """Given statistics are fixed; without them the layer waits for `adapt_normalization`."""
    if (layer.mean is None) != (layer.variance is None):
        raise BuildError(f"layer {name!r} (normalization) needs both mean and variance, or neither")
    mean, variance = layer.mean, layer.variance
    # Keras wants equal shapes; a scalar beside a per-channel list means "for every channel".
    if isinstance(mean, list) and isinstance(variance, float | int):
        variance = [float(variance)] * len(mean)
    if isinstance(variance, list) and isinstance(mean, float | int):
        mean = [float(mean)] * len(variance)
    axis = -1 if layer.axis is None else layer.axis
    return keras.layers.Normalization(axis=axis, mean=mean, variance=variance, name=name)


def _reshape(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Reshape(tuple(_need(layer.target_shape, name, "target_shape")), name=name)


def _zero_padding2d(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    padding = 1 if layer.padding is None else layer.padding
    if isinstance(padding, str):
        raise BuildError(f"layer {name!r}: zero padding must be numbers, got {padding!r}")
    return keras.layers.ZeroPadding2D(padding=padding, name=name)


def _add(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Add(name=name)


def _multiply(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Multiply(name=name)


def _group_normalization(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.GroupNormalization(
        groups=layer.groups or 32,
        axis=-1 if layer.axis is None else layer.axis,
        center=layer.center is not False,
        scale=layer.learn_scale is not False,
        name=name,
    )


def _opaque(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    # The service kept this Keras class without modelling it; rebuilding it would mean trusting
    # its config to Keras' deserializer, which user JSON never reaches.
    raise BuildError(
        f"layer {name!r} ({layer.keras_class}) is kept opaque ({layer.opaque_reason}); probes "
        "cannot rebuild this model, the static report stands"
    )


def _concatenate(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Concatenate(axis=-1 if layer.axis is None else layer.axis, name=name)


def _flatten(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.Flatten(name=name)


def _random_flip(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    mode = layer.mode or "horizontal_and_vertical"
    return keras.layers.RandomFlip(mode=mode, seed=seeds("flip"), name=name)


def _random_rotation(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    factor = _need(layer.factor, name, "factor")
    return keras.layers.RandomRotation(factor, seed=seeds("rotation"), name=name)


def _random_translation(layer: Layer, name: str, seeds: _Seeds) -> keras.layers.Layer:
    return keras.layers.RandomTranslation(
        _need(layer.height_factor, name, "height_factor"),
        _need(layer.width_factor, name, "width_factor"),
        seed=seeds("translation"),
        name=name,
    )


LAYER_BUILDERS: dict[str, Builder] = {
    "conv1d": _conv_nd(keras.layers.Conv1D),
    "conv2d": _conv_nd(keras.layers.Conv2D),
    "conv3d": _conv_nd(keras.layers.Conv3D),
    "conv1d_transpose": _conv_transpose(keras.layers.Conv1DTranspose),
    "conv2d_transpose": _conv_transpose(keras.layers.Conv2DTranspose),
    "conv3d_transpose": _conv_transpose(keras.layers.Conv3DTranspose),
    "separable_conv2d": _separable_conv2d,
    "depthwise_conv2d": _depthwise_conv2d,
    "dense": _dense,
    **{
        f"{kind}_pooling{n}d": _pool(getattr(keras.layers, f"{cls}Pooling{n}D"))
        for kind, cls in (("max", "Max"), ("average", "Average"))
        for n in (1, 2, 3)
    },
    **{
        f"global_{kind}_pooling{n}d": _global_pool(getattr(keras.layers, f"Global{cls}Pooling{n}D"))
        for kind, cls in (("max", "Max"), ("average", "Average"))
        for n in (1, 2, 3)
    },
    "cropping1d": _cropping(keras.layers.Cropping1D, (1, 1)),
    "cropping2d": _cropping(keras.layers.Cropping2D, 0),
    "cropping3d": _cropping(keras.layers.Cropping3D, 0),
    "embedding": _embedding,
    "flatten": _flatten,
    "dropout": _dropout(keras.layers.Dropout),
    "spatial_dropout2d": _dropout(keras.layers.SpatialDropout2D),
    "batch_normalization": _norm(keras.layers.BatchNormalization),
    "layer_normalization": _norm(keras.layers.LayerNormalization),
    "activation": _activation,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "prelu": _prelu,
    "layer_scale": _layer_scale,
    "softmax": _softmax,
    "rescaling": _rescaling,
    "normalization": _normalization,
    "reshape": _reshape,
    "zero_padding2d": _zero_padding2d,
    "add": _add,
    "multiply": _multiply,
    "concatenate": _concatenate,
    "group_normalization": _group_normalization,
    "opaque": _opaque,
    "random_flip": _random_flip,
    "random_rotation": _random_rotation,
    "random_translation": _random_translation,
}


def adapt_normalization(model: keras.Model, x: np.ndarray) -> None:
    """Adapt statistic-less Normalization layers fed by the model input, as the user would have.

    Deeper ones keep Keras' neutral initial state (mean 0, variance 1): adapting them would
    need the activations of a model that is not trained yet.
    """
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Normalization) or layer.input_mean is not None:
            continue
        if layer.input is model.inputs[0]:
            layer.adapt(x)


# ---------------------------------------------------------------- optimizer, schedule, loss


def compile_model(
    model: keras.Model,
    run: RunSpec,
    *,
    steps_per_epoch: int = 1,
    total_steps: int | None = None,
    start_step: int = 0,
    window_steps: int | None = None,
    jit_compile: bool | str = "auto",
    targets: str = "classes",
    arch: Architecture | None = None,
) -> list[keras.callbacks.Callback]:
    """Compile with the run's optimizer, schedule and loss; returns callbacks fit() needs.

    `steps_per_epoch` converts the schedule's epochs to optimizer steps (the user's epochs,
    not the probe's windows); `start_step` continues a schedule where an earlier probe left it;
    `window_steps` is the length of one fit() "epoch" (for reduce_on_plateau's patience).
    `arch`: the model's `architecture_of(run)`, when the caller has it already.
    """
    schedule = run.lr_schedule or (run.optimizer.schedule if run.optimizer else None)
    lr = make_schedule(run, schedule, steps_per_epoch, total_steps, start_step)
    loss, from_logits = make_loss(run, int(model.outputs[0].shape[-1]), targets, arch)
    model.compile(
        optimizer=make_optimizer(run, lr),
        loss=loss,
        metrics=[] if targets == "values" else [_accuracy(model, from_logits, targets)],
        jit_compile=jit_compile,
    )
    if schedule is not None and schedule.name == "reduce_on_plateau":
        return [_plateau(schedule, steps_per_epoch, window_steps)]
    return []


def make_optimizer(
    run: RunSpec, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None
) -> keras.optimizers.Optimizer:
    """The run's optimizer class with the arguments it set (and that class accepts)."""
    spec = run.optimizer
    name = spec.name if spec else DEFAULT_OPTIMIZER
    if name not in OPTIMIZERS:  # MultiOptimizer: its per-layer map names the user's layers
        raise BuildError(f"probes cannot rebuild the optimizer {name!r}")
    cls = OPTIMIZERS[name]
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    for arg in OPTIMIZER_ARGS:
        value = getattr(spec, arg, None) if spec else None
        # A Keras config may carry arguments of another optimizer (momentum for Adam): skip.
        if value is not None and arg in accepted:
            kwargs[arg] = value
    return cls(**kwargs)


def initial_learning_rate(run: RunSpec) -> float:
    """The schedule's initial_lr, else the optimizer's learning_rate, else the class default."""
    schedule = run.lr_schedule or (run.optimizer.schedule if run.optimizer else None)
    if schedule is not None and schedule.initial_lr is not None:
        return schedule.initial_lr
    if run.optimizer is not None and run.optimizer.learning_rate is not None:
        return run.optimizer.learning_rate
    name = run.optimizer.name if run.optimizer else DEFAULT_OPTIMIZER
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise BuildError(f"probes cannot rebuild the optimizer {name!r}")
    return float(inspect.signature(cls).parameters["learning_rate"].default)


def make_schedule(
    run: RunSpec,
    schedule: LrSchedule | None,
    steps_per_epoch: int,
    total_steps: int | None,
    start_step: int = 0,
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A float for constant/plateau learning rates, else a per-step Keras schedule."""
    lr = initial_learning_rate(run)
    if schedule is not None and schedule.keras is not None:
        rebuilt = _keras_schedule(schedule.keras)
        return OffsetSchedule(rebuilt, start_step) if start_step else rebuilt
    if schedule is None or schedule.name in ("constant", "reduce_on_plateau"):
        return lr  # a plain float: ReduceLROnPlateau can only change a variable learning rate
    spe = max(1, steps_per_epoch)
    built: keras.optimizers.schedules.LearningRateSchedule
    if schedule.name == "step_decay":
        built = StepDecay(lr, _or(schedule.drop, 0.5), _drop_period(schedule, spe))
    elif schedule.name == "exponential":
        built = keras.optimizers.schedules.ExponentialDecay(
            lr, schedule.decay_steps or spe, _or(schedule.decay_rate, DEFAULT_DECAY_RATE)
        )
    else:
        built = _cosine(run, schedule, lr, spe, total_steps)
    return OffsetSchedule(built, start_step) if start_step else built


def _keras_schedule(spec: KerasSchedule) -> keras.optimizers.schedules.LearningRateSchedule:
    """The user's Keras schedule, rebuilt from validated numbers (its class is allowlisted)."""
    cls = getattr(keras.optimizers.schedules, spec.class_name)
    args = spec.model_dump(exclude={"class_name"}, exclude_none=True)
    for key in ("decay_steps", "first_decay_steps", "warmup_steps"):
        if key in args and float(args[key]).is_integer():
            args[key] = int(args[key])  # Keras counts steps in integers
    if "boundaries" in args and all(float(b).is_integer() for b in args["boundaries"]):
        args["boundaries"] = [int(b) for b in args["boundaries"]]
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in args.items() if k in accepted})


def _drop_period(schedule: LrSchedule, steps_per_epoch: int) -> float:
    """Steps between drops: epochs_drop epochs, or the decay_steps a Keras config gave."""
    if schedule.epochs_drop is not None:
        return schedule.epochs_drop * steps_per_epoch
    if schedule.decay_steps is not None:
        return float(schedule.decay_steps)
    return DEFAULT_EPOCHS_DROP * steps_per_epoch


def _cosine(
    run: RunSpec, schedule: LrSchedule, lr: float, spe: int, total_steps: int | None
) -> keras.optimizers.schedules.LearningRateSchedule:
    warmup = round(_or(schedule.warmup_epochs, 0.0) * spe)
    horizon = schedule.decay_steps or (run.epochs * spe if run.epochs else None) or total_steps
    decay_steps = max(1, (horizon or DEFAULT_HORIZON_STEPS) - warmup)
    alpha = _or(schedule.alpha, 0.0)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps, alpha)
    # Keras warms up linearly from initial_learning_rate to warmup_target, then decays.
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha, warmup_target=lr, warmup_steps=warmup
    )


def _plateau(
    schedule: LrSchedule, steps_per_epoch: int, window_steps: int | None
) -> keras.callbacks.Callback:
    """ReduceLROnPlateau on the training loss; patience converted from epochs to windows."""
    patience = schedule.patience if schedule.patience is not None else DEFAULT_PLATEAU_PATIENCE
    if window_steps:
        patience = round(patience * max(1, steps_per_epoch) / window_steps)
    return keras.callbacks.ReduceLROnPlateau(
        monitor="loss",  # probes have no per-window validation pass
        factor=_or(schedule.factor, DEFAULT_PLATEAU_FACTOR),
        patience=patience,
        min_lr=_or(schedule.min_lr, 0.0),
        verbose=0,
    )


class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """initial_lr * drop ** floor(step / period_steps)."""

    def __init__(self, initial_lr: float, drop: float, period_steps: float) -> None:
        self.initial_lr = initial_lr
        self.drop = drop
        self.period_steps = max(1.0, period_steps)

    def __call__(self, step: Any) -> Any:
        drops = ops.floor(ops.cast(step, "float32") / self.period_steps)
        return self.initial_lr * ops.power(self.drop, drops)

    def get_config(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "drop": self.drop, "period_steps": self.period_steps}


class OffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`inner` shifted by `start` steps.

    A continued probe gets a fresh optimizer (its moments and bias correction rightly restart),
    so its iteration counter restarts at 0 while the schedule must go on from `start`.
    """

    def __init__(self, inner: keras.optimizers.schedules.LearningRateSchedule, start: int) -> None:
        self.inner = inner
        self.start = start

    def __call__(self, step: Any) -> Any:
        return self.inner(ops.cast(step, "int64") + self.start)

    def get_config(self) -> dict[str, Any]:
        return {"inner": keras.optimizers.schedules.serialize(self.inner), "start": self.start}


class SweepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr_min * (lr_max / lr_min) ** (step / (steps - 1)): the LR range test's sweep."""

    def __init__(self, lr_min: float, lr_max: float, steps: int) -> None:
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.steps = max(2, steps)

    def __call__(self, step: Any) -> Any:
        fraction = ops.cast(step, "float32") / (self.steps - 1)
        return self.lr_min * ops.power(self.lr_max / self.lr_min, fraction)

    def get_config(self) -> dict[str, Any]:
        return {"lr_min": self.lr_min, "lr_max": self.lr_max, "steps": self.steps}


def sweep_lrs(lr_min: float, lr_max: float, steps: int) -> list[float]:
    """The learning rates SweepSchedule gives at steps 0..steps-1 (for reporting)."""
    return list(np.geomspace(lr_min, lr_max, max(2, steps))[:steps].astype(float))


# The loss a run without a loss spec is read with, by what its targets hold.
DEFAULT_LOSS = {
    "classes": SPARSE_LOSS,
    "values": "mean_squared_error",
    "multi_hot": "binary_crossentropy",
}


def make_loss(
    run: RunSpec, units: int, targets: str = "classes", arch: Architecture | None = None
) -> tuple[Any, bool]:
    """(Keras loss, from_logits) for the run's loss and a `units` head, taking the targets
    the probe data holds: integer labels, or values / multi-hot rows as they are. `arch`: the
    model's `architecture_of(run)`, when the caller has it already."""
    spec = run.loss
    name = LOSS_ALIASES.get(spec.name, spec.name) if spec else DEFAULT_LOSS[targets]
    # Without a loss spec, logits are what a linear head gives.
    from_logits = spec.from_logits if spec else _linear_head(run, arch)
    smoothing = (spec.label_smoothing or 0.0) if spec else 0.0
    if targets != "classes":
        return _as_given_loss(name, units, from_logits, smoothing, spec), from_logits
    if name == SPARSE_LOSS and not smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), from_logits
    fn = DENSE_LOSSES.get("categorical_crossentropy" if name == SPARSE_LOSS else name)
    if fn is None:
        known = ", ".join(sorted([SPARSE_LOSS, *DENSE_LOSSES, *LOSS_ALIASES]))
        raise BuildError(f"unknown loss {spec.name if spec else name!r}; known: {known}")
    accepted = inspect.signature(fn).parameters
    kwargs = {
        k: v
        for k, v in (("from_logits", from_logits), ("label_smoothing", smoothing))
        if k in accepted
    }
    return _dense_target_loss(fn, units, kwargs), from_logits


def _as_given_loss(
    name: str, units: int, from_logits: bool, smoothing: float, spec: Any
) -> Callable[[Any, Any], Any]:
    """The run's loss on float targets (regression values, multi-hot rows) as they are."""
    fn = DENSE_LOSSES.get(name)
    if fn is None:
        raise BuildError(
            f"the loss {name!r} needs class ids, but the sample's y holds values or multi-hot "
            "rows; send the loss the run trained with"
        )
    accepted = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {
        k: v
        for k, v in (("from_logits", from_logits), ("label_smoothing", smoothing))
        if k in accepted
    }
    delta = (spec.model_extra or {}).get("delta") if spec is not None else None
    if "delta" in accepted and isinstance(delta, int | float) and delta > 0:
        kwargs["delta"] = float(delta)  # Huber's

    def loss(y_true: Any, y_pred: Any) -> Any:
        target = ops.cast(ops.reshape(y_true, (-1, units)), y_pred.dtype)
        return fn(target, y_pred, **kwargs)

    loss.__name__ = getattr(fn, "__name__", "loss")
    return loss


def _linear_head(run: RunSpec, arch: Architecture | None) -> bool:
    if arch is None:
        if run.model is None or run.model.layers is None or run.model.input_shape is None:
            return False
        arch = architecture_of(run)
    return arch.output_activation == "linear"


def _dense_target_loss(
    fn: Callable[..., Any], units: int, kwargs: dict[str, Any]
) -> Callable[[Any, Any], Any]:
    """`fn` on one-hot targets (multi-unit head) or float 0/1 targets (single-unit head)."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        labels = ops.reshape(y_true, (-1,))
        if units == 1:
            target = ops.cast(ops.reshape(labels, (-1, 1)), y_pred.dtype)
        else:
            target = ops.one_hot(ops.cast(labels, "int32"), units, dtype=y_pred.dtype)
        return fn(target, y_pred, **kwargs)

    loss.__name__ = getattr(fn, "__name__", "loss")
    return loss


def _accuracy(model: keras.Model, from_logits: bool, targets: str) -> keras.metrics.Metric:
    """Accuracy on integer labels: argmax for a multi-unit head, a threshold for one unit
    (and for each label of a multi-hot row)."""
    if int(model.outputs[0].shape[-1]) == 1 or targets == "multi_hot":
        return keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if from_logits else 0.5)
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
