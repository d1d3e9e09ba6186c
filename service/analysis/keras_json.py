"""Translate Keras 3 `model.to_json()` into the public layer list, reading it as plain JSON.

Security: the user's JSON is never handed to Keras (this module must not import TensorFlow or
Keras). It is parsed with `json.loads`, bounded in size and nesting, and every layer must be on
an allowlist of built-in Keras classes from a `keras...` module. Anything that could carry code
(Lambda, TFSMLayer, custom/registered classes, serialized functions) is rejected with a
ValueError that names the layer.

Only `data_format="channels_last"` is supported; `channels_first` is rejected with a message.
Nested Sequential models (e.g. a data-augmentation block) are flattened; nested Functional
models, shared layers and multi-input/multi-output models are rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from service.analysis.architecture import MODEL_INPUT
from service.schemas.model import Initializer, Layer, LayerType, Regularizer

MAX_JSON_CHARS = 5_000_000
MAX_DEPTH = 64
MAX_NODES = 500_000
MAX_LAYERS = 500
MAX_UNITS = 1_000_000
MAX_KERNEL = 10_000
MAX_DIM = 100_000

LAYER_TYPES: dict[str, LayerType] = {
    "Conv2D": "conv2d",
    "SeparableConv2D": "separable_conv2d",
    "DepthwiseConv2D": "depthwise_conv2d",
    "Dense": "dense",
    "MaxPooling2D": "max_pooling2d",
    "AveragePooling2D": "average_pooling2d",
    "GlobalAveragePooling2D": "global_average_pooling2d",
    "GlobalMaxPooling2D": "global_max_pooling2d",
    "Flatten": "flatten",
    "Dropout": "dropout",
    "SpatialDropout2D": "spatial_dropout2d",
    "BatchNormalization": "batch_normalization",
    "LayerNormalization": "layer_normalization",
    "Activation": "activation",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "Softmax": "softmax",
    "Rescaling": "rescaling",
    "Normalization": "normalization",
    "Reshape": "reshape",
    "ZeroPadding2D": "zero_padding2d",
    "Add": "add",
    "Concatenate": "concatenate",
    "RandomFlip": "random_flip",
    "RandomRotation": "random_rotation",
    "RandomTranslation": "random_translation",
}
ALLOWED_CLASSES = frozenset([*LAYER_TYPES, "InputLayer"])
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})

INITIALIZERS: dict[str, str] = {
    "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform",
    "TruncatedNormal": "truncated_normal",
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "LecunNormal": "lecun_normal",
    "LecunUniform": "lecun_uniform",
    "Zeros": "zeros",
    "Ones": "ones",
    "Constant": "constant",
    "VarianceScaling": "variance_scaling",
    "Orthogonal": "orthogonal",
    "Identity": "identity",
}
# Keras also accepts these string aliases for the same classes.
_INIT_ALIASES = {
    "zero": "zeros",
    "one": "ones",
    "normal": "random_normal",
    "uniform": "random_uniform",
}
_INIT_ARGS = (
    "mean",
    "stddev",
    "minval",
    "maxval",
    "value",
    "scale",
    "mode",
    "distribution",
    "gain",
)

ACTIVATIONS = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "glu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    }
)

_MODULE_RE = re.compile(r"^keras(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SNAKE_RE = re.compile(r"(?<!^)(?=[A-Z])")


# ---------------------------------------------------------------- loading and generic checks


def translate(keras_json: str | dict[str, Any]) -> tuple[list[int], list[Layer]]:
    """Keras 3 `model.to_json()` -> (input shape without batch dim, layer list)."""
    doc = _load(keras_json)
    _check_model_entry(doc, "the top-level model")
    config = _dict(doc.get("config"), "the model's config")
    if doc["class_name"] == "Sequential":
        shape, layers = _translate_sequential(doc)
    else:
        shape, layers = _translate_functional(config)
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"the model has {len(layers)} layers; at most {MAX_LAYERS} are allowed")
    if not layers:
        raise ValueError("the model has no layers besides its input")
    return shape, layers


def compile_info(keras_json: str | dict[str, Any]) -> dict[str, Any]:
    """The optimizer config and loss from a compiled model's JSON, read as plain JSON."""
    doc = _load(keras_json)
    compiled = doc.get("compile_config")
    if not isinstance(compiled, dict):
        return {"optimizer": None, "loss": None}
    optimizer = compiled.get("optimizer")
    loss = compiled.get("loss")
    return {
        "optimizer": optimizer if isinstance(optimizer, dict | str) else None,
        "loss": loss if isinstance(loss, str | dict) else None,
    }


def _load(keras_json: str | dict[str, Any]) -> dict[str, Any]:
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


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _module_ok(module: Any) -> bool:
    # Keras 2 JSON has no module; anything present must be keras / keras.xxx.
    return module is None or (isinstance(module, str) and bool(_MODULE_RE.match(module)))


def _registered_ok(entry: dict[str, Any]) -> bool:
    registered = entry.get("registered_name")
    return registered is None or registered == entry.get("class_name")


def _check_model_entry(doc: dict[str, Any], where: str) -> None:
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


def _check_layer_entry(entry: Any) -> tuple[str, str, dict[str, Any]]:
    """Allowlist one layer entry; returns (name, class, config) or raises naming the layer."""
    entry = _dict(entry, "each layer")
    cls = entry.get("class_name")
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = entry.get("name", config.get("name"))
    label = f"layer {name!r} has class {cls}"
    if not isinstance(cls, str) or not isinstance(name, str):
        raise ValueError(f"layer {name!r}: 'class_name' and 'name' must be strings")
    if cls in MODEL_CLASSES:
        return name, cls, config  # nested models are handled (or rejected) by the caller
    if cls not in ALLOWED_CLASSES:
        allowed = ", ".join(sorted(ALLOWED_CLASSES))
        raise ValueError(f"{label}, which is not allowed (allowed: {allowed})")
    if not _module_ok(entry.get("module")):
        raise ValueError(
            f"{label} from module {entry.get('module')!r}, which is not a Keras module"
        )
    if not _registered_ok(entry):
        raise ValueError(
            f"{label} with registered_name {entry.get('registered_name')!r}: "
            "custom (registered) classes are not allowed"
        )
    _check_nested_objects(entry, label)
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"{label} with data_format {config.get('data_format')!r}; only "
            "channels_last is supported"
        )
    return name, cls, config


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


# ---------------------------------------------------------------- model structure


def _batchless(shape: Any, what: str) -> list[int]:
    if not isinstance(shape, list) or len(shape) < 2:
        raise ValueError(f"{what} must be a list [batch, ...dims]")
    dims = shape[1:]
    if len(dims) > 4 or not all(_is_int(d) and 1 <= d <= MAX_DIM for d in dims):
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
        name, cls, config = _check_layer_entry(entry)
        if cls == "InputLayer":
            if layers:
                raise ValueError(f"input layer {name!r} must come first")
            shape = _input_layer_shape(config, name)
        elif cls in MODEL_CLASSES:
            layers.extend(_flatten_nested(entry, name))
        else:
            layers.append(_layer(name, cls, config))
        _check_count(len(layers))
    return shape, layers


def _flatten_nested(entry: dict[str, Any], name: str) -> list[Layer]:
    """A nested Sequential (e.g. an augmentation block) is spliced in; others are rejected."""
    if entry.get("class_name") != "Sequential":
        raise ValueError(
            f"layer {name!r} is a nested {entry.get('class_name')} model, which is "
            "not supported; build the model flat"
        )
    _check_model_entry(entry, f"nested model {name!r}")
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
    for item in _tensors_in_order(_dict(node, f"layer {layer!r} inbound node").get("args")):
        history = _dict(item.get("config"), f"layer {layer!r} input").get("keras_history")
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
        name, cls, cfg = _check_layer_entry(entry)
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
            layers.append(_layer(name, cls, cfg, sources))
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


# ---------------------------------------------------------------- one layer


def _layer(name: str, cls: str, config: dict[str, Any], inputs: list[str] | None = None) -> Layer:
    fields: dict[str, Any] = {"type": LAYER_TYPES[cls], "name": name, "inputs": inputs}
    reader = _Reader(name, cls, config)
    fields.update(_READERS.get(cls, _no_fields)(reader))
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        return Layer(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"layer {name!r} ({cls}) has invalid settings: {problems}") from None


class _Reader:
    """Typed access to one layer's config; every error names the layer."""

    def __init__(self, name: str, cls: str, config: dict[str, Any]) -> None:
        self.name, self.cls, self.config = name, cls, config

    def fail(self, message: str) -> ValueError:
        return ValueError(f"layer {self.name!r} ({self.cls}): {message}")

    def integer(self, key: str, hi: int) -> int | None:
        value = self.config.get(key)
        if value is None:
            return None
        if not _is_int(value) or not 1 <= value <= hi:
            raise self.fail(f"{key} must be an integer between 1 and {hi}, got {value!r}")
        return int(value)

    def pair(self, key: str, hi: int = MAX_KERNEL) -> int | tuple[int, int] | None:
        value = self.config.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value, value]
        if len(items) == 1:
            items = items * 2
        if len(items) != 2 or not all(_is_int(v) and 1 <= v <= hi for v in items):
            raise self.fail(f"{key} must be one or two integers between 1 and {hi}, got {value!r}")
        return (int(items[0]), int(items[1]))

    def number(self, key: str) -> float | None:
        value = self.config.get(key)
        if value is None:
            return None
        if not _is_number(value):
            raise self.fail(f"{key} must be a number, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.config.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def padding(self) -> str | None:
        value = self.config.get("padding")
        if value is not None and value not in ("valid", "same"):
            raise self.fail(f"padding must be 'valid' or 'same', got {value!r}")
        return value

    def axis(self) -> int | None:
        value = self.config.get("axis")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is not None and not _is_int(value):
            raise self.fail(f"only a single integer axis is supported, got {value!r}")
        return value

    def factor(self, key: str) -> float | tuple[float, float] | None:
        value = self.config.get(key)
        if isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)):
            return (float(value[0]), float(value[1]))
        if value is None or _is_number(value):
            return None if value is None else float(value)
        raise self.fail(f"{key} must be a number or a pair of numbers, got {value!r}")

    def floats(self, key: str) -> float | list[float] | None:
        value = self.config.get(key)
        if isinstance(value, list) and all(map(_is_number, value)) and len(value) <= MAX_UNITS:
            return [float(v) for v in value]
        if value is None or _is_number(value):
            return None if value is None else float(value)
        raise self.fail(f"{key} must be a number or a flat list of numbers")

    def activation(self, key: str = "activation") -> str | None:
        return _activation(self.config.get(key), self)

    def initializer(self, key: str) -> Initializer | None:
        return _initializer(self.config.get(key), self, key)

    def regularizer(self, key: str) -> Regularizer | None:
        return _regularizer(self.config.get(key), self, key)

    def rejected_if(self, condition: bool, message: str) -> None:
        if condition:
            raise self.fail(message)


def _no_fields(r: _Reader) -> dict[str, Any]:
    return {}


def _conv_common(r: _Reader) -> dict[str, Any]:
    return {
        "kernel_size": r.pair("kernel_size"),
        "strides": r.pair("strides"),
        "padding": r.padding(),
        "dilation_rate": r.pair("dilation_rate"),
        "activation": r.activation(),
        "use_bias": r.flag("use_bias"),
        "bias_regularizer": r.regularizer("bias_regularizer"),
    }


def _conv2d(r: _Reader) -> dict[str, Any]:
    return {
        **_conv_common(r),
        "filters": r.integer("filters", MAX_UNITS),
        "groups": r.integer("groups", MAX_UNITS),
        "kernel_initializer": r.initializer("kernel_initializer"),
        "kernel_regularizer": r.regularizer("kernel_regularizer"),
    }


def _depthwise(r: _Reader) -> dict[str, Any]:
    return {
        **_conv_common(r),
        "depth_multiplier": r.integer("depth_multiplier", 1024),
        "depthwise_initializer": r.initializer("depthwise_initializer"),
        "depthwise_regularizer": r.regularizer("depthwise_regularizer"),
    }


def _separable(r: _Reader) -> dict[str, Any]:
    return {
        **_depthwise(r),
        "filters": r.integer("filters", MAX_UNITS),
        "pointwise_initializer": r.initializer("pointwise_initializer"),
        "pointwise_regularizer": r.regularizer("pointwise_regularizer"),
    }


def _dense(r: _Reader) -> dict[str, Any]:
    return {
        "units": r.integer("units", MAX_UNITS),
        "activation": r.activation(),
        "use_bias": r.flag("use_bias"),
        "kernel_initializer": r.initializer("kernel_initializer"),
        "kernel_regularizer": r.regularizer("kernel_regularizer"),
        "bias_regularizer": r.regularizer("bias_regularizer"),
    }


def _pool(r: _Reader) -> dict[str, Any]:
    return {"pool_size": r.pair("pool_size"), "strides": r.pair("strides"), "padding": r.padding()}


def _norm(r: _Reader) -> dict[str, Any]:
    return {"axis": r.axis(), "center": r.flag("center"), "learn_scale": r.flag("scale")}


def _relu(r: _Reader) -> dict[str, Any]:
    r.rejected_if(bool(r.number("threshold")), "a non-zero threshold is not supported")
    return {"negative_slope": r.number("negative_slope"), "max_value": r.number("max_value")}


def _leaky(r: _Reader) -> dict[str, Any]:
    slope = r.number("negative_slope")
    return {"negative_slope": slope if slope is not None else r.number("alpha")}


def _rescaling(r: _Reader) -> dict[str, Any]:
    return {"scale": r.number("scale"), "offset": r.number("offset")}


def _normalization(r: _Reader) -> dict[str, Any]:
    r.rejected_if(bool(r.flag("invert")), "invert=True is not supported")
    return {"axis": r.axis(), "mean": r.floats("mean"), "variance": r.floats("variance")}


def _reshape(r: _Reader) -> dict[str, Any]:
    target = r.config.get("target_shape")
    if not isinstance(target, list) or not all(
        _is_int(v) and (v == -1 or 1 <= v <= MAX_DIM) for v in target
    ):
        raise r.fail(f"target_shape must be a list of positive integers or -1, got {target!r}")
    return {"target_shape": target}


def _zero_padding(r: _Reader) -> dict[str, Any]:
    value = r.config.get("padding", 1)
    if _is_int(value):
        value = [[value, value], [value, value]]
    elif isinstance(value, list) and len(value) == 2 and all(map(_is_int, value)):
        value = [[value[0], value[0]], [value[1], value[1]]]
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(_is_int(v) and 0 <= v <= MAX_KERNEL for v in p)
            for p in value
        )
    )
    if not ok:
        raise r.fail(f"padding must be an int, a pair or a pair of pairs, got {value!r}")
    return {"padding": ((value[0][0], value[0][1]), (value[1][0], value[1][1]))}


def _dropout(r: _Reader) -> dict[str, Any]:
    return {"rate": r.number("rate")}


_READERS = {
    "Conv2D": _conv2d,
    "SeparableConv2D": _separable,
    "DepthwiseConv2D": _depthwise,
    "Dense": _dense,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "GlobalAveragePooling2D": lambda r: {"keepdims": r.flag("keepdims")},
    "GlobalMaxPooling2D": lambda r: {"keepdims": r.flag("keepdims")},
    "Dropout": _dropout,
    "SpatialDropout2D": _dropout,
    "BatchNormalization": _norm,
    "LayerNormalization": _norm,
    "Activation": lambda r: {"activation": r.activation() or "linear"},
    "ReLU": _relu,
    "LeakyReLU": _leaky,
    "Softmax": lambda r: {"axis": r.axis()},
    "Rescaling": _rescaling,
    "Normalization": _normalization,
    "Reshape": _reshape,
    "ZeroPadding2D": _zero_padding,
    "Concatenate": lambda r: {"axis": r.axis()},
    "RandomFlip": lambda r: {"mode": r.config.get("mode")},
    "RandomRotation": lambda r: {"factor": r.factor("factor")},
    "RandomTranslation": lambda r: {
        "height_factor": r.factor("height_factor"),
        "width_factor": r.factor("width_factor"),
    },
}


# ---------------------------------------------------------------- serialized objects


def _activation(value: Any, r: _Reader) -> str | None:
    """Built-in activation name from a string or a serialized function dict."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")  # {"module": "keras.activations", "config": "relu", ...}
    if isinstance(value, str) and value in ACTIVATIONS:
        return value
    raise r.fail(f"activation {_short(value)} is not a built-in Keras activation")


def _snake(name: str) -> str:
    return _SNAKE_RE.sub("_", name).lower()


def _initializer(value: Any, r: _Reader, key: str) -> Initializer | None:
    if value is None:
        return None
    if isinstance(value, str):
        name = _INIT_ALIASES.get(_snake(value), _snake(value))
        if name not in INITIALIZERS.values():
            raise r.fail(f"{key} {value!r} is not a supported initializer")
        return Initializer(name=name)
    cls = value.get("class_name") if isinstance(value, dict) else None
    if not isinstance(cls, str) or cls not in INITIALIZERS:
        raise r.fail(
            f"{key} {_short(value)} is not a supported initializer "
            f"(supported: {', '.join(INITIALIZERS)})"
        )
    config = value.get("config") or {}
    if not isinstance(config, dict):
        raise r.fail(f"{key} config must be an object")
    if config.get("input_axes") is not None or config.get("output_axes") is not None:
        raise r.fail(f"{key} with input_axes/output_axes is not supported")
    args = {k: config[k] for k in _INIT_ARGS if config.get(k) is not None}
    try:
        return Initializer(name=INITIALIZERS[cls], **args)
    except ValidationError as exc:
        raise r.fail(f"{key} has invalid arguments: {exc.errors()[0]['msg']}") from None


def _regularizer(value: Any, r: _Reader, key: str) -> Regularizer | None:
    if value is None:
        return None
    if isinstance(value, str):
        defaults = {"l1": (0.01, 0.0), "l2": (0.0, 0.01), "l1_l2": (0.0, 0.0), "l1l2": (0.0, 0.0)}
        if value.lower() not in defaults:
            raise r.fail(f"{key} {value!r} is not a supported regularizer")
        l1, l2 = defaults[value.lower()]
        return Regularizer(l1=l1, l2=l2)
    cls = value.get("class_name") if isinstance(value, dict) else None
    config = value.get("config") if isinstance(value, dict) else None
    if cls not in ("L1", "L2", "L1L2") or not isinstance(config, dict):
        raise r.fail(f"{key} {_short(value)} is not supported (supported: L1, L2, L1L2)")
    l1, l2 = config.get("l1", 0.0), config.get("l2", 0.0)
    if not (_is_number(l1) and _is_number(l2) and l1 >= 0 and l2 >= 0):
        raise r.fail(f"{key} factors must be non-negative numbers")
    return Regularizer(l1=float(l1), l2=float(l2))


def _short(value: Any) -> str:
    text = repr(value.get("class_name") if isinstance(value, dict) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
