"""Graph ordering: Sequential and Functional configs, inbound nodes, nested models.

Nested models (a keras.applications base inside a transfer-learning model, an augmentation
Sequential) are flattened: their input is wired to what the outer model feeds them and their
layers join the one list. A layer called several times (a shared layer, or a nested model
called on two inputs) gives one node per call; the later calls name the first in `shares`.
A model with several inputs keeps the first as MODEL_INPUT and the
others as opaque input nodes; with several outputs, the last output in graph order is the one
the layer list ends with. The result is a layer list in topological order whose `inputs` name
earlier layers (or MODEL_INPUT).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from service.schemas.keras.gate import (
    MAX_LAYERS,
    as_dict,
    check_layer_entry,
    check_model_entry,
    load,
)
from service.schemas.keras.layers import MAX_DIM, is_int, is_number, read_layer
from service.schemas.layer import MODEL_INPUT, Layer

Shape = list[int | None]


@dataclass(frozen=True)
class Translation:
    """A Keras model read: the parsed document (never modified) and its layer list."""

    document: dict[str, Any]
    input_shape: Shape
    layers: list[Layer]


def translate(keras_json: str | dict[str, Any]) -> tuple[Shape, list[Layer]]:
    """Keras 3 `model.to_json()` -> (input shape without batch dim, layer list).

    A dimension the model leaves open (Input((None, None, 3))) is None.
    """
    model = read(keras_json)
    return model.input_shape, model.layers


def read(keras_json: str | dict[str, Any]) -> Translation:
    """`translate`, keeping the parsed document (a fix edits it without parsing it again)."""
    doc = load(keras_json)
    check_model_entry(doc, "the top-level model")
    graph = _Graph()
    if doc["class_name"] == "Sequential":
        outputs = [graph.sequential(doc, None, "")]
    else:
        outputs = graph.functional(doc, None, "")
    if graph.input_shape is None:
        raise ValueError(
            "the model has no input shape (no InputLayer, batch_shape or "
            "build_config); input_shape is needed"
        )
    layers = graph.with_owners(_ancestors_in_order(graph.layers, outputs))
    if doc["class_name"] == "Sequential" and _is_chain(layers):
        layers = [layer.model_copy(update={"inputs": None}) for layer in layers]
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"the model has {len(layers)} layers; at most {MAX_LAYERS} are allowed")
    if not layers:
        raise ValueError("the model has no layers besides its input")
    return Translation(doc, graph.input_shape, layers)


def _is_chain(layers: list[Layer]) -> bool:
    """Each layer takes the one before it: `inputs` can be left out (a plain Sequential)."""
    previous = MODEL_INPUT
    for layer in layers:
        if layer.inputs != [previous]:
            return False
        previous = layer.name or ""
    return True


class _Graph:
    """Layers collected across nested models, each under a name unique in the whole graph."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.used = {MODEL_INPUT}
        self.input_shape: Shape | None = None
        # Final node name -> the Keras layer it calls (model path and layer name): the calls of
        # one shared layer have the same key.
        self.layer_of: dict[str, str] = {}

    def unique(self, name: str, scope: str) -> str:
        candidate = name if name not in self.used else f"{scope}/{name}"
        n = 1
        while candidate in self.used:
            n += 1
            candidate = f"{scope}/{name}#{n}"
        self.used.add(candidate)
        return candidate

    def add(self, layer: Layer, keras_layer: str | None = None) -> None:
        self.layers.append(layer)
        if keras_layer is not None:
            self.layer_of[layer.name or ""] = keras_layer
        if len(self.layers) > MAX_LAYERS:
            raise ValueError(f"the model has more than {MAX_LAYERS} layers")

    def with_owners(self, layers: list[Layer]) -> list[Layer]:
        """The first call of each shared layer (in graph order) owns its weights; the later
        calls name it in `shares`."""
        owner: dict[str, str] = {}
        out = []
        for layer in layers:
            key = self.layer_of.get(layer.name or "")
            first = owner.setdefault(key, layer.name or "") if key is not None else layer.name
            shared = first != layer.name
            out.append(layer.model_copy(update={"shares": first}) if shared else layer)
        return out

    def top_input(self, entry_config: dict[str, Any], name: str, first: bool) -> str:
        """The top model's input: the first is MODEL_INPUT, others opaque input nodes."""
        shape = _input_layer_shape(entry_config, name)
        if first:
            self.input_shape = shape
            return MODEL_INPUT
        final = self.unique(name, "input")
        reason = "a further model input: only the first input's path is followed"
        self.add(read_layer(final, "InputLayer", {}, [MODEL_INPUT], shape, reason))
        return final

    # ------------------------------------------------------------ Sequential

    def sequential(self, doc: dict[str, Any], source: str | None, scope: str) -> str:
        """Adds a Sequential's layers fed by `source` (None: the top model); returns the last."""
        entries = _sub(doc, "config").get("layers")
        if not isinstance(entries, list):
            raise ValueError("the Sequential model's config has no 'layers' list")
        if source is None:
            self.input_shape = _first_layer_shape(doc, entries)
            source = MODEL_INPUT
        scope = scope or str(_sub(doc, "config").get("name") or "sequential")
        previous = source
        for i, raw in enumerate(entries):
            entry = check_layer_entry(raw)
            if entry.kind == "input":
                if i:
                    raise ValueError(f"input layer {entry.name!r} must come first")
                if source == MODEL_INPUT and not self.layers:
                    self.input_shape = _input_layer_shape(entry.config, entry.name)
                continue
            if entry.kind == "model":
                previous = self.nested(raw, entry.name, [previous], scope)[0]
                continue
            # The next layer's build_config records the shape this one produced.
            following = _sub(entries[i + 1], "build_config") if i + 1 < len(entries) else {}
            recorded = _batchless_or_none(following.get("input_shape"))
            final = self.unique(entry.name, scope)
            reason = entry.reason if entry.kind == "opaque" else None
            layer = read_layer(final, entry.cls, entry.config, [previous], recorded, reason)
            self.add(layer, f"{scope}|{entry.name}")
            previous = final
        return previous

    # ------------------------------------------------------------ Functional

    def functional(self, doc: dict[str, Any], sources: list[str] | None, scope: str) -> list[str]:
        """Adds a Functional model's layers; `sources` feed its inputs (None: the top model)."""
        config = as_dict(doc.get("config"), "the Functional model's config")
        entries = config.get("layers")
        if not isinstance(entries, list):
            raise ValueError("the Functional model's config has no 'layers' list")
        if len(entries) > MAX_LAYERS:
            raise ValueError(f"the model has more than {MAX_LAYERS} layers")
        scope = scope or str(config.get("name") or "model")
        inputs = _refs(config.get("input_layers"), "input")
        outputs = _refs(config.get("output_layers"), "output")
        if sources is not None and len(sources) != len(inputs):
            raise ValueError(
                f"nested model {scope!r} has {len(inputs)} inputs but is fed {len(sources)}"
            )
        shapes = _recorded_shapes(entries)
        # (name inside this model, call index) -> final name(s) of that call's outputs
        local: dict[tuple[str, int], list[str]] = {}
        input_names = [name for name, _, _ in inputs]
        for raw, call, node in _calls_in_order(entries):
            entry = check_layer_entry(raw)
            if entry.kind == "input":
                if entry.name not in input_names:
                    raise ValueError(f"input layer {entry.name!r} is not the model's input")
                index = input_names.index(entry.name)
                if sources is None:
                    local[entry.name, 0] = [self.top_input(entry.config, entry.name, index == 0)]
                else:
                    local[entry.name, 0] = [sources[index]]
                continue
            feeding = [_resolve(local, ref, entry.name) for ref in _node_refs(node, entry.name)]
            if entry.kind == "model":
                local[entry.name, call] = self.nested(raw, entry.name, feeding, scope)
                continue
            final = self.unique(entry.name if not call else f"{entry.name}#{call + 1}", scope)
            reason = entry.reason if entry.kind == "opaque" else None
            cls, config = entry.cls, entry.config
            affine = _affine_op(cls, node) if reason is not None else None
            if reason is not None and _is_merge_op(cls, node, feeding):
                reason = None  # x + y, x * y on two tensors: Keras' Add / Multiply, read as such
            elif affine is not None:  # x / 255.0, x - 0.5: exactly a Rescaling(scale, offset)
                reason, cls, config = None, "Rescaling", {"scale": affine[0], "offset": affine[1]}
            shape = shapes.get((entry.name, call))
            layer = read_layer(final, cls, config, feeding, shape, reason)
            self.add(layer, f"{scope}|{entry.name}")
            local[entry.name, call] = [final]
        return [_resolve(local, ref, "the model's output") for ref in outputs]

    def nested(self, entry: dict[str, Any], name: str, sources: list[str], scope: str) -> list[str]:
        """A model used as a layer (transfer learning, augmentation block): spliced in."""
        check_model_entry(entry, f"nested model {name!r}")
        inner = f"{scope}/{name}" if scope else name
        if entry.get("class_name") == "Sequential":
            if len(sources) != 1:
                raise ValueError(f"nested Sequential {name!r} must be fed one tensor")
            before = len(self.layers)
            out = self.sequential(entry, sources[0], inner)
            if len(self.layers) == before:
                raise ValueError(f"nested model {name!r} has no layers")
            return [out]
        return self.functional(entry, sources, inner)


def _is_merge_op(cls: str, node: Any, feeding: list[str]) -> bool:
    """A keras.ops add/multiply of tensors only, which the Add/Multiply layers model exactly.

    Add is read only for equal shapes (the layer the worker builds does not broadcast);
    Multiply broadcasts like the analysis models it. An op with a constant stays opaque.
    """
    if cls not in ("Add", "Multiply") or len(feeding) < 2:
        return False
    args = node.get("args") if isinstance(node, dict) else None
    if not isinstance(args, list) or len(args) != len(feeding):
        return False  # a constant among the arguments (x + 3.0)
    shapes = [_sub(t, "config").get("shape") for t in _tensors_in_order(args)]
    return cls == "Multiply" or all(shape == shapes[0] for shape in shapes)


def _affine_op(cls: str, node: Any) -> tuple[float, float] | None:
    """(scale, offset) of a keras.ops call between one tensor and one number, if affine."""
    args = node.get("args") if isinstance(node, dict) else None
    if not isinstance(args, list) or len(args) != 2:
        return None
    numbers = [a for a in args if is_number(a)]
    if len(numbers) != 1 or not any(isinstance(a, dict) for a in args):
        return None
    c, tensor_first = float(numbers[0]), isinstance(args[0], dict)
    if cls == "Add":
        return 1.0, c
    if cls == "Subtract":
        return (1.0, -c) if tensor_first else (-1.0, c)
    if cls == "Multiply":
        return c, 0.0
    if cls in ("TrueDivide", "Divide") and tensor_first and c != 0:
        return 1.0 / c, 0.0
    return None


# ---------------------------------------------------------------- shapes


def _batchless(shape: Any, what: str) -> Shape:
    if not isinstance(shape, list) or len(shape) < 2:
        raise ValueError(f"{what} must be a list [batch, ...dims]")
    dims = shape[1:]
    if len(dims) > 4 or not all(d is None or (is_int(d) and 1 <= d <= MAX_DIM) for d in dims):
        raise ValueError(f"{what} {shape} must have 1-4 dims, each null or 1 to {MAX_DIM}")
    return list(dims)


def _batchless_or_none(shape: Any) -> Shape | None:
    try:
        return _batchless(shape, "a recorded shape")
    except ValueError:
        return None


def _input_layer_shape(config: dict[str, Any], name: str) -> Shape:
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is None:
        raise ValueError(f"input layer {name!r} has no batch_shape; input_shape is needed")
    return _batchless(shape, f"input layer {name!r} batch_shape")


def _sub(node: Any, key: str) -> dict[str, Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _first_layer_shape(doc: dict[str, Any], entries: list[Any]) -> Shape | None:
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


def _recorded_shapes(entries: list[Any]) -> dict[tuple[str, int], Shape]:
    """Output shapes Keras recorded where each call's output is consumed (first output), by
    (layer name, call index)."""
    shapes: dict[tuple[str, int], Shape] = {}
    for entry in entries:
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        for node in nodes if isinstance(nodes, list) else []:
            args = node.get("args") if isinstance(node, dict) else None
            for tensor in _tensors_in_order(args):
                config = _sub(tensor, "config")
                history = config.get("keras_history")
                if isinstance(history, list) and len(history) == 3 and history[2] == 0:
                    shape = _batchless_or_none(config.get("shape"))
                    if shape is not None and isinstance(history[0], str) and is_int(history[1]):
                        shapes.setdefault((history[0], history[1]), shape)
    return shapes


# ---------------------------------------------------------------- references


Ref = tuple[str, int, int]  # (layer name, call index, index of that call's output tensor)


def _resolve(local: dict[tuple[str, int], list[str]], ref: Ref, where: str) -> str:
    name, call, index = ref
    if (name, call) not in local:
        known = any(key[0] == name for key in local)
        what = f"call {call} of layer {name!r}" if known else f"unknown layer {name!r}"
        raise ValueError(f"{where} takes input from {what}")
    outputs = local[name, call]
    if not 0 <= index < len(outputs):
        raise ValueError(f"{where} takes output {index} of {name!r}, which has {len(outputs)}")
    return outputs[index]


def _refs(refs: Any, what: str) -> list[Ref]:
    """input_layers/output_layers: [name, 0, i], or a list (or dict) of those."""
    if isinstance(refs, dict):
        refs = list(refs.values())
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        refs = [refs]
    if not isinstance(refs, list) or not refs:
        raise ValueError(f"the model's {what}_layers are missing or malformed")
    out = []
    for ref in refs:
        if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)):
            raise ValueError(f"the model's {what}_layers are malformed (got {ref!r})")
        out.append((ref[0], _index(ref[1]), _index(ref[2])))
    return out


def _index(value: Any) -> int:
    return int(value) if is_int(value) and value >= 0 else 0


def _history_refs(node: Any, layer: str) -> list[Ref]:
    """The (layer, call, output index) triples feeding one inbound node (Keras 3 and 2)."""
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        if not all(isinstance(ref, list) and ref and isinstance(ref[0], str) for ref in node):
            raise ValueError(f"layer {layer!r} has malformed inbound_nodes")
        return [
            (ref[0], _index(ref[1]) if len(ref) > 1 else 0, _index(ref[2]) if len(ref) > 2 else 0)
            for ref in node
        ]
    refs: list[Ref] = []
    for item in _tensors_in_order(as_dict(node, f"layer {layer!r} inbound node").get("args")):
        history = as_dict(item.get("config"), f"layer {layer!r} input").get("keras_history")
        if not isinstance(history, list) or len(history) != 3 or not isinstance(history[0], str):
            raise ValueError(f"layer {layer!r} has a malformed keras_history")
        refs.append((history[0], _index(history[1]), _index(history[2])))
    return refs


def _tensors_in_order(args: Any) -> Iterator[dict[str, Any]]:
    """`__keras_tensor__` dicts inside a Keras 3 node's args, depth-first in order."""
    stack = [args]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))


def _node_refs(node: Any, name: str) -> list[Ref]:
    if node is None:
        raise ValueError(f"layer {name!r} has no inbound_nodes: it is never called")
    sources = _history_refs(node, name)
    if not sources:
        raise ValueError(f"layer {name!r} has no inputs in its inbound_nodes")
    return sources


# ---------------------------------------------------------------- order


Call = tuple[Any, int, Any]  # (layer entry, call index, its inbound node; None for an input)


def _calls_in_order(entries: list[Any]) -> list[Call]:
    """Every call of every layer of a Functional config, each after the calls it takes input
    from. Keras writes layers in first-call order; a shared layer's later call may need
    layers written after it, so the order is made per call."""
    calls: list[Call] = []
    for entry in entries:
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        if isinstance(nodes, list) and nodes:
            calls.extend((entry, k, node) for k, node in enumerate(nodes))
        else:
            calls.append((entry, 0, None))  # an input layer (or a layer never called)
    names = [_entry_name(entry) for entry, _, _ in calls]
    position = {(name, k): i for i, (name, (_, k, _)) in enumerate(zip(names, calls, strict=True))}
    deps: list[set[int]] = []
    for i, ((_, _, node), name) in enumerate(zip(calls, names, strict=True)):
        refs = _history_refs(node, name) if node is not None else []
        deps.append({position[r[0], r[1]] for r in refs if (r[0], r[1]) in position} - {i})
    return [calls[i] for i in _earliest_first(deps)]


def _earliest_first(deps: list[set[int]]) -> list[int]:
    """Indices 0..n-1, each after those in its `deps`: Kahn's algorithm taking the earliest
    ready index first, so an order that already works is kept. ValueError on a cycle."""
    consumers: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            consumers.setdefault(j, []).append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        ordered.append(i)
        for k in consumers.get(i, []):
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, k)
    if len(ordered) != len(deps):
        raise ValueError("the model's layers form a cycle")
    return ordered


def _entry_name(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    return str(entry.get("name", _sub(entry, "config").get("name")))


def _ancestors_in_order(layers: list[Layer], outputs: list[str]) -> list[Layer]:
    """Layers the outputs depend on, in a stable topological order ending with one output.

    With several outputs the list ends with the last output in graph order that no other
    needed layer consumes: that is the output the layer list (and its analysis) ends on.
    """
    by_name: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in by_name or layer.name == MODEL_INPUT:
            raise ValueError(f"layer name {layer.name!r} is used twice")
        by_name[layer.name or ""] = layer
    for output in outputs:
        if output not in by_name:
            raise ValueError(f"output {output!r} is not among the model's layers")
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed or name == MODEL_INPUT:
            continue
        if name not in by_name:
            raise ValueError(f"a layer takes input from unknown layer {name!r}")
        needed.add(name)
        stack.extend(by_name[name].inputs or [])
    # The earliest ready layer first, so the order stays Keras'.
    pending = [layer for layer in layers if layer.name in needed]
    position = {layer.name: i for i, layer in enumerate(pending)}
    deps = [
        {position[source] for source in set(layer.inputs or []) - {MODEL_INPUT}}
        for layer in pending
    ]
    ordered = [pending[i] for i in _earliest_first(deps)]
    consumed = {source for layer in ordered for source in layer.inputs or []}
    sinks = [layer for layer in ordered if layer.name in outputs and layer.name not in consumed]
    if sinks and ordered[-1] is not sinks[-1]:
        ordered.remove(sinks[-1])
        ordered.append(sinks[-1])
    return ordered
