"""Probe trainings end to end: the API, a real Redis, real `lossdoctor worker` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from sklearn.datasets import load_diabetes

from service.main import create_app
from service.settings import Settings
from tests.fashion import npz_bytes, sample
from tests.workers_env import celery_worker, pool_children, redis_available, redis_url, worker_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.tf,
    pytest.mark.skipif(not redis_available(), reason="needs Redis on 127.0.0.1:6379"),
]

DB = 7


def faulty_run(dataset_id: str, stddev: float = 1.0) -> dict[str, Any]:
    """A small CNN on 14×14 Fashion-MNIST with unscaled RandomNormal(stddev) initialization."""
    init = {"name": "random_normal", "stddev": stddev}
    layers = [
        {
            "type": "conv2d",
            "filters": 16,
            "kernel_size": 3,
            "activation": "relu",
            "kernel_initializer": init,
        },
        {"type": "max_pooling2d", "pool_size": 2},
        {
            "type": "conv2d",
            "filters": 32,
            "kernel_size": 3,
            "activation": "relu",
            "kernel_initializer": init,
        },
        {"type": "flatten"},
        {"type": "dense", "units": 64, "activation": "relu", "kernel_initializer": init},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    return {
        "model": {"input_shape": [14, 14, 1], "layers": layers},
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 32,
        "epochs": 10,
        "preprocessing": {"normalization": "none"},
        "data": {"dataset_id": dataset_id, "num_classes": 10, "num_examples": 768},
    }


STUCK = {
    "loss": [60.1, 2.35, 2.31, 2.303, 2.303, 2.302, 2.303, 2.303, 2.302, 2.303],
    "accuracy": [0.1] * 10,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url(DB)).flushdb()
    tmp = tmp_path_factory.mktemp("stack")
    queue = f"probes-test-{uuid.uuid4().hex[:8]}"
    env = worker_env(tmp / "data", DB, queue)
    settings = Settings(
        data_dir=tmp / "data", store_url=redis_url(DB), broker_url=redis_url(DB), probe_queue=queue
    )
    with (
        celery_worker(env, tmp / "worker.log") as worker,
        TestClient(create_app(settings)) as client,
    ):
        x, y = sample()
        upload = client.post("/v1/datasets", files={"file": ("s.npz", npz_bytes(x / 255.0, y))})
        assert upload.status_code == 201, upload.text
        yield {
            "client": client,
            "worker": worker,
            "dataset": upload.json()["id"],
            "log": tmp / "worker.log",
        }


def wait_for(client: TestClient, location: str, done: Any, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(location).json()
        if done(doc):
            return doc  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"timed out; last state: {doc['status']} {doc.get('progress')}")


def submit(client: TestClient, dataset: str, budget: float, seeds: int = 2) -> str:
    body = {
        "run": faulty_run(dataset),
        "history": STUCK,
        "probes": {"enabled": True, "budget_seconds": budget, "seeds": seeds},
    }
    r = client.post("/v1/diagnoses", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["report"]["causes"]
    return r.headers["location"]


def test_unscaled_init_is_confirmed_by_the_initializer_probe(stack: dict[str, Any]) -> None:
    client = stack["client"]
    location = submit(client, stack["dataset"], budget=60)
    doc = wait_for(client, location, lambda d: d["status"] in ("succeeded", "failed"))
    assert doc["status"] == "succeeded", doc.get("error")
    report = doc["report"]
    top = report["causes"][0]
    assert top["id"] == "poor_weight_initialization"
    assert top["probe"]["name"] == "initializer_by_activation" and top["probe"]["confirmed"]
    assert top["probe"]["probe_loss"] < top["probe"]["baseline_loss"] - 0.5
    # The combined probe trained the recommended fix itself; the fix carries what it measured.
    verified = top["fix"]["verified"]
    assert verified["name"] == "combined" and verified["confirmed"]
    assert verified["probe_loss"] < verified["baseline_loss"] and verified["seeds"] >= 2
    assert top["fix"]["changes"] and top["fix"]["patch"] == verified["change"]
    names = [p["name"] for p in report["probes"]]
    assert len(names) == len(set(names)) and "baseline" in names
    assert all(p["device"] for p in report["probes"] if p["status"] == "succeeded")
    assert (
        doc["progress"]["probes_done"] == doc["progress"]["probes_total"]
        or doc["progress"]["probes_done"] > 0
    )


def test_poison_sample_fails_that_diagnosis_readably_and_the_worker_serves_on(
    stack: dict[str, Any],
) -> None:
    client = stack["client"]
    x, y = sample(n=64, size=28)  # 28×28 images for a model that takes 14×14
    upload = client.post("/v1/datasets", files={"file": ("s.npz", npz_bytes(x / 255.0, y))})
    body = {
        "run": faulty_run(upload.json()["id"]),
        "history": STUCK,
        "probes": {"enabled": True, "budget_seconds": 30},
    }
    location = client.post("/v1/diagnoses", json=body).headers["location"]
    doc = wait_for(client, location, lambda d: d["status"] in ("succeeded", "failed"), timeout=120)
    assert doc["status"] == "failed"
    assert "[28, 28, 1]" in doc["error"] and "[14, 14, 1]" in doc["error"]
    assert doc["report"]["causes"]  # the static report is still there
    assert stack["worker"].poll() is None


def test_a_model_with_an_opaque_layer_keeps_its_static_report_and_probes_say_why(
    stack: dict[str, Any],
) -> None:
    client = stack["client"]
    run = faulty_run(stack["dataset"])
    noise = {
        "type": "opaque",
        "name": "noise",
        "keras_class": "GaussianNoise",
        "same_shape": True,
        "opaque_reason": "a Keras layer the analysis does not model",
    }
    run["model"]["layers"].insert(0, noise)  # fmt: skip
    body = {"run": run, "history": STUCK, "probes": {"enabled": True, "budget_seconds": 30}}
    location = client.post("/v1/diagnoses", json=body).headers["location"]
    doc = wait_for(client, location, lambda d: d["status"] in ("succeeded", "failed"), timeout=120)
    assert "'noise' (GaussianNoise) is kept opaque" in doc["error"]
    assert doc["report"]["causes"]  # the static report is still there
    assert any("kept opaque" in note for note in doc["report"]["notes"])
    assert stack["worker"].poll() is None


def test_a_regression_run_is_probed_with_its_own_loss_on_float_targets(
    stack: dict[str, Any],
) -> None:
    """sklearn's diabetes: float targets (25…346) trained with the run's MSE, not as labels."""
    client = stack["client"]
    d = load_diabetes()
    x = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
    upload = client.post("/v1/datasets", files={"file": ("d.npz", npz_bytes(x, d.target))})
    assert upload.status_code == 201, upload.text
    run = {
        "model": {
            "input_shape": [10],
            "layers": [
                {"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dense", "units": 1},
            ],
        },
        "optimizer": {"name": "sgd", "learning_rate": 1e-6},  # far too low for targets ~150
        "loss": "mse",
        "batch_size": 32,
        "epochs": 20,
        "data": {"dataset_id": upload.json()["id"], "num_examples": len(x)},
    }
    flat = [29000.0 - 10 * i for i in range(20)]  # MSE near E[y²]: the model learns nothing
    body = {
        "run": run,
        "history": {"loss": flat},
        "probes": {"enabled": True, "budget_seconds": 8, "seeds": 1},
    }
    r = client.post("/v1/diagnoses", json=body)
    assert r.status_code == 202, r.text
    doc = wait_for(client, r.headers["location"], lambda d: d["status"] in ("succeeded", "failed"))
    assert doc["status"] == "succeeded", doc.get("error")
    probes = {p["name"]: p for p in doc["report"]["probes"]}
    baseline = probes["baseline"]
    assert baseline["status"] == "succeeded"
    # The baseline trained the run itself: its MSE is on the targets' scale (Var(y) ≈ 5900,
    # E[y²] ≈ 29000), which labels taken as class ids could not give.
    assert 1000 < baseline["final_loss"] < 40000
    assert "label_audit" not in probes  # no class ids to audit


def test_delete_cancels_a_running_diagnosis_and_the_worker_serves_on(stack: dict[str, Any]) -> None:
    client = stack["client"]
    location = submit(client, stack["dataset"], budget=600)
    wait_for(client, location, lambda d: d["progress"]["probes_done"] >= 1, timeout=120)
    r = client.delete(location)
    assert r.status_code == 202 and r.json()["status"] == "canceled"
    time.sleep(4)  # a running probe stops within one window
    before = client.get(location).json()
    time.sleep(3)
    after = client.get(location).json()
    assert after["status"] == "canceled"
    assert after["progress"] == before["progress"]
    assert stack["worker"].poll() is None


def test_sigkilled_worker_process_still_completes_the_diagnosis(stack: dict[str, Any]) -> None:
    client = stack["client"]
    location = submit(client, stack["dataset"], budget=15)
    wait_for(client, location, lambda d: d["progress"]["probes_done"] >= 2, timeout=120)
    children = pool_children(stack["worker"].pid)
    assert children, "prefork pool has no child"
    for pid in children:
        os.kill(pid, signal.SIGKILL)  # the process running the probe dies mid-training
    doc = wait_for(client, location, lambda d: d["status"] in ("succeeded", "failed"), timeout=300)
    assert doc["status"] == "succeeded", doc.get("error")
    names = [p["name"] for p in doc["report"]["probes"]]
    assert len(names) == len(set(names))
    assert all(p["seeds"] == 2 for p in doc["report"]["probes"] if p["status"] == "succeeded")


def test_concurrent_probe_diagnoses_all_complete_unmixed(stack: dict[str, Any]) -> None:
    client = stack["client"]
    # Different faults, so a report landing on the wrong diagnosis would show.
    stddevs = [1.0, 0.05, 2.0]
    locations = []
    for stddev in stddevs:
        body = {
            "run": faulty_run(stack["dataset"], stddev),
            "history": STUCK,
            # The smallest plan: the baseline and the suspected cause's probes only.
            "probes": {"enabled": True, "budget_seconds": 1, "seeds": 1},
        }
        r = client.post("/v1/diagnoses", json=body)
        assert r.status_code == 202, r.text
        locations.append(r.headers["location"])
    docs = [
        wait_for(client, loc, lambda d: d["status"] in ("succeeded", "failed"), timeout=300)
        for loc in locations
    ]
    assert [d["status"] for d in docs] == ["succeeded"] * len(stddevs)
    for doc, stddev in zip(docs, stddevs, strict=True):
        stored = client.app.state.store.get_request(doc["id"])  # type: ignore[attr-defined]
        init = stored["run"]["model"]["layers"][0]["kernel_initializer"]
        assert init["stddev"] == stddev
        assert doc["report"]["probes"][0]["name"] == "baseline"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_alone_runs_probes_on_a_local_worker(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOSSDOCTOR_")}
    env.update(LOSSDOCTOR_DATA_DIR=str(tmp_path / "data"), TF_CPP_MIN_LOG_LEVEL="2")
    # The stop below may come before the worker has taken in its finished task, which Celery
    # then counts as running: a short grace keeps the stop inside the wait.
    env.update(LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS="2")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        x, y = sample(n=512)
        ds = httpx.post(base + "/v1/datasets", files={"file": ("s.npz", npz_bytes(x / 255.0, y))})
        body = {
            "run": faulty_run(ds.json()["id"]),
            "history": STUCK,
            "probes": {"enabled": True, "budget_seconds": 10, "seeds": 1},
        }
        r = httpx.post(base + "/v1/diagnoses", json=body)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 240
        doc = r.json()
        while doc["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            doc = httpx.get(base + r.headers["location"]).json()
        assert doc["status"] == "succeeded", (doc, (tmp_path / "serve.log").read_text()[-3000:])
        assert doc["report"]["probes"] and doc["report"]["causes"][0]["probe"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
