"""Keras JSON translation: real Keras fixtures and hand-made malicious ones (no TensorFlow)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.analysis.architecture import describe
from service.schemas.keras import translate
from service.schemas.layer import MODEL_INPUT, Initializer, Layer, Regularizer
from service.schemas.model import ModelSpec

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
REAL = ["seed_cnn", "residual", "concat", "preprocessing", "normalized_mlp", "functional_augment"]


def text(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def doc(name: str) -> dict[str, Any]:
    return json.loads(text(name))


def sequential(*layers: dict[str, Any], shape: list[Any] | None = None) -> dict[str, Any]:
    """A minimal Keras 3 Sequential document with an InputLayer."""
    entries: list[dict[str, Any]] = []
    if shape is not None:
        entries.append(
            {
                "module": "keras.layers",
                "class_name": "InputLayer",
                "registered_name": None,
                "config": {"batch_shape": shape, "name": "input_layer"},
            }
        )
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {"name": "m", "layers": entries + list(layers)},
    }


def layer(cls: str, name: str, **config: Any) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": cls,
        "registered_name": None,
        "config": {"name": name, **config},
    }


def dense(name: str = "dense", **config: Any) -> dict[str, Any]:
    return layer("Dense", name, **{"units": 4, **config})


def keras_init(cls: str, **config: Any) -> dict[str, Any]:
    return {
        "module": "keras.initializers",
        "class_name": cls,
        "config": config,
        "registered_name": None,
    }


# ---------------------------------------------------------------- real Keras fixtures


@pytest.mark.parametrize("name", REAL)
def test_real_keras_fixtures_translate_from_string_and_dict_alike(name: str) -> None:
    assert translate(text(name)) == translate(doc(name))


def test_seed_cnn_keeps_shapes_names_initializers_and_regularizers() -> None:
    shape, layers = translate(text("seed_cnn"))
    assert shape == [28, 28, 1]
    assert [layer.type for layer in layers] == [
        "conv2d",
        "max_pooling2d",
        "conv2d",
        "max_pooling2d",
        "flatten",
        "dense",
        "dropout",
        "dense",
    ]
    conv = layers[0]
    assert conv.name == "conv2d" and conv.filters == 32 and conv.kernel_size == (3, 3)
    assert conv.activation == "relu" and conv.padding == "valid"
    assert conv.kernel_initializer == Initializer(name="random_normal", mean=0.0, stddev=1.0)
    assert conv.kernel_regularizer == Regularizer(l1=0.0, l2=1e-4)
    assert layers[-1].activation == "softmax" and layers[-1].units == 10
    assert layers[6].rate == 0.5
    assert all(layer.inputs is None for layer in layers)


def test_functional_residual_fills_inputs_from_inbound_nodes() -> None:
    shape, layers = translate(text("residual"))
    by_name = {layer.name: layer for layer in layers}
    assert shape == [32, 32, 3]
    assert by_name["stem"].inputs == [MODEL_INPUT]
    assert by_name["res_add"].type == "add"
    assert by_name["res_add"].inputs == ["stem_relu", "res_bn2"]
    assert by_name["res_bn2"].center is False
    assert by_name["down"].kernel_regularizer == Regularizer(l1=1e-5, l2=1e-4)
    assert by_name["res_conv1"].kernel_initializer == Initializer(name="he_normal")
    assert layers[-1].name == "probs"


def test_concatenate_keeps_all_branches_in_order() -> None:
    _, layers = translate(text("concat"))
    join = next(layer for layer in layers if layer.type == "concatenate")
    assert join.inputs == ["branch_1x1", "branch_3x3", "branch_pool"]
    sep = next(layer for layer in layers if layer.type == "separable_conv2d")
    assert sep.depth_multiplier == 2
    assert sep.pointwise_initializer == Initializer(name="lecun_normal")
    dw = next(layer for layer in layers if layer.type == "depthwise_conv2d")
    assert dw.depthwise_regularizer == Regularizer(l1=0.0, l2=0.01) and dw.use_bias is False


def test_nested_augmentation_sequential_is_flattened() -> None:
    _, layers = translate(text("preprocessing"))
    assert [layer.type for layer in layers[:4]] == [
        "random_flip",
        "random_rotation",
        "random_translation",
        "rescaling",
    ]
    assert layers[0].mode == "horizontal"
    assert layers[1].factor == (-0.1, 0.1)
    assert layers[2].height_factor == 0.1 and layers[2].width_factor == (-0.2, 0.2)
    assert layers[3].scale == pytest.approx(1 / 255)


def test_nested_sequential_inside_functional_is_chained_to_its_caller() -> None:
    _, layers = translate(text("functional_augment"))
    assert layers[0].type == "random_flip" and layers[0].inputs == [MODEL_INPUT]
    assert layers[1].inputs == [layers[0].name]
    assert layers[2].type == "rescaling" and layers[2].inputs == [layers[1].name]
    assert layers[2].offset == -1.0


def test_shape_affecting_options_are_kept() -> None:
    _, layers = translate(text("preprocessing"))
    by_type = {layer.type: layer for layer in layers}
    assert by_type["zero_padding2d"].padding == ((1, 2), (3, 4))
    assert by_type["reshape"].target_shape == [-1, 8]
    assert by_type["leaky_relu"].negative_slope == pytest.approx(0.1)
    grouped = next(layer for layer in layers if layer.groups == 2)
    assert grouped.dilation_rate == (2, 2) and grouped.activation == "gelu"
    _, mlp = translate(text("normalized_mlp"))
    assert mlp[0].mean == 0.5 and mlp[0].variance == 4.0 and mlp[1].mean is None
    assert mlp[3].max_value == 6.0 and mlp[4].learn_scale is False


def test_model_spec_translates_keras_json() -> None:
    spec = ModelSpec(keras_json=text("seed_cnn"))
    assert spec.input_shape == [28, 28, 1] and spec.layers is not None
    assert len(spec.layers) == 8


def test_model_spec_reports_a_rejected_layer_as_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="Lambda"):
        ModelSpec(keras_json=text("malicious_lambda"))


def _in_a_fresh_interpreter(code: str) -> None:
    """Run `code` in a new Python (other tests may have imported TensorFlow); it must pass."""
    root = Path(__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_translation_never_imports_tensorflow_or_keras() -> None:
    # A fresh interpreter, since other tests in the session may import TensorFlow themselves.
    code = (
        "import sys; from service.schemas.keras import translate; "
        "from service.analysis.architecture import describe; "
        f"describe(*translate(open({str(FIXTURES / 'residual.json')!r}).read())); "
        "bad = {'tensorflow', 'keras'} & set(sys.modules); assert not bad, bad"
    )
    _in_a_fresh_interpreter(code)


def test_schemas_do_not_import_the_analysis_core() -> None:
    # Reading the contract (Keras JSON included) must not pull in the analysis it feeds.
    code = (
        "import sys; import service.schemas.diagnosis, service.schemas.keras; "
        "from service.schemas.model import ModelSpec; "
        f"ModelSpec(keras_json=open({str(FIXTURES / 'residual.json')!r}).read()); "
        "bad = [m for m in sys.modules if m.startswith('service.analysis')]; assert not bad, bad"
    )
    _in_a_fresh_interpreter(code)


# ---------------------------------------------------------------- security


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("malicious_lambda", "layer 'lambda' has class Lambda, which is not allowed"),
        ("malicious_tfsm", "layer 'saved_model' has class TFSMLayer, which is not allowed"),
        ("malicious_registered", "layer 'sneaky_conv' has class Conv2D.*'MyLayer>Custom'"),
        ("malicious_module_os", "layer 'system' has class Dense from module 'os'"),
    ],
)
def test_malicious_fixtures_are_rejected_naming_the_layer(fixture: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        translate(text(fixture))


def test_lambda_layer_without_bytecode_is_rejected_naming_the_layer() -> None:
    model = sequential(layer("Lambda", "double", function="double_it"), shape=[None, 4])
    with pytest.raises(ValueError, match="layer 'double' has class Lambda"):
        translate(model)


def test_a_keras_layer_not_modelled_is_kept_as_an_opaque_node() -> None:
    model = sequential(layer("MultiHeadAttention", "mha"), dense(), shape=[None, 4])
    _, layers = translate(model)
    assert layers[0].type == "opaque" and layers[0].keras_class == "MultiHeadAttention"
    assert layers[1].type == "dense"


def test_a_class_without_a_keras_module_is_rejected_naming_the_layer() -> None:
    entry = {**layer("MyAttention", "mine"), "module": None}
    with pytest.raises(ValueError, match="'mine' has class MyAttention without a module"):
        translate(sequential(entry, shape=[None, 4]))


@pytest.mark.parametrize("cls", ["TFSMLayer", "TorchModuleWrapper"])
def test_classes_that_load_or_wrap_code_are_rejected_naming_the_layer(cls: str) -> None:
    with pytest.raises(ValueError, match=f"'x' has class {cls}, which is not allowed"):
        translate(sequential(layer(cls, "x"), shape=[None, 4]))


def test_package_registered_name_is_rejected() -> None:
    entry = {**dense("thing"), "registered_name": "package>Thing"}
    with pytest.raises(ValueError, match="package>Thing"):
        translate(sequential(entry, shape=[None, 4]))


def test_custom_object_inside_a_layer_config_is_rejected() -> None:
    init: dict[str, Any] = {
        "module": "my_pkg.inits",
        "class_name": "Evil",
        "config": {},
        "registered_name": None,
    }
    with pytest.raises(ValueError, match=r"layer 'dense'.*'my_pkg.inits'"):
        translate(sequential(dense(kernel_initializer=init), shape=[None, 4]))


def test_foreign_module_in_the_model_config_is_rejected() -> None:
    model = sequential(dense(), shape=[None, 4])
    model["config"]["dtype"] = {"module": "os", "class_name": "system", "config": {}}
    with pytest.raises(ValueError, match="refers to module 'os'"):
        translate(model)


def test_activation_serialized_as_bytecode_is_rejected() -> None:
    lam = {"value": ["4wEAAAAAAAAAAAAAAAEAAAAD", None, None]}
    model = sequential(layer("Activation", "act", activation=lam), shape=[None, 4])
    with pytest.raises(ValueError, match=r"layer 'act'.*not a built-in Keras activation"):
        translate(model)


def test_custom_activation_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="'my_swish' is not a built-in"):
        translate(sequential(dense(activation="my_swish"), shape=[None, 4]))


def test_nested_functional_model_is_flattened_into_the_outer_sequential() -> None:
    nested = copy.deepcopy(doc("residual"))
    nested["config"]["name"] = "backbone"
    model = sequential(nested, dense("head"), shape=[None, 32, 32, 3])
    inner = translate(doc("residual"))[1]
    _, layers = translate(model)
    assert [layer.name for layer in layers] == [layer.name for layer in inner] + ["head"]
    assert layers[-1].inputs == [inner[-1].name]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"filters": 2_000_000, "kernel_size": [3, 3]}, "filters must be an integer"),
        ({"filters": 8, "kernel_size": [20_000, 20_000]}, "kernel_size must be"),
        ({"filters": True, "kernel_size": [3, 3]}, "filters must be an integer"),
    ],
)
def test_absurd_or_unsupported_conv_settings_are_rejected(
    config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=f"layer 'c'.*{expected}"):
        translate(sequential(layer("Conv2D", "c", **config), shape=[None, 8, 8, 3]))


def test_absurd_dense_units_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"'dense'.*units must be an integer"):
        translate(sequential(dense(units=5_000_000), shape=[None, 4]))


def test_more_than_500_layers_are_rejected() -> None:
    layers = [dense(f"d{i}") for i in range(501)]
    with pytest.raises(ValueError, match="500 layers"):
        translate(sequential(*layers, shape=[None, 4]))


@pytest.mark.parametrize("depth", [70, 100_000])
def test_deeply_nested_json_is_rejected(depth: int) -> None:
    body = "[" * depth + "]" * depth
    with pytest.raises(ValueError, match="nested deeper"):
        translate('{"class_name": "Sequential", "config": ' + body + "}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"config": {}}', "'class_name' and 'config'"),
        ('{"class_name": "Conv2D", "config": {}}', "expected Sequential or Functional"),
        ('{"class_name": "Sequential", "config": {"layers": [], "x": NaN}}', "NaN"),
        ('{"module": "os", "class_name": "Sequential", "config": {}}', "not a built-in Keras"),
    ],
)
def test_malformed_or_wrong_top_level_json_is_rejected(raw: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        translate(raw)


def test_oversized_json_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="too large"):
        translate(" " * 6_000_000)


# ---------------------------------------------------------------- structure and formats


def test_missing_input_shape_is_reported() -> None:
    with pytest.raises(ValueError, match="input_shape is needed"):
        translate(sequential(dense()))


def test_sequential_without_input_layer_uses_build_config() -> None:
    model = sequential(dense())
    model["build_config"] = {"input_shape": [None, 7]}
    assert translate(model)[0] == [7]


def test_legacy_batch_input_shape_on_first_layer_is_used() -> None:
    assert translate(sequential(dense(batch_input_shape=[None, 5])))[0] == [5]


def test_channels_first_layers_are_kept_opaque() -> None:
    conv = layer("Conv2D", "c", filters=8, kernel_size=[3, 3], data_format="channels_first")
    _, layers = translate(sequential(conv, shape=[None, 3, 8, 8]))
    assert layers[0].type == "opaque" and "channels_first" in (layers[0].opaque_reason or "")


def test_open_input_sizes_are_kept_as_none() -> None:
    assert translate(sequential(dense(), shape=[None, None, None, 3]))[0] == [None, None, 3]


def test_input_dims_beyond_the_limit_are_rejected() -> None:
    with pytest.raises(ValueError, match="null or 1 to 100000"):
        translate(sequential(dense(), shape=[None, 10**7]))


def test_initializers_accept_strings_and_serialized_dicts() -> None:
    model = sequential(
        dense("a", kernel_initializer="he_normal"),
        dense("b", kernel_initializer="HeUniform"),
        dense(
            "c",
            kernel_initializer=keras_init(
                "VarianceScaling", scale=2.0, mode="fan_out", distribution="uniform", seed=None
            ),
        ),
        dense("d", kernel_initializer=keras_init("Constant", value=0.3)),
        dense("e", kernel_initializer=keras_init("Orthogonal", gain=2.0, seed=None)),
        shape=[None, 4],
    )
    _, layers = translate(model)
    assert [layer.kernel_initializer for layer in layers] == [
        Initializer(name="he_normal"),
        Initializer(name="he_uniform"),
        Initializer(name="variance_scaling", scale=2.0, mode="fan_out", distribution="uniform"),
        Initializer(name="constant", value=0.3),
        Initializer(name="orthogonal", gain=2.0),
    ]


def test_a_keras_initializer_not_modelled_makes_the_layer_opaque() -> None:
    model = sequential(dense(kernel_initializer=keras_init("STFT")), shape=[None, 4])
    layer_ = translate(model)[1][0]
    assert layer_.type == "opaque" and "STFT" in (layer_.opaque_reason or "")


def test_an_unknown_initializer_name_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'dense'.*not a supported initializer"):
        translate(sequential(dense(kernel_initializer="my_init"), shape=[None, 4]))


def test_string_regularizers_use_keras_defaults() -> None:
    model = sequential(
        dense("a", kernel_regularizer="l2"), dense("b", kernel_regularizer="l1"), shape=[None, 4]
    )
    _, layers = translate(model)
    assert layers[0].kernel_regularizer == Regularizer(l2=0.01)
    assert layers[1].kernel_regularizer == Regularizer(l1=0.01)


def test_orthogonal_regularizer_is_read_with_its_factor_and_mode() -> None:
    reg = {
        "module": "keras.regularizers",
        "class_name": "OrthogonalRegularizer",
        "config": {"factor": 0.01},
        "registered_name": None,
    }
    layer_ = translate(sequential(dense(kernel_regularizer=reg), shape=[None, 4]))[1][0]
    assert layer_.type == "dense"
    assert layer_.kernel_regularizer == Regularizer(orthogonal=0.01, mode="rows")


def test_serialized_activation_dict_is_accepted_by_name() -> None:
    act = {
        "module": "keras.activations",
        "class_name": "function",
        "config": "relu",
        "registered_name": "function",
    }
    _, layers = translate(sequential(dense(activation=act), shape=[None, 4]))
    assert layers[0].activation == "relu"


def _functional(*layers: dict[str, Any], inputs: Any, outputs: Any) -> dict[str, Any]:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "config": {
            "name": "f",
            "layers": list(layers),
            "input_layers": inputs,
            "output_layers": outputs,
        },
    }


def _node(*sources: str) -> dict[str, Any]:
    tensors = [
        {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None, 4], "keras_history": [s, 0, 0]},
        }
        for s in sources
    ]
    return {"args": [tensors[0]] if len(tensors) == 1 else [tensors], "kwargs": {}}


def _fn_layer(entry: dict[str, Any], *nodes: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "name": entry["config"]["name"], "inbound_nodes": list(nodes)}


def _fn_input(name: str = "in") -> dict[str, Any]:
    return _fn_layer(layer("InputLayer", name, batch_shape=[None, 4]))


def _call(source: str, call: int) -> dict[str, Any]:
    """An inbound node fed by call `call` of layer `source`."""
    node = _node(source)
    node["args"][0]["config"]["keras_history"] = [source, call, 0]
    return node


def test_a_shared_layer_is_one_node_per_call_and_its_weights_count_once() -> None:
    # d(d(x)): the second call takes the first call's output; the model outputs call 1.
    model = _functional(
        _fn_input(),
        _fn_layer(dense("d"), _node("in"), _call("d", 0)),
        inputs=["in", 0, 0],
        outputs=["d", 1, 0],
    )
    shape, layers = translate(model)
    assert [(x.name, x.inputs, x.shares) for x in layers] == [
        ("d", ["input"], None),
        ("d#2", ["d"], "d"),
    ]
    assert describe(shape, layers).total_params == 4 * 4 + 4  # one kernel, one bias


def test_a_shared_call_whose_input_the_weights_do_not_fit_is_refused() -> None:
    layers = [
        Layer(type="dense", name="d", units=3),
        Layer(type="dense", name="d#2", units=3, inputs=["d"], shares="d"),
    ]
    with pytest.raises(ValueError, match="'d#2' calls the layer of 'd' again"):
        describe([4], layers)


def test_a_call_of_a_layer_that_was_never_made_names_it() -> None:
    model = _functional(
        _fn_input(),
        _fn_layer(dense("d"), _node("in")),
        inputs=["in", 0, 0],
        outputs=["d", 1, 0],
    )
    with pytest.raises(ValueError, match="call 1 of layer 'd'"):
        translate(model)


def test_multi_output_models_keep_every_head_and_end_with_the_last_in_graph_order() -> None:
    model = _functional(
        _fn_input(),
        _fn_layer(dense("trunk"), _node("in")),
        _fn_layer(dense("a"), _node("trunk")),
        _fn_layer(dense("b"), _node("trunk")),
        inputs=[["in", 0, 0]],
        outputs=[["b", 0, 0], ["a", 0, 0]],
    )
    assert [layer.name for layer in translate(model)[1]] == ["trunk", "a", "b"]


def test_a_second_input_becomes_an_opaque_input_node() -> None:
    model = _functional(
        _fn_input("in"),
        _fn_input("meta"),
        _fn_layer(layer("Concatenate", "join", axis=-1), _node("in", "meta")),
        inputs=[["in", 0, 0], ["meta", 0, 0]],
        outputs=[["join", 0, 0]],
    )
    meta, join = translate(model)[1]
    assert meta.type == "opaque" and meta.keras_class == "InputLayer" and meta.output_shape == [4]
    assert join.inputs == [MODEL_INPUT, "meta"]


def test_unknown_inbound_layer_is_rejected() -> None:
    model = _functional(
        _fn_input(),
        _fn_layer(dense("d"), _node("ghost")),
        inputs=[["in", 0, 0]],
        outputs=[["d", 0, 0]],
    )
    with pytest.raises(ValueError, match="unknown layer 'ghost'"):
        translate(model)


def test_functional_layers_are_put_in_dependency_order() -> None:
    model = _functional(
        _fn_input(),
        _fn_layer(dense("second"), _node("first")),
        _fn_layer(dense("first"), _node("in")),
        inputs=[["in", 0, 0]],
        outputs=[["second", 0, 0]],
    )
    _, layers = translate(model)
    assert [layer.name for layer in layers] == ["first", "second"]


def test_keras2_style_inbound_nodes_are_read() -> None:
    entry = {**dense("d"), "name": "d", "inbound_nodes": [[["in", 0, 0, {}]]]}
    model = _functional(_fn_input(), entry, inputs=[["in", 0, 0]], outputs=[["d", 0, 0]])
    assert translate(model)[1][0].inputs == [MODEL_INPUT]


def _op(cls: str, name: str, *args: Any) -> dict[str, Any]:
    """A keras.ops call as Functional JSON records it: `args` mixes tensors and numbers."""
    tensors = [
        {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None, 4], "keras_history": [a, 0, 0]},
        }
        if isinstance(a, str)
        else a
        for a in args
    ]
    return {
        "module": "keras.src.ops.numpy",
        "class_name": cls,
        "registered_name": cls,
        "name": name,
        "config": {"name": name},
        "inbound_nodes": [{"args": tensors, "kwargs": {}}],
    }


def test_arithmetic_with_a_constant_reads_as_rescaling_of_the_inputs() -> None:
    # inputs / 255.0 - 0.5, then 2.0 * x (a scale inside the network, not of the inputs)
    model = _functional(
        _fn_input(),
        _op("TrueDivide", "div", "in", 255.0),
        _op("Subtract", "sub", "div", 0.5),
        _fn_layer(dense("d"), _node("sub")),
        _op("Multiply", "mul", 2.0, "d"),
        inputs=[["in", 0, 0]],
        outputs=[["mul", 0, 0]],
    )
    shape, layers = translate(model)
    assert [
        (layer.type, layer.scale, layer.offset) for layer in layers if layer.type != "dense"
    ] == [
        ("rescaling", 1 / 255, 0.0),
        ("rescaling", 1.0, -0.5),
        ("rescaling", 2.0, 0.0),
    ]
    arch = describe(shape, layers)
    assert arch.rescaling_scale == pytest.approx(1 / 255) and arch.rescaling_offset == -0.5


def test_ops_on_two_tensors_read_as_merges_and_others_stay_opaque() -> None:
    model = _functional(
        _fn_input(),
        _fn_layer(dense("a"), _node("in")),
        _op("Multiply", "gate", "in", "a"),
        _op("Add", "sum", "gate", "a"),
        _op("Divide", "inv", 1.0, "sum"),
        inputs=[["in", 0, 0]],
        outputs=[["inv", 0, 0]],
    )
    types = {layer.name: layer.type for layer in translate(model)[1]}
    assert types == {"a": "dense", "gate": "multiply", "sum": "add", "inv": "opaque"}
