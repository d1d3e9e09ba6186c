"""What was read from a request and what was set aside: notes naming the checks this turns off.

A Keras artefact the analysis does not model (an opaque layer, a per-class metric vector, an
optimizer without a learning-rate band, an open input size) is accepted, not refused; these
notes say what it costs the diagnosis.
"""

from __future__ import annotations

from service.analysis.architecture import ShapeUnknown, require_sized
from service.analysis.evidence import Context
from service.analysis.optimizers import BANDS
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.layer import Layer

_SHOWN = 5  # opaque layers named in a note; the rest are counted


def intake_notes(request: DiagnosisRequest, ctx: Context) -> list[str]:
    run, history = request.run, request.history
    notes = []
    layers = run.model.layers if run.model and run.model.layers else []
    opaque = [layer for layer in layers if layer.type == "opaque"]
    if opaque:
        notes.append(_opaque_note(opaque))
    if run.model is not None and ctx.arch is None and run.model.input_shape is not None:
        notes.append(
            f"Model shapes unknown ({_shape_gap(run.model.input_shape, ctx.shape_gap)}): "
            "initialization, capacity, kernel-size and output/loss checks are off."
            + (" Upload a sample to give the input size." if None in run.model.input_shape else "")
        )
    orthogonal = [layer.name or layer.type for layer in layers if _orthogonal(layer)]
    if orthogonal:
        notes.append(
            f"OrthogonalRegularizer on {', '.join(map(repr, orthogonal[:_SHOWN]))}: its penalty "
            "is not weighed by the regularization checks (L1/L2 are)."
        )
    if run.optimizer is not None and run.optimizer.name not in BANDS:
        notes.append(
            f"Optimizer {run.optimizer.name}: its effective step is not modelled, so "
            "learning-rate ranges are not checked."
        )
    if history.vector_keys:
        keys = ", ".join(history.vector_keys)
        notes.append(
            f"History keys {keys} hold a vector per epoch (a per-class metric): they were set "
            "aside; only scalar series are read."
        )
    outputs = [k for k in history.model_extra or {} if k.endswith("_loss") and k != "val_loss"]
    heads = [k for k in outputs if not k.startswith("val_")]
    if heads:
        notes.append(
            f"Several outputs ({', '.join(heads)}): the diagnosis reads the total loss; "
            "the per-output losses are kept in the history."
        )
    return notes


def _orthogonal(layer: Layer) -> bool:
    regularizers = (
        layer.kernel_regularizer,
        layer.depthwise_regularizer,
        layer.pointwise_regularizer,
        layer.bias_regularizer,
    )
    return any(r is not None and r.orthogonal > 0 for r in regularizers)


def _opaque_note(opaque: list[Layer]) -> str:
    named = ", ".join(
        f"{layer.name!r} ({layer.keras_class}: {layer.opaque_reason})" for layer in opaque[:_SHOWN]
    )
    more = f" and {len(opaque) - _SHOWN} more" if len(opaque) > _SHOWN else ""
    return (
        f"{len(opaque)} layer(s) kept opaque: {named}{more}. Any parameters they hold are not "
        "counted (the parameter-count check is off then) and initialization and kernel-size "
        "checks skip them; probes cannot rebuild the model."
    )


def _shape_gap(input_shape: list[int | None], gap: str | None) -> str:
    """Why the model's shapes are unknown: its open input (even where an uploaded sample gave
    the sizes), else what `describe()` could not follow."""
    try:
        require_sized(input_shape)
    except ShapeUnknown as exc:
        return str(exc)
    return gap or "the input size is open"
