"""Graph ordering: Sequential and Functional configs, inbound nodes, nested models.

Nested Sequential models (e.g. a data-augmentation block) are flattened; the result is one layer
list in topological order whose `inputs` name earlier layers (or MODEL_INPUT).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from service.schemas.keras.gate import (
    MAX_LAYERS,
    MODEL_CLASSES,
    as_dict,
    check_layer_entry,
    check_model_entry,
    load,
)
from service.schemas.keras.layers import MAX_DIM, is_int, read_layer
from service.schemas.model import MODEL_INPUT, Layer


def translate(keras_json: str | dict[str, Any]) -> tuple[list[int], list[Layer]]:
    """Keras 3 `model.to_json()` -> (input shape without batch dim, layer list)."""
    doc = load(keras_json)
    check_model_entry(doc, "the top-level model")
    config = as_dict(doc.get("config"), "the model's config")
    if doc["class_name"] == "Sequential":
        shape, layers = _translate_sequential(doc)
    else:
        shape, layers = _translate_functional(config)
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"the model has {len(layers)} layers; at most {MAX_LAYERS} are allowed")
    if not layers:
        raise ValueError("the model has no layers besides its input")
    return shape, layers


def _batchless(shape: Any, what: str) -> list[int]:
    if not isinstance(shape, list) or len(shape) < 2:
        raise ValueError(f"{what} must be a list [batch, ...dims]")
    dims = shape[1:]
    if len(dims) > 4 or not all(is_int(d) and 1 <= d <= MAX_DIM for d in dims):
        raise ValueError(f"{what} {shape} must have 1-4 known dims between 1 and {MAX_DIM}")
    return list(dims)


def _input_layer_shape(config: dict[str, Any], name: str) -> list[int]:
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is None:
        raise ValueError(f"input layer {name!r} has no batch_shape; input_shape is needed")
    return _batchless(shape, f"input layer {name!r} batch_shape")


def _sub(node: Any, key: str) -> dict[str, Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _first_layer_shape(doc: dict[str, Any], entries: list[Any]) -> list[int] | None:
    """Input shape of a Sequential without an InputLayer: model or first-layer build info."""
    candidates = [
        _sub(doc, "build_config").get("input_shape"),
        _sub(doc, "config").get("build_input_shape"),
    ]
    if entries:
        first_cfg = _sub(entries[0], "config")
        candidates += [
            first_cfg.get("batch_shape"),
            first_cfg.get("batch_input_shape"),
            _sub(entries[0], "build_config").get("input_shape"),
        ]
    for shape in candidates:
        if shape is not None:
            return _batchless(shape, "the model's input shape")
    return None


def _translate_sequential(doc: dict[str, Any]) -> tuple[list[int], list[Layer]]:
    shape, layers = _sequential_layers(doc)
    if shape is None:
        raise ValueError(
            "the model has no input shape (no InputLayer, batch_shape or "
            "build_config); input_shape is needed"
        )
    return shape, layers


def _sequential_layers(doc: dict[str, Any]) -> tuple[list[int] | None, list[Layer]]:
    entries = _sub(doc, "config").get("layers")
    if not isinstance(entries, list):
        raise ValueError("the Sequential model's config has no 'layers' list")
    shape = _first_layer_shape(doc, entries)
    layers: list[Layer] = []
    for entry in entries:
        name, cls, config = check_layer_entry(entry)
        if cls == "InputLayer":
            if layers:
                raise ValueError(f"input layer {name!r} must come first")
            shape = _input_layer_shape(config, name)
        elif cls in MODEL_CLASSES:
            layers.extend(_flatten_nested(entry, name))
        else:
            layers.append(read_layer(name, cls, config))
        _check_count(len(layers))
    return shape, layers


def _flatten_nested(entry: dict[str, Any], name: str) -> list[Layer]:
    """A nested Sequential (e.g. an augmentation block) is spliced in; others are rejected."""
    if entry.get("class_name") != "Sequential":
        raise ValueError(
            f"layer {name!r} is a nested {entry.get('class_name')} model, which is "
            "not supported; build the model flat"
        )
    check_model_entry(entry, f"nested model {name!r}")
    _, inner = _sequential_layers(entry)  # its input shape is the parent's, so not needed
    if not inner:
        raise ValueError(f"nested model {name!r} has no layers")
    return inner


def _check_count(count: int) -> None:
    if count > MAX_LAYERS:
        raise ValueError(f"the model has more than {MAX_LAYERS} layers")


def _history_names(node: Any, layer: str) -> list[str]:
    """Names of the layers feeding one inbound node (Keras 3 and Keras 2 formats)."""
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        if not all(isinstance(ref, list) and ref and isinstance(ref[0], str) for ref in node):
            raise ValueError(f"layer {layer!r} has malformed inbound_nodes")
        return [ref[0] for ref in node]
    names: list[str] = []
    for item in _tensors_in_order(as_dict(node, f"layer {layer!r} inbound node").get("args")):
        history = as_dict(item.get("config"), f"layer {layer!r} input").get("keras_history")
        if not isinstance(history, list) or len(history) != 3 or not isinstance(history[0], str):
            raise ValueError(f"layer {layer!r} has a malformed keras_history")
        names.append(history[0])
    return names


def _tensors_in_order(args: Any) -> Iterator[dict[str, Any]]:
    """`__keras_tensor__` dicts inside a Keras 3 node's args, depth-first in order."""
    stack = [args]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _inbound(entry: dict[str, Any], name: str) -> list[str]:
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1:
        count = len(nodes) if isinstance(nodes, list) else 0
        raise ValueError(
            f"layer {name!r} is called {count} times; each layer must be called "
            "exactly once (shared layers are not supported)"
        )
    sources = _history_names(nodes[0], name)
    if not sources:
        raise ValueError(f"layer {name!r} has no inputs in its inbound_nodes")
    return sources


def _single_ref(refs: Any, what: str) -> str:
    """The one layer name in input_layers/output_layers ([name, 0, 0] or [[name, 0, 0]])."""
    if isinstance(refs, list) and len(refs) == 1 and isinstance(refs[0], list):
        refs = refs[0]
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return refs[0]
    raise ValueError(f"only models with exactly one {what} are supported (got {refs!r})")


def _translate_functional(config: dict[str, Any]) -> tuple[list[int], list[Layer]]:
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ValueError("the Functional model's config has no 'layers' list")
    _check_count(len(entries))
    input_name = _single_ref(config.get("input_layers"), "input")
    output_name = _single_ref(config.get("output_layers"), "output")
    shape: list[int] | None = None
    alias = {input_name: MODEL_INPUT}  # nested Sequential name -> its last layer's name
    layers: list[Layer] = []
    for entry in entries:
        name, cls, cfg = check_layer_entry(entry)
        if cls == "InputLayer":
            if name != input_name:
                raise ValueError(f"input layer {name!r} is not the model's input")
            shape = _input_layer_shape(cfg, name)
            continue
        sources = _inbound(entry, name)
        if cls in MODEL_CLASSES:
            inner = _flatten_nested(entry, name)
            layers.extend(_chain(inner, sources))
            alias[name] = inner[-1].name or name
        else:
            layers.append(read_layer(name, cls, cfg, sources))
        _check_count(len(layers))
    if shape is None:
        raise ValueError("the Functional model has no InputLayer; input_shape is needed")
    layers = [
        _with_inputs(layer, [alias.get(s, s) for s in layer.inputs or []]) for layer in layers
    ]
    return shape, _ancestors_in_order(layers, alias.get(output_name, output_name))


def _chain(inner: list[Layer], sources: list[str]) -> list[Layer]:
    out = []
    previous = sources
    for layer in inner:
        out.append(_with_inputs(layer, previous))
        previous = [layer.name or ""]
    return out


def _with_inputs(layer: Layer, inputs: list[str]) -> Layer:
    return layer.model_copy(update={"inputs": inputs})


def _ancestors_in_order(layers: list[Layer], output: str) -> list[Layer]:
    """Layers the output depends on, in a stable topological order (the output comes last)."""
    by_name: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in by_name or layer.name == MODEL_INPUT:
            raise ValueError(f"layer name {layer.name!r} is used twice")
        by_name[layer.name or ""] = layer
    if output not in by_name:
        raise ValueError(f"output layer {output!r} is not among the model's layers")
    needed: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in needed or name == MODEL_INPUT:
            continue
        if name not in by_name:
            raise ValueError(f"a layer takes input from unknown layer {name!r}")
        needed.add(name)
        stack.extend(by_name[name].inputs or [])
    ordered: list[Layer] = []
    done = {MODEL_INPUT}
    pending = [layer for layer in layers if layer.name in needed]
    while pending:
        ready = [layer for layer in pending if set(layer.inputs or []) <= done]
        if not ready:
            raise ValueError("the model's layers form a cycle")
        ordered.append(ready[0])
        done.add(ready[0].name or "")
        pending.remove(ready[0])
    return ordered
