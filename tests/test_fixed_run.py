"""`GET /v1/diagnoses/{id}/fixed-run`: the run with its fix applied, in the form it was sent.

A Keras JSON run comes back as the user's own Keras JSON, edited; Keras loads and trains it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.analysis import keras_edit
from service.schemas.run import RunSpec
from tests.runs import body, cnn, healthy_curve, run

PROBLEM = "application/problem+json"


def plateau(level: float, n: int = 12) -> list[float]:
    return [level + 0.3 * 0.5**i for i in range(n)]


def test_layer_list_run_comes_back_as_the_fixed_layer_list(client: TestClient) -> None:
    history = {"loss": plateau(1.3), "val_loss": plateau(1.35)}
    sent = run(model=cnn(first_kernel=21))
    doc = client.post("/v1/diagnoses", json=body(sent, history)).json()
    assert doc["report"]["causes"][0]["id"] == "kernel_size_mismatch"
    r = client.get(f"/v1/diagnoses/{doc['id']}/fixed-run")
    assert r.status_code == 200, r.text
    fixed = r.json()
    assert fixed["cause"] == "kernel_size_mismatch"
    assert fixed["run"]["model"]["layers"][0]["kernel_size"] == [3, 3]
    # Everything the fix does not touch is the run as sent.
    assert fixed["run"]["optimizer"] == sent["optimizer"]
    change = fixed["fix"]["changes"][0]
    assert change["from"] == 21 and change["to"] == [3, 3]


def test_another_causes_fix_on_request_and_404_for_a_cause_not_listed(
    client: TestClient,
) -> None:
    history = {"loss": plateau(2.2), "val_loss": plateau(1.9)}
    doc = client.post("/v1/diagnoses", json=body(run(model=cnn(l2=1.0)), history)).json()
    for cause in doc["report"]["causes"]:
        r = client.get(f"/v1/diagnoses/{doc['id']}/fixed-run", params={"cause": cause["id"]})
        if cause["fix"]["patch"]:
            assert r.status_code == 200 and r.json()["cause"] == cause["id"]
        else:  # a fix without a concrete change says why instead
            assert r.status_code == 409 and cause["fix"]["unavailable"] in r.json()["detail"]
    r = client.get(f"/v1/diagnoses/{doc['id']}/fixed-run", params={"cause": "no_such"})
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)


def test_healthy_run_has_no_fixed_run(client: TestClient) -> None:
    doc = client.post("/v1/diagnoses", json=body(run(), healthy_curve())).json()
    assert doc["report"]["verdict"] == "healthy"
    r = client.get(f"/v1/diagnoses/{doc['id']}/fixed-run")
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)
    assert "no problem" in r.json()["detail"]


def test_editing_keras_json_keeps_its_form_and_rejects_unknown_layers() -> None:
    doc = json.loads(
        open("tests/fixtures/keras/normalized_mlp.json", encoding="utf-8").read()  # noqa: SIM115
    )
    name = next(e["config"]["name"] for e in doc["config"]["layers"] if e["class_name"] == "Dense")
    edited = keras_edit.edit(doc, {name: {"units": 99}})
    assert isinstance(edited, dict) and keras_edit.current(edited, name, "units") == 99
    assert keras_edit.current(doc, name, "units") != 99  # the original is not modified
    as_text = keras_edit.edit(json.dumps(doc), {name: {"units": 99}})
    assert isinstance(as_text, str) and json.loads(as_text) == edited
    with pytest.raises(KeyError, match="no_such_layer"):
        keras_edit.edit(doc, {"no_such_layer": {"units": 3}})


def test_layer_list_fixes_rewire_a_graph_and_replace_an_activation_layer() -> None:
    from service.analysis import fixes

    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "name": "c", "filters": 1, "kernel_size": 3, "inputs": ["input"]},
        {"type": "flatten", "name": "f", "inputs": ["c"]},
        {"type": "dense", "name": "out", "units": 10, "inputs": ["f"]},
        {"type": "relu", "name": "act", "inputs": ["out"]},
    ]
    spec = RunSpec.model_validate(run(model={"input_shape": [28, 28, 1], "layers": layers}))
    names = [str(layer["name"]) for layer in layers]
    assert fixes.can_insert(spec, "out", names)
    new = {"name": "hidden", "units": 64, "activation": "relu"}
    edits = {"act": {"type": "activation", "activation": "softmax"}}
    fix = fixes.model_fix(spec, names, edits, "test", {"out": new})
    fixed = RunSpec.model_validate(run(model=fix.patch["model"])).model
    assert fixed is not None and fixed.layers is not None
    by_name = {layer.name: layer for layer in fixed.layers}
    # The new layer takes over the output layer's input; the output reads the new layer.
    assert by_name["hidden"].inputs == ["f"] and by_name["out"].inputs == ["hidden"]
    assert by_name["act"].type == "activation" and by_name["act"].activation == "softmax"
    assert fix.keras[-1] == 'keras.layers.Activation("softmax", name="act")  # instead of ReLU'


# ---------------------------------------------------------------- with Keras


def _faulty_cnn(keras: Any) -> Any:
    """A 21×21 first kernel on 28×28 input, L2 1.0 everywhere: the fixes touch both."""
    reg = keras.regularizers.L2(1.0)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 21, activation="relu", kernel_regularizer=reg),
            keras.layers.Conv2D(2, 3, activation="relu", kernel_regularizer=reg),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def _functional_cnn(keras: Any) -> Any:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(1, 3, activation="relu", name="thin")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(2, activation="relu", name="bottleneck")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def _one_conv_deep(keras: Any) -> Any:
    """Nearly linear: one linear 1-filter convolution under a softmax (gets width and depth)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(1, 3, activation="linear"),
            keras.layers.AveragePooling2D(4),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def _functional_one_conv(keras: Any) -> Any:
    """_one_conv_deep as a Functional model: the new layer is wired into its graph."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(1, 3, activation="linear")(inputs)
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(4)(x))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def _relu_layer_head(keras: Any) -> Any:
    """Ends in a ReLU *layer* under a probability loss: an Activation takes its place."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.ReLU(name="out_relu")(keras.layers.Dense(10)(x)))


def _trains(keras: Any, keras_json: Any) -> float:
    """Loads the JSON with Keras and trains one epoch; returns the loss."""
    model = keras.models.model_from_json(
        keras_json if isinstance(keras_json, str) else json.dumps(keras_json)
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    return float(model.fit(x, y, epochs=1, batch_size=32, verbose=0).history["loss"][-1])


@pytest.mark.tf
def test_fixed_keras_run_loads_with_model_from_json_and_trains(client: TestClient) -> None:
    keras = pytest.importorskip("keras")
    seen: set[str] = set()
    for model, history in (
        (_faulty_cnn(keras), {"loss": plateau(2.2), "val_loss": plateau(1.9)}),
        (_functional_cnn(keras), {"loss": plateau(1.4), "val_loss": plateau(1.42)}),
        (_one_conv_deep(keras), {"loss": plateau(1.2), "val_loss": plateau(1.22)}),
        (_functional_one_conv(keras), {"loss": plateau(1.2), "val_loss": plateau(1.22)}),
        (_relu_layer_head(keras), {"loss": plateau(2.2), "val_loss": plateau(2.2)}),
    ):
        sent = run(model={"keras_json": model.to_json()})
        doc = client.post("/v1/diagnoses", json=body(sent, history)).json()
        model_causes = [c["id"] for c in doc["report"]["causes"] if "model" in c["fix"]["patch"]]
        assert model_causes, doc["report"]["causes"]
        for cause in model_causes:
            r = client.get(f"/v1/diagnoses/{doc['id']}/fixed-run", params={"cause": cause})
            assert r.status_code == 200, r.text
            fixed = r.json()
            keras_json = fixed["run"]["model"]["keras_json"]
            assert "layers" not in fixed["run"]["model"]  # the user's form, not our layer list
            loaded = keras.models.model_from_json(keras_json)
            # The service reads the edited JSON too (a probe trains the fixed run).
            assert RunSpec.model_validate(fixed["run"]).model is not None
            for change in fixed["fix"]["changes"]:
                if change["from"] is None and isinstance(change["to"], dict):  # a new layer
                    added = loaded.get_layer(change["to"]["name"]).get_config()
                    assert added["units"] == change["to"]["units"]
                    seen.add("new layer")
                    continue
                _, _, layer, field = change["path"].split(".")
                seen.add(field)
                if field == "type":  # a layer of another class under the same name
                    assert type(loaded.get_layer(layer)).__name__ == "Activation"
                if field in ("kernel_size", "filters", "units"):
                    value = loaded.get_layer(layer).get_config()[field]
                    assert (list(value) if isinstance(value, tuple) else value) == change["to"]
            assert np.isfinite(_trains(keras, keras_json)), cause
    # Between them the fixes edited kernels, padding, widths, activations, added a layer (to
    # a Sequential and a Functional model) and put an Activation in a ReLU layer's place.
    assert {"kernel_size", "padding", "filters", "units", "activation", "new layer"} <= seen
    assert "type" in seen
