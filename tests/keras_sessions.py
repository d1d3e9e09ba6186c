"""Request bodies made by real Keras sessions, as a user's notebook or sweep script makes them.

Run: `PYTHONPATH=. python tests/keras_sessions.py OUT.json` (the conformance test does, once per
session). Everything here comes from Keras itself: `model.to_json()`, `optimizer.get_config()`,
`keras.optimizers.serialize()`, `loss.get_config()` and `History.history` from real `model.fit`
calls on tiny real data (sklearn digits, breast_cancer, diabetes). Many models and optimizers are
made in one process, so Keras names them `adam_1`, `rm_sprop_2`...; a few bodies come from a
fresh subprocess (`--fresh`), where names carry no suffix.

Each body is written as {"name", "legit", "body"}: legit bodies must be accepted (201/202);
the others (Lambda, custom classes, an optimizer whose custom name hides its class) must get a
problem+json 422.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

# Keras' lazily generated namespace is opaque to mypy, so it is typed as Any here.
keras: Any = importlib.import_module("keras")
L = keras.layers

Body = dict[str, Any]
# keras.applications CNNs (weights=None, small inputs; only their JSON is used).
APPLICATIONS = (
    "MobileNetV2",
    "MobileNetV3Small",
    "ResNet50",
    "EfficientNetB0",
    "DenseNet121",
    "ConvNeXtTiny",
)
SKIPPED_OPTIMIZERS = {"Optimizer", "OptimizerMap", "LossScaleOptimizer", "MultiOptimizer"}


class Session:
    """Collects bodies; `history` is a real digits fit reused where the history is not the point."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.history: dict[str, Any] = {}

    def add(
        self,
        name: str,
        run: dict[str, Any],
        history: dict[str, Any] | None = None,
        legit: bool = True,
        model: Any = None,
    ) -> None:
        """`model`: the Keras model of the body, whose count_params() is recorded."""
        body = {"run": run, "history": history or self.history}
        item = {"name": name, "legit": legit, "body": _plain(body)}
        if model is not None:
            item["params"] = int(model.count_params())
        self.bodies.append(item)


def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> JSON values; NaN stays NaN (as json.dumps writes it)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------- data and models


def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.images[..., None] / 16.0).astype("float32")[:400], data.target[:400]


def small_cnn(classes: int = 10, activation: str = "softmax") -> Any:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(classes, activation=activation),
        ]
    )


def fit(
    model: Any,
    x: np.ndarray,
    y: np.ndarray | dict[str, np.ndarray],
    loss: Any,
    optimizer: Any = "adam",
    epochs: int = 2,
    **kwargs: Any,
) -> dict[str, Any]:
    model.compile(optimizer=optimizer, loss=loss, metrics=kwargs.pop("metrics", None))
    kwargs.setdefault("validation_split", 0.25)
    result = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, **kwargs)
    return dict(result.history)


# ---------------------------------------------------------------- sections


def histories(s: Session) -> None:
    """Real fits: metrics incl. per-class F1, callbacks, regression, divergence, binary."""
    x, y = digits()
    model = small_cnn()
    s.history = fit(
        model,
        x,
        y,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        callbacks=[
            keras.callbacks.ReduceLROnPlateau(patience=1),
            keras.callbacks.EarlyStopping(patience=3),
        ],
    )
    base = {"model": {"keras_json": model.to_json()}, "batch_size": 32, "epochs": 2}
    s.add(
        "fit/digits-reduce-lr-early-stopping",
        {
            **base,
            "loss": "sparse_categorical_crossentropy",
            "optimizer": model.optimizer.get_config(),
        },
    )

    onehot = keras.utils.to_categorical(y, 10)
    m = small_cnn()
    h = fit(
        m,
        x,
        onehot,
        "categorical_crossentropy",
        metrics=["accuracy", keras.metrics.F1Score(average=None)],
    )
    s.add(
        "fit/per-class-f1",
        {
            "model": {"keras_json": m.to_json()},
            "loss": "categorical_crossentropy",
            "optimizer": m.optimizer.get_config(),
        },
        h,
    )

    m = small_cnn()
    h = fit(
        m,
        x,
        onehot,
        "categorical_crossentropy",
        metrics=[
            keras.metrics.F1Score(average="macro"),
            keras.metrics.Precision(),
            keras.metrics.AUC(),
        ],
    )
    s.add(
        "fit/macro-f1-precision-auc",
        {"model": {"keras_json": m.to_json()}, "optimizer": m.optimizer.get_config()},
        h,
    )

    bc = load_breast_cancer()
    xb = ((bc.data - bc.data.mean(0)) / bc.data.std(0)).astype("float32")
    mb = keras.Sequential(
        [keras.Input((30,)), L.Dense(16, activation="relu"), L.Dense(1, activation="sigmoid")]
    )
    h = fit(mb, xb, bc.target, "binary_crossentropy", metrics=["accuracy"])
    s.add(
        "fit/binary",
        {
            "model": {"keras_json": mb.to_json()},
            "loss": "binary_crossentropy",
            "optimizer": mb.optimizer.get_config(),
        },
        h,
    )

    d = load_diabetes()
    xd = ((d.data - d.data.mean(0)) / d.data.std(0)).astype("float32")
    for loss in ("mse", "mae", keras.losses.Huber(), keras.losses.MeanSquaredLogarithmicError()):
        mr = keras.Sequential([keras.Input((10,)), L.Dense(32, activation="relu"), L.Dense(1)])
        h = fit(
            mr, xd, d.target * 1000.0, loss, optimizer=keras.optimizers.Adam(1e-3), metrics=["mae"]
        )
        spec = loss if isinstance(loss, str) else loss.get_config()
        s.add(
            f"fit/regression-large-targets/{_name(spec)}",
            {
                "model": {"keras_json": mr.to_json()},
                "loss": spec,
                "optimizer": mr.optimizer.get_config(),
            },
            h,
        )

    mn = keras.Sequential([keras.Input((10,)), L.Dense(32, activation="relu"), L.Dense(1)])
    h = fit(mn, xd, d.target * 1e6, "mse", optimizer=keras.optimizers.SGD(10.0), epochs=3)
    s.add(
        "fit/nan-divergence",
        {
            "model": {"keras_json": mn.to_json()},
            "loss": "mse",
            "optimizer": mn.optimizer.get_config(),
        },
        h,
    )

    inp = keras.Input((8, 8, 1), name="image")
    feats = L.Flatten()(L.Conv2D(8, 3, activation="relu")(inp))
    digit = L.Dense(10, activation="softmax", name="digit")(feats)
    odd = L.Dense(1, activation="sigmoid", name="odd")(feats)
    mm = keras.Model(inp, [digit, odd])
    h = fit(
        mm,
        x,
        {"digit": y, "odd": (y % 2).astype("float32")},
        {"digit": "sparse_categorical_crossentropy", "odd": "binary_crossentropy"},
        metrics={"digit": ["accuracy"], "odd": ["accuracy"]},
    )
    s.add(
        "fit/multi-output",
        {"model": {"keras_json": mm.to_json()}, "optimizer": mm.optimizer.get_config()},
        h,
    )

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mp = small_cnn()
        mp.add(L.Activation("linear", dtype="float32"))
        h = fit(mp, x, y, "sparse_categorical_crossentropy", metrics=["accuracy"])
        s.add(
            "fit/mixed-float16",
            {
                "model": {"keras_json": mp.to_json()},
                "optimizer": mp.optimizer.get_config(),
                "loss": "sparse_categorical_crossentropy",
            },
            h,
        )
        s.add(
            "fit/mixed-float16-serialized-optimizer",
            {
                "model": {"keras_json": mp.to_json()},
                "optimizer": keras.optimizers.serialize(mp.optimizer),
            },
            h,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _name(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.get("name"))


def optimizers(s: Session) -> None:
    """Every class in keras.optimizers, several instances per class (names get _1, _2...)."""
    model_json = small_cnn().to_json()
    classes = sorted(
        n
        for n in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, n), type) and n not in SKIPPED_OPTIMIZERS
    )
    for cls_name in classes:
        cls = getattr(keras.optimizers, cls_name)
        for i in range(3):
            opt = cls() if i != 2 else cls(learning_rate=0.01)
            run = {"model": {"keras_json": model_json}, "optimizer": opt.get_config()}
            s.add(f"optimizer/{cls_name}/get_config/{i}", run)
        run = {"model": {"keras_json": model_json}, "optimizer": keras.optimizers.serialize(opt)}
        s.add(f"optimizer/{cls_name}/serialize", run)
        custom = cls(name=f"my_{cls_name.lower()}")
        s.add(
            f"optimizer/{cls_name}/custom-name/serialize",
            {"optimizer": keras.optimizers.serialize(custom)},
        )
        s.add(
            f"optimizer/{cls_name}/custom-name/get_config",
            {"optimizer": custom.get_config()},
            legit=False,
        )
    for inner in (keras.optimizers.Adam(), keras.optimizers.SGD(0.1, momentum=0.9)):
        lso = keras.optimizers.LossScaleOptimizer(inner)
        s.add(f"optimizer/LossScaleOptimizer/{inner.name}", {"optimizer": lso.get_config()})
        s.add(
            f"optimizer/LossScaleOptimizer/{inner.name}/serialize",
            {"optimizer": keras.optimizers.serialize(lso)},
        )
    try:
        dense = L.Dense(4)
        multi = keras.optimizers.MultiOptimizer([(keras.optimizers.Adam(), [dense])])
        s.add("optimizer/MultiOptimizer", {"optimizer": multi.get_config()})
    except Exception as exc:  # a constructor Keras changes; recorded, not hidden
        print(f"MultiOptimizer skipped: {exc}", file=sys.stderr)


def schedules(s: Session) -> None:
    """Every keras.optimizers.schedules class, incl. warm-up from 0 and rising piecewise."""
    S = keras.optimizers.schedules
    made = [
        ("exponential", S.ExponentialDecay(1e-2, 100, 0.9)),
        ("exponential-staircase-growth", S.ExponentialDecay(1e-3, 50, 1.05, staircase=True)),
        ("cosine", S.CosineDecay(1e-3, 1000)),
        ("cosine-warmup-from-0", S.CosineDecay(0.0, 1000, warmup_target=1e-3, warmup_steps=100)),
        ("cosine-alpha", S.CosineDecay(0.1, 500, alpha=0.01)),
        ("cosine-restarts", S.CosineDecayRestarts(1e-2, 100)),
        ("cosine-restarts-mmul", S.CosineDecayRestarts(1e-2, 50, t_mul=1.0, m_mul=0.5, alpha=0.1)),
        ("piecewise-falling", S.PiecewiseConstantDecay([100, 200], [1e-2, 1e-3, 1e-4])),
        ("piecewise-rising-warmup", S.PiecewiseConstantDecay([50, 500], [1e-4, 1e-3, 1e-4])),
        ("piecewise-from-0", S.PiecewiseConstantDecay([10], [0.0, 1e-3])),
        ("polynomial", S.PolynomialDecay(1e-2, 1000)),
        ("polynomial-cycle-power", S.PolynomialDecay(1e-2, 100, 1e-5, power=2.0, cycle=True)),
        ("inverse-time", S.InverseTimeDecay(1e-2, 100, 0.5)),
        ("inverse-time-staircase", S.InverseTimeDecay(1e-2, 100, 2.0, staircase=True)),
    ]
    for label, schedule in made:
        for opt in (keras.optimizers.Adam(schedule), keras.optimizers.SGD(schedule, momentum=0.9)):
            s.add(f"schedule/{label}/{type(opt).__name__}", {"optimizer": opt.get_config()})
        s.add(
            f"schedule/{label}/serialize",
            {"optimizer": keras.optimizers.serialize(keras.optimizers.AdamW(schedule))},
        )


def losses(s: Session) -> None:
    """Loss by string, by get_config(), by serialize(), with from_logits."""
    names = [
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "binary_crossentropy",
        "mse",
        "mae",
        "huber",
        "log_cosh",
        "kl_divergence",
        "poisson",
        "hinge",
        "categorical_focal_crossentropy",
        "binary_focal_crossentropy",
    ]
    for name in names:
        s.add(f"loss/string/{name}", {"loss": name})
    objects = [
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        keras.losses.BinaryCrossentropy(from_logits=True),
        keras.losses.MeanSquaredError(),
        keras.losses.MeanAbsoluteError(),
        keras.losses.Huber(delta=2.0),
        keras.losses.CategoricalFocalCrossentropy(),
        keras.losses.BinaryFocalCrossentropy(from_logits=True),
        keras.losses.CosineSimilarity(),
        keras.losses.Tversky(),
        keras.losses.Dice(),
    ]
    for loss in objects:
        label = type(loss).__name__
        s.add(f"loss/get_config/{label}", {"loss": loss.get_config()})
        s.add(f"loss/serialize/{label}", {"loss": keras.losses.serialize(loss)})


def models(s: Session) -> None:
    """Sequential, Functional, residual, multi-branch, nested, layer zoo, multi-io, channels."""
    for label, build in MODEL_BUILDERS.items():
        try:
            model = build()
        except Exception as exc:  # e.g. a layer Keras cannot build on this host
            print(f"model {label} skipped: {exc}", file=sys.stderr)
            continue
        s.add(f"model/{label}", {"model": {"keras_json": model.to_json()}}, model=model)


def applications(s: Session) -> None:
    """keras.applications CNNs: whole (include_top) and as a transfer-learning base."""
    for name in APPLICATIONS:
        app = getattr(keras.applications, name)
        base = app(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg")
        s.add(f"applications/{name}/base", {"model": {"keras_json": base.to_json()}}, model=base)
        base.trainable = False
        inputs = keras.Input((32, 32, 3))
        x = L.RandomFlip("horizontal")(inputs)
        x = base(x, training=False)
        x = L.Dropout(0.2)(x)
        outputs = L.Dense(5, activation="softmax")(x)
        functional = keras.Model(inputs, outputs)
        s.add(
            f"applications/{name}/transfer-functional",
            {
                "model": {"keras_json": functional.to_json()},
                "loss": "sparse_categorical_crossentropy",
                "optimizer": keras.optimizers.Adam(1e-4).get_config(),
            },
            model=functional,
        )
        sequential = keras.Sequential(
            [keras.Input((32, 32, 3)), base, L.Dense(5, activation="softmax")]
        )
        s.add(
            f"applications/{name}/transfer-sequential",
            {"model": {"keras_json": sequential.to_json()}},
            model=sequential,
        )
    small = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=7)
    s.add(
        "applications/MobileNetV3Small/top", {"model": {"keras_json": small.to_json()}}, model=small
    )


def invalid(s: Session) -> None:
    """Bodies the allowlist must refuse with a 422 that names what is wrong."""
    lam = keras.Sequential([keras.Input((4,)), L.Lambda(lambda t: t * 2), L.Dense(2)])
    s.add("invalid/lambda", {"model": {"keras_json": lam.to_json()}}, legit=False)

    @keras.saving.register_keras_serializable(package="Custom")
    class Doubler(keras.layers.Layer):  # type: ignore[misc]
        def call(self, t: Any) -> Any:
            return t * 2

    custom = keras.Sequential([keras.Input((4,)), Doubler(), L.Dense(2)])
    s.add(
        "invalid/registered-custom-layer", {"model": {"keras_json": custom.to_json()}}, legit=False
    )


def _residual() -> Any:
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    x = L.Activation("relu")(L.Add()([x, y]))
    return keras.Model(inp, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x)))


def _branches() -> Any:
    inp = keras.Input((16, 16, 3))
    a = L.Conv2D(4, 1, activation="relu")(inp)
    b = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    c = L.Conv2D(4, 5, padding="same", activation="relu")(inp)
    x = L.Concatenate()([a, b, c])
    gate = L.Dense(12, activation="sigmoid")(L.GlobalAveragePooling2D()(x))
    x = L.Multiply()([x, L.Reshape((1, 1, 12))(gate)])
    return keras.Model(inp, L.Dense(10)(L.Flatten()(x)))


def _zoo(
    *layers: Any, shape: tuple[int | None, ...] = (16, 16, 3), head: bool = True
) -> Callable[[], Any]:
    def build() -> Any:
        stack = [keras.Input(shape), *[make() for make in layers]]
        if head:
            stack += [L.Flatten(), L.Dense(3, activation="softmax")]
        return keras.Sequential(stack)

    return build


def _multi_io() -> Any:
    image = keras.Input((16, 16, 3), name="image")
    meta = keras.Input((4,), name="meta")
    x = L.GlobalAveragePooling2D()(L.Conv2D(8, 3, activation="relu")(image))
    x = L.Concatenate()([x, L.Dense(8, activation="relu")(meta)])
    return keras.Model(
        [image, meta], [L.Dense(5, activation="softmax", name="cls")(x), L.Dense(1, name="reg")(x)]
    )


def _ops() -> Any:
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, activation="relu")(inp)
    x = keras.ops.mean(x, axis=[1, 2])
    x = keras.ops.relu(x) * 2.0
    return keras.Model(inp, L.Dense(4, activation="softmax")(x))


def _scaled_inputs() -> Any:
    """The tutorials' `inputs / 255.0` inside the Functional graph."""
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, activation="relu")(inp / 255.0 - 0.5)
    return keras.Model(inp, L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(x)))


def _unknown_size() -> Any:
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, activation="relu")(inp)
    return keras.Model(inp, L.Dense(4, activation="softmax")(L.GlobalMaxPooling2D()(x)))


def _channels_first() -> Any:
    return keras.Sequential(
        [
            keras.Input((3, 16, 16)),
            L.Conv2D(8, 3, data_format="channels_first", activation="relu"),
            L.MaxPooling2D(data_format="channels_first"),
            L.GlobalAveragePooling2D(data_format="channels_first"),
            L.Dense(4, activation="softmax"),
        ]
    )


def _nested_augment() -> Any:
    augment = keras.Sequential(
        [
            L.RandomFlip(),
            L.RandomZoom(0.1),
            L.RandomContrast(0.2),
            L.RandomBrightness(0.1),
            L.RandomCrop(12, 12),
        ]
    )
    inp = keras.Input((16, 16, 3))
    x = augment(inp)
    x = L.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(x)))


def _embedding_text() -> Any:
    return keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            L.Embedding(1000, 16),
            L.Conv1D(16, 3, activation="relu"),
            L.GlobalMaxPooling1D(),
            L.Dense(2, activation="softmax"),
        ]
    )


def _siamese() -> Any:
    """One Dense layer called on two inputs (shared weights)."""
    left, right = keras.Input((10,), name="left"), keras.Input((10,), name="right")
    encode = L.Dense(8, activation="relu")
    joined = L.Concatenate()([encode(left), encode(right)])
    return keras.Model([left, right], L.Dense(1, activation="sigmoid")(joined))


def _shared_twice_in_a_row() -> Any:
    """x = block(mix(block(x))): the later call needs a layer Keras writes after `block`."""
    inp = keras.Input((16,))
    block, mix = L.Dense(16, activation="relu"), L.Dense(16)
    return keras.Model(inp, L.Dense(3, activation="softmax")(block(mix(block(inp)))))


def _shared_nested_model() -> Any:
    """A Functional encoder called on an image and on its flipped copy."""
    image = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, activation="relu")(image)
    encoder = keras.Model(image, L.GlobalAveragePooling2D()(x), name="encoder")
    inp = keras.Input((16, 16, 3))
    both = L.Add()([encoder(inp), encoder(L.RandomFlip("horizontal")(inp))])
    return keras.Model(inp, L.Dense(4, activation="softmax")(both))


def _autoencoder() -> Any:
    """Conv2D down, Conv2DTranspose up (a denoising autoencoder's shape)."""
    inp = keras.Input((16, 16, 1))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(4, 3, strides=2, output_padding=1)(x)
    x = L.Cropping2D(((1, 2), (3, 0)))(x)
    return keras.Model(inp, L.Conv2D(1, 3, padding="same", activation="sigmoid")(x))


MODEL_BUILDERS: dict[str, Callable[[], Any]] = {
    "sequential-cnn": lambda: small_cnn(),
    "sequential-cnn-logits": lambda: small_cnn(activation="linear"),
    "residual": _residual,
    "multi-branch-squeeze-excite": _branches,
    "multi-input-multi-output": _multi_io,
    "keras-ops": _ops,
    "inputs-divided-in-graph": _scaled_inputs,
    "input-none-none-c": _unknown_size,
    "channels-first": _channels_first,
    "nested-augmentation": _nested_augment,
    "embedding-conv1d": _embedding_text,
    "conv1d": _zoo(lambda: L.Conv1D(4, 3), shape=(32, 2)),
    "conv1d-causal-dilated-pools": _zoo(
        lambda: L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu"),
        lambda: L.MaxPooling1D(),
        lambda: L.Conv1D(8, 5, strides=2, groups=2),
        lambda: L.AveragePooling1D(3, padding="same"),
        lambda: L.GlobalAveragePooling1D(keepdims=True),
        shape=(64, 4),
    ),
    "conv3d": _zoo(lambda: L.Conv3D(4, 3), lambda: L.MaxPooling3D(), shape=(8, 8, 8, 1)),
    "conv3d-pools": _zoo(
        lambda: L.Conv3D(4, (1, 3, 3), padding="same", activation="relu"),
        lambda: L.AveragePooling3D(2),
        lambda: L.GlobalMaxPooling3D(),
        shape=(4, 8, 8, 2),
        head=False,
    ),
    "conv2d-transpose": _zoo(lambda: L.Conv2DTranspose(4, 3, strides=2)),
    "conv1d-transpose": _zoo(lambda: L.Conv1DTranspose(4, 3, strides=2), shape=(10, 3)),
    "conv3d-transpose": _zoo(
        lambda: L.Conv3DTranspose(2, 2, strides=2, padding="same"), shape=(4, 4, 4, 1)
    ),
    "autoencoder": _autoencoder,
    "cropping": _zoo(lambda: L.Cropping2D(2)),
    "cropping1d": _zoo(lambda: L.Cropping1D(1), shape=(10, 3)),
    "cropping3d": _zoo(lambda: L.Cropping3D(((1, 0), (0, 2), (1, 1))), shape=(6, 6, 6, 1)),
    "embedding-flatten": _zoo(lambda: L.Embedding(50, 4, mask_zero=True), shape=(12,)),
    "shared-dense-siamese": _siamese,
    "shared-layer-twice-in-a-row": _shared_twice_in_a_row,
    "shared-nested-model": _shared_nested_model,
    "group-norm": _zoo(lambda: L.Conv2D(8, 3), lambda: L.GroupNormalization(4)),
    "prelu-elu": _zoo(lambda: L.Conv2D(4, 3), lambda: L.PReLU(), lambda: L.ELU()),
    "relu-threshold": _zoo(lambda: L.Conv2D(4, 3), lambda: L.ReLU(threshold=0.1)),
    "orthogonal-regularizer": _zoo(
        lambda: L.Conv2D(4, 3, kernel_regularizer=keras.regularizers.OrthogonalRegularizer())
    ),
    "layer-scale-like-identity": _zoo(lambda: L.Conv2D(4, 3), lambda: L.Identity()),
    "preprocessing": _zoo(
        lambda: L.RandomZoom(0.2),
        lambda: L.RandomContrast(0.1),
        lambda: L.RandomRotation(0.1),
        lambda: L.RandomTranslation(0.1, 0.1),
        lambda: L.RandomBrightness(0.1),
        lambda: L.Resizing(12, 12),
        lambda: L.CenterCrop(10, 10),
    ),
    "unit-norm-noise": _zoo(lambda: L.GaussianNoise(0.1), lambda: L.UnitNormalization()),
    "separable-depthwise": _zoo(lambda: L.SeparableConv2D(8, 3), lambda: L.DepthwiseConv2D(3)),
}


def fresh(s: Session) -> None:
    """The few bodies a fresh process makes (names without suffixes)."""
    x, y = digits()
    model = small_cnn()
    h = fit(model, x, y, "sparse_categorical_crossentropy", metrics=["accuracy"], epochs=1)
    s.add(
        "fresh/fit",
        {
            "model": {"keras_json": model.to_json()},
            "optimizer": model.optimizer.get_config(),
            "loss": "sparse_categorical_crossentropy",
        },
        h,
    )
    for cls in (keras.optimizers.RMSprop, keras.optimizers.AdamW, keras.optimizers.SGD):
        s.add(f"fresh/{cls.__name__}", {"optimizer": cls().get_config()}, h)


def main(out: Path, only_fresh: bool) -> None:
    keras.utils.set_random_seed(0)
    s = Session()
    if only_fresh:
        fresh(s)
    else:
        for section in (histories, optimizers, schedules, losses, models, applications, invalid):
            section(s)
        child = out.with_suffix(".fresh.json")
        subprocess.run([sys.executable, __file__, str(child), "--fresh"], check=True)
        s.bodies += json.loads(child.read_text())
    out.write_text(json.dumps(s.bodies, allow_nan=True))
    legit = sum(b["legit"] for b in s.bodies)
    print(f"{len(s.bodies)} bodies ({legit} legitimate) -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--fresh" in sys.argv[2:])
