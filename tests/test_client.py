"""The Python client against a real `lossdoctor serve` subprocess (static diagnoses).

`live_server` is imported by the callback, CLI, report page and README tour tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lossdoctor_client import (
    AsyncLossDoctor,
    Dataset,
    LossDoctor,
    LossDoctorError,
    LossDoctorUnavailable,
    apply_fix,
    from_keras,
    run_from_keras,
)
from service.schemas.diagnosis import Diagnosis
from service.schemas.report import Report
from service.schemas.run import RunSpec
from tests.runs import healthy_curve, run, stuck_curve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(data: Path, **env_overrides: str) -> Iterator[str]:
    """`lossdoctor serve` on a free port with its own data dir and no probe worker."""
    port = free_port()
    env = dict(
        os.environ,
        LOSSDOCTOR_DATA_DIR=str(data),
        LOSSDOCTOR_HOST="127.0.0.1",
        LOSSDOCTOR_PORT=str(port),
        LOSSDOCTOR_LOCAL_WORKER="false",
    )
    for key in ("LOSSDOCTOR_STORE_URL", "LOSSDOCTOR_BROKER_URL", "LOSSDOCTOR_URL"):
        env.pop(key, None)
    env.update(env_overrides)
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(data / 'serve.log').read_text()}")
            try:
                if httpx.get(url + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("live-data")) as url:
        yield url


@pytest.fixture
def ld(live_server: str) -> Iterator[LossDoctor]:
    with LossDoctor(live_server, timeout=10) as client:
        yield client


def digits_like(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1), dtype=np.float32), np.arange(n) % 10


def test_static_diagnosis_returns_typed_report_and_reads_back(ld: LossDoctor) -> None:
    d = ld.diagnose(run(), stuck_curve())
    assert isinstance(d, Diagnosis) and isinstance(d.report, Report)
    assert d.status == "succeeded" and d.id.startswith("dg_")
    assert d.report.verdict == "problem"
    assert "stuck_at_chance" in {s.id for s in d.report.symptoms}
    assert ld.get(d.id) == d
    assert ld.wait(d.id, poll=0.05, timeout=5) == d


def test_history_only_with_non_finite_values_from_numpy(ld: LossDoctor) -> None:
    loss = np.array([2.3, 40.0, np.inf, np.nan], dtype=np.float32)
    d = ld.diagnose(history={"loss": loss})
    assert d.report is not None
    assert d.report.symptoms[0].id == "non_finite_loss"


def test_upload_sample_and_diagnose_with_its_dataset_id(ld: LossDoctor) -> None:
    x, y = digits_like()
    ds = ld.upload_dataset(x * 255, y)  # unnormalized pixels, as fed to fit
    assert isinstance(ds, Dataset)
    assert ds.num_examples == 64 and ds.input_shape == [8, 8, 1] and ds.num_classes == 10
    spec = run(data={"num_classes": 10})
    d = ld.diagnose(spec, healthy_curve(), dataset_id=ds.id)
    assert d.report is not None and d.report.data_checks


def test_errors_are_loss_doctor_errors_from_problem_json(ld: LossDoctor) -> None:
    with pytest.raises(LossDoctorError) as missing:
        ld.get("dg_does_not_exist")
    assert missing.value.status == 404 and missing.value.title == "Not found"
    assert "dg_does_not_exist" in missing.value.detail

    with pytest.raises(LossDoctorError) as invalid:
        ld.diagnose({"batch_size": "x"}, {"loss": [2.3]})
    assert invalid.value.status == 422
    assert "run.batch_size" in {e["field"] for e in invalid.value.problem["errors"]}

    with pytest.raises(LossDoctorError) as unknown_dataset:
        ld.diagnose(history={"loss": [2.3, 2.2]}, dataset_id="ds_nope")
    assert unknown_dataset.value.status == 422 and "ds_nope" in unknown_dataset.value.detail

    with pytest.raises(LossDoctorError) as bad_npz:
        ld.upload_npz(b"not an npz")
    assert bad_npz.value.status == 422

    with pytest.raises(TypeError):
        ld.diagnose(run())


def test_queued_probes_wait_times_out_then_delete_cancels(ld: LossDoctor) -> None:
    # No worker runs here: a diagnosis with probes stays queued.
    seen: list[str] = []
    d = ld.diagnose(
        run(),
        stuck_curve(),
        probes=True,
        budget_seconds=30,
        on_progress=lambda d: seen.append(d.status),
    )
    assert d.status == "queued" and seen == ["queued"]
    with pytest.raises(TimeoutError):
        ld.wait(d.id, poll=0.05, timeout=0.2)
    canceled = ld.delete(d.id)
    assert canceled is not None and canceled.status == "canceled"
    assert ld.delete(d.id) is None  # a finished one is deleted: 204
    with pytest.raises(LossDoctorError) as gone:
        ld.get(d.id)
    assert gone.value.status == 404


def test_unreachable_service_raises_unavailable() -> None:
    client = LossDoctor(f"http://127.0.0.1:{free_port()}", timeout=2)
    with client, pytest.raises(LossDoctorUnavailable) as exc:
        client.diagnose(history={"loss": [2.3]})
    assert exc.value.status == 0 and isinstance(exc.value, LossDoctorError)


def test_async_client(live_server: str) -> None:
    async def go() -> tuple[Diagnosis, Diagnosis, Dataset, int]:
        async with AsyncLossDoctor(live_server, timeout=10) as client:
            created = await client.diagnose(history=stuck_curve(), wait=True)
            read = await client.get(created.id)
            ds = await client.upload_dataset(*digits_like(32))
            try:
                await client.get("dg_missing")
            except LossDoctorError as exc:
                status = exc.status
            await client.delete(created.id)
            return created, read, ds, status

    created, read, ds, status = asyncio.run(go())
    assert created == read and created.report is not None
    assert ds.num_examples == 32 and status == 404


def test_api_key_is_sent_as_bearer() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(
            401,
            json={"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "no"},
            headers={"content-type": "application/problem+json"},
        )

    client = LossDoctor(
        "http://ld.test", api_key="ld_secret", transport=httpx.MockTransport(handler)
    )
    with pytest.raises(LossDoctorError) as exc:
        client.get("dg_x")
    assert seen["auth"] == "Bearer ld_secret"
    assert (exc.value.status, exc.value.title) == (401, "Unauthorized")
    anonymous = LossDoctor("http://ld.test", transport=httpx.MockTransport(handler))
    with pytest.raises(LossDoctorError):
        anonymous.get("dg_x")
    assert seen["auth"] is None


def test_default_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSDOCTOR_URL", "http://example.invalid:9/")
    assert LossDoctor().url == "http://example.invalid:9"
    monkeypatch.delenv("LOSSDOCTOR_URL")
    assert LossDoctor().url == "http://127.0.0.1:8000"


class SGD:  # named like Keras' class: its name wins over the instance name
    def get_config(self) -> dict[str, Any]:
        return {
            "name": "my_sgd",
            "learning_rate": np.float32(0.5),
            "momentum": 0.9,
            "clipnorm": None,
        }


class _FakeModel:
    """What `from_keras` reads of a compiled Keras model (the real one: test_keras_callback)."""

    optimizer = SGD()
    loss = "sparse_categorical_crossentropy"

    def to_json(self) -> str:
        return '{"class_name": "Sequential"}'


def test_from_keras_builds_run_and_history(ld: LossDoctor) -> None:
    x, y = digits_like(16)
    body = from_keras(
        _FakeModel(), {"loss": [np.float32(2.3), float("nan")]}, sample=(x, y), batch_size=8
    )
    run_doc = body["run"]
    assert run_doc["model"] == {"keras_json": '{"class_name": "Sequential"}'}
    assert run_doc["optimizer"] == {"name": "sgd", "learning_rate": 0.5, "momentum": 0.9}
    assert run_doc["loss"] == "sparse_categorical_crossentropy" and run_doc["batch_size"] == 8
    assert run_doc["data"]["num_examples"] == 16 and run_doc["data"]["num_classes"] == 10
    assert 0 <= run_doc["data"]["input_min"] <= run_doc["data"]["input_max"] <= 1
    assert body["history"] == {"loss": [pytest.approx(2.3), None]}
    spec = run_from_keras(_FakeModel(), optimizer={"name": "adam", "learning_rate": 1e-3})
    assert spec["optimizer"] == {"name": "adam", "learning_rate": 1e-3}


def test_api_keys_against_a_server_with_tenants(tmp_path: Path) -> None:
    keys = {hashlib.sha256(k.encode()).hexdigest(): t for k, t in (("ld_a", "a"), ("ld_b", "b"))}
    with serve(tmp_path, LOSSDOCTOR_API_KEYS=json.dumps(keys)) as url:
        with LossDoctor(url) as anonymous, pytest.raises(LossDoctorError) as exc:
            anonymous.diagnose(history={"loss": [2.3]})
        assert exc.value.status == 401
        with LossDoctor(url, api_key="ld_a") as a, LossDoctor(url, api_key="ld_b") as b:
            d = a.diagnose(history=stuck_curve())
            assert "<svg" in a.report_html(d.id)
            for call in (b.get, b.report_html):
                with pytest.raises(LossDoctorError) as other:
                    call(d.id)
                assert other.value.status == 404  # another tenant's page is not found


def test_fixed_run_matches_apply_fix_offline_and_the_callback_prints_changes(
    ld: LossDoctor,
) -> None:
    from lossdoctor_client.text import summary_text

    sent = run(optimizer={"name": "adam", "learning_rate": 0.5})
    d = ld.diagnose(sent, stuck_curve())
    assert d.report is not None and d.report.causes[0].id == "learning_rate_too_high"
    fixed = ld.fixed_run(d.id)
    fix = d.report.causes[0].fix
    assert fixed["cause"] == "learning_rate_too_high"
    # The server merges into the run as it stored it (normalized); the same run, validated.
    offline = apply_fix(sent, fix)
    assert offline == apply_fix(sent, fix.model_dump())
    assert RunSpec.model_validate(fixed["run"]) == RunSpec.model_validate(offline)
    assert fixed["run"]["optimizer"]["learning_rate"] == fix.changes[0].to
    assert sent["optimizer"]["learning_rate"] == 0.5  # the caller's run is not modified
    text = summary_text(d)
    assert f"optimizer.learning_rate: 0.5 → {fix.changes[0].to}" in text
    assert "keras.optimizers.Adam(learning_rate=" in text
    with pytest.raises(LossDoctorError) as info:
        ld.fixed_run(ld.diagnose(run(), healthy_curve()).id)
    assert info.value.status == 409
