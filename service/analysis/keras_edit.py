"""Edit the user's own Keras JSON: a fix's layer changes written into `model.to_json()`.

Plain JSON in, plain JSON out: the document is never handed to Keras. Layers are found by
name; only the fields a fix changes are rewritten, so everything else the user had (names,
dtypes, constraints, layers the service does not model) comes back as it was sent. The
result loads with `keras.models.model_from_json`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

# Layer-list field → the Keras config key it comes from (the same name unless listed).
_KEY = {"learn_scale": "scale"}
# Layer classes a fix may put in place of another (by layer-list type).
_CLASS = {"activation": "Activation"}
_KEPT_ON_SWAP = ("name", "trainable", "dtype")  # what a replaced layer keeps of its config
# Initializers by their snake_case name → Keras class.
_INITIALIZERS = {
    "he_normal": "HeNormal",
    "he_uniform": "HeUniform",
    "glorot_normal": "GlorotNormal",
    "glorot_uniform": "GlorotUniform",
    "lecun_normal": "LecunNormal",
    "lecun_uniform": "LecunUniform",
    "zeros": "Zeros",
    "ones": "Ones",
}
_PAIRS = {"kernel_size", "strides", "pool_size", "dilation_rate"}
_REGULARIZERS = {
    "kernel_regularizer",
    "bias_regularizer",
    "depthwise_regularizer",
    "pointwise_regularizer",
}
_INITIALIZER_KEYS = {"kernel_initializer", "depthwise_initializer", "pointwise_initializer"}


def edit(
    keras_json: str | dict[str, Any],
    edits: dict[str, dict[str, Any]],
    inserts: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """`keras_json` (as sent: a string or a parsed dict) with `edits` {layer name: {field:
    value}} applied and `inserts` {layer name: new Dense layer's config} placed before the
    named layers, in the same form. The argument is never modified: a dict comes back sharing
    what the edits leave unchanged. An edit's `type` puts a layer of that type in place of the
    named one (an Activation layer for a ReLU or Softmax layer). Raises KeyError for a layer
    name it does not hold, and ValueError for an insert `can_insert` refuses."""
    doc = json.loads(keras_json) if isinstance(keras_json, str) else keras_json
    if inserts:
        doc = _insert(doc, inserts)
        edits = {**edits, **{name: {} for name in inserts}}  # what follows is rebuilt
    missing = set(edits)
    doc = _edited(doc, edits, missing, stale=[False])
    if missing:
        raise KeyError(f"no layer named {sorted(missing)} in the Keras JSON")
    return json.dumps(doc) if isinstance(keras_json, str) else doc


def _edited(
    node: Any, edits: dict[str, dict[str, Any]], missing: set[str], stale: list[bool]
) -> Any:
    """`node` (a model) with its layers' edits, nested models included, in the order the model
    lists them; containers on the way to a change are copied, everything else is shared.
    `stale[0]` turns True at the first edited layer: the layers after it were built for a
    shape that may have changed."""
    config = node.get("config") if isinstance(node, dict) else None
    if not isinstance(config, dict):
        return node
    entries = config.get("layers") or []
    out = []
    for entry in entries:
        new = entry
        if isinstance(entry, dict):
            layer_config = entry.get("config") or {}
            name = layer_config.get("name", entry.get("name"))
            if stale[0] and "build_config" in entry:
                # Keras would build the layer from its recorded input shape before the model
                # rebuilds it; without it the layer is built from the tensor it receives.
                new = {k: v for k, v in entry.items() if k != "build_config"}
            if name in edits:
                missing.discard(name)
                fields = dict(edits[name])
                changed = dict(layer_config)
                if "type" in fields:  # another layer class in its place
                    new = {
                        **new,
                        "class_name": _CLASS[fields.pop("type")],
                        "module": "keras.layers",
                    }
                    changed = {k: v for k, v in layer_config.items() if k in _KEPT_ON_SWAP}
                for field, value in fields.items():
                    changed[_KEY.get(field, field)] = keras_value(field, value)
                if entry.get("config"):
                    new = {**new, "config": changed}
                stale[0] = True
            if entry.get("class_name") in ("Sequential", "Functional"):
                new = _edited(new, edits, missing, stale)
        out.append(new)
    if all(a is b for a, b in zip(out, entries, strict=True)):
        return node
    return {**node, "config": {**config, "layers": out}}


def _insert(doc: dict[str, Any], inserts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """New Dense layers into the model's list, each before the named layer; in a Functional
    model the new layer takes over the named layer's input, and the named layer is called on
    the new layer's output. `doc` itself is not modified."""
    kind = doc.get("class_name")
    if kind not in ("Sequential", "Functional"):
        raise ValueError("layers can be inserted into a Sequential or Functional model only")
    entries = list(doc["config"]["layers"])
    for before, config in inserts.items():
        at = next(
            (i for i, e in enumerate(entries) if (e.get("config") or {}).get("name") == before),
            None,
        )
        if at is None:
            raise KeyError(f"no layer named {before!r} in the Keras JSON")
        new: dict[str, Any] = {
            "module": "keras.layers",
            "class_name": "Dense",
            "config": {k: keras_value(k, v) for k, v in config.items()},
            "registered_name": None,
        }
        target = _rewired(entries[at], new, config) if kind == "Functional" else entries[at]
        entries.insert(at, new)
        # Its input is now the new layer.
        entries[at + 1] = {k: v for k, v in target.items() if k != "build_config"}
    return {**doc, "config": {**doc["config"], "layers": entries}}


def _rewired(target: dict[str, Any], new: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """`new` called on `target`'s input tensor; returns `target` called on `new`'s output
    (Keras 3's serialized call: one inbound node whose args are the input tensors)."""
    tensor = _single_input(target)
    if tensor is None:
        name = (target.get("config") or {}).get("name")
        raise ValueError(f"layer {name!r} is not called once on one tensor: nothing to insert")
    new["name"] = config["name"]
    new["inbound_nodes"] = copy.deepcopy(target["inbound_nodes"])
    out = copy.deepcopy(tensor)
    shape = out["config"].get("shape")
    if isinstance(shape, list) and shape:
        out["config"]["shape"] = [*shape[:-1], config["units"]]
    out["config"]["keras_history"] = [config["name"], 0, 0]
    nodes = copy.deepcopy(target["inbound_nodes"])
    nodes[0]["args"] = [out]
    return {**target, "inbound_nodes": nodes}


def _single_input(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The one tensor a Functional layer entry is called on, or None (shared layer, several
    inputs, or a format this editor does not know)."""
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return None
    args = nodes[0].get("args")
    if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
        return None
    tensor = args[0]
    config = tensor.get("config")
    if tensor.get("class_name") != "__keras_tensor__" or not isinstance(config, dict):
        return None
    return tensor if isinstance(config.get("keras_history"), list) else None


def can_insert(keras_json: str | dict[str, Any], before: str) -> bool:
    """Whether `edit` can insert a layer before layer `before`: any Sequential model; a
    Functional one where that layer is called once, on one tensor."""
    doc = json.loads(keras_json) if isinstance(keras_json, str) else keras_json
    if not isinstance(doc, dict):
        return False
    if doc.get("class_name") == "Sequential":
        return True
    if doc.get("class_name") != "Functional":
        return False
    for entry in (doc.get("config") or {}).get("layers") or []:
        if isinstance(entry, dict) and (entry.get("config") or {}).get("name") == before:
            return _single_input(entry) is not None
    return False


def current(keras_json: str | dict[str, Any], name: str, field: str) -> Any:
    """The value of `field` (a layer-list field name) in layer `name`'s Keras config."""
    doc = json.loads(keras_json) if isinstance(keras_json, str) else keras_json
    for entry in _layers(doc):
        config = entry.get("config") or {}
        if config.get("name", entry.get("name")) == name:
            return config.get(_KEY.get(field, field))
    return None


def keras_value(field: str, value: Any) -> Any:
    """A layer-list field value as Keras writes it in a layer config."""
    if value is None:
        return None
    if field in _PAIRS:
        return [value, value] if isinstance(value, int) else list(value)
    if field in _INITIALIZER_KEYS and isinstance(value, str):
        return {
            "module": "keras.initializers",
            "class_name": _INITIALIZERS.get(value, value),
            "config": {"seed": None} if value not in ("zeros", "ones") else {},
            "registered_name": None,
        }
    if field in _REGULARIZERS and isinstance(value, dict):
        l1, l2 = float(value.get("l1") or 0.0), float(value.get("l2") or 0.0)
        if l1 and l2:
            cls, config = "L1L2", {"l1": l1, "l2": l2}
        elif l1:
            cls, config = "L1", {"l1": l1}
        else:
            cls, config = "L2", {"l2": l2}
        return {
            "module": "keras.regularizers",
            "class_name": cls,
            "config": config,
            "registered_name": None,
        }
    return value


def _layers(node: Any) -> Iterator[dict[str, Any]]:
    """Every layer entry, in the order the model lists them (nested Sequential blocks too)."""
    config = node.get("config") if isinstance(node, dict) else None
    if not isinstance(config, dict):
        return
    for entry in config.get("layers") or []:
        if isinstance(entry, dict):
            yield entry
            if entry.get("class_name") in ("Sequential", "Functional"):
                yield from _layers(entry)
