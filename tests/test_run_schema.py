"""The run spec reads Keras' own artefacts: optimizers by class, schedules, losses, histories.

Configs below are as Keras 3.15 writes them (copied from `get_config()` / `serialize()`);
tests/test_keras_conformance.py sends the ones a live Keras session makes.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from service.schemas.history import History
from service.schemas.layer import Layer
from service.schemas.run import Loss, Optimizer, RunSpec


def adam(name: str = "adam", **config: Any) -> dict[str, Any]:
    return {"name": name, "learning_rate": 0.0010000000474974513, "beta_1": 0.9,
            "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False, "weight_decay": None,
            "use_ema": False, **config}  # fmt: skip


def serialized(cls: str, config: dict[str, Any], module: str = "keras.optimizers") -> Any:
    return {"module": module, "class_name": cls, "config": config, "registered_name": None}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("adam_1", "adam"), ("rm_sprop_2", "rmsprop"), ("RMSprop", "rmsprop"), ("sgd_17", "sgd"),
     ("schedule_free_adam_w_1", "schedulefreeadamw"), ("muon", "muon")],
)  # fmt: skip
def test_optimizer_is_identified_by_class_not_instance_name(name: str, expected: str) -> None:
    assert Optimizer.model_validate(adam(name)).name == expected


def test_a_custom_name_hiding_the_class_is_a_422_saying_what_to_send() -> None:
    with pytest.raises(ValidationError, match=r"'my_adam'.*keras.optimizers.serialize"):
        Optimizer.model_validate(adam("my_adam"))


def test_serialize_form_is_read_by_its_class_name() -> None:
    read = Optimizer.model_validate(serialized("Adam", adam("my_adam", learning_rate=0.01)))
    assert read.name == "adam" and read.learning_rate == 0.01


def test_loss_scale_optimizer_is_read_through_its_inner_optimizer() -> None:
    sgd = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": False}
    lso = {"name": "loss_scale_optimizer", "inner_optimizer": serialized("SGD", sgd),
           "initial_scale": 32768.0, "dynamic_growth_steps": 2000}  # fmt: skip
    for config in (lso, serialized("LossScaleOptimizer", lso)):
        read = Optimizer.model_validate(config)
        assert (read.name, read.learning_rate, read.momentum) == ("sgd", 0.1, 0.9)


def test_multi_optimizer_is_known_without_a_single_rate() -> None:
    read = Optimizer.model_validate({"optimizer_map": [], "loss_scale_factor": None})
    assert read.name == "multioptimizer" and read.learning_rate is None


def test_optimizer_from_another_module_is_refused() -> None:
    with pytest.raises(ValidationError, match="'my_pkg' is not a Keras optimizer"):
        Optimizer.model_validate(serialized("Adam", adam(), module="my_pkg"))


def schedule(cls: str, **config: Any) -> dict[str, Any]:
    return serialized(cls, config, module="keras.optimizers.schedules")


def test_cosine_warmup_from_zero_reports_its_peak_and_decays() -> None:
    warm = schedule("CosineDecay", initial_learning_rate=0.0, decay_steps=1000, alpha=0.0,
                    warmup_target=0.001, warmup_steps=100)  # fmt: skip
    read = Optimizer.model_validate(adam(learning_rate=warm))
    assert read.learning_rate == pytest.approx(0.001)
    assert read.schedule is not None and read.schedule.name == "keras"
    keras_schedule = read.schedule.keras
    assert keras_schedule is not None
    assert keras_schedule.lr(0) == 0.0 and keras_schedule.lr(50) == pytest.approx(0.0005)
    assert keras_schedule.lr(1100) == pytest.approx(0.0, abs=1e-12)


def test_a_rising_piecewise_schedule_is_a_warm_up_not_a_decay() -> None:
    rising = schedule("PiecewiseConstantDecay", boundaries=[50], values=[1e-4, 1e-3])
    read = Optimizer.model_validate(adam(learning_rate=rising))
    assert read.learning_rate == pytest.approx(1e-3)
    assert read.schedule is not None and read.schedule.name == "constant"


def test_a_schedule_that_is_not_keras_is_refused_by_name() -> None:
    custom = serialized("MyWarmup", {"peak": 0.1}, module="keras.optimizers.schedules")
    with pytest.raises(ValidationError, match="'MyWarmup' is not a Keras schedule"):
        Optimizer.model_validate(adam(learning_rate=custom))


def test_a_stored_optimizer_with_a_schedule_validates_again() -> None:
    decay = schedule("InverseTimeDecay", initial_learning_rate=0.1, decay_steps=10,
                     decay_rate=0.5, staircase=False)  # fmt: skip
    read = Optimizer.model_validate(adam(learning_rate=decay))
    again = Optimizer.model_validate(read.model_dump(exclude_none=True))
    assert again == read


def test_loss_serialize_form_and_get_config_are_read() -> None:
    config = {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
              "from_logits": True, "ignore_class": None}  # fmt: skip
    for loss in (config, serialized("SparseCategoricalCrossentropy", config, "keras.losses")):
        read = Loss.model_validate(loss)
        assert read.name == "sparse_categorical_crossentropy" and read.from_logits


def test_per_class_metric_vectors_are_set_aside_and_named() -> None:
    history = History.model_validate(
        {"loss": [2.3, 2.0], "f1_score": [[0.1, 0.2], [0.3, 0.4]], "accuracy": [0.1, 0.3]}
    )
    assert history.vector_keys == ["f1_score"] and history.series("f1_score") is None
    assert history.accuracy == [0.1, 0.3]


def test_input_moments_per_channel_give_a_typical_range() -> None:
    run = RunSpec.model_validate({"data": {"input_mean": [120.0, 110.0], "input_std": 60.0}})
    assert run.data is not None and run.data.typical_range() == (50.0, 180.0)
    with pytest.raises(ValidationError, match="input_mean has 2 channels, input_std 3"):
        RunSpec.model_validate({"data": {"input_mean": [1.0, 2.0], "input_std": [1, 1, 1]}})
    with pytest.raises(ValidationError):
        RunSpec.model_validate({"data": {"input_mean": math.inf}})


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 0},  # was a 500 (÷ 0)
        {"type": "max_pooling2d", "pool_size": 0},
        {"type": "conv1d", "filters": 2, "kernel_size": -1},
        {"type": "conv3d", "filters": 2, "kernel_size": [3, 3, 3, 3]},
        {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, "output_padding": -1},
        {"type": "cropping1d", "cropping": [[-1, 0]]},
    ],
)
def test_windows_strides_and_margins_out_of_range_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Layer(**fields)
