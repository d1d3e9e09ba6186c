"""Completion webhooks: signed, retried with backoff, and refused towards private networks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings
from service.webhooks import sign
from tests.runs import body
from tests.workers_env import celery_worker

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver:
    """A local HTTP endpoint that fails the first `failures` deliveries, then accepts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.received = failures, []  # type: ignore[var-annotated]
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append((dict(self.headers), raw))
                ok = len(outer.received) > outer.failures
                self.send_response(200 if ok else 503)
                self.end_headers()
                if ok:
                    outer.done.set()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The API with the local (filesystem) queue; tests start the worker that delivers."""
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, webhook_allow_private=True)
    with TestClient(create_app(settings)) as client:
        yield client, tmp_path


def delivering_worker(data: Path, log: Path) -> Any:
    """A real `lossdoctor worker` on the same local queue: webhooks are its tasks."""
    env = dict(
        os.environ,
        LOSSDOCTOR_DATA_DIR=str(data),
        LOSSDOCTOR_WEBHOOK_SECRET=SECRET,
        LOSSDOCTOR_WEBHOOK_ALLOW_PRIVATE="true",
        LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS="1",
    )
    for key in ("LOSSDOCTOR_STORE_URL", "LOSSDOCTOR_BROKER_URL", "LOSSDOCTOR_PROBE_QUEUE"):
        env.pop(key, None)
    return celery_worker(env, log)


def test_completion_is_posted_signed_and_retried(hooked: tuple[TestClient, Path]) -> None:
    client, data = hooked
    receiver = Receiver(failures=2)
    created = client.post("/v1/diagnoses", json=body() | {"callback_url": receiver.url}).json()
    with delivering_worker(data, data / "worker.log"):
        assert receiver.done.wait(60), (data / "worker.log").read_text()[-2000:]
    assert len(receiver.received) == 3  # two 503s, then delivered after a 2 s and a 4 s backoff
    headers, raw = receiver.received[-1]
    assert len({h["webhook-id"] for h, _ in receiver.received}) == 1  # one event, three tries
    event = json.loads(raw)
    assert event["type"] == "diagnosis.succeeded" and event["data"]["id"] == created["id"]
    assert "_tenant" not in event["data"]
    expected = sign(SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), raw)
    assert hmac.compare_digest(headers["webhook-signature"], expected)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(
        key,
        f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw,
        hashlib.sha256,
    ).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_a_webhook_retry_outlives_a_worker_restart(hooked: tuple[TestClient, Path]) -> None:
    client, data = hooked
    receiver = Receiver(failures=1)
    client.post("/v1/diagnoses", json=body() | {"callback_url": receiver.url})
    with delivering_worker(data, data / "first.log"):
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.received) == 1  # failed; its retry now waits 2 s in this worker
    assert not receiver.done.is_set()  # the worker stopped before the retry was due
    with delivering_worker(data, data / "second.log"):
        assert receiver.done.wait(60), (data / "second.log").read_text()[-2000:]
    assert len(receiver.received) == 2


def test_an_api_restart_loses_no_queued_webhook(tmp_path: Path) -> None:
    receiver = Receiver()
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, webhook_allow_private=True)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/diagnoses", json=body() | {"callback_url": receiver.url})
    # The API is gone; the event waits in the queue for a worker, not in the API's memory.
    with delivering_worker(tmp_path, tmp_path / "worker.log"):
        assert receiver.done.wait(60)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "http://[::1]:8000/x",
    ],
)
def test_callbacks_to_private_networks_are_refused(client: TestClient, url: str) -> None:
    r = client.post("/v1/diagnoses", json=body() | {"callback_url": url})
    assert r.status_code == 422, r.text
    assert client.get("/v1/diagnoses").json()["items"] == []


def test_allowlist_limits_callback_hosts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_allow_hosts=["hooks.example.com"])
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/diagnoses", json=body() | {"callback_url": "https://evil.test/x"})
        assert r.status_code == 422 and "ALLOW_HOSTS" in r.json()["detail"]
