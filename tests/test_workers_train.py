"""workers.data and workers.train: real (tiny) trainings on stand-in Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.schemas.run import RunSpec
from workers import data as data_module
from workers.data import ProbeData, apply_preprocessing, from_sample, stand_in, without_rows

HW = 16


# ---------------------------------------------------------------- data (no TensorFlow)


def test_stand_in_fits_the_input_shape_classes_and_value_range() -> None:
    data = stand_in([12, 10, 3], 4, n=200, value_range=(0.0, 255.0))
    assert data.x_train.shape[1:] == (12, 10, 3) and data.x_train.dtype == np.float32
    assert len(data.x_train) + len(data.x_val) == 200
    assert set(np.unique(data.y_train)) == {0, 1, 2, 3} and data.num_classes == 4
    assert data.x_train.min() >= 0.0 and 200 < data.x_train.max() <= 255.0
    assert np.array_equal(data.x_train[..., 0], data.x_train[..., 2])  # channels replicated
    assert data.source == "stand-in: fashion-mnist" and data.note == ""


def test_stand_in_for_more_than_ten_classes_says_so() -> None:
    data = stand_in([8, 8, 1], 100, n=100)
    assert data.num_classes == 10 and "90" in data.note


def test_stand_in_without_the_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIR", Path("/nonexistent"))
    data_module.fashion_mnist_train.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            stand_in([8, 8, 1], 10)
    finally:
        data_module.fashion_mnist_train.cache_clear()


def test_from_sample_caps_and_holds_out_every_class() -> None:
    x = np.random.default_rng(0).random((1000, 4, 4, 1))
    y = np.arange(1000) % 5
    data = from_sample(x, y, cap=300, seed=1)
    assert len(data.x_train) + len(data.x_val) == 300
    assert set(np.unique(data.y_val)) == set(range(5))
    assert 0.15 < len(data.x_val) / 300 < 0.25
    assert "300 of the sample's 1000" in data.note
    again = from_sample(x, y, cap=300, seed=1)
    assert np.array_equal(data.x_train, again.x_train)


def test_a_label_fix_drops_the_rows_it_lists_and_refuses_rows_the_sample_lacks() -> None:
    x, y = np.arange(10, dtype=np.float32)[:, None], np.arange(10) % 2
    kept_x, kept_y = without_rows(x, y, [7, 2, 2])
    assert kept_x[:, 0].tolist() == [0, 1, 3, 4, 5, 6, 8, 9] and len(kept_y) == 8
    with pytest.raises(ValueError, match="row 10"):
        without_rows(x, y, [10])
    with pytest.raises(ValueError, match="leaves 1"):
        without_rows(x, y, list(range(9)))


def test_preprocessing_uses_training_statistics() -> None:
    x = np.random.default_rng(0).uniform(10, 50, (100, 2, 2, 3)).astype(np.float32)
    data = ProbeData(x[:80], np.zeros(80, np.int32), x[80:], np.zeros(20, np.int32), 2, "sample")
    rescaled = apply_preprocessing(data, "rescale")
    assert rescaled.x_train.min() == 0.0 and rescaled.x_train.max() == pytest.approx(1.0)
    standardized = apply_preprocessing(data, "standardize")
    per_channel = standardized.x_train.reshape(-1, 3)
    assert np.allclose(per_channel.mean(0), 0, atol=1e-5) and np.allclose(per_channel.std(0), 1)
    assert apply_preprocessing(data, "unknown") is data


# ---------------------------------------------------------------- training (TensorFlow)

tf_only = pytest.mark.tf


@pytest.fixture(scope="module")
def fashion() -> ProbeData:
    return stand_in([HW, HW, 1], 10, n=640)  # 512 to train on


def tiny_run(init: Any = "he_normal", **overrides: Any) -> RunSpec:
    layers = [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu",
         "kernel_initializer": init},
        {"type": "max_pooling2d"},
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "activation": "relu",
         "kernel_initializer": init},
        {"type": "global_average_pooling2d"},
        {"type": "dense", "units": 10, "activation": "softmax", "kernel_initializer": init},
    ]  # fmt: skip
    spec: dict[str, Any] = {
        "model": {"input_shape": [HW, HW, 1], "layers": layers},
        "optimizer": {"name": "adam", "learning_rate": 3e-3},
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 32,
        "preprocessing": {"normalization": "rescale"},
    }
    spec.update(overrides)
    return RunSpec.model_validate(spec)


@tf_only
def test_loss_falls_with_he_init_and_stays_high_with_a_huge_init(fashion: ProbeData) -> None:
    from workers.train import train

    good = train(tiny_run(), fashion, 60, 0, eval_every=10)
    bad = train(tiny_run({"name": "random_normal", "stddev": 3.0}), fashion, 60, 0, eval_every=10)
    assert good.steps_done == 60 and len(good.curve) == 6
    assert good.curve[-1] is not None and good.curve[0] is not None
    assert good.curve[-1] < good.curve[0] - 0.1
    assert good.final_loss is not None and bad.final_loss is not None
    assert bad.final_loss > 3 * good.final_loss
    assert good.val_loss is not None and good.val_accuracy is not None
    assert good.val_accuracy > 0.2 and not good.non_finite and not good.stopped
    assert good.device.endswith(":0") and good.weights is None


@tf_only
def test_same_seed_repeats_a_probe(fashion: ProbeData) -> None:
    from workers.train import train

    first, again = (train(tiny_run(), fashion, 20, 7, eval_every=10) for _ in range(2))
    assert first.curve == pytest.approx(again.curve, rel=1e-4)


@tf_only
def test_non_finite_loss_ends_the_probe(fashion: ProbeData) -> None:
    from workers.train import train

    run = tiny_run("glorot_uniform", optimizer={"name": "sgd", "learning_rate": 1e4})
    layers = run.model.layers if run.model and run.model.layers else []
    for layer in layers[:-1]:
        if layer.activation:
            layer.activation = "elu"  # relu units die quietly instead of overflowing
    result = train(run, fashion, 60, 0, eval_every=10)
    assert result.non_finite and result.final_loss is None and result.val_loss is None
    assert len(result.curve) == 6 and result.curve[-1] is None
    assert result.steps_done < 60


@tf_only
def test_should_stop_ends_the_probe_within_a_window(fashion: ProbeData) -> None:
    from workers.train import train

    calls: list[int] = []

    def should_stop() -> bool:
        calls.append(1)
        return True

    result = train(tiny_run(), fashion, 5000, 0, eval_every=25, should_stop=should_stop)
    assert result.stopped and calls
    assert result.steps_done <= 25 + 5  # the first poll, plus batches already in flight


@tf_only
def test_an_uneven_last_window_and_continuing_from_weights(fashion: ProbeData) -> None:
    from workers.train import train

    first = train(tiny_run(), fashion, 25, 0, eval_every=10, keep_weights=True)
    assert first.steps_done == 25 and len(first.curve) == 3 and first.weights is not None
    more = train(
        tiny_run(), fashion, 20, 0, eval_every=10, initial_weights=first.weights, start_step=25
    )
    assert more.curve[0] is not None and first.curve[0] is not None
    assert more.curve[0] < first.curve[0]  # it went on from trained weights


@tf_only
def test_lr_range_test_suggests_a_sane_rate_for_adam(fashion: ProbeData) -> None:
    from workers.train import lr_range_test

    sweep = lr_range_test(tiny_run(), fashion, steps=100)
    assert 1e-5 <= sweep["suggested_lr"] <= 1.0
    assert sweep["min_loss_lr"] >= sweep["suggested_lr"]
    assert len(sweep["lrs"]) == len(sweep["losses"]) <= 100
    assert sweep["lrs"][0] == pytest.approx(1e-7)
