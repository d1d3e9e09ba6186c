"""The security gate: Keras JSON is read as plain JSON, bounded, and allowlisted.

The user's JSON is never handed to Keras (nothing here imports TensorFlow or Keras). It is parsed
with `json.loads`, bounded in size and nesting, and every layer must be a built-in Keras class
from a `keras...` module. Anything that could carry code (Lambda, TFSMLayer, custom/registered
classes, serialized functions) is rejected with a ValueError that names the layer.

A built-in Keras class without a reader (or with data_format="channels_first", or a keras.ops
call) passes the gate as an opaque entry: it is inert data, kept in the graph, never built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from service.schemas.keras.layers import LAYER_TYPES

MAX_JSON_CHARS = 5_000_000
MAX_DEPTH = 64
MAX_NODES = 500_000
MAX_LAYERS = 500

ALLOWED_CLASSES = frozenset([*LAYER_TYPES, "InputLayer"])
# Classes that carry or load code: never read, whatever module they claim.
REFUSED_CLASSES = {
    "Lambda": "it wraps arbitrary Python code; replace it with built-in layers",
    "TFSMLayer": "it loads a TensorFlow SavedModel from a path; send the model itself",
    "TorchModuleWrapper": "it wraps arbitrary PyTorch code",
    "JaxLayer": "it wraps arbitrary JAX code",
    "FlaxLayer": "it wraps arbitrary Flax code",
}
# keras.ops calls recorded in Functional JSON (x * y, keras.ops.mean(...)) come from here.
OPS_MODULE = "keras.src.ops"
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})

_MODULE_RE = re.compile(r"^keras(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def load(keras_json: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(keras_json, str):
        if len(keras_json) > MAX_JSON_CHARS:
            raise ValueError(f"keras_json is too large ({len(keras_json)} characters)")
        try:
            doc = json.loads(keras_json, parse_constant=_reject_constant)
        except RecursionError as exc:
            raise ValueError(f"keras_json is nested deeper than {MAX_DEPTH} levels") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"keras_json is not valid JSON: {exc}") from exc
    else:
        doc = keras_json
    if not isinstance(doc, dict):
        raise ValueError("keras_json must be a JSON object (Keras `model.to_json()` output)")
    _check_size(doc)
    if "class_name" not in doc or "config" not in doc:
        raise ValueError("keras_json must have 'class_name' and 'config' (Keras `to_json()`)")
    return doc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"keras_json contains {name}, which is not allowed")


def _check_size(doc: Any) -> None:
    """Iteratively bound nesting depth and node count (also guards cyclic dicts)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"keras_json is nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise ValueError(f"keras_json has more than {MAX_NODES} values")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _module_ok(module: Any) -> bool:
    # Keras 2 JSON has no module; anything present must be keras / keras.xxx.
    return module is None or (isinstance(module, str) and bool(_MODULE_RE.match(module)))


def _registered_ok(entry: dict[str, Any]) -> bool:
    registered = entry.get("registered_name")
    return registered is None or registered == entry.get("class_name")


def check_model_entry(doc: dict[str, Any], where: str) -> None:
    cls = doc.get("class_name")
    if not isinstance(cls, str) or cls not in MODEL_CLASSES:
        raise ValueError(f"{where} has class_name {cls!r}; expected Sequential or Functional")
    if not _module_ok(doc.get("module")) or not _registered_ok(doc):
        raise ValueError(
            f"{where} is not a built-in Keras model (module {doc.get('module')!r}, "
            f"registered_name {doc.get('registered_name')!r})"
        )
    config = doc.get("config")
    if isinstance(config, dict):  # e.g. a model-level dtype policy; layers are checked one by one
        _check_objects({k: v for k, v in config.items() if k != "layers"}, where)


def _walk_dicts(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass(frozen=True)
class Entry:
    """One allowlisted layer entry and how it is read.

    kind: "input" (InputLayer), "model" (a nested model), "read" (a class with a reader) or
    "opaque" (a built-in Keras class the analysis does not model; `reason` says why).
    """

    name: str
    cls: str
    config: dict[str, Any]
    kind: str
    reason: str = ""


def check_layer_entry(entry: Any) -> Entry:
    """Allowlist one layer entry, or raise naming the layer."""
    entry = as_dict(entry, "each layer")
    cls = entry.get("class_name")
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = entry.get("name", config.get("name"))
    label = f"layer {name!r} has class {cls}"
    if not isinstance(cls, str) or not isinstance(name, str):
        raise ValueError(f"layer {name!r}: 'class_name' and 'name' must be strings")
    if cls in MODEL_CLASSES:
        return Entry(name, cls, config, "model")  # checked by the caller, as a model
    if cls in REFUSED_CLASSES:
        raise ValueError(f"{label}, which is not allowed: {REFUSED_CLASSES[cls]}")
    module = entry.get("module")
    if not _module_ok(module):
        raise ValueError(f"{label} from module {module!r}, which is not a Keras module")
    if not _registered_ok(entry):
        raise ValueError(
            f"{label} with registered_name {entry.get('registered_name')!r}: "
            "custom (registered) classes are not allowed"
        )
    _check_nested_objects(entry, label)
    if cls == "InputLayer":
        return Entry(name, cls, config, "input")
    if isinstance(module, str) and module.startswith(OPS_MODULE):
        return Entry(name, cls, config, "opaque", f"keras.ops call ({module})")
    if cls not in ALLOWED_CLASSES:
        if module is None:  # Keras 2 JSON names no module: only the classes read are trusted
            raise ValueError(f"{label} without a module, which is not a known Keras layer")
        return Entry(name, cls, config, "opaque", "a Keras layer the analysis does not model")
    if config.get("data_format", "channels_last") != "channels_last":
        return Entry(name, cls, config, "opaque", f"data_format {config.get('data_format')!r}")
    return Entry(name, cls, config, "read")


def _check_nested_objects(entry: dict[str, Any], label: str) -> None:
    """Every serialized object inside a layer (initializers, dtype...) must be built-in Keras."""
    _check_objects(entry.get("config"), f"{label} and")


def _check_objects(node: Any, label: str) -> None:
    for item in _walk_dicts(node):
        module = item.get("module")
        if "module" in item and not _module_ok(module):
            raise ValueError(f"{label} refers to module {module!r}, which is not a Keras module")
        if item.get("class_name") == "__lambda__" or "code" in item:
            raise ValueError(f"{label} contains a serialized Python function, which is not allowed")
        if "class_name" in item and not _registered_ok(item):
            raise ValueError(
                f"{label} refers to the custom object {item.get('registered_name')!r}, "
                "which is not allowed"
            )
