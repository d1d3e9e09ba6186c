"""/metrics, request ids and JSON logs (no TensorFlow, no broker)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.logging import JsonFormatter, configure_logging, request_id_var
from service.main import create_app
from service.queue import ProbeQueue
from service.settings import Settings
from tests.runs import body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    created = client.post("/v1/diagnoses", json=body())
    assert created.status_code == 201
    assert client.get(f"/v1/diagnoses/{created.json()['id']}").status_code == 200
    assert client.get("/v1/diagnoses/dg_nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    post = {"method": "POST", "route": "/v1/diagnoses", "status": "201"}
    assert value(text, "lossdoctor_http_requests_total", **post) == 1
    assert value(text, "lossdoctor_http_request_duration_seconds_count", **post) == 1
    # The template, not the raw path: one series for every diagnosis id.
    one = {"method": "GET", "route": "/v1/diagnoses/{diagnosis_id}"}
    assert value(text, "lossdoctor_http_requests_total", **one, status="200") == 1
    assert value(text, "lossdoctor_http_requests_total", **one, status="404") == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(text, "lossdoctor_http_requests_total", **unmatched) == 1
    assert "dg_nope" not in text and "/no/such/path" not in text
    assert value(text, "lossdoctor_diagnoses_created_total", status="succeeded") == 1
    # The local filesystem queue is empty; the worker count is a Redis-only metric.
    assert value(text, "lossdoctor_queue_depth", queue="probes") == 0


def test_queue_depth_counts_the_local_transports_messages(
    client: TestClient, settings: Settings
) -> None:
    folder = settings.data_dir / "queue"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (folder / f"{i}_abc.probes.msg").write_bytes(b"{}")
    (folder / "9_abc.gpu.msg").write_bytes(b"{}")
    text = client.get("/metrics").text
    assert value(text, "lossdoctor_queue_depth", queue="probes") == 3
    assert value(text, "lossdoctor_queue_depth", queue="gpu") == 1


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    r = client.post("/v1/diagnoses", json=body(), headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    generated = client.get("/livez").headers["x-request-id"]
    assert len(generated) == 32
    # A header that could forge log lines is replaced, not echoed.
    forged = client.get("/livez", headers={"X-Request-ID": "a\tb" + "x" * 200})
    assert forged.headers["x-request-id"] != "a\tb" + "x" * 200
    # Errors carry it too (problem+json from the exception handlers).
    missing = client.get("/v1/diagnoses/dg_nope", headers={"X-Request-ID": "req-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "req-404"


@pytest.fixture
def json_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", log_format="json"))) as c:
        yield c
    configure_logging("text")  # leave the root logger as the other tests expect it


def test_json_log_lines_carry_the_request_id(
    json_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lossdoctor.access")
    r = json_client.post("/v1/diagnoses", json=body(), headers={"X-Request-ID": "req-json"})
    assert r.status_code == 201
    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records]
    access = [line for line in lines if line["logger"] == "lossdoctor.access"]
    assert access, lines
    line = access[-1]
    assert line["request_id"] == "req-json"
    assert line["route"] == "/v1/diagnoses" and line["status"] == 201
    assert line["level"] == "INFO" and isinstance(line["duration_ms"], float)


def test_any_log_record_made_during_a_request_gets_its_id() -> None:
    configure_logging("text")
    token = request_id_var.set("ctx-1")
    try:
        record = logging.getLogger("anything").makeRecord(
            "anything", logging.INFO, __file__, 1, "hello %s", ("you",), None
        )
    finally:
        request_id_var.reset(token)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["request_id"] == "ctx-1" and doc["message"] == "hello you"


def test_enqueue_sends_the_request_id_as_a_task_header(settings: Settings) -> None:
    sent: list[dict[str, Any]] = []

    class FakeCelery:
        def send_task(self, name: str, **options: Any) -> None:
            sent.append(options)

    queue = ProbeQueue(settings)
    queue.__dict__["app"] = FakeCelery()  # the cached_property's slot
    queue.enqueue("dg_1", request_id="req-9")
    token = request_id_var.set("req-ctx")
    try:
        queue.enqueue("dg_2")  # default: the current request's id
    finally:
        request_id_var.reset(token)
    queue.enqueue("dg_3")
    assert [s["headers"] for s in sent] == [
        {"request_id": "req-9"},
        {"request_id": "req-ctx"},
        None,
    ]


def test_worker_counts_each_stored_probe_once_by_kind_and_device() -> None:
    from prometheus_client import REGISTRY

    from workers.observability import observe_probes

    class FakeStore:
        def __init__(self) -> None:
            self.keys: set[str] = set()

        def add_probe_result(self, diagnosis_id: str, key: str, result: dict[str, Any]) -> bool:
            fresh = key not in self.keys
            self.keys.add(key)
            return fresh

    labels = {"kind": "he_init_test", "device": "GPU:0"}
    store = observe_probes(FakeStore())  # type: ignore[arg-type]
    doc = {"seconds": 1.5, "device": "GPU:0"}
    assert store.add_probe_result("dg_1", "he_init_test|0|0", doc)
    assert not store.add_probe_result("dg_1", "he_init_test|0|0", doc)  # a redelivery
    assert store.add_probe_result("dg_1", "he_init_test|1|0", doc)
    assert REGISTRY.get_sample_value("lossdoctor_probe_seconds_count", labels) == 2
    assert REGISTRY.get_sample_value("lossdoctor_probe_seconds_sum", labels) == 3.0
