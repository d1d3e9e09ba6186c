"""Worker faults, for real: Redis (store and broker) stopping in the middle of a probe run."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings
from tests.fashion import npz_bytes, sample
from tests.test_faults import RedisServer, server  # noqa: F401  (fixture)
from tests.test_shutdown import completed_once, probe_body, wait_until
from tests.workers_env import celery_worker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.tf,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_a_probe_diagnosis_completes_after_redis_comes_back_mid_run(
    server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    queue = f"probes-outage-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path / "data", store_url=server.url, broker_url=server.url, probe_queue=queue
    )
    env = {
        **os.environ,
        "LOSSDOCTOR_DATA_DIR": str(tmp_path / "data"),
        "LOSSDOCTOR_STORE_URL": server.url,
        "LOSSDOCTOR_BROKER_URL": server.url,
        "LOSSDOCTOR_PROBE_QUEUE": queue,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with TestClient(create_app(settings)) as client, celery_worker(env, tmp_path / "w.log"):
        x, y = sample(n=256)
        files = {"file": ("s.npz", npz_bytes(x / 255.0, y))}
        dataset = client.post("/v1/datasets", files=files).json()["id"]
        location = client.post("/v1/diagnoses", json=probe_body(dataset)).headers["location"]
        wait_until(
            lambda: client.get(location).json(),
            lambda d: d["progress"]["probes_done"] >= 2,
            timeout=240,
        )
        server.stop()  # store and broker gone while probes train
        time.sleep(6)
        server.start()  # same port, same data (append-only file)
        completed_once(lambda: client.get(location).json())
    assert "the store went away" in (tmp_path / "w.log").read_text()
