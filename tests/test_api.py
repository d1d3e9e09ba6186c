"""The v1 contract through the real app: status codes, resources, problem+json errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.examples import FULL
from tests.runs import body, run, stuck_curve

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    doc = response.json()
    assert doc["status"] == status and doc["title"] and doc["detail"]
    return doc  # type: ignore[no-any-return]


def test_history_only_with_three_numbers_answers_201_with_a_report(client: TestClient) -> None:
    r = client.post("/v1/diagnoses", json={"history": {"loss": [2.31, 2.30, 2.30]}})
    assert r.status_code == 201
    doc = r.json()
    assert r.headers["location"] == f"/v1/diagnoses/{doc['id']}"
    assert doc["status"] == "succeeded"
    assert set(doc["report"]) >= {
        "verdict",
        "summary",
        "symptoms",
        "causes",
        "data_checks",
        "probes",
    }


def test_full_example_names_initialization_and_can_be_read_back(client: TestClient) -> None:
    created = client.post("/v1/diagnoses", json=FULL).json()
    assert created["report"]["causes"][0]["id"] == "poor_weight_initialization"
    read = client.get(f"/v1/diagnoses/{created['id']}")
    assert read.status_code == 200 and read.json() == created


def test_non_finite_spellings_are_kept_as_evidence(client: TestClient) -> None:
    raw = '{"history": {"loss": [2.3, NaN, null, "NaN", "Infinity", -Infinity]}}'
    r = client.post("/v1/diagnoses", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 201
    assert r.json()["report"]["symptoms"][0]["id"] == "non_finite_loss"


def test_list_pages_newest_first_with_a_cursor(client: TestClient) -> None:
    ids = [client.post("/v1/diagnoses", json=body()).json()["id"] for _ in range(5)]
    first = client.get("/v1/diagnoses", params={"limit": 2}).json()
    second = client.get("/v1/diagnoses", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/diagnoses", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    seen = [d["id"] for page in (first, second, third) for d in page["items"]]
    assert seen == ids[::-1]
    assert third["next_cursor"] is None


def test_delete_removes_the_diagnosis(client: TestClient) -> None:
    created = client.post("/v1/diagnoses", json=body()).json()
    assert client.delete(f"/v1/diagnoses/{created['id']}").status_code == 204
    assert_problem(client.get(f"/v1/diagnoses/{created['id']}"), 404)
    assert_problem(client.delete(f"/v1/diagnoses/{created['id']}"), 404)


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/diagnoses",
        content=b'{"history": {"loss": [2.3,',
        headers={"content-type": "application/json"},
    )
    assert_problem(r, 400)


def test_wrong_types_are_422_with_field_paths(client: TestClient) -> None:
    r = client.post("/v1/diagnoses", json={"history": {"loss": "high"}, "run": {"batch_size": "x"}})
    doc = assert_problem(r, 422)
    fields = {e["field"] for e in doc["errors"]}
    assert "history.loss" in fields and "run.batch_size" in fields


def test_empty_history_is_422(client: TestClient) -> None:
    assert_problem(client.post("/v1/diagnoses", json={"history": {"loss": []}}), 422)
    assert_problem(client.post("/v1/diagnoses", json={}), 422)


def test_a_million_points_is_413(client: TestClient) -> None:
    r = client.post("/v1/diagnoses", json={"history": {"loss": [1.0] * 1_000_000}})
    doc = assert_problem(r, 413)
    assert "LOSSDOCTOR_MAX_HISTORY_POINTS" in doc["detail"]


def test_body_above_the_limit_is_413_even_when_streamed(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"history": {"loss": ['
        for _ in range(2000):
            yield b"1.0," * 2000  # 16 MB in all, above the 10 MB default

    r = client.post("/v1/diagnoses", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413)
    huge = client.post(
        "/v1/diagnoses",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(10**9)},
    )
    assert huge.status_code == 413


def test_zero_or_negative_learning_rate_is_422(client: TestClient) -> None:
    for lr in (0, -0.1):
        r = client.post(
            "/v1/diagnoses", json=body(run(optimizer={"name": "sgd", "learning_rate": lr}))
        )
        doc = assert_problem(r, 422)
        assert any(e["field"] == "run.optimizer.learning_rate" for e in doc["errors"])


def test_unknown_layer_type_and_optimizer_are_422(client: TestClient) -> None:
    spec = run()
    spec["model"]["layers"][0]["type"] = "conv3d"
    assert_problem(client.post("/v1/diagnoses", json=body(spec)), 422)
    assert_problem(client.post("/v1/diagnoses", json=body(run(optimizer={"name": "magic"}))), 422)


def test_model_that_cannot_be_built_is_422_naming_the_layer(client: TestClient) -> None:
    spec = run()
    spec["model"]["input_shape"] = [4, 4, 1]
    doc = assert_problem(client.post("/v1/diagnoses", json=body(spec)), 422)
    assert "conv2d" in doc["detail"] or "max_pooling2d" in doc["detail"]


def test_unknown_dataset_id_is_422(client: TestClient) -> None:
    spec = run(data={"dataset_id": "ds_missing"})
    assert_problem(client.post("/v1/diagnoses", json=body(spec)), 422)


def npz(**arrays) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_dataset_upload_reports_stats_and_feeds_the_diagnosis(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=64)
    x[1] = x[0]
    y[1] = (y[0] + 1) % 10
    r = client.post("/v1/datasets", files={"file": ("s.npz", npz(x=x, y=y))})
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["num_examples"] == 64 and meta["input_shape"] == [28, 28, 1]
    assert meta["stats"]["conflicting_duplicates"] == 1
    assert meta["stats"]["channels"]["max"][0] > 200
    spec = run(
        data={"dataset_id": meta["id"], "num_classes": 10}, preprocessing={"normalization": "none"}
    )
    report = client.post("/v1/diagnoses", json=body(spec, stuck_curve(first=30.0))).json()["report"]
    assert report["causes"][0]["id"] == "unnormalized_inputs"
    checks = {c["id"]: c["status"] for c in report["data_checks"]}
    assert checks["input_range"] == "fail" and checks["conflicting_duplicates"] == "fail"


def test_pickled_npz_is_refused_with_422(client: TestClient) -> None:
    blob = npz(x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    doc = assert_problem(client.post("/v1/datasets", files={"file": ("s.npz", blob)}), 422)
    assert "pickle" in doc["detail"]


def test_bad_npz_files_are_4xx(client: TestClient) -> None:
    assert_problem(client.post("/v1/datasets", files={"file": ("s.npz", b"not a zip")}), 422)
    mismatched = npz(x=np.zeros((4, 8, 8)), y=np.zeros(3))
    assert_problem(client.post("/v1/datasets", files={"file": ("s.npz", mismatched)}), 422)
    assert_problem(client.post("/v1/datasets", files={"file": ("s.npz", npz(x=np.zeros(3)))}), 422)


def test_health_and_docs_answer(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    assert "/v1/diagnoses" in spec["paths"] and "/v1/datasets" in spec["paths"]
    examples = spec["paths"]["/v1/diagnoses"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert {"history_only", "full_run"} <= set(examples)
    assert client.get("/docs").status_code == 200


FIXTURES = Path(__file__).parent / "fixtures" / "keras"


def test_real_keras_json_is_translated_and_diagnosed(client: TestClient) -> None:
    keras_json = (FIXTURES / "seed_cnn.json").read_text()
    history = {"loss": [2.0, 1.2, 0.8, 0.6, 0.5]}
    # As the parsed object, and as the string model.to_json() returns.
    for model in (json.loads(keras_json), keras_json):
        body = {
            "run": {"model": {"keras_json": model}, "data": {"num_classes": 10}},
            "history": history,
        }
        assert client.post("/v1/diagnoses", json=body).status_code == 201


@pytest.mark.parametrize(
    "name", ["malicious_lambda", "malicious_tfsm", "malicious_registered", "malicious_module_os"]
)
def test_unsafe_keras_json_is_422_naming_the_layer(client: TestClient, name: str) -> None:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    r = client.post(
        "/v1/diagnoses",
        json={"run": {"model": {"keras_json": doc}}, "history": {"loss": [2.3, 2.2, 2.1]}},
    )
    problem = assert_problem(r, 422)
    assert problem["detail"].startswith("run.model") and "layer '" in problem["detail"]


def test_live_diagnosis_warns_within_one_epoch_and_closes(client: TestClient) -> None:
    created = client.post(
        "/v1/diagnoses",
        json={"live": True, "run": {"data": {"num_classes": 10}}, "history": {"loss": [2.1, 1.6]}},
    )
    assert created.status_code == 201 and created.json()["status"] == "running"
    url = created.headers["location"] + "/history"
    calm = client.post(url, json={"history": {"loss": [1.3]}}).json()
    assert calm["status"] == "running" and not calm["report"]["symptoms"]
    warned = client.post(url, json={"history": {"loss": [None]}}).json()
    assert warned["report"]["symptoms"][0]["id"] == "non_finite_loss"
    assert warned["report"]["symptoms"][0]["epochs"] == [4, 4]
    closed = client.post(url, json={"close": True}).json()
    assert closed["status"] == "succeeded"
    assert_problem(client.post(url, json={"history": {"loss": [1.0]}}), 409)
    stored = client.app.state.store.get_request(closed["id"])  # type: ignore[attr-defined]
    assert len(stored["history"]["loss"]) == 4


def test_appending_to_a_finished_diagnosis_is_409(client: TestClient) -> None:
    done = client.post("/v1/diagnoses", json=body()).json()
    r = client.post(f"/v1/diagnoses/{done['id']}/history", json={"history": {"loss": [1.0]}})
    assert_problem(r, 409)


def test_stored_keras_json_request_is_read_back_without_translating_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.schemas import model as reader
    from service.schemas.diagnosis import DiagnosisRequest
    from service.schemas.model import TRANSLATED

    keras_json = (FIXTURES / "seed_cnn.json").read_text()
    created = client.post(
        "/v1/diagnoses",
        json={"run": {"model": {"keras_json": keras_json}}, "history": {"loss": [2.3, 2.0]}},
    ).json()
    stored = client.app.state.store.get_request(created["id"])  # type: ignore[attr-defined]
    assert stored["run"]["model"]["keras_json"] == keras_json  # fixes still replace it
    translated = stored["run"]["model"]["layers"]

    def no_second_translation(_: object) -> None:
        raise AssertionError("the stored request was translated again")

    monkeypatch.setattr(reader, "read", no_second_translation)
    again = DiagnosisRequest.model_validate(stored, context=TRANSLATED)  # what the worker does
    assert again.run.model is not None and again.run.model.layers
    assert [
        layer.model_dump(mode="json", exclude_none=True) for layer in again.run.model.layers
    ] == translated
    # Without the stored request's context, Keras JSON and layers together are refused.
    with pytest.raises(ValueError, match="not both"):
        DiagnosisRequest.model_validate(stored)
