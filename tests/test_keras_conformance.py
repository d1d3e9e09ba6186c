"""Bodies from real Keras sessions (tests/keras_sessions.py) through the real app.

Every legitimate body gets 201/202 with a report; every invalid one a problem+json 422. The
bodies are generated once per test session in a subprocess, so this test process never
imports TensorFlow (set LOSSDOCTOR_KERAS_BODIES to a generated file to reuse one).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.analysis.architecture import ShapeUnknown, describe
from service.main import create_app
from service.schemas.model import ModelSpec
from service.settings import Settings

# find_spec, not importorskip: this process must not import TensorFlow (the generator does).
pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs Keras"),
]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def bodies(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    given = os.environ.get("LOSSDOCTOR_KERAS_BODIES")
    out = Path(given) if given else tmp_path_factory.mktemp("keras") / "bodies.json"
    if not out.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "keras_sessions.py"), str(out)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            timeout=600,
        )
    loaded: list[dict[str, Any]] = json.loads(out.read_text())
    return loaded


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("conformance"))
    with TestClient(create_app(settings)) as client:
        yield client


def post(client: TestClient, body: dict[str, Any]) -> Any:
    # As a Keras user's json.dumps writes it: NaN from a diverged fit stays a bare NaN.
    raw = json.dumps(body, allow_nan=True)
    return client.post("/v1/diagnoses", content=raw, headers={"content-type": "application/json"})


def test_the_generator_covers_the_keras_surface(bodies: list[dict[str, Any]]) -> None:
    names = {b["name"].split("/")[0] for b in bodies}
    assert {"fit", "optimizer", "schedule", "loss", "model", "applications", "fresh"} <= names
    assert any(b["name"].startswith("invalid/") for b in bodies)
    suffixed = [
        b
        for b in bodies
        if b["body"]["run"].get("optimizer", {}).get("name", "")[-2:] in ("_1", "_2")
    ]
    assert suffixed, "the session made no second optimizer of a class"


def test_every_legitimate_keras_body_gets_a_report(
    bodies: list[dict[str, Any]], app_client: TestClient
) -> None:
    refused = []
    for item in (b for b in bodies if b["legit"]):
        response = post(app_client, item["body"])
        if response.status_code not in (201, 202) or "report" not in response.json():
            refused.append(f"{item['name']}: {response.status_code} {response.text[:300]}")
    assert not refused, "\n".join(refused)


def test_every_invalid_keras_body_is_a_clear_422(
    bodies: list[dict[str, Any]], app_client: TestClient
) -> None:
    for item in (b for b in bodies if not b["legit"]):
        response = post(app_client, item["body"])
        assert response.status_code == 422, (item["name"], response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"], item["name"]


def test_parameter_counts_equal_keras_where_every_layer_is_modelled(
    bodies: list[dict[str, Any]],
) -> None:
    compared = 0
    for item in (b for b in bodies if "params" in b):
        model = ModelSpec.model_validate(item["body"]["run"]["model"])
        assert model.layers is not None and model.input_shape is not None
        if None in model.input_shape:
            continue  # sizes left open: no count to compare
        try:
            arch = describe(model.input_shape, model.layers)
        except ShapeUnknown:
            continue  # an opaque layer whose shape is not recorded
        if not arch.params_known:
            continue  # an opaque layer that may hold weights: not counted, and notes say so
        assert arch.total_params == item["params"], item["name"]
        compared += 1
    assert compared >= 35  # every keras.applications CNN and the layer zoo among them


# Bodies whose every layer is read (Conv1D/3D, transposed convs, 1-D/3-D pooling, Cropping,
# Embedding, shared layers): none may fall back to an opaque node.
FULLY_READ = (
    "conv1d", "conv1d-causal-dilated-pools", "conv3d", "conv3d-pools", "conv2d-transpose",
    "conv1d-transpose", "conv3d-transpose", "autoencoder", "cropping", "cropping1d",
    "cropping3d", "embedding-conv1d", "embedding-flatten", "shared-layer-twice-in-a-row",
    "shared-nested-model",
)  # fmt: skip


def test_conv_nd_cropping_embedding_and_shared_layers_are_read_not_opaque(
    bodies: list[dict[str, Any]],
) -> None:
    by_name = {b["name"]: b for b in bodies}
    for label in FULLY_READ:
        model = ModelSpec.model_validate(by_name[f"model/{label}"]["body"]["run"]["model"])
        assert model.layers is not None
        opaque = [layer.name for layer in model.layers if layer.type == "opaque"]
        assert not opaque, (label, opaque)
    shared = ModelSpec.model_validate(by_name["model/shared-nested-model"]["body"]["run"]["model"])
    assert shared.layers is not None
    assert sum(layer.shares is not None for layer in shared.layers) == 2  # conv and pooling
