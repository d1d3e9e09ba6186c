"""Fixes as RFC 7396 merge patches of `run`, built from the spec they repair."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from service.schemas.layer import Layer
from service.schemas.report import Fix
from service.schemas.run import RunSpec

# The seed article's augmentation (Keras ImageDataGenerator settings).
AUGMENTATION = {
    "rotation_range": 20,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "horizontal_flip": True,
}
_RELU_LIKE = {"relu", "relu6", "elu", "gelu", "swish", "silu", "leaky_relu", "mish", "softplus"}


def learning_rate(value: float, why: str) -> Fix:
    return Fix(
        summary=f"Set the learning rate to {value:.3g} ({why})",
        patch={"optimizer": {"learning_rate": _round(value)}},
    )


def step_decay(initial_lr: float, epochs: int | None) -> Fix:
    # The seed article halves every 10 epochs; shorter runs halve proportionally sooner.
    every = 10 if not epochs or epochs >= 30 else max(2, epochs // 3)
    return Fix(
        summary=f"Decay the learning rate: start at {initial_lr:.3g}, halve it every {every} "
        "epochs",
        patch={
            "lr_schedule": {
                "name": "step_decay",
                "initial_lr": _round(initial_lr),
                "drop": 0.5,
                "epochs_drop": every,
            }
        },
    )


def normalize_inputs(input_min: float | None) -> Fix:
    if input_min is not None and input_min >= 0:
        return Fix(
            summary="Rescale inputs to [0, 1] (divide by the maximum, e.g. x / 255)",
            patch={"preprocessing": {"normalization": "rescale"}},
        )
    return Fix(
        summary="Standardize inputs per channel (subtract the mean, divide by the std)",
        patch={"preprocessing": {"normalization": "standardize"}},
    )


def augmentation() -> Fix:
    return Fix(
        summary="Add data augmentation (rotation 20°, shifts 0.2, horizontal flip) and "
        "stop at the best validation epoch",
        patch={"preprocessing": {"augmentation": dict(AUGMENTATION)}},
    )


def batch_size(value: int, why: str) -> Fix:
    return Fix(summary=f"Use batch size {value} ({why})", patch={"batch_size": value})


def label_cleanup(run: RunSpec) -> Fix:
    loss = run.loss.name if run.loss else "sparse_categorical_crossentropy"
    patch: dict[str, Any] = {"loss": {"name": loss, "label_smoothing": 0.1}}
    if run.loss and run.loss.from_logits:
        patch["loss"]["from_logits"] = True
    return Fix(
        summary="Audit and clean the labels; until then train with label smoothing 0.1 "
        "and keep the best validation epoch",
        patch=patch,
    )


Edit = Callable[[Layer, str, bool], dict[str, Any]]


def model_patch(run: RunSpec, names: list[str], summary: str, edit: Edit) -> Fix:
    """A fix that rewrites layers; `edit(layer, name, is_output)` returns the fields to change.

    `names` are the layers' names as the architecture resolved them (a layer list may omit them).
    """
    assert run.model is not None and run.model.layers is not None
    layers = run.model.layers
    out = []
    for i, (layer, name) in enumerate(zip(layers, names, strict=True)):
        doc = layer.model_dump(mode="json", exclude_none=True)
        doc.update(edit(layer, name, i == len(layers) - 1))
        out.append(doc)
    patch: dict[str, Any] = {"model": {"input_shape": run.model.input_shape, "layers": out}}
    if run.model.keras_json is not None:
        patch["model"]["keras_json"] = None  # the patched model is given as a layer list
    return Fix(summary=summary, patch=patch)


def initializer_for(activation: str | None) -> str:
    """He for the ReLU family, LeCun for SELU, Glorot otherwise (tanh, sigmoid, linear)."""
    act = (activation or "linear").lower()
    if act in _RELU_LIKE:
        return "he_normal"
    if act == "selu":
        return "lecun_normal"
    return "glorot_uniform"


def _round(value: float) -> float:
    return float(f"{value:.2g}")


_REGULARIZERS = (
    "kernel_regularizer",
    "depthwise_regularizer",
    "pointwise_regularizer",
    "bias_regularizer",
)


def relax_regularization(run: RunSpec, names: list[str], factor: float) -> Fix | None:
    """L1/L2 divided by `factor` (removed when infinite) and dropout capped; None: none to relax."""
    found = False

    def edit(layer: Layer, _: str, __: bool) -> dict[str, Any]:
        nonlocal found
        out: dict[str, Any] = {}
        for key in _REGULARIZERS:
            reg = getattr(layer, key)
            if reg is not None and (reg.l1 or reg.l2):
                found = True
                out[key] = (
                    None if math.isinf(factor) else {"l1": reg.l1 / factor, "l2": reg.l2 / factor}
                )
        if layer.type in ("dropout", "spatial_dropout2d") and (layer.rate or 0) > 0.3:
            found = True
            out["rate"] = 0.0 if math.isinf(factor) else 0.3
        return out

    what = (
        "Remove L1/L2 and dropout"
        if math.isinf(factor)
        else f"Divide the L2/L1 coefficients by {factor:g} and keep dropout ≤ 0.3"
    )
    fix = model_patch(run, names, what, edit)
    return fix if found else None


def widen(run: RunSpec, names: list[str], factor: int, floor: int = 1) -> Fix:
    """Hidden layers' filters/units × `factor` (and at least `floor`); the output stays."""

    def edit(layer: Layer, _: str, is_output: bool) -> dict[str, Any]:
        if is_output:
            return {}
        if layer.filters is not None:
            return {"filters": max(factor * layer.filters, floor)}
        if layer.units is not None and layer.type == "dense":
            return {"units": max(factor * layer.units, floor)}
        return {}

    at_least = f" (at least {floor} channels/units each)" if floor > 1 else ""
    return model_patch(
        run, names, f"Multiply the width of the hidden layers by {factor}" + at_least, edit
    )


def reinitialize(
    run: RunSpec, names: list[str], activations: dict[str, str | None], only: set[str] | None = None
) -> Fix:
    """Weighted layers (all, or `only` these) get the initializer their activation calls for."""

    def edit(_: Layer, name: str, __: bool) -> dict[str, Any]:
        if name in activations and (only is None or name in only):
            return {"kernel_initializer": initializer_for(activations[name])}
        return {}

    which = ", ".join(sorted(only)[:4]) if only else "every weighted layer"
    return model_patch(
        run,
        names,
        f"Re-initialise {which} with He (ReLU) / Glorot (tanh, sigmoid) / LeCun (SELU) scaling",
        edit,
    )
