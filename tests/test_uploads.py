"""Uploads as Keras users fit them: regression targets, ±1 labels, multi-hot y, 5-D volumes.

Each is accepted and feeds a diagnosis; class checks apply only where y names classes.
Real data: sklearn's diabetes, breast_cancer and digits.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from service.analysis.data import load_sample, num_classes_of, sample_stats


def npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def digits_multi_hot() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    y = np.stack([d.target % 2 == 1, d.target > 5, np.isin(d.target, [2, 3, 5, 7])], axis=1)
    return d.images[..., None] / 16.0, y.astype(np.float32)


def digits_volumes() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    frames = d.images[:400].reshape(100, 4, 8, 8, 1) / 16.0  # four scans per volume
    return frames.astype(np.float32), d.target[:400:4]


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    d = load_diabetes()
    return d.data.astype(np.float32), d.target.astype(np.float32)


def breast_cancer_pm1() -> tuple[np.ndarray, np.ndarray]:
    d = load_breast_cancer()
    return d.data.astype(np.float32), np.where(d.target == 1, 1.0, -1.0)


SAMPLES = {
    "regression": (diabetes, None),
    "plus-minus-one": (breast_cancer_pm1, 2),
    "multi-hot": (digits_multi_hot, 3),
    "volumes": (digits_volumes, 10),
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_keras_shaped_uploads_are_accepted_and_feed_a_diagnosis(
    client: TestClient, kind: str
) -> None:
    make, classes = SAMPLES[kind]
    x, y = make()
    r = client.post("/v1/datasets", files={"file": ("s.npz", npz(x=x, y=y))})
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["num_examples"] == len(x) and meta["num_classes"] == classes
    body = {
        "run": {"data": {"dataset_id": meta["id"]}, "loss": "mse"},
        "history": {"loss": [29000.0, 25000.0, 24000.0, 23900.0]},
    }
    report = client.post("/v1/diagnoses", json=body).json()["report"]
    checks = {c["id"] for c in report["data_checks"]}
    assert ("class_balance" in checks) == (kind in ("plus-minus-one", "volumes"))


def test_plus_minus_one_labels_read_as_two_classes() -> None:
    x, y = breast_cancer_pm1()
    _, labels = load_sample(npz(x=x, y=y), 10_000, 10**9)
    assert set(labels.tolist()) == {0, 1} and num_classes_of(labels) == 2
    counts = sample_stats(x, labels)["class_counts"]
    assert counts == {"0": int((y < 0).sum()), "1": int((y > 0).sum())}


def test_one_hot_rows_still_become_class_ids() -> None:
    d = load_digits()
    _, labels = load_sample(npz(x=d.images, y=np.eye(10)[d.target]), 10_000, 10**9)
    assert labels.tolist() == d.target.tolist()


def test_regression_targets_have_no_class_counts_but_duplicates_still_count() -> None:
    x, y = diabetes()
    x, y = np.concatenate([x, x[:3]]), np.concatenate([y, y[:3] + 1.0])
    _, targets = load_sample(npz(x=x, y=y), 10_000, 10**9)
    stats = sample_stats(x, targets)
    assert stats["class_counts"] == {} and num_classes_of(targets) is None
    assert stats["duplicate_count"] == 3 and stats["conflicting_duplicates"] == 3


def open_size_cnn() -> dict[str, Any]:
    """Keras 3 `to_json()` of Sequential([Input((None, None, 1)), Conv2D, GAP, Dense])."""

    def entry(cls: str, **config: Any) -> dict[str, Any]:
        return {"module": "keras.layers", "class_name": cls, "config": config,
                "registered_name": None}  # fmt: skip

    layers = [
        entry("InputLayer", name="in", batch_shape=[None, None, None, 1]),
        entry("Conv2D", name="conv", filters=8, kernel_size=[3, 3], activation="relu"),
        entry("GlobalAveragePooling2D", name="gap"),
        entry("Dense", name="out", units=10, activation="softmax"),
    ]
    return {"module": "keras", "class_name": "Sequential", "config": {"layers": layers}}


def test_an_open_input_size_is_taken_from_the_uploaded_sample(client: TestClient) -> None:
    d = load_digits()
    r = client.post("/v1/datasets", files={"file": ("s.npz", npz(x=d.images / 16, y=d.target))})
    run = {"model": {"keras_json": open_size_cnn()}, "loss": "sparse_categorical_crossentropy"}
    history = {"loss": [2.3, 2.2, 2.1, 2.0]}
    without = client.post("/v1/diagnoses", json={"run": run, "history": history}).json()
    assert any("Model shapes unknown" in note for note in without["report"]["notes"])
    run["data"] = {"dataset_id": r.json()["id"]}
    report = client.post("/v1/diagnoses", json={"run": run, "history": history}).json()["report"]
    assert not any("Model shapes unknown" in note for note in report["notes"])
    checks = {c["id"]: c["status"] for c in report["data_checks"]}
    assert checks["input_shape"] == "ok"


def test_an_uploaded_regression_target_gives_the_variance_a_loss_is_read_against(
    client: TestClient,
) -> None:
    x, y = diabetes()
    meta = client.post("/v1/datasets", files={"file": ("s.npz", npz(x=x, y=y))}).json()
    targets = meta["stats"]["targets"]
    assert targets["min"] == pytest.approx(float(y.min()))
    assert targets["std"] == pytest.approx(float(y.std()), rel=1e-5)
    # An MSE that stays at Var(y) is a model that predicts the mean: stuck, not healthy.
    variance = float(y.var())
    body = {
        "run": {"data": {"dataset_id": meta["id"]}, "loss": "mse"},
        "history": {"loss": [variance * f for f in (1.3, 1.05, 1.0, 1.0, 0.99, 1.0)]},
    }
    report = client.post("/v1/diagnoses", json=body).json()["report"]
    assert report["verdict"] == "problem", report
