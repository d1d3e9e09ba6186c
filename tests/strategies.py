"""Hypothesis strategies for what a Keras user may send: histories, optimizers, schedules, losses.

Histories are built from a few drawn numbers with numpy, so one of 100,000 epochs costs what
one of 3 does: a shape (constant, falling, rising, noisy), a scale from subnormals to 1e308, a
sign, and special values (NaN, ±inf, null, 0, ±1e308, subnormals) dropped at drawn positions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from service.schemas.run import OPTIMIZER_CLASSES
from service.schemas.schedules import SCHEDULE_CLASSES

SPECIALS: list[Any] = [
    math.nan, math.inf, -math.inf, None, 0.0, 1e308, -1e308, 5e-324, -5e-324, 2.2e-308,
]  # fmt: skip
SCALES = [5e-324, 1e-300, 1e-8, 1.0, 2.302585, 709.8, 5.7e9, 1e300, 1e308]
LOSSES = [
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
    "mse", "mae", "huber", "log_cosh", "mean_squared_logarithmic_error", "poisson",
    "kl_divergence", "hinge", "categorical_focal_crossentropy", "cosine_similarity",
]  # fmt: skip


@st.composite
def series(draw: st.DrawFn, max_len: int = 100_000) -> list[Any]:
    n = draw(st.one_of(st.integers(1, 12), st.integers(1, max_len)))
    scale = draw(st.sampled_from(SCALES))
    sign = draw(st.sampled_from([1.0, -1.0]))
    shape = draw(st.sampled_from(["constant", "falling", "rising", "noisy", "steps"]))
    t = np.linspace(0.0, 1.0, n)
    with np.errstate(all="ignore"):
        base = {
            "constant": np.ones(n),
            "falling": 1.0 / (1.0 + 5.0 * t),
            "rising": 1.0 + t,
            "noisy": 1.0 + 0.3 * np.random.default_rng(n).standard_normal(n),
            "steps": 1.0 + np.floor(t * 4) / 4,
        }[shape]
        values: list[Any] = (sign * scale * base).tolist()
    for _ in range(draw(st.integers(0, 4))):
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIALS))
    return values


def histories(max_len: int = 100_000) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"loss": series(max_len)},
        optional={
            "val_loss": series(max_len),
            "accuracy": series(max_len),
            "learning_rate": series(max_len),
            "f1_score": st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=3), min_size=1),
        },
    )


positive = st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=0.999)


@st.composite
def keras_schedules(draw: st.DrawFn) -> dict[str, Any]:
    """A serialized schedule with arguments Keras' constructor accepts."""
    cls = draw(st.sampled_from(SCHEDULE_CLASSES))
    lr = draw(st.one_of(st.just(0.0), positive))
    steps = draw(st.integers(1, 100_000))
    configs: dict[str, dict[str, Any]] = {
        "ExponentialDecay": {"initial_learning_rate": lr, "decay_steps": steps,
                             "decay_rate": draw(st.floats(0.01, 2.0)),
                             "staircase": draw(st.booleans())},
        "InverseTimeDecay": {"initial_learning_rate": lr, "decay_steps": steps,
                             "decay_rate": draw(st.floats(0.0, 10.0)),
                             "staircase": draw(st.booleans())},
        "PolynomialDecay": {"initial_learning_rate": lr, "decay_steps": steps,
                            "end_learning_rate": draw(st.floats(0.0, 1.0)),
                            "power": draw(st.floats(0.1, 4.0)), "cycle": draw(st.booleans())},
        "CosineDecay": {"initial_learning_rate": lr, "decay_steps": steps,
                        "alpha": draw(st.floats(0.0, 1.0)),
                        "warmup_target": draw(st.one_of(st.none(), positive)),
                        "warmup_steps": draw(st.integers(0, 10_000))},
        "CosineDecayRestarts": {"initial_learning_rate": lr, "first_decay_steps": steps,
                                "t_mul": draw(st.floats(0.5, 3.0)),
                                "m_mul": draw(st.floats(0.0, 1.0)),
                                "alpha": draw(st.floats(0.0, 1.0))},
        "PiecewiseConstantDecay": _piecewise(draw),
    }  # fmt: skip
    config = configs[cls]
    return {"module": "keras.optimizers.schedules", "class_name": cls, "config": config,
            "registered_name": None}  # fmt: skip


def _piecewise(draw: st.DrawFn) -> dict[str, Any]:
    bounds = sorted(draw(st.lists(st.integers(0, 100_000), min_size=1, max_size=5, unique=True)))
    values = draw(st.lists(st.one_of(st.just(0.0), positive), min_size=len(bounds) + 1,
                           max_size=len(bounds) + 1))  # fmt: skip
    return {"boundaries": bounds, "values": values}


@st.composite
def optimizers(draw: st.DrawFn) -> dict[str, Any]:
    """get_config() (with Keras' _n suffix) or serialize() of any class, maybe scheduled."""
    cls = draw(st.sampled_from(sorted(OPTIMIZER_CLASSES)))
    suffix = draw(st.sampled_from(["", "_1", "_17"]))
    name = OPTIMIZER_CLASSES[cls] + suffix if cls != "RMSprop" else "rm_sprop" + suffix
    config: dict[str, Any] = {"name": name}
    config["learning_rate"] = draw(st.one_of(positive, keras_schedules()))
    if draw(st.booleans()):
        config.update(momentum=draw(unit), beta_1=draw(unit), beta_2=draw(unit))
    if draw(st.booleans()):
        return {"module": "keras.optimizers", "class_name": cls, "config": config,
                "registered_name": None}  # fmt: skip
    if draw(st.booleans()):
        return {"name": "loss_scale_optimizer", "inner_optimizer": {
            "module": "keras.optimizers", "class_name": cls, "config": config}}  # fmt: skip
    return config


def runs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "optimizer": optimizers(),
            "loss": st.one_of(
                st.sampled_from(LOSSES),
                st.builds(
                    lambda n, f: {"name": n, "from_logits": f},
                    st.sampled_from(LOSSES),
                    st.booleans(),
                ),
            ),
            "batch_size": st.integers(1, 100_000),
            "epochs": st.integers(1, 1000),
            "data": st.fixed_dictionaries(
                {},
                optional={
                    "num_classes": st.integers(2, 1000),
                    "input_mean": st.floats(-1e6, 1e6),
                    "input_std": st.floats(0, 1e6),
                },
            ),
        },
    )
