"""workers.data and workers.train: real (tiny) trainings on stand-in Fashion-MNIST."""

from __future__ import annotations

import sys
from collections.abc import Callable
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


def counted(monkeypatch: pytest.MonkeyPatch, func: Callable[..., Any]) -> list[None]:
    """A list that grows by one at every call of `func`, wherever a loaded module of the
    service or the workers bound it by name."""
    calls: list[None] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return func(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("service", "workers"):
            for attr, value in list(vars(module).items()):
                if value is func:
                    monkeypatch.setattr(module, attr, wrapper)
    return calls


@tf_only
def test_same_seed_repeats_a_probe_and_describes_its_model_once(
    fashion: ProbeData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import build
    from workers.train import train

    describes = counted(monkeypatch, build.describe)
    run = tiny_run(loss=None)  # the loss follows the head: the build, compile and loss read it
    first = train(run, fashion, 20, 7, eval_every=10)
    assert len(describes) == 1
    again = train(run, fashion, 20, 7, eval_every=10, arch=build.architecture_of(run))
    assert len(describes) == 2  # the caller's own describe(), none in training
    assert first.curve == pytest.approx(again.curve, rel=1e-4)


@tf_only
def test_keras_json_is_translated_once_and_each_model_described_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One probe diagnosis' path: the POST (validation, static report, probe limits), then the
    worker's start (the stored request, the static context) and its probes' runs."""
    from fastapi.testclient import TestClient

    from bench.api_bench import request_body
    from service.analysis.architecture import describe
    from service.analysis.probes import plan
    from service.main import create_app
    from service.schemas.diagnosis import DiagnosisRequest
    from service.schemas.keras import graph
    from service.schemas.model import TRANSLATED
    from service.settings import Settings
    from workers.probe_runner import _session

    reads, describes = counted(monkeypatch, graph.read), counted(monkeypatch, describe)
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/diagnoses", json=request_body(20) | {"probes": {"enabled": True}})
        assert r.status_code == 202, r.text
        store = client.app.state.store  # type: ignore[attr-defined]
    assert (len(reads), len(describes)) == (1, 1)

    # The worker's process reads the request back with its translation, describes it once.
    stored = store.get_diagnosis(r.json()["id"])
    request = DiagnosisRequest.model_validate(store.get_request(stored.id), context=TRANSLATED)
    session = _session(store, stored.id, settings, request)
    assert (len(reads), len(describes)) == (1, 2)
    probes = {p.name: p for p in plan(session.ctx, stored.report)}
    for name in ("baseline", "lr_x0.1", "batch_x4", "width_x2", "width_x2"):
        session.run_of(probes[name])
    # Only the wider model is a new one: its edited Keras JSON read and described, once.
    assert (len(reads), len(describes)) == (2, 3)


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


def test_float_targets_and_multi_hot_rows_are_split_as_they_are() -> None:
    x = np.random.default_rng(0).random((50, 3))
    values = from_sample(x, np.linspace(10.0, 500.0, 50))
    assert values.targets == "values" and values.num_classes is None
    assert values.y_train.dtype == np.float32 and values.y_train.max() > 100
    rows = np.eye(4)[np.arange(50) % 4] + np.eye(4)[(np.arange(50) + 1) % 4]
    multi = from_sample(x, rows)
    assert multi.targets == "multi_hot" and multi.num_classes == 4
    assert multi.y_val.shape[1] == 4 and len(multi.y_train) + len(multi.y_val) == 50


@tf_only
def test_multi_hot_rows_train_with_binary_crossentropy() -> None:
    """sklearn digits with two labels per image (even?, at least 5?): per-label sigmoids."""
    from sklearn.datasets import load_digits

    from workers.train import train

    digits = load_digits()
    rows = np.stack([digits.target % 2 == 0, digits.target >= 5], axis=1).astype(np.float64)
    data = from_sample(digits.data.reshape(-1, 8, 8, 1) / 16.0, rows, cap=600)
    run = RunSpec.model_validate(
        {
            "model": {
                "input_shape": [8, 8, 1],
                "layers": [
                    {"type": "flatten"},
                    {"type": "dense", "units": 32, "activation": "relu"},
                    {"type": "dense", "units": 2, "activation": "sigmoid"},
                ],
            },
            "optimizer": {"name": "adam", "learning_rate": 1e-2},
            "loss": "binary_crossentropy",
            "batch_size": 32,
        }
    )
    result = train(run, data, 40, 0, eval_every=10, preprocess=False)
    assert result.curve[0] is not None and result.final_loss is not None
    assert result.final_loss < min(result.curve[0], np.log(2))  # below a coin flip per label
    assert result.val_accuracy is not None and result.val_accuracy > 0.6
