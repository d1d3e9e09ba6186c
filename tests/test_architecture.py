"""`describe`: shapes, Keras-exact parameter counts and initializer statistics (no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from service.analysis.architecture import (
    TRUNCATED_STD_FACTOR,
    Architecture,
    describe,
    initializer_std,
)
from service.schemas.keras import translate
from service.schemas.layer import MODEL_INPUT, Initializer, Layer, Regularizer

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())


def from_fixture(name: str) -> Architecture:
    return describe(*translate((FIXTURES / f"{name}.json").read_text()))


def L(type_: str, **fields: Any) -> Layer:  # reads like a layer constructor
    return Layer(type=type_, **fields)  # type: ignore[arg-type]


def conv(filters: int = 8, kernel: int = 3, **fields: Any) -> Layer:
    return L("conv2d", filters=filters, kernel_size=kernel, **fields)


# ---------------------------------------------------------------- against real Keras


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_param_counts_match_keras_count_params(name: str) -> None:
    arch = from_fixture(name)
    assert arch.total_params == EXPECTED[name]["count_params"]
    for info in arch.layers:
        assert info.params == EXPECTED[name]["layer_params"][info.name], info.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_shapes_match_keras(name: str) -> None:
    arch = from_fixture(name)
    assert list(arch.output_shape) == EXPECTED[name]["output_shape"]
    for info in arch.layers:
        assert list(info.output_shape) == EXPECTED[name]["layer_output_shapes"][info.name]


# ---------------------------------------------------------------- the seed CNN


def test_seed_cnn_reports_fans_std_activation_and_regularizer() -> None:
    arch = from_fixture("seed_cnn")
    first = arch.layer("conv2d")
    assert (first.fan_in, first.fan_out) == (9, 288)
    assert first.init_std == 1.0 and not first.init_constant
    assert first.activation == "relu" and not first.normalized_after
    assert first.regularizer == Regularizer(l2=1e-4)
    assert first.spatial_in == (28, 28) and first.spatial_out == (26, 26)
    assert arch.layer("dense").fan_in == 1600
    assert arch.weighted_layers == 4


def test_seed_cnn_totals() -> None:
    arch = from_fixture("seed_cnn")
    assert arch.output_units == 10 and arch.output_activation == "softmax"
    assert arch.narrowest is not None and (arch.narrowest.name, arch.narrowest.width) == (
        "conv2d",
        32,
    )
    assert not arch.has_input_scaling and arch.rescaling_scale is None
    assert arch.augmentation_layers == ()


def test_pool_spatial_sizes_are_recorded() -> None:
    pool = from_fixture("seed_cnn").layer("max_pooling2d_1")
    assert pool.spatial_in == (11, 11) and pool.spatial_out == (5, 5)


# ---------------------------------------------------------------- other fixtures


def test_residual_block_normalization_and_trailing_softmax_are_seen() -> None:
    arch = from_fixture("residual")
    assert arch.layer("stem").normalized_after and arch.layer("stem").activation == "relu"
    assert arch.layer("res_conv2").activation == "linear"  # BN then Add: no activation
    assert arch.layer("logits").activation == "softmax"
    assert arch.output_activation == "softmax"
    assert arch.layer("res_add").inputs == ("stem_relu", "res_bn2")


def test_narrowest_ignores_branches_that_only_carry_the_raw_input() -> None:
    arch = from_fixture("concat")
    assert arch.narrowest is not None and arch.narrowest.width == 8
    assert arch.output_activation == "sigmoid"


def test_separable_conv_reports_both_kernels() -> None:
    sep = from_fixture("concat").layer("sep")
    assert [k.role for k in sep.kernels] == ["depthwise", "pointwise"]
    assert sep.kernels[1].shape == (1, 1, 38, 16)
    assert sep.kernels[1].init_std == pytest.approx(math.sqrt(1 / 38))
    assert (sep.fan_in, sep.fan_out) == (171, 18)


def test_preprocessing_scaling_and_augmentation_are_reported() -> None:
    arch = from_fixture("preprocessing")
    assert arch.has_input_scaling and not arch.has_normalization_layer
    assert arch.rescaling_scale == pytest.approx(1 / 255) and arch.rescaling_offset == 0.0
    assert arch.augmentation_layers == ("random_flip", "random_rotation", "random_translation")
    assert arch.layer("conv2d_2").activation == "leaky_relu"
    assert arch.output_activation == "softmax" and arch.output_units == 3


def test_normalization_layer_and_constant_initializer_are_flagged() -> None:
    arch = from_fixture("normalized_mlp")
    assert arch.has_input_scaling and arch.has_normalization_layer
    assert arch.layer("dense_4").activation == "relu6" and arch.layer("dense_4").normalized_after
    assert arch.layer("dense_5").init_constant and arch.layer("dense_5").init_std == 0.0


# ---------------------------------------------------------------- initializer statistics


@pytest.mark.parametrize(
    ("init", "shape", "expected"),
    [
        (Initializer(name="random_normal", stddev=0.3), (3, 3, 1, 8), 0.3),
        (Initializer(name="random_normal"), (4, 4), 0.05),
        (Initializer(name="truncated_normal", stddev=1.0), (4, 4), TRUNCATED_STD_FACTOR),
        (Initializer(name="random_uniform", minval=-1, maxval=1), (4, 4), 2 / math.sqrt(12)),
        (Initializer(name="glorot_uniform"), (3, 3, 16, 32), math.sqrt(2 / (144 + 288))),
        (Initializer(name="glorot_normal"), (100, 50), math.sqrt(2 / 150)),
        (Initializer(name="he_normal"), (3, 3, 16, 32), math.sqrt(2 / 144)),
        (Initializer(name="he_uniform"), (64, 10), math.sqrt(2 / 64)),
        (Initializer(name="lecun_normal"), (3, 3, 4, 4), math.sqrt(1 / 36)),
        (Initializer(name="lecun_uniform"), (64, 10), math.sqrt(1 / 64)),
        (
            Initializer(name="variance_scaling", scale=2.0, mode="fan_out"),
            (3, 3, 4, 8),
            math.sqrt(2 / 72),
        ),
        (Initializer(name="variance_scaling"), (1, 1), 1.0),
        (Initializer(name="orthogonal", gain=2.0), (3, 3, 4, 8), 2 / 6),
        (Initializer(name="identity"), (4, 4), math.sqrt(0.25 * 0.75)),
        (Initializer(name="zeros"), (4, 4), 0.0),
        (Initializer(name="ones"), (4, 4), 0.0),
        (Initializer(name="constant", value=3.0), (4, 4), 0.0),
    ],
)
def test_initializer_std_follows_keras_formulas(
    init: Initializer, shape: tuple[int, ...], expected: float
) -> None:
    assert initializer_std(init, shape) == pytest.approx(expected)


def test_default_kernel_initializer_is_glorot_uniform() -> None:
    info = describe([10], [L("dense", units=5)]).layers[0]
    assert info.initializer == Initializer(name="glorot_uniform")
    assert info.init_std == pytest.approx(math.sqrt(2 / 15))


def test_string_initializer_is_normalized() -> None:
    info = describe([10], [L("dense", units=5, kernel_initializer="he_normal")]).layers[0]
    assert info.initializer == Initializer(name="he_normal")


def test_identity_initializer_on_a_conv_cannot_be_built() -> None:
    with pytest.raises(ValueError, match=r"layer 'c'.*identity initializer needs a 2D"):
        describe([8, 8, 3], [conv(name="c", kernel_initializer="identity")])


# ---------------------------------------------------------------- shapes


def test_kernel_larger_than_valid_input_raises_naming_the_layer() -> None:
    layers = [conv(kernel=3, name="a"), conv(kernel=5, name="conv2d_3")]
    with pytest.raises(ValueError, match="layer 'conv2d_3': kernel 5x5 does not fit its 3x3"):
        describe([5, 5, 1], layers)


def test_kernel_larger_than_same_padded_input_is_flagged_not_raised() -> None:
    info = describe([3, 3, 1], [conv(kernel=5, padding="same")]).layers[0]
    assert info.kernel_exceeds_input and info.output_shape == (3, 3, 8)


def test_pool_collapsing_the_feature_map_raises() -> None:
    with pytest.raises(ValueError, match="layer 'p': pool 2x2 does not fit its 1x1 input"):
        describe([1, 1, 4], [L("max_pooling2d", name="p")])


@pytest.mark.parametrize(
    ("shape", "layers", "message"),
    [
        ([10, 3], [{"type": "conv1d", "filters": 2, "kernel_size": [3, 3]}], "needs 1 values"),
        ([10, 3], [{"type": "conv1d", "filters": 2, "kernel_size": 11}], "kernel 11 does not fit"),
        ([8, 8, 3], [{"type": "conv3d", "filters": 2, "kernel_size": 2}], "rank-4 input"),
        ([4, 4, 4, 1], [{"type": "max_pooling3d", "pool_size": 5}], "pool 5x5x5 does not fit"),
        ([8, 8, 3], [{"type": "cropping2d", "cropping": [[4, 4], [0, 0]]}], "leaves nothing"),
        ([10, 3], [{"type": "conv2d_transpose", "filters": 2, "kernel_size": 3}], "rank-3"),
        ([8, 8, 3], [{"type": "conv2d_transpose", "filters": 2, "kernel_size": 3,
                      "output_padding": 2}], "output_padding must be below strides"),
        ([5], [{"type": "embedding", "output_dim": 4}], "needs input_dim"),
        ([4], [{"type": "dense", "units": 2, "name": "a", "shares": "b"},
               {"type": "dense", "units": 2, "name": "b"}], "not an earlier layer"),
    ],
)  # fmt: skip
def test_conv_nd_cropping_embedding_and_sharing_errors_name_the_problem(
    shape: list[int], layers: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        describe(shape, [Layer(**layer) for layer in layers])


def test_strides_dilation_and_same_padding() -> None:
    arch = describe(
        [32, 32, 3],
        [
            conv(kernel=3, strides=2, padding="same", name="s"),
            conv(kernel=3, dilation_rate=2, name="d"),
            L("average_pooling2d", pool_size=3, strides=2, name="p"),
        ],
    )
    assert arch.layer("s").output_shape == (16, 16, 8)
    assert arch.layer("d").output_shape == (12, 12, 8)
    assert arch.layer("p").output_shape == (5, 5, 8)


def test_dense_on_a_feature_map_applies_to_the_last_axis() -> None:
    info = describe([4, 4, 3], [L("dense", units=7)]).layers[0]
    assert info.output_shape == (4, 4, 7) and info.params == 3 * 7 + 7 and info.fan_in == 3


def test_reshape_resolves_minus_one_and_rejects_a_wrong_size() -> None:
    assert describe([4, 4, 3], [L("reshape", target_shape=[-1, 6])]).output_shape == (8, 6)
    with pytest.raises(ValueError, match="layer 'r': cannot reshape"):
        describe([4, 4, 3], [L("reshape", name="r", target_shape=[5, -1])])


@pytest.mark.parametrize(
    ("padding", "expected"),
    [(None, (6, 6, 2)), (2, (8, 8, 2)), ((1, 2), (6, 8, 2)), (((0, 1), (2, 3)), (5, 9, 2))],
)
def test_zero_padding_forms(padding: Any, expected: tuple[int, ...]) -> None:
    layer = L("zero_padding2d", padding=padding)
    assert describe([4, 4, 2], [layer]).output_shape == expected


def test_global_pooling_with_and_without_keepdims() -> None:
    assert describe([4, 4, 2], [L("global_max_pooling2d")]).output_shape == (2,)
    layer = L("global_average_pooling2d", keepdims=True)
    assert describe([4, 4, 2], [layer]).output_shape == (1, 1, 2)


def test_conv_on_a_flat_input_raises() -> None:
    with pytest.raises(ValueError, match=r"layer 'c'.*rank-3 input"):
        describe([10], [conv(name="c")])


# ---------------------------------------------------------------- graphs


def _branches(merge: Layer, right_filters: int = 8) -> list[Layer]:
    return [
        conv(name="left", padding="same"),
        conv(filters=right_filters, name="right", padding="same", inputs=[MODEL_INPUT]),
        merge,
    ]


def test_add_needs_equal_shapes() -> None:
    add = L("add", name="merge", inputs=["left", "right"])
    assert describe([8, 8, 3], _branches(add)).output_shape == (8, 8, 8)
    with pytest.raises(ValueError, match="layer 'merge' \\(add\\) needs inputs of equal shape"):
        describe([8, 8, 3], _branches(add, right_filters=4))


def test_concatenate_joins_the_last_axis_and_rejects_mismatched_maps() -> None:
    cat = L("concatenate", name="cat", inputs=["left", "right"])
    assert describe([8, 8, 3], _branches(cat, right_filters=4)).output_shape == (8, 8, 12)
    bad = [
        conv(name="left"),
        conv(name="right", padding="same", inputs=[MODEL_INPUT]),
        L("concatenate", name="cat", inputs=["left", "right"]),
    ]
    with pytest.raises(ValueError, match="layer 'cat' \\(concatenate\\) cannot join"):
        describe([8, 8, 3], bad)


def test_unknown_or_later_input_names_raise_naming_the_layer() -> None:
    with pytest.raises(ValueError, match="layer 'b' takes input from 'ghost'"):
        describe(
            [4], [L("dense", units=2, name="a"), L("dense", units=2, name="b", inputs=["ghost"])]
        )
    with pytest.raises(ValueError, match="layer 'a' takes input from 'b'"):
        describe([4], [L("dense", units=2, name="a", inputs=["b"]), L("dense", units=2, name="b")])


def test_duplicate_layer_names_raise() -> None:
    with pytest.raises(ValueError, match="'d' is used twice"):
        describe([4], [L("dense", units=2, name="d"), L("dense", units=2, name="d")])


def test_unnamed_layers_get_type_and_index_names() -> None:
    arch = describe([4], [L("dense", units=2), L("dropout", rate=0.1)])
    assert [i.name for i in arch.layers] == ["dense_0", "dropout_1"]
    assert arch.layers[1].inputs == ("dense_0",)


def test_groups_must_divide_channels() -> None:
    with pytest.raises(ValueError, match="layer 'g': groups=2 must divide"):
        describe([4, 4, 3], [conv(filters=4, groups=2, name="g")])


# ---------------------------------------------------------------- activations and followers


def test_activation_is_found_through_dropout_and_batch_norm() -> None:
    arch = describe(
        [10],
        [
            L("dense", units=5, name="d"),
            L("dropout", rate=0.2),
            L("batch_normalization"),
            L("activation", activation="tanh"),
        ],
    )
    assert arch.layer("d").activation == "tanh" and arch.layer("d").normalized_after


def test_activation_search_stops_at_other_layers() -> None:
    arch = describe(
        [8, 8, 3], [conv(name="c"), L("max_pooling2d"), L("relu"), L("batch_normalization")]
    )
    assert arch.layer("c").activation == "linear"
    assert arch.layer("c").normalized_after  # BN still follows before the next weighted layer


def test_normalization_after_the_next_weighted_layer_does_not_count() -> None:
    arch = describe(
        [10],
        [L("dense", units=5, name="a"), L("dense", units=5, name="b"), L("layer_normalization")],
    )
    assert not arch.layer("a").normalized_after and arch.layer("b").normalized_after


def test_own_activation_wins_over_a_following_activation_layer() -> None:
    arch = describe([10], [L("dense", units=5, name="d", activation="relu"), L("softmax")])
    assert arch.layer("d").activation == "relu" and arch.output_activation == "softmax"


def test_linear_output_is_reported_as_linear() -> None:
    arch = describe([10], [L("dense", units=3), L("dropout", rate=0.5)])
    assert arch.output_activation == "linear" and arch.output_units == 3


def test_leaky_relu_layer_kinds_are_named() -> None:
    arch = describe(
        [10],
        [
            L("dense", units=5, name="a"),
            L("relu", negative_slope=0.2),
            L("dense", units=5, name="b"),
            L("leaky_relu"),
        ],
    )
    assert arch.layer("a").activation == "leaky_relu"
    assert arch.layer("b").activation == "leaky_relu"


def test_single_weighted_layer_has_no_narrowest_point() -> None:
    assert describe([10], [L("dense", units=3)]).narrowest is None


def test_batch_norm_params_follow_center_and_scale() -> None:
    arch = describe([4, 4, 6], [L("batch_normalization", center=False, learn_scale=False)])
    assert arch.total_params == 12  # moving mean and variance only


def test_normalization_with_wrong_number_of_statistics_raises() -> None:
    layer = L("normalization", name="n", mean=[0.0, 1.0], variance=[1.0, 1.0])
    with pytest.raises(ValueError, match="layer 'n': 2 mean/variance values for 3 channels"):
        describe([4, 4, 3], [layer])
