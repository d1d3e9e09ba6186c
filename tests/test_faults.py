"""Faults, for real: Redis going away and coming back, API restarts, concurrent load."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings
from tests.runs import LN10, body, run

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server this test can stop and start again on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.dir = _free_port(), tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def settings_for(srv: RedisServer, tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp / "data", store_url=srv.url, broker_url=srv.url, probe_queue="faults-test"
    )


def test_redis_down_is_503_everywhere_and_recovers_without_restart(
    server: RedisServer, tmp_path: Path
) -> None:
    with TestClient(create_app(settings_for(server, tmp_path))) as client:
        before = client.post("/v1/diagnoses", json=body()).json()["id"]
        server.stop()
        assert client.get("/readyz").status_code == 503
        r = client.post("/v1/diagnoses", json=body())
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem")
        probe = client.post("/v1/diagnoses", json=body(run()) | {"probes": {"enabled": True}})
        assert probe.status_code == 503
        server.start()  # AOF on: what was accepted before the outage is still there
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/diagnoses/{before}").status_code == 200
        assert client.post("/v1/diagnoses", json=body()).status_code == 201
        ids = [d["id"] for d in client.get("/v1/diagnoses", params={"limit": 100}).json()["items"]]
        assert len(ids) == 2  # nothing half-accepted during the outage


def test_state_survives_an_api_restart(server: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path)
    with TestClient(create_app(settings)) as first:
        queued = first.post("/v1/diagnoses", json=body(run()) | {"probes": {"enabled": True}})
        done = first.post("/v1/diagnoses", json=body()).json()
    with TestClient(create_app(settings)) as second:
        assert second.get(f"/v1/diagnoses/{done['id']}").json() == done
        assert second.get(queued.headers["location"]).json()["status"] == "queued"


def test_a_hundred_concurrent_diagnoses_all_land_unmixed(
    server: RedisServer, tmp_path: Path
) -> None:
    with TestClient(create_app(settings_for(server, tmp_path))) as client:

        def submit(i: int) -> tuple[int, dict]:  # type: ignore[type-arg]
            # Each history ends at its own level, so a mixed-up report would show it.
            level = 0.2 + i / 100
            loss = [LN10] + [level + 0.5 / (k + 1) for k in range(10)]
            return i, client.post("/v1/diagnoses", json={"history": {"loss": loss}}).json()

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(submit, range(100)))
        assert len({doc["id"] for _, doc in results}) == 100
        for i, doc in results:
            stored = client.get(f"/v1/diagnoses/{doc['id']}").json()
            assert stored == doc
            final = 0.2 + i / 100 + 0.5 / 9  # the median of the last three epochs
            assert f"to {final:.3g}" in stored["report"]["summary"]
        listed = client.get("/v1/diagnoses", params={"limit": 100}).json()["items"]
        assert len(listed) == 100
