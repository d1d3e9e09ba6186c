"""workers.build: Keras models from layer lists, compiled with the run's optimizer and loss."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import keras

from service.analysis.architecture import describe
from service.schemas.layer import LayerType
from service.schemas.run import RunSpec
from tests.runs import cnn
from tests.runs import run as run_dict
from workers.build import (
    BuildError,
    ModelTooLarge,
    OffsetSchedule,
    StepDecay,
    build_model,
    compile_model,
    make_schedule,
)

pytestmark = pytest.mark.tf
FIXTURES = Path(__file__).parent / "fixtures" / "keras"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())


def spec(layers: list[Any], input_shape: list[int] | None = None, **run: Any) -> RunSpec:
    model = {"input_shape": input_shape or [8, 8, 3], "layers": layers}
    return RunSpec.model_validate({"model": model, **run})


def params_of(run: RunSpec) -> int:
    assert run.model is not None and run.model.input_shape and run.model.layers
    return describe(run.model.input_shape, run.model.layers).total_params


# One small model per layer type; each ends in something a classifier could follow.
CONV: dict[str, Any] = {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"}
SEQ: dict[str, Any] = {"type": "reshape", "target_shape": [64, 3]}
VOL: dict[str, Any] = {"type": "reshape", "target_shape": [4, 4, 4, 3]}
BY_TYPE: dict[str, list[dict[str, Any]]] = {
    "conv2d": [
        {**CONV, "strides": 2, "kernel_regularizer": {"l2": 1e-4, "orthogonal": 0.01}},
    ],
    "separable_conv2d": [
        {"type": "separable_conv2d", "filters": 5, "kernel_size": 3, "depth_multiplier": 2}
    ],
    "depthwise_conv2d": [{"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2}],
    "dense": [{"type": "flatten"}, {"type": "dense", "units": 7, "activation": "gelu"}],
    "max_pooling2d": [{"type": "max_pooling2d", "pool_size": 2}],
    "average_pooling2d": [{"type": "average_pooling2d", "pool_size": 3, "strides": 1}],
    "global_average_pooling2d": [{"type": "global_average_pooling2d"}],
    "global_max_pooling2d": [{"type": "global_max_pooling2d", "keepdims": True}],
    "flatten": [{"type": "flatten"}],
    "dropout": [{"type": "dropout", "rate": 0.3}],
    "spatial_dropout2d": [{"type": "spatial_dropout2d", "rate": 0.2}],
    "batch_normalization": [CONV, {"type": "batch_normalization"}],
    "layer_normalization": [{"type": "layer_normalization", "learn_scale": False}],
    "activation": [{"type": "activation", "activation": "swish"}],
    "relu": [{"type": "relu", "max_value": 6.0, "threshold": 0.1}],
    "leaky_relu": [{"type": "leaky_relu", "negative_slope": 0.1}],
    "prelu": [CONV, {"type": "prelu", "shared_axes": [1, 2]}],
    "layer_scale": [CONV, {"type": "layer_scale", "init_value": 1e-6}],
    "softmax": [{"type": "softmax"}],
    "rescaling": [{"type": "rescaling", "scale": 1 / 255, "offset": -0.5}],
    "normalization": [{"type": "normalization", "mean": [0.1, 0.2, 0.3], "variance": 2.0}],
    "reshape": [{"type": "reshape", "target_shape": [16, -1]}],
    "zero_padding2d": [{"type": "zero_padding2d", "padding": [1, 2]}],
    "add": [
        CONV,
        {"type": "conv2d", "filters": 4, "kernel_size": 1},
        {"type": "add", "inputs": ["conv2d_0", "conv2d_1"]},
    ],
    "concatenate": [CONV, {"type": "concatenate", "inputs": ["input", "conv2d_0"]}],
    "multiply": [
        CONV,
        {"type": "global_average_pooling2d", "keepdims": True},
        {"type": "multiply", "inputs": ["conv2d_0", "global_average_pooling2d_1"]},
    ],
    "group_normalization": [CONV, {"type": "group_normalization", "groups": 2}],
    "random_flip": [{"type": "random_flip", "mode": "horizontal"}],
    "random_rotation": [{"type": "random_rotation", "factor": 0.1}],
    "random_translation": [
        {"type": "random_translation", "height_factor": 0.1, "width_factor": [-0.2, 0.2]}
    ],
    # 1-D and 3-D layers: the 8×8×3 input reshaped to a sequence or a volume first.
    "conv1d": [SEQ, {"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "causal",
                     "dilation_rate": 2}],
    "conv3d": [VOL, {"type": "conv3d", "filters": 2, "kernel_size": [1, 2, 3]}],
    "conv1d_transpose": [SEQ, {"type": "conv1d_transpose", "filters": 2, "kernel_size": 3,
                               "strides": 2}],
    "conv2d_transpose": [{"type": "conv2d_transpose", "filters": 2, "kernel_size": 3,
                          "strides": 2, "output_padding": 1}],
    "conv3d_transpose": [VOL, {"type": "conv3d_transpose", "filters": 2, "kernel_size": 2,
                               "strides": 2, "padding": "same"}],
    "max_pooling1d": [SEQ, {"type": "max_pooling1d", "pool_size": 2}],
    "average_pooling1d": [SEQ, {"type": "average_pooling1d", "pool_size": 3, "strides": 2,
                                "padding": "same"}],
    "max_pooling3d": [VOL, {"type": "max_pooling3d", "pool_size": 2}],
    "average_pooling3d": [VOL, {"type": "average_pooling3d", "pool_size": [1, 2, 2]}],
    "global_average_pooling1d": [SEQ, {"type": "global_average_pooling1d"}],
    "global_max_pooling1d": [SEQ, {"type": "global_max_pooling1d", "keepdims": True}],
    "global_average_pooling3d": [VOL, {"type": "global_average_pooling3d", "keepdims": True}],
    "global_max_pooling3d": [VOL, {"type": "global_max_pooling3d"}],
    "cropping1d": [SEQ, {"type": "cropping1d", "cropping": [[2, 1]]}],
    "cropping2d": [{"type": "cropping2d", "cropping": [[1, 0], [2, 2]]}],
    "cropping3d": [VOL, {"type": "cropping3d"}],
    "embedding": [{"type": "embedding", "input_dim": 10, "output_dim": 4}],
}  # fmt: skip


def test_every_layer_type_has_a_case() -> None:
    assert set(BY_TYPE) | {"opaque"} == set(get_args(LayerType))


def test_an_opaque_layer_is_refused_by_name_not_rebuilt() -> None:
    opaque = {"type": "opaque", "name": "zoom", "keras_class": "RandomZoom", "same_shape": True,
              "opaque_reason": "a Keras layer the analysis does not model"}  # fmt: skip
    with pytest.raises(BuildError, match="'zoom' \\(RandomZoom\\) is kept opaque"):
        build_model(spec([opaque, {"type": "flatten"}]))


KERAS_SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 1.1,
                          "staircase": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 40, "power": 2.0}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "cycle": True,
                         "end_learning_rate": 0.01}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 50, "warmup_target": 0.1,
                     "warmup_steps": 20, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 50}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 10}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 10,
                             "t_mul": 1.0, "m_mul": 0.5, "alpha": 0.2}),
    ("PiecewiseConstantDecay", {"boundaries": [10, 40], "values": [1e-4, 1e-3, 1e-5]}),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "config"), KERAS_SCHEDULES)
def test_schedule_model_matches_keras_at_every_step(cls: str, config: dict[str, Any]) -> None:
    keras_schedule = getattr(keras.optimizers.schedules, cls)(**config)
    serialized = keras.optimizers.serialize(keras.optimizers.SGD(keras_schedule))
    run = RunSpec.model_validate({"optimizer": serialized})
    assert run.optimizer is not None and run.optimizer.schedule is not None
    modelled = run.optimizer.schedule.keras
    assert modelled is not None
    rebuilt = make_schedule(run, run.optimizer.schedule, 10, None)
    assert isinstance(rebuilt, keras.optimizers.schedules.LearningRateSchedule)
    for step in range(0, 120, 3):
        expected = float(keras_schedule(step))
        assert modelled.lr(step) == pytest.approx(expected, rel=1e-4, abs=1e-9), step
        assert float(rebuilt(step)) == pytest.approx(expected, rel=1e-6, abs=1e-9), step


@pytest.mark.parametrize("layer_type", sorted(BY_TYPE))
def test_every_layer_type_builds_with_the_described_shape_and_params(layer_type: str) -> None:
    run = spec(BY_TYPE[layer_type])
    model = build_model(run)
    assert run.model is not None and run.model.layers and run.model.input_shape
    arch = describe(run.model.input_shape, run.model.layers)
    assert model.count_params() == arch.total_params
    assert tuple(model.output_shape[1:]) == arch.output_shape
    built = {layer.name for layer in model.layers}
    assert {info.name for info in arch.layers} <= built  # describe()'s names, unnamed included
    out = model(np.zeros((2, 8, 8, 3), np.float32), training=True)
    assert np.all(np.isfinite(np.asarray(out)))


def test_a_shared_layer_is_one_keras_layer_called_twice() -> None:
    shared = {**CONV, "filters": 3, "name": "block"}
    run = spec(
        [shared, {"type": "conv2d", "name": "block#2", "inputs": ["block"], "shares": "block"}]
    )
    model = build_model(run)
    one_conv = 3 * 3 * 3 * 3 + 3
    assert params_of(run) == model.count_params() == one_conv
    assert [layer.name for layer in model.layers].count("block") == 1


def test_residual_add_graph() -> None:
    layers = [
        {**CONV, "name": "stem", "activation": "relu"},
        {**CONV, "name": "a", "activation": "relu"},
        {**CONV, "name": "b"},
        {"type": "add", "name": "sum", "inputs": ["stem", "b"]},
        {"type": "relu"},
        {"type": "global_average_pooling2d"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ]
    run = spec(layers)
    model = build_model(run, num_classes=3)
    assert model.count_params() == params_of(run)
    add = model.get_layer("sum")
    assert {node.operation.name for node in _inbound(add)} == {"stem", "b"}


def test_concatenate_graph_with_branches_from_the_input() -> None:
    layers = [
        {"type": "conv2d", "name": "left", "filters": 3, "kernel_size": 1, "inputs": ["input"]},
        {"type": "conv2d", "name": "right", "filters": 5, "kernel_size": 3, "padding": "same",
         "inputs": ["input"]},
        {"type": "concatenate", "name": "join", "inputs": ["left", "right", "input"]},
        {"type": "flatten"},
        {"type": "dense", "units": 4},
    ]  # fmt: skip
    run = spec(layers)
    model = build_model(run)
    assert model.get_layer("join").output.shape[1:] == (8, 8, 11)
    assert model.count_params() == params_of(run)


def _inbound(layer: keras.layers.Layer) -> list[Any]:
    return [t._keras_history for t in layer._inbound_nodes[0].input_tensors]


@pytest.mark.parametrize(
    "model",
    [
        cnn(),
        cnn(init="glorot_uniform", l2=1e-3, first_kernel=5, hidden=64, filters=16),
        cnn(out_activation="linear", hidden=10),
    ],
)
def test_count_params_equals_describe_for_layer_lists(model: dict[str, Any]) -> None:
    run = RunSpec.model_validate({"model": model})
    assert build_model(run).count_params() == params_of(run)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_count_params_equals_keras_for_translated_keras_json(name: str) -> None:
    run = RunSpec.model_validate({"model": {"keras_json": (FIXTURES / f"{name}.json").read_text()}})
    model = build_model(run)
    assert model.count_params() == EXPECTED[name]["count_params"] == params_of(run)


def test_same_seed_repeats_and_another_seed_differs() -> None:
    run = RunSpec.model_validate({"model": cnn(filters=8, hidden=16)})
    first, again, other = (build_model(run, seed=s).get_weights() for s in (1, 1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    kernels = [i for i, w in enumerate(first) if w.ndim > 1]
    assert not any(np.allclose(first[i], other[i]) for i in kernels)


def test_same_shaped_kernels_in_one_model_differ() -> None:
    dense = {"type": "dense", "units": 16, "kernel_initializer": "he_normal"}
    model = build_model(spec([dense, dense, dense], input_shape=[16]))
    k1, k2 = model.layers[2].kernel, model.layers[3].kernel
    assert not np.allclose(np.asarray(k1), np.asarray(k2))


def test_random_normal_initializer_has_the_asked_std() -> None:
    init = {"name": "random_normal", "stddev": 1.0}
    layers = [{"type": "dense", "units": 512, "kernel_initializer": init}]
    kernel = build_model(spec(layers, input_shape=[256])).get_weights()[0]
    assert kernel.std() == pytest.approx(1.0, abs=0.02)
    assert kernel.mean() == pytest.approx(0.0, abs=0.02)


def test_a_model_over_budget_is_refused_before_any_weight_exists() -> None:
    # 10^10 parameters: allocating them would take 40 GB, so only a check before building passes.
    huge = [{"type": "flatten"}, {"type": "dense", "units": 10_000_000}]
    with pytest.raises(ModelTooLarge) as caught:
        build_model(spec(huge, input_shape=[1000]), param_budget=1_000_000)
    assert "10,010,000,000" in str(caught.value) and "1,000,000" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_unbuildable_layers_are_errors_naming_the_layer() -> None:
    with pytest.raises(BuildError, match=r"'bad'.*activation"):
        build_model(spec([{**CONV, "name": "bad", "activation": "tanhh"}]))
    with pytest.raises(BuildError, match=r"'drop'.*rate"):
        build_model(spec([{"type": "dropout", "name": "drop"}]))
    with pytest.raises(ValueError, match="'k'"):  # describe(): the kernel does not fit
        build_model(spec([{"type": "conv2d", "name": "k", "filters": 2, "kernel_size": 9}]))


def test_a_head_smaller_than_the_classes_is_refused() -> None:
    layers = [{"type": "flatten"}, {"type": "dense", "units": 5, "name": "head"}]
    with pytest.raises(BuildError, match="'head' has 5 units but the data has 10 classes"):
        build_model(spec(layers), num_classes=10)


def test_augmentation_settings_become_layers_without_parameters() -> None:
    aug = {"rotation_range": 18, "width_shift_range": 2, "horizontal_flip": True}
    run = spec(BY_TYPE["dense"], preprocessing={"augmentation": aug})
    model = build_model(run)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[1:4] == ["RandomRotation", "RandomTranslation", "RandomFlip"]
    assert model.layers[1].factor == (-0.05, 0.05)
    assert model.count_params() == params_of(run)


# ---------------------------------------------------------------- compile


def compiled(**run: Any) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    spec_ = RunSpec.model_validate(run_dict(**run))
    model = build_model(spec_)
    return model, compile_model(model, spec_, steps_per_epoch=100, window_steps=50)


def test_optimizer_gets_the_arguments_it_accepts() -> None:
    model, _ = compiled(
        optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True,
                   "beta_1": 0.5, "clipnorm": 1.0}
    )  # fmt: skip
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.SGD)
    assert (opt.momentum, opt.nesterov, opt.clipnorm) == (0.9, True, 1.0)
    assert float(opt.learning_rate) == pytest.approx(0.1)
    model, _ = compiled(optimizer={"name": "adamw", "weight_decay": 0.01, "momentum": 0.9})
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == 0.01


def test_step_decay_counts_user_epochs_and_continues_from_start_step() -> None:
    schedule = {"name": "step_decay", "initial_lr": 0.1, "drop": 0.5, "epochs_drop": 2}
    run = RunSpec.model_validate(run_dict(lr_schedule=schedule))
    lr = make_schedule(run, run.lr_schedule, steps_per_epoch=10, total_steps=None)
    assert isinstance(lr, StepDecay)
    assert [float(lr(s)) for s in (0, 19, 20, 40)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    resumed = make_schedule(run, run.lr_schedule, 10, None, start_step=20)
    assert isinstance(resumed, OffsetSchedule)
    assert float(resumed(0)) == pytest.approx(0.05)


def test_cosine_with_warmup_and_exponential_schedules() -> None:
    cosine = {"name": "cosine", "initial_lr": 0.01, "warmup_epochs": 1}
    run = RunSpec.model_validate(run_dict(lr_schedule=cosine, epochs=11))
    lr = make_schedule(run, run.lr_schedule, steps_per_epoch=10, total_steps=None)
    assert not isinstance(lr, float)
    assert float(lr(5)) == pytest.approx(0.005)  # half-way up the warmup
    assert float(lr(10)) == pytest.approx(0.01)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-6)
    exponential = {"name": "exponential", "initial_lr": 0.1, "decay_rate": 0.5}
    run = RunSpec.model_validate(run_dict(lr_schedule=exponential))
    lr = make_schedule(run, run.lr_schedule, steps_per_epoch=10, total_steps=None)
    assert not isinstance(lr, float)
    assert float(lr(20)) == pytest.approx(0.025)


def test_reduce_on_plateau_is_a_callback_with_patience_in_windows() -> None:
    plateau = {"name": "reduce_on_plateau", "initial_lr": 0.01, "patience": 3, "factor": 0.2}
    model, callbacks = compiled(lr_schedule=plateau)
    (callback,) = callbacks
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.patience, callback.factor) == (6, 0.2)  # 3 epochs of 100 steps, windows of 50
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("sparse_categorical_crossentropy", -math.log(0.7)),
        ({"name": "categorical_crossentropy"}, -math.log(0.7)),
        ({"name": "SparseCategoricalCrossentropy", "label_smoothing": 0.1},
         -(0.91 * math.log(0.7) + 9 * 0.01 * math.log(0.1 / 3))),
        ({"name": "mse"}, (0.3**2 + 9 * (0.1 / 3) ** 2) / 10),
    ],
)  # fmt: skip
def test_losses_take_integer_labels(loss: Any, expected: float) -> None:
    head = [{"type": "dense", "units": 10, "activation": "softmax"}]
    run = spec(head, input_shape=[4], loss=loss)
    model = build_model(run)
    compile_model(model, run)
    probs = np.full((1, 10), 0.1 / 3, np.float32)
    probs[0, 2] = 0.7
    y = np.array([2], np.int32)
    got = float(model.compute_loss(x=None, y=y, y_pred=keras.ops.convert_to_tensor(probs)))
    assert got == pytest.approx(expected, rel=1e-3)


OPAQUE_ZOO: dict[str, tuple[tuple[int, ...], list[Any]]] = {
    "conv1d-pool1d": ((32, 3), [lambda: keras.layers.Conv1D(4, 3, strides=2, padding="causal"),
                                lambda: keras.layers.MaxPooling1D(2),
                                lambda: keras.layers.GlobalAveragePooling1D()]),
    "conv3d-pool3d": ((8, 8, 8, 1), [lambda: keras.layers.Conv3D(4, 3),
                                     lambda: keras.layers.AveragePooling3D(2),
                                     lambda: keras.layers.GlobalMaxPooling3D(keepdims=True)]),
    "transpose": ((7, 7, 2), [lambda: keras.layers.Conv2DTranspose(3, 3, strides=2),
                              lambda: keras.layers.Conv2DTranspose(3, 4, strides=2,
                                                                   padding="same")]),
    "crops": ((16, 16, 3), [lambda: keras.layers.Cropping2D(((1, 2), (3, 0))),
                            lambda: keras.layers.Resizing(10, 12),
                            lambda: keras.layers.CenterCrop(8, 9),
                            lambda: keras.layers.RandomCrop(6, 6),
                            lambda: keras.layers.UpSampling2D(2)]),
    "embedding": ((20,), [lambda: keras.layers.Embedding(100, 8),
                          lambda: keras.layers.Cropping1D((2, 3))]),
    "channels-first": ((3, 16, 16), [
        lambda: keras.layers.Conv2D(8, 3, strides=2, data_format="channels_first"),
        lambda: keras.layers.MaxPooling2D(data_format="channels_first"),
        lambda: keras.layers.GlobalAveragePooling2D(data_format="channels_first")]),
}  # fmt: skip


@pytest.mark.parametrize("label", sorted(OPAQUE_ZOO))
def test_opaque_layer_shapes_equal_keras(label: str) -> None:
    shape, makers = OPAQUE_ZOO[label]
    model = keras.Sequential([keras.Input(shape), *[make() for make in makers]])
    run = RunSpec.model_validate({"model": {"keras_json": model.to_json()}})
    assert run.model is not None and run.model.layers and run.model.input_shape
    arch = describe(run.model.input_shape, run.model.layers)
    for info in arch.layers:
        assert info.output_shape == tuple(model.get_layer(info.name).output.shape[1:]), info.name
