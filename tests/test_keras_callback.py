"""LossDoctorCallback on a real Keras model (256 sklearn digits, 4 epochs) against a live server,
and against a closed port."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest

from tests.test_client import free_port, live_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:256] / 16.0).astype("float32")[..., None]
    return x, d.target[:256].astype("int64")


def tiny_model(kernel_initializer: Any = "glorot_uniform", lr: float = 0.05) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=kernel_initializer),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=kernel_initializer),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def lossdoctor_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lossdoctor_client" and r.levelno >= logging.WARNING
    ]


def test_nan_run_warns_once_per_severe_symptom_and_prints_the_final_summary(
    live_server: str,  # noqa: F811
    digits: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lossdoctor_client.keras_callback import LossDoctorCallback

    x, y = digits
    # Weights of 1e20 overflow float32 in the first forward pass: the loss is NaN from epoch 1.
    model = tiny_model(keras.initializers.RandomNormal(stddev=1e20))
    callback = LossDoctorCallback(live_server, sample=(x[:64], y[:64]), timeout=15.0, batch_size=32)
    with caplog.at_level(logging.WARNING, logger="lossdoctor_client"):
        history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    assert np.isnan(history.history["loss"]).all()
    assert "non_finite_loss" in callback.warned
    warnings = lossdoctor_warnings(caplog)
    assert any("non_finite_loss" in w for w in warnings)
    assert len(warnings) == len(callback.warned)  # once per symptom, nothing else
    assert callback.diagnosis is not None and callback.diagnosis.report is not None
    assert len(callback.diagnosis.report.symptoms) >= 1
    out = capsys.readouterr().out
    assert "lossdoctor: problem:" in out
    top = callback.diagnosis.report.causes[0]
    assert "top cause:" in out
    for change in top.fix.changes[:8]:  # the change list, in the user's terms
        assert f"    {change.path}: " in out


def test_closed_port_training_completes_with_at_most_one_warning(
    digits: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lossdoctor_client.keras_callback import LossDoctorCallback

    x, y = digits
    model = tiny_model()
    callback = LossDoctorCallback(
        f"http://127.0.0.1:{free_port()}", sample=(x[:64], y[:64]), timeout=2.0
    )
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lossdoctor_client"):
        history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 4
    assert np.isfinite(history.history["loss"]).all()
    assert len(lossdoctor_warnings(caplog)) <= 1
    assert callback.diagnosis is None
    assert "lossdoctor:" not in capsys.readouterr().out
    assert time.monotonic() - start < 20


def test_healthy_run_every_two_epochs_diagnoses_without_severe_warnings(
    live_server: str,  # noqa: F811
    digits: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lossdoctor_client.client import run_from_keras
    from lossdoctor_client.keras_callback import LossDoctorCallback

    x, y = digits
    model = tiny_model(lr=0.1)
    spec = run_from_keras(model, sample=(x, y), batch_size=32)
    assert spec["optimizer"]["name"] == "sgd" and spec["optimizer"]["learning_rate"] == 0.1
    assert spec["loss"] == "sparse_categorical_crossentropy"
    callback = LossDoctorCallback(live_server, every_n_epochs=2, timeout=15.0, verbose=False)
    with caplog.at_level(logging.WARNING, logger="lossdoctor_client"):
        model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    assert callback.diagnosis is not None and callback.diagnosis.report is not None
    assert not callback.warned
    # The run (Keras JSON, optimizer) was accepted: no fallback to the history alone.
    assert not lossdoctor_warnings(caplog)
