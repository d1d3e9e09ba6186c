"""Fixes in three forms: the change list (user's terms), Keras lines, and an RFC 7396 patch.

Each builder takes the run it repairs, so a fix names the user's layers and keeps what the
user had (momentum, the loss's other arguments). A run that came as Keras JSON gets its own
JSON back, edited (see keras_edit); a layer-list run gets its layer list back, edited.
"""

from __future__ import annotations

import json
import math
from typing import Any

from service.analysis import keras_edit
from service.analysis.optimizers import LrReading, display
from service.analysis.patch import merge
from service.schemas.report import Change, Fix, LabelSuspect
from service.schemas.run import RunSpec

# The seed article's augmentation (Keras ImageDataGenerator settings).
AUGMENTATION = {
    "rotation_range": 20,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "horizontal_flip": True,
}
_RELU_LIKE = {"relu", "relu6", "elu", "gelu", "swish", "silu", "leaky_relu", "mish", "softplus"}
_OPTIMIZER_CLASS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "nadam": "Nadam",
    "adamax": "Adamax",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "lamb": "Lamb",
}
# Optimizer arguments worth keeping in the Keras line when the user set them.
_KEEP = ("momentum", "nesterov", "beta_1", "beta_2", "rho", "weight_decay", "clipnorm")
# Layer-list types whose Keras class name is not the CamelCase of the type.
_KERAS_CLASS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "prelu": "PReLU", "softmax": "Softmax"}
_LAYER_CLASS = {
    "conv1d": "Conv1D",
    "conv2d": "Conv2D",
    "conv3d": "Conv3D",
    "conv1d_transpose": "Conv1DTranspose",
    "conv2d_transpose": "Conv2DTranspose",
    "conv3d_transpose": "Conv3DTranspose",
    "embedding": "Embedding",
    "separable_conv2d": "SeparableConv2D",
    "depthwise_conv2d": "DepthwiseConv2D",
    "dense": "Dense",
    "dropout": "Dropout",
    "spatial_dropout2d": "SpatialDropout2D",
    "activation": "Activation",
    "softmax": "Softmax",
}
# Regularization is "small" when its penalty at initialisation is this share of the loss scale.
PENALTY_SHARE = 0.01
# Dropout kept in a fix for over-regularization: a mild, common rate.
MAX_DROPOUT = 0.2
REFERENCE_BATCH = 32  # the batch size the optimizer bands' typical rates are for


def none(summary: str, why: str) -> Fix:
    """No concrete change: `why` says precisely what is missing."""
    return Fix(summary=summary, patch={}, unavailable=why)


# ---------------------------------------------------------------- optimizer, schedule, batch


def recommended_lr(reading: LrReading, batch: int | None) -> tuple[float, str]:
    """(the optimizer's own learning_rate, why): the band's typical step for batch 32, scaled
    to the run's batch (linearly for SGD, by the square root for adaptive methods, whose
    step does not grow with the gradient), capped at the geometric middle of typical and
    ceiling, and divided back through momentum (which is kept)."""
    band, b = reading.band, batch or REFERENCE_BATCH
    sgd = reading.optimizer == "sgd"
    ratio = b / REFERENCE_BATCH
    step = band.typical * (ratio if sgd else math.sqrt(ratio))
    step = min(step, math.sqrt(band.typical * band.high))
    step = max(step, band.low * 10)
    # Keeps momentum's factor, and the targets' gradient scale for SGD under MSE.
    value = step * (reading.learning_rate / reading.effective)
    name = display(reading.optimizer)
    why = f"a step of {_round(step):g} for {name}"
    if b != REFERENCE_BATCH:
        why += f" at batch size {b}"
    if reading.gradient_scale != 1.0:
        why += (
            f" on MSE targets whose gradients are ≈ {reading.gradient_scale:.3g}× a cross-entropy's"
        )
    if reading.momentum > 1e-9:
        why += f", with the run's momentum {reading.momentum:.2g}"
    return value, why


def learning_rate(run: RunSpec, value: float, why: str) -> Fix:
    value = _round(value)
    opt = run.optimizer
    name = opt.name if opt else "adam"
    args = [f"learning_rate={value:g}"]
    if opt is not None:
        args += [f"{k}={_py(getattr(opt, k))}" for k in _KEEP if getattr(opt, k, None)]
    summary = f"Set the learning rate to {value:g} ({why})"
    optimizer_patch: dict[str, Any] = {"learning_rate": value}
    if opt is not None and opt.schedule is not None:
        # A constant rate in place of the schedule: as sent, `learning_rate` held the schedule
        # and the value replaces it; as stored, the schedule is its own field, removed here.
        summary += ", a constant rate in place of the schedule"
        optimizer_patch["schedule"] = None
    return Fix(
        summary=summary,
        changes=[
            _change(
                path="optimizer.learning_rate",
                from_=opt.learning_rate if opt else None,
                to=value,
            )
        ],
        keras=[f"keras.optimizers.{_OPTIMIZER_CLASS.get(name, name)}({', '.join(args)})"],
        patch={"optimizer": optimizer_patch},
    )


def step_decay(run: RunSpec, initial_lr: float, epochs: int | None) -> Fix:
    # The seed article halves every 10 epochs; shorter runs halve proportionally sooner.
    every = 10 if not epochs or epochs >= 30 else max(2, epochs // 3)
    lr = _round(initial_lr)
    schedule = {"name": "step_decay", "initial_lr": lr, "drop": 0.5, "epochs_drop": every}
    before = run.lr_schedule.model_dump(exclude_none=True) if run.lr_schedule else None
    return Fix(
        summary=f"Decay the learning rate: start at {lr:g}, halve it every {every} epochs",
        changes=[_change(path="lr_schedule", from_=before, to=schedule)],
        keras=[
            "keras.callbacks.LearningRateScheduler("
            f"lambda epoch: {lr:g} * 0.5 ** (epoch // {every}))  # in model.fit(callbacks=[...])"
        ],
        patch={"lr_schedule": schedule},
    )


def cosine_decay(run: RunSpec, initial_lr: float, epochs: int | None) -> Fix:
    """Anneal the rate along a half cosine to zero over the run: the last epochs take steps
    small enough to settle into the minimum the large early steps found, whatever the run's
    length (a step schedule's period would have to be fitted to it)."""
    lr = _round(initial_lr)
    schedule = {"name": "cosine", "initial_lr": lr, "alpha": 0.0}
    before = run.lr_schedule.model_dump(exclude_none=True) if run.lr_schedule else None
    span = f"the run's {epochs} epochs" if epochs else "the run"
    return Fix(
        summary=f"Decay the learning rate: start at {lr:g} and anneal it to 0 along a cosine "
        f"over {span}",
        changes=[_change(path="lr_schedule", from_=before, to=schedule)],
        keras=[
            f"keras.optimizers.schedules.CosineDecay({lr:g}, decay_steps={epochs or 'epochs'} "
            "* steps_per_epoch)  # the optimizer's learning_rate"
        ],
        patch={"lr_schedule": schedule},
    )


def batch_size(run: RunSpec, value: int, why: str) -> Fix:
    return Fix(
        summary=f"Use batch size {value} ({why})",
        changes=[_change(path="batch_size", from_=run.batch_size, to=value)],
        keras=[f"model.fit(x_train, y_train, batch_size={value}, ...)"],
        patch={"batch_size": value},
    )


# ---------------------------------------------------------------- data


def normalize_inputs(run: RunSpec, input_range: tuple[float, float] | None) -> Fix:
    """Rescale [min, max] to [0, 1] when the inputs start near 0 (pixels), else standardize:
    an offset larger than a tenth of the span would survive a division by the maximum."""
    before = run.preprocessing.normalization if run.preprocessing else None
    if input_range is not None and 0 <= input_range[0] <= 0.1 * (input_range[1] - input_range[0]):
        lo, hi = input_range
        line = (
            f"x_train, x_val = x_train / {hi:g}, x_val / {hi:g}"
            if lo == 0
            else f"x_train, x_val = (x_train - {lo:g}) / {hi - lo:g}, "
            f"(x_val - {lo:g}) / {hi - lo:g}"
        )
        return Fix(
            summary=f"Rescale inputs from [{lo:g}, {hi:g}] to [0, 1]",
            changes=[_change(path="preprocessing.normalization", from_=before, to="rescale")],
            keras=[line],
            patch={"preprocessing": {"normalization": "rescale"}},
        )
    return Fix(
        summary="Standardize inputs per channel (subtract the mean, divide by the std)",
        changes=[_change(path="preprocessing.normalization", from_=before, to="standardize")],
        keras=[
            "mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))",
            "x_train, x_val = (x_train - mean) / std, (x_val - mean) / std",
        ],
        patch={"preprocessing": {"normalization": "standardize"}},
    )


def augmentation(run: RunSpec) -> Fix:
    before = run.preprocessing.augmentation if run.preprocessing else None
    return Fix(
        summary="Add data augmentation (rotation 20°, shifts 0.2, horizontal flip) and "
        "stop at the best validation epoch",
        changes=[
            _change(
                path="preprocessing.augmentation",
                from_=before.model_dump(exclude_none=True) if before else None,
                to=dict(AUGMENTATION),
            )
        ],
        keras=[
            "augment = keras.Sequential([keras.layers.RandomRotation(20 / 360), "
            'keras.layers.RandomTranslation(0.2, 0.2), keras.layers.RandomFlip("horizontal")])',
            "# put augment first in the model; and in model.fit(callbacks=[...]):",
            "keras.callbacks.EarlyStopping(monitor='val_loss', restore_best_weights=True)",
        ],
        patch={"preprocessing": {"augmentation": dict(AUGMENTATION)}},
    )


def stop_early(run: RunSpec, best_epoch: int) -> Fix:
    """Train only to the epoch where validation loss was lowest (and keep those weights)."""
    return Fix(
        summary=f"Stop at epoch {best_epoch}, where validation loss was lowest (early stopping "
        "that restores the best weights); with more data or augmentation it can run longer",
        changes=[_change(path="epochs", from_=run.epochs, to=best_epoch)],
        keras=[
            f"model.fit(..., epochs={best_epoch}, callbacks=[keras.callbacks.EarlyStopping("
            'monitor="val_loss", patience=3, restore_best_weights=True)])'
        ],
        patch={"epochs": best_epoch},
    )


def drop_suspect_labels(suspects: list[LabelSuspect]) -> Fix:
    """The label audit's suspects, dropped from the training data (`data.drop_examples`)."""
    rows = sorted({s.index for s in suspects})
    shown = ", ".join(str(r) for r in rows[:20]) + (" …" if len(rows) > 20 else "")
    return Fix(
        summary=f"Relabel or drop the {len(rows)} sample examples whose labels the audit "
        f"doubts (rows {shown}), then audit the rest of the training set the same way",
        changes=[
            _change(path=f"data.sample.{s.index}.label", from_=s.given, to=s.likely)
            for s in sorted(suspects, key=lambda s: -s.confidence)
        ],
        keras=[
            f"suspects = {rows}  # rows of the uploaded sample",
            "x_sample = np.delete(x_sample, suspects, axis=0)",
            "y_sample = np.delete(y_sample, suspects, axis=0)",
        ],
        patch={"data": {"drop_examples": rows}},
    )


def no_label_fix(why: str) -> Fix:
    return none(
        "Audit the labels (e.g. cleanlab's find_label_issues on out-of-sample predictions) "
        "and relabel or drop the examples it flags",
        why,
    )


# ---------------------------------------------------------------- model


Edits = dict[str, dict[str, Any]]  # layer name → {layer-list field: new value}


def model_fix(
    run: RunSpec, names: list[str], edits: Edits, summary: str, inserts: Edits | None = None
) -> Fix:
    """A fix that changes fields of named layers, and inserts hidden Dense layers (`inserts`:
    {the layer to insert before: {"name", "units", "activation"}}), in the form the run's
    model came in (see `can_insert`). An edit's `type` field replaces the layer by one of that
    type under the same name (an Activation layer in place of a ReLU or Softmax layer)."""
    assert run.model is not None and run.model.layers is not None
    by_name = dict(zip(names, run.model.layers, strict=True))
    # A shared layer's later calls take their owner's settings: only the owner is edited.
    edits = {
        name: fields
        for name, fields in edits.items()
        if fields and (name not in by_name or by_name[name].shares is None)
    }
    inserts = inserts or {}
    changes, lines = [], []
    for before, new in inserts.items():
        changes.append(
            _change(path=f"model.layers.{new['name']}", from_=None, to={**new, "before": before})
        )
        lines.append(
            f"keras.layers.Dense({new['units']}, activation={_py(new['activation'])}, "
            f"name={_py(new['name'])})  # a new layer, before {_py(before)}"
        )
    for name, fields in edits.items():
        layer = by_name[name]
        for field, value in fields.items():
            changes.append(
                _change(
                    path=f"model.layers.{name}.{field}",
                    from_=_plain(getattr(layer, field, None)),
                    to=_plain(value),
                )
            )
        if "type" in fields:  # the layer replaced by one of another class, under its name
            cls = _LAYER_CLASS.get(fields["type"], fields["type"])
            args = ", ".join(_py(v) for k, v in fields.items() if k != "type")
            replaced = _KERAS_CLASS.get(layer.type, layer.type)
            lines.append(f'keras.layers.{cls}({args}, name="{name}")  # instead of {replaced}')
            continue
        cls = _LAYER_CLASS.get(layer.type, layer.type)
        args = ", ".join(f"{field}={_py(value)}" for field, value in fields.items())
        lines.append(f'keras.layers.{cls}(..., {args}, name="{name}")')
    document = run.model.keras_document()
    if document is not None:
        # Edited in its parsed form, then given back in the form it was sent in.
        edited = keras_edit.edit(document, edits, inserts)
        sent_as_text = isinstance(run.model.keras_json, str)
        patch: dict[str, Any] = {
            "model": {"keras_json": json.dumps(edited) if sent_as_text else edited}
        }
    else:
        out = []
        for layer, name in zip(run.model.layers, names, strict=True):
            doc = layer.model_dump(mode="json", exclude_none=True)
            if name in inserts:
                new = {"type": "dense", **inserts[name]}
                if layer.inputs is not None:  # the new layer takes over the named layer's input
                    new["inputs"], doc["inputs"] = layer.inputs, [new["name"]]
                out.append(new)
            fields = edits.get(name, {})
            if "type" in fields:  # a layer of another class: only its name and inputs stay
                doc = {k: doc[k] for k in ("name", "inputs") if k in doc}
            doc.update({k: _plain(v) for k, v in fields.items()})
            out.append(doc)
        patch = {"model": {"input_shape": run.model.input_shape, "layers": out}}
    return Fix(summary=summary, changes=changes, keras=lines, patch=patch)


def can_insert(run: RunSpec, before: str, names: list[str]) -> bool:
    """Whether a fix can add a layer before layer `before` (named as `names` name the layer
    list): it must take one input, which the new layer then takes over."""
    if run.model is None or run.model.layers is None or before not in names:
        return False
    document = run.model.keras_document()
    if document is not None:
        return keras_edit.can_insert(document, before)
    layer = run.model.layers[names.index(before)]
    return layer.inputs is None or len(layer.inputs) == 1


def initializer_for(activation: str | None) -> str:
    """He for the ReLU family, LeCun for SELU, Glorot otherwise (tanh, sigmoid, linear)."""
    act = (activation or "linear").lower()
    if act in _RELU_LIKE:
        return "he_normal"
    if act == "selu":
        return "lecun_normal"
    return "glorot_uniform"


_REGULARIZERS = (
    "kernel_regularizer",
    "depthwise_regularizer",
    "pointwise_regularizer",
    "bias_regularizer",
)


def relax_regularization(
    run: RunSpec, names: list[str], penalty: float, scale: float
) -> Fix | None:
    """L1/L2 scaled so that the penalty at initialisation (`penalty`) becomes PENALTY_SHARE of
    the loss scale (`scale`: ln C, or Var(y) for regression), and dropout capped at
    MAX_DROPOUT. None: nothing to relax."""
    assert run.model is not None and run.model.layers is not None
    target = PENALTY_SHARE * scale
    factor = target / penalty if penalty > target else 1.0
    edits: Edits = {}
    for layer, name in zip(run.model.layers, names, strict=True):
        fields: dict[str, Any] = {}
        if factor < 1:
            for key in _REGULARIZERS:
                reg = getattr(layer, key)
                if reg is not None and (reg.l1 or reg.l2):
                    fields[key] = {"l1": _round(reg.l1 * factor), "l2": _round(reg.l2 * factor)}
        if layer.type in ("dropout", "spatial_dropout2d") and (layer.rate or 0) > MAX_DROPOUT:
            fields["rate"] = MAX_DROPOUT
        edits[name] = fields
    if not any(edits.values()):
        return None
    parts = []
    if factor < 1:
        parts.append(
            f"Scale the L1/L2 coefficients by {factor:.2g}, so the weight penalty starts at "
            f"{PENALTY_SHARE:.0%} of the loss scale {scale:.3g} instead of {penalty:.3g}"
        )
    if any("rate" in f for f in edits.values()):
        parts.append(f"keep dropout ≤ {MAX_DROPOUT:g}")
    return model_fix(run, names, edits, "; ".join(parts))


def capacity_floors(
    input_shape: tuple[int, ...] | list[int], classes: int | None
) -> tuple[int, int]:
    """(filters per conv, units per dense layer) a layer needs not to be a bottleneck: a
    convolution at least 8 channels per input channel and 2 per class (≥ 16), a dense layer
    4 units per class (≥ 64)."""
    channels = input_shape[-1] if len(input_shape) == 3 else 1
    c = classes or 10
    return max(16, 8 * channels, 2 * c), max(64, 4 * c)


def widen(
    run: RunSpec,
    names: list[str],
    conv_floor: int,
    dense_floor: int,
    activate: frozenset[str] = frozenset(),
    deepen: bool = False,
) -> Fix | None:
    """Every hidden conv layer with fewer than `conv_floor` filters and dense layer with
    fewer than `dense_floor` units widened to that floor; the `activate` layers given a ReLU
    (a stack of linear layers is one linear map however wide); with `deepen`, a hidden Dense
    layer of `dense_floor` ReLU units inserted before the output layer. The output layer
    stays. None: nothing to change."""
    assert run.model is not None and run.model.layers is not None
    last = len(run.model.layers) - 1
    edits: Edits = {}
    for i, (layer, name) in enumerate(zip(run.model.layers, names, strict=True)):
        if i == last:
            continue
        fields: dict[str, Any] = {}
        if layer.filters is not None and layer.filters < conv_floor:
            fields["filters"] = conv_floor
        elif layer.type == "dense" and layer.units is not None and layer.units < dense_floor:
            fields["units"] = dense_floor
        if name in activate:
            fields["activation"] = "relu"
        edits[name] = fields
    inserts: Edits = {}
    if deepen:
        new = _fresh_name("hidden_dense", names)
        inserts[names[last]] = {"name": new, "units": dense_floor, "activation": "relu"}
    if not any(edits.values()) and not inserts:
        return None
    narrow = [n for n, f in edits.items() if "filters" in f or "units" in f]
    parts = []
    if narrow:
        parts.append(
            f"Widen the {len(narrow)} narrow hidden layer(s) ({', '.join(narrow[:4])}) to "
            f"≥ {conv_floor} filters per convolution and ≥ {dense_floor} units per dense layer"
        )
    if activate:
        parts.append(f"give {', '.join(sorted(activate)[:4])} a ReLU: the hidden layers are linear")
    if inserts:
        parts.append(
            f"add a hidden Dense layer of {dense_floor} ReLU units before {names[last]!r}: "
            "one weighted layer is too shallow to combine the features"
        )
    return model_fix(run, names, edits, "; ".join(parts), inserts)


def _fresh_name(stem: str, taken: list[str]) -> str:
    name, i = stem, 1
    while name in taken:
        i += 1
        name = f"{stem}_{i}"
    return name


def strip_regularization(run: RunSpec, names: list[str]) -> Fix | None:
    """Every L1/L2 penalty and dropout removed (a probe's upper bound). None: there is none."""
    assert run.model is not None and run.model.layers is not None
    edits: Edits = {}
    for layer, name in zip(run.model.layers, names, strict=True):
        fields: dict[str, Any] = {k: None for k in _REGULARIZERS if getattr(layer, k) is not None}
        if layer.type in ("dropout", "spatial_dropout2d") and layer.rate:
            fields["rate"] = 0.0
        edits[name] = fields
    if not any(edits.values()):
        return None
    return model_fix(run, names, edits, "Remove every L1/L2 penalty and dropout")


def scale_width(run: RunSpec, names: list[str], factor: int) -> Fix:
    """Every hidden layer's filters/units × `factor` (a probe of capacity); the output stays."""
    assert run.model is not None and run.model.layers is not None
    last = len(run.model.layers) - 1
    edits: Edits = {}
    for i, (layer, name) in enumerate(zip(run.model.layers, names, strict=True)):
        if i != last and layer.filters is not None:
            edits[name] = {"filters": factor * layer.filters}
        elif i != last and layer.type == "dense" and layer.units is not None:
            edits[name] = {"units": factor * layer.units}
    return model_fix(run, names, edits, f"Multiply the width of the hidden layers by {factor}")


def reinitialize(
    run: RunSpec, names: list[str], activations: dict[str, str | None], only: set[str] | None = None
) -> Fix:
    """Weighted layers (all, or `only` these) get the initializer their activation calls for."""
    edits: Edits = {
        name: {"kernel_initializer": initializer_for(activations[name])}
        for name in names
        if name in activations and (only is None or name in only)
    }
    which = ", ".join(sorted(only)[:4]) if only else "every weighted layer"
    return model_fix(
        run,
        names,
        edits,
        f"Re-initialise {which} with He (ReLU) / Glorot (tanh, sigmoid) / LeCun (SELU) scaling",
    )


# ---------------------------------------------------------------- values


def _change(path: str, from_: Any, to: Any) -> Change:
    return Change.model_validate({"path": path, "from": from_, "to": to})


def _round(value: float) -> float:
    return float(f"{value:.2g}")


def _plain(value: Any) -> Any:
    """A field value as JSON shows it: tuples as lists, pydantic models as dicts."""
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _py(value: Any) -> str:
    """A value as a Keras argument in Python source."""
    if isinstance(value, dict) and set(value) <= {"l1", "l2"}:
        l1, l2 = value.get("l1") or 0, value.get("l2") or 0
        if l1 and l2:
            return f"keras.regularizers.L1L2(l1={l1:g}, l2={l2:g})"
        return f"keras.regularizers.L1({l1:g})" if l1 else f"keras.regularizers.L2({l2:g})"
    if isinstance(value, list):
        return repr(tuple(value))
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, as Keras code is usually written
    return repr(value)


def with_loss(fix: Fix, run: RunSpec, name: str, from_logits: bool) -> Fix:
    """`fix` that also sets the loss (its other arguments kept)."""
    before = run.loss.model_dump(exclude_none=True) if run.loss else None
    loss = {**(before or {}), "name": name, "from_logits": from_logits}
    if loss == before:  # the loss is right already: the model change is the fix
        return fix
    cls = "".join(part.capitalize() for part in name.split("_"))
    return fix.model_copy(
        update={
            "changes": [*fix.changes, _change(path="loss", from_=before, to=loss)],
            "keras": [
                *fix.keras,
                f"model.compile(loss=keras.losses.{cls}(from_logits={from_logits}), ...)",
            ],
            "patch": {**fix.patch, "loss": {"name": name, "from_logits": from_logits}},
        }
    )


def combine(parts: list[Fix]) -> Fix:
    """Several fixes as one: their changes and Keras lines in order, their patches merged."""
    return Fix(
        summary="; ".join(f.summary for f in parts),
        changes=[c for f in parts for c in f.changes],
        keras=[line for f in parts for line in f.keras],
        patch=merge(*(f.patch for f in parts)),
    )
