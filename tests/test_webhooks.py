"""Completion webhooks: signed, retried with backoff, and refused towards private networks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
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
def hooked(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, webhook_allow_private=True)
    with TestClient(create_app(settings)) as client:
        yield client


def test_completion_is_posted_signed_and_retried(hooked: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("service.webhooks.time.sleep", lambda _: None)  # backoff without waiting
    receiver = Receiver(failures=2)
    created = hooked.post("/v1/diagnoses", json=body() | {"callback_url": receiver.url}).json()
    assert receiver.done.wait(10)
    assert len(receiver.received) == 3  # two 503s, then delivered
    headers, raw = receiver.received[-1]
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
