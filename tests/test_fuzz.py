"""Fuzzing the whole OpenAPI with schemathesis: no 5xx, and every error is problem+json."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from service.main import create_app
from service.settings import Settings
from tests.strategies import histories, runs

app = create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="lossdoctor-fuzz-"))))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _lifespan() -> Any:
    with TestClient(app) as client:  # runs the lifespan: store, queue and keys on app.state
        yield client


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx_and_errors_are_problem_json(case: schemathesis.Case) -> None:
    if case.method == "POST" and case.path == "/v1/diagnoses" and isinstance(case.body, dict):
        case.body.pop("probes", None)  # queueing probe trainings is not what this fuzzes
    response = case.call()
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        assert {"type", "title", "status", "detail"} <= set(response.json())


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(max_len=5_000), run=runs())
def test_keras_shaped_bodies_never_get_a_5xx(
    _lifespan: TestClient, history: dict[str, Any], run: dict[str, Any]
) -> None:
    # What the OpenAPI schema cannot say: Keras' own shapes (suffixed optimizer names,
    # serialize() forms, schedules, per-class vectors) and numbers from 1e308 to NaN.
    raw = json.dumps({"run": run, "history": history}, allow_nan=True)
    response = _lifespan.post(
        "/v1/diagnoses", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_regression_loss_stalled_far_above_ln_c_gets_a_report(_lifespan: TestClient) -> None:
    # MSE of a regression with large targets, flat: exp(loss) overflows a float (was a 500).
    history = {"loss": [5739302400.0, 5739194880.0, 5739077632.0]}
    response = _lifespan.post("/v1/diagnoses", json={"history": history})
    assert response.status_code == 201 and response.json()["report"]["summary"]
