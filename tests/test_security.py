"""Access: API keys, tenant isolation, idempotency, limits — through the real app."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth import add_key, hash_key
from service.main import create_app
from service.schemas.diagnosis import DiagnosisRequest
from service.settings import Settings
from tests.fashion import npz_bytes, sample
from tests.runs import body, run


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    keys_file = tmp_path / "keys.json"
    a, b = add_key(keys_file, "team-a"), add_key(keys_file, "team-b")
    settings = Settings(
        data_dir=tmp_path / "data", api_keys_file=keys_file, max_active_per_tenant=1
    )
    with TestClient(create_app(settings)) as client:
        yield client, {"a": {"Authorization": f"Bearer {a}"}, "b": {"Authorization": f"Bearer {b}"}}


def test_missing_or_wrong_key_is_401_with_www_authenticate(keyed) -> None:  # type: ignore[no-untyped-def]
    client, _ = keyed
    for headers in ({}, {"Authorization": "Bearer ld_wrong"}, {"Authorization": "Basic eA=="}):
        r = client.post("/v1/diagnoses", json=body(), headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/livez").status_code == 200  # health stays open


def test_keys_file_holds_hashes_not_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "team-a")
    stored = json.loads(path.read_text())
    assert key not in path.read_text()
    assert stored == {hash_key(key): "team-a"}
    assert path.stat().st_mode & 0o077 == 0


def test_tenants_see_only_their_own_diagnoses_and_datasets(keyed) -> None:  # type: ignore[no-untyped-def]
    client, h = keyed
    mine = client.post("/v1/diagnoses", json=body(), headers=h["a"]).json()
    assert "_tenant" not in mine and "tenant" not in mine
    assert client.get(f"/v1/diagnoses/{mine['id']}", headers=h["a"]).status_code == 200
    other = client.get(f"/v1/diagnoses/{mine['id']}", headers=h["b"])
    assert other.status_code == 404
    assert client.delete(f"/v1/diagnoses/{mine['id']}", headers=h["b"]).status_code == 404
    assert client.get("/v1/diagnoses", headers=h["b"]).json()["items"] == []
    assert [d["id"] for d in client.get("/v1/diagnoses", headers=h["a"]).json()["items"]] == [
        mine["id"]
    ]
    x, y = sample(n=32)
    ds = client.post(
        "/v1/datasets", files={"file": ("s.npz", npz_bytes(x, y))}, headers=h["a"]
    ).json()
    assert client.get(f"/v1/datasets/{ds['id']}", headers=h["b"]).status_code == 404
    spec = run(data={"dataset_id": ds["id"], "num_classes": 10})
    assert client.post("/v1/diagnoses", json=body(spec), headers=h["b"]).status_code == 422
    assert client.post("/v1/diagnoses", json=body(spec), headers=h["a"]).status_code == 201


def test_idempotency_key_replays_refuses_other_bodies_and_in_flight(keyed) -> None:  # type: ignore[no-untyped-def]
    client, h = keyed
    headers = h["a"] | {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/diagnoses", json=body(), headers=headers)
    again = client.post("/v1/diagnoses", json=body(), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    different = body(history={"loss": [2.3, 2.2, 2.1]})
    assert client.post("/v1/diagnoses", json=different, headers=headers).status_code == 422
    # The same key from another tenant is another key.
    theirs = client.post(
        "/v1/diagnoses", json=body(), headers=h["b"] | {"Idempotency-Key": "retry-1"}
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    # A first request still in flight: claimed, not yet settled.
    store = client.app.state.store  # type: ignore[attr-defined]
    payload = body()
    raw = DiagnosisRequest.model_validate(payload).model_dump_json(exclude_none=True).encode()
    scope = f"team-a:diagnosis:{hashlib.sha256(b'in-flight').hexdigest()}"
    store.claim_idempotency(scope, hashlib.sha256(raw).hexdigest())
    r = client.post(
        "/v1/diagnoses", json=payload, headers=h["a"] | {"Idempotency-Key": "in-flight"}
    )
    assert r.status_code == 409


def test_dataset_upload_is_idempotent_too(keyed) -> None:  # type: ignore[no-untyped-def]
    client, h = keyed
    x, y = sample(n=32)
    blob = npz_bytes(x, y)
    headers = h["a"] | {"Idempotency-Key": "up-1"}
    first = client.post("/v1/datasets", files={"file": ("s.npz", blob)}, headers=headers)
    again = client.post("/v1/datasets", files={"file": ("s.npz", blob)}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]


def test_too_many_running_diagnoses_is_429_with_retry_after(keyed) -> None:  # type: ignore[no-untyped-def]
    client, h = keyed
    probe = body(run()) | {"probes": {"enabled": True, "budget_seconds": 30}}
    first = client.post("/v1/diagnoses", json=probe, headers=h["a"])
    assert first.status_code == 202  # queued on the local broker; no worker in this test
    second = client.post("/v1/diagnoses", json=probe, headers=h["a"])
    assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
    assert client.post("/v1/diagnoses", json=probe, headers=h["b"]).status_code == 202
    client.delete(first.headers["location"], headers=h["a"])  # canceled frees the slot
    assert client.post("/v1/diagnoses", json=probe, headers=h["a"]).status_code == 202


def test_probe_limits_are_422_before_anything_is_queued(client: TestClient) -> None:
    too_long = body(run()) | {"probes": {"enabled": True, "budget_seconds": 10_000}}
    r = client.post("/v1/diagnoses", json=too_long)
    assert r.status_code == 422 and "LOSSDOCTOR_PROBE_BUDGET_SECONDS_MAX" in r.json()["detail"]
    huge = run()
    huge["model"]["layers"][5]["units"] = 1_000_000  # ~1.6e9 parameters in one Dense
    r = client.post("/v1/diagnoses", json=body(huge) | {"probes": {"enabled": True}})
    assert r.status_code == 422 and "LOSSDOCTOR_PARAM_BUDGET" in r.json()["detail"]
    assert client.get("/v1/diagnoses").json()["items"] == []


def test_serving_off_loopback_without_keys_refuses_to_start(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--host", "0.0.0.0", "--port", "8999"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"LOSSDOCTOR_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "without API keys" in out.stderr


def test_keys_create_prints_a_working_key_once(tmp_path: Path) -> None:
    env = {"LOSSDOCTOR_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--tenant", "ml"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    key = out.stdout.strip()
    assert key.startswith("ld_") and len(key) > 30
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/v1/diagnoses", json=body(), headers=headers).status_code == 201
        assert client.post("/v1/diagnoses", json=body()).status_code == 401


def _npz(compressed: bool = False, **arrays: object) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def test_zip_bomb_npz_is_refused_before_inflating(tmp_path: Path) -> None:
    import numpy as np

    settings = Settings(data_dir=tmp_path, max_dataset_unpacked_bytes=1_000_000)
    blob = _npz(True, x=np.zeros((5000, 28, 28, 1), np.float32), y=np.zeros(5000, np.int64))
    assert len(blob) < 200_000  # ~16 MB of zeros, compressed
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/datasets", files={"file": ("bomb.npz", blob)})
        assert r.status_code == 413 and "unpacks" in r.json()["detail"]


def test_nan_filled_inputs_become_a_failed_data_check(client: TestClient) -> None:
    import numpy as np

    x = np.full((16, 8, 8, 1), np.nan, np.float32)
    ds = client.post("/v1/datasets", files={"file": ("s.npz", _npz(x=x, y=np.arange(16) % 4))})
    assert ds.status_code == 201 and ds.json()["stats"]["nan_count"] == 16 * 64
    spec = {"data": {"dataset_id": ds.json()["id"]}}
    report = client.post("/v1/diagnoses", json=body(spec)).json()["report"]
    checks = {c["id"]: c["status"] for c in report["data_checks"]}
    assert checks["non_finite_inputs"] == "fail"


@pytest.mark.parametrize("mutate", ["huge_filters", "deep_nesting"])
def test_keras_json_attacks_are_422_before_anything_is_built(
    client: TestClient, mutate: str
) -> None:
    doc = json.loads((Path(__file__).parent / "fixtures/keras/seed_cnn.json").read_text())
    conv = next(layer for layer in doc["config"]["layers"] if layer["class_name"] == "Conv2D")
    if mutate == "huge_filters":
        conv["config"]["filters"] = 10**9
    else:
        nested: dict[str, object] = {}
        for _ in range(500):
            nested = {"a": nested}
        conv["config"]["kernel_initializer"] = nested
    r = client.post(
        "/v1/diagnoses",
        json={"run": {"model": {"keras_json": json.dumps(doc)}}, "history": {"loss": [2.3, 2.2]}},
    )
    assert r.status_code == 422, r.text
