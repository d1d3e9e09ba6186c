"""Stopping the service the way a host does: real signals to real processes.

`lossdoctor serve` owns its local worker (SIGTERM stops both, nothing is left behind, and the
interrupted diagnosis completes after a restart); `lossdoctor worker` on SIGTERM stops within
its configured time and hands its unfinished task to the next worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings
from tests.fashion import npz_bytes, sample
from tests.test_client import free_port
from tests.test_probes_integration import STUCK, faulty_run
from tests.workers_env import celery_worker, pool_children, redis_available, redis_url, worker_env
from workers.shutdown import KILL_AFTER

pytestmark = [pytest.mark.integration, pytest.mark.tf]

GRACE = 2  # LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS in these tests
SLACK = 10  # a busy 2-core CI machine
# serve: soft shutdown + its SIGKILL fallback's wait; a worker: soft shutdown + the pool
# child's SIGKILL deadline (workers/shutdown.py).
SERVE_STOP_BOUND = GRACE + 15 + SLACK
WORKER_STOP_BOUND = GRACE + KILL_AFTER + SLACK
BUDGET = 10  # probe seconds: long enough to be stopped mid-run, short to finish after


def probe_body(dataset: str, budget: float = BUDGET) -> dict[str, Any]:
    return {
        "run": faulty_run(dataset),
        "history": STUCK,
        "probes": {"enabled": True, "budget_seconds": budget, "seeds": 1},
    }


def wait_until(get: Any, done: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = get()
        if done(doc):
            return doc
        time.sleep(0.3)
    raise AssertionError(f"timed out; last state: {doc.get('status')} {doc.get('progress')}")


def completed_once(get: Any) -> dict[str, Any]:
    """Wait for the diagnosis to finish: it succeeded, and no probe was reported twice."""
    doc = wait_until(get, lambda d: d["status"] not in ("queued", "running"), timeout=300)
    assert doc["status"] == "succeeded", doc.get("error")
    names = [p["name"] for p in doc["report"]["probes"]]
    assert "baseline" in names and len(names) == len(set(names))
    return doc


def group_alive(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@contextmanager
def serve(data: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`lossdoctor serve` with its local worker (embedded store, filesystem queue)."""
    env = dict(
        os.environ,
        LOSSDOCTOR_DATA_DIR=str(data),
        LOSSDOCTOR_PORT=str(port),
        LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS=str(GRACE),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    for key in ("LOSSDOCTOR_STORE_URL", "LOSSDOCTOR_BROKER_URL", "LOSSDOCTOR_LOCAL_WORKER"):
        env.pop(key, None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _livez(port), lambda ok: ok.get("ok"), timeout=60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _livez(port: int) -> dict[str, Any]:
    try:
        return {"ok": httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200}
    except httpx.TransportError:
        return {}


def test_sigterm_stops_serve_and_its_worker_and_the_probe_diagnosis_completes_after_restart(
    tmp_path: Path,
) -> None:
    port, data, log = free_port(), tmp_path / "data", tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with serve(data, port, log) as proc:
        (worker,) = pool_children(proc.pid)  # the local worker: its own process group
        assert os.getpgid(worker) == worker != os.getpgid(proc.pid)
        x, y = sample(n=256)
        files = {"file": ("s.npz", npz_bytes(x / 255.0, y))}
        dataset = httpx.post(f"{url}/v1/datasets", files=files).json()["id"]
        location = (
            url + httpx.post(f"{url}/v1/diagnoses", json=probe_body(dataset)).headers["location"]
        )
        wait_until(
            lambda: httpx.get(location).json(),
            lambda d: d["progress"]["probes_done"] >= 1,
            timeout=240,
        )
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=SERVE_STOP_BOUND) == 0
        took = time.monotonic() - stopped_at
        assert not group_alive(worker), "a process of the local worker outlived serve"
    assert took < SERVE_STOP_BOUND

    with serve(data, port, log):
        completed_once(lambda: httpx.get(location).json())
    assert "requeued diagnosis" in log.read_text()


@pytest.mark.skipif(not redis_available(), reason="needs Redis (LOSSDOCTOR_TEST_REDIS)")
def test_sigterm_worker_stops_in_time_and_the_next_worker_completes_its_task(
    tmp_path: Path,
) -> None:
    db = 9
    redis.Redis.from_url(redis_url(db)).flushdb()
    queue = f"probes-stop-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        tmp_path / "data",
        db,
        queue,
        LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS=str(GRACE),
        # Redelivery here comes from the worker handing the task back, not from this timeout.
        LOSSDOCTOR_BROKER_VISIBILITY_TIMEOUT="3600",
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        store_url=redis_url(db),
        broker_url=redis_url(db),
        probe_queue=queue,
    )
    with TestClient(create_app(settings)) as client:
        x, y = sample(n=256)
        files = {"file": ("s.npz", npz_bytes(x / 255.0, y))}
        dataset = client.post("/v1/datasets", files=files).json()["id"]
        with celery_worker(env, tmp_path / "w1.log") as first:
            location = client.post("/v1/diagnoses", json=probe_body(dataset)).headers["location"]
            wait_until(
                lambda: client.get(location).json(),
                lambda d: d["progress"]["probes_done"] >= 1,
                timeout=240,
            )
            stopped_at = time.monotonic()
            first.send_signal(signal.SIGTERM)  # the main process only, as `docker stop` does
            first.wait(timeout=WORKER_STOP_BOUND)
            took = time.monotonic() - stopped_at
            done_before = client.get(location).json()["progress"]["probes_done"]
        assert took < WORKER_STOP_BOUND
        assert client.get(location).json()["status"] == "running"
        with celery_worker(env, tmp_path / "w2.log"):
            doc = completed_once(lambda: client.get(location).json())
    # The second worker reused the trainings the first had stored (counted again, not re-run).
    assert doc["progress"]["probes_done"] >= done_before
