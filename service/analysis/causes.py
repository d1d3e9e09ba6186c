"""One detector per cause: evidence from the curve, the spec and the data, and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import get_args

from service.analysis import fixes
from service.analysis.curves import HIGH_LEVEL
from service.analysis.evidence import Context, Evidence, sigmoid
from service.analysis.optimizers import display
from service.schemas.report import Cause, CauseId, Fix

# Every cause starts unlikely (≈8%); only evidence makes it credible.
PRIOR = -2.5
# Causes that keep the *training* loss high: a run that trains well refutes them.
_TRAIN_LOSS_CAUSES = set(get_args(CauseId)) - {"overfitting", "output_loss_mismatch"}
_ADAPTIVE = {"adam", "adamw", "nadam", "adamax", "rmsprop", "lamb", "lion", "adafactor"}


# Evidence, and the fix — built only for the causes that make it into the report.
Found = tuple[list[Evidence], Callable[[], Fix]]


def _decades(x: float) -> str:
    return f"{10**x:.0f}×" if x < 3 else f"10^{x:.1f}×"


def learning_rate_too_high(ctx: Context) -> Found:
    ev: list[Evidence] = []
    r, c = ctx.lr, ctx.curve
    if r is not None:
        up = r.decades_above
        if up > 0:
            ev.append(
                Evidence(
                    1.5 + 2 * min(up, 2),
                    f"{r.describe()} is {_decades(up)} above "
                    f"the usual ceiling {r.band.high:g} for {display(r.optimizer)}",
                )
            )
        elif r.decades_below > 0:
            ev.append(Evidence(-2, f"{r.describe()} is below {display(r.optimizer)}'s usual range"))
        elif up < -1:
            ev.append(Evidence(-1, f"{r.describe()} is a common choice for {display(r.optimizer)}"))
    if c.has("non_finite_loss"):
        ev.append(Evidence(2, f"the loss became non-finite at epoch {c.non_finite_at}"))
    if c.has("explosion"):
        ev.append(Evidence(1.5, "the loss grew by more than 10×"))
    if c.has("divergence") or c.has("late_collapse"):
        ev.append(Evidence(1.5, "the loss rose again after reaching its minimum"))
    if c.has("oscillation"):
        ev.append(Evidence(1, "the loss oscillates from epoch to epoch"))
    if c.early_rises >= 2:
        ev.append(Evidence(0.5, f"the loss rose in {c.early_rises} of the first 4 epochs"))
    if r is not None and r.decades_above > 0 and _learned(ctx):
        ev.append(
            Evidence(
                -1,
                "yet the run learned at this rate: the loss fell by "
                f"{c.total_drop:.0%} of the chance loss",
            )
        )
    if c.has("stuck_at_chance") and (
        r is None or (r.optimizer in _ADAPTIVE and r.decades_above > -0.5)
    ):
        # Large adaptive steps push ReLUs dead or softmax saturated: the net predicts a constant.
        ev.append(
            Evidence(
                1.5 if r else 1.0, "the loss sits at chance, as when large steps kill the ReLUs"
            )
        )
    return ev, lambda: _lr_fix(ctx, "Lower the learning rate 10×")


def _lr_fix(ctx: Context, without_optimizer: str) -> Fix:
    r = ctx.lr
    if r is None:
        return fixes.none(
            without_optimizer,
            "run.optimizer (its name and learning_rate) is needed to compute a rate",
        )
    value, why = fixes.recommended_lr(r, ctx.run.batch_size)
    return fixes.learning_rate(ctx.run, value, why)


def learning_rate_too_low(ctx: Context) -> Found:
    ev: list[Evidence] = []
    r, c = ctx.lr, ctx.curve
    if r is not None:
        down = r.decades_below
        if down > 0:
            ev.append(
                Evidence(
                    1.5 + 2 * min(down, 2),
                    f"{r.describe()} is {_decades(down)} below "
                    f"the usual floor {r.band.low:g} for {display(r.optimizer)}",
                )
            )
        elif r.decades_above > 0:
            ev.append(
                Evidence(-2.5, f"{r.describe()} is above {display(r.optimizer)}'s usual range")
            )
        elif down < -1:
            ev.append(Evidence(-1, f"{r.describe()} is a common choice for {display(r.optimizer)}"))
    if c.has("slow_decrease"):
        ev.append(Evidence(1.5, "the loss decreases steadily but slowly"))
    if c.has("stuck_at_chance") and c.total_drop is not None and 0 <= c.total_drop < 0.05:
        ev.append(Evidence(0.5, "the loss barely moved from where it started"))
    if any(c.has(s) for s in ("non_finite_loss", "explosion", "divergence")):
        ev.append(Evidence(-2.5, "the loss blew up, which a too-small step cannot do"))
    return ev, lambda: _lr_fix(ctx, "Raise the learning rate 10×, or run an LR range test")


def _learned(ctx: Context) -> bool:
    """The loss fell by a real part of chance (or of where it started) with nothing severe."""
    c = ctx.curve
    return not ctx.severe and c.total_drop is not None and c.total_drop > 0.3


def missing_lr_decay(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c, run = ctx.curve, ctx.run
    schedule = run.lr_schedule or (run.optimizer.schedule if run.optimizer else None)
    lrs = [v for v in ctx.lr_history if math.isfinite(v) and v > 0]
    decays = (schedule is not None and schedule.name != "constant") or (
        len(lrs) > 1 and max(lrs) > 1.01 * min(lrs)
    )
    if decays:
        ev.append(Evidence(-3, "the learning rate already decays during the run"))
    elif schedule is not None or lrs:
        ev.append(Evidence(0.3, "the learning rate stays constant for the whole run"))
    if c.has("noisy_floor"):
        ev.append(
            Evidence(
                2,
                "the loss levelled off with epoch-to-epoch noise: the step is too "
                "large to settle lower",
            )
        )
    if c.has("oscillation") and not c.has("divergence"):
        ev.append(Evidence(0.8, "the loss oscillates around its floor"))
    if c.has("plateau") and c.total_drop is not None and c.total_drop > 0.3:
        ev.append(Evidence(0.7, "the loss fell and then flattened out"))
    if c.has("stuck_at_chance"):
        ev.append(Evidence(-2, "the model never left chance; decay helps only after learning"))
    if c.has("slow_decrease"):
        ev.append(Evidence(-1.5, "the loss is still falling; decay would slow it further"))
    if c.has("non_finite_loss") or c.has("explosion"):
        ev.append(Evidence(-1, "the run blew up, which a schedule only postpones"))
    r = ctx.lr
    if r is not None and r.effective < r.band.typical / 3:
        ev.append(Evidence(-1, f"{r.describe()} is already small for {display(r.optimizer)}"))
    if r is not None and not decays and _learned(ctx) and r.effective >= 3 * r.band.typical:
        ev.append(
            Evidence(
                1.5,
                f"{r.describe()} is large for {display(r.optimizer)}, and the "
                "loss fell: a step this size needs to shrink to settle lower",
            )
        )
    lr = r.learning_rate if r else 1e-3
    return ev, lambda: fixes.step_decay(run, lr, run.epochs or ctx.curve.epochs)


def poor_weight_initialization(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    worst, direction, culprits, texts = _init_gain(ctx)
    if texts:
        ev += texts
    if worst >= 1:
        ev.append(
            Evidence(
                1 + 1.5 * min(worst, 3),
                f"initial signal scale {'grows' if direction > 0 else 'shrinks'} by "
                f"about {_decades(worst)} through the layers before any normalization",
            )
        )
    elif worst >= 0.5:
        ev.append(Evidence(0.5, f"initial signal scale is off by {_decades(worst)}"))
    if culprits and all(ctx.arch.layer(n).normalized_after for n in culprits):  # type: ignore[union-attr]
        ev.append(Evidence(-1.5, "a normalization layer follows each badly scaled layer"))
    exploding = direction > 0 and worst >= 1
    if c.has("high_initial_loss"):
        ev.append(
            Evidence(
                1.5 if exploding else 0.7,
                "the first epoch's loss is far above chance: the initial logits are too large",
            )
        )
    if c.has("stuck_at_chance") and (direction < 0 or any("constant" in e.text for e in texts)):
        ev.append(Evidence(1.5, "the loss sits at chance, as when the signal vanishes"))
    elif c.has("stuck_at_chance") and exploding:
        ev.append(Evidence(0.7, "the loss sits at chance, as when activations saturate"))
    if c.has("non_finite_loss") and exploding:
        ev.append(Evidence(0.5, "the loss became non-finite"))
    if ctx.arch is None and c.has("high_initial_loss"):
        ev.append(
            Evidence(
                0.5,
                "without the model, initialization is one of two explanations "
                "for a high first loss",
            )
        )
    return ev, lambda: _reinit_fix(ctx, culprits)


def _init_gain(ctx: Context) -> tuple[float, int, list[str], list[Evidence]]:
    """Worst |log10| signal gain over runs of weighted layers between normalizations."""
    texts: list[Evidence] = []
    culprits: list[str] = []
    worst, direction, gain = 0.0, 0, 0.0
    for layer in ctx.weighted_layers():
        if layer.init_constant:
            culprits.append(layer.name)
            texts.append(
                Evidence(
                    3.5,
                    f"layer {layer.name!r} is initialised to a constant "
                    f"({layer.initializer.name if layer.initializer else '?'}): "
                    "its units start identical and stay identical",
                )
            )
            continue
        if not layer.fan_in or not layer.init_std:
            continue
        # Standard schemes span a range: Glorot (fan-average) to He (2/fan-in) for ReLUs,
        # Glorot to LeCun (1/fan-in) otherwise. Only a scale outside that range counts.
        fan_out = layer.fan_out or layer.fan_in
        low = math.sqrt(2.0 / (layer.fan_in + fan_out))
        relu = fixes.initializer_for(layer.activation) == "he_normal"
        high = math.sqrt((2.0 if relu else 1.0) / layer.fan_in)
        low, high = min(low, high), max(low, high)
        std = layer.init_std
        ideal = high if std > high else low
        ratio = 0.0 if low <= std <= high else math.log10(std / ideal)
        if abs(ratio) >= 0.3:  # 2× off: worth re-initialising along with the worst layers
            culprits.append(layer.name)
            if len(texts) < 3 and abs(ratio) >= 0.5:
                texts.append(
                    Evidence(
                        0,
                        f"layer {layer.name!r}: initial std {layer.init_std:.3g} "
                        f"is {10 ** abs(ratio):.1f}× "
                        f"{'above' if ratio > 0 else 'below'} the {ideal:.3g} "
                        f"that fan-in {layer.fan_in} and "
                        f"{layer.activation or 'linear'} call for",
                    )
                )
        gain += ratio
        if abs(gain) > worst:
            worst, direction = abs(gain), 1 if gain > 0 else -1
        if layer.normalized_after:
            gain = 0.0
    return worst, direction, culprits, texts


def _reinit_fix(ctx: Context, culprits: list[str]) -> Fix:
    if ctx.arch is None or ctx.run.model is None or not culprits:
        return fixes.none(
            "Use He initialization for ReLU layers, Glorot for tanh/sigmoid",
            "run.model is needed to name the layers to re-initialise"
            if ctx.run.model is None
            else "no layer's initialization is off its activation's scale",
        )
    acts = {layer.name: layer.activation for layer in ctx.weighted_layers()}
    return fixes.reinitialize(ctx.run, ctx.layer_names, acts, only=set(culprits))


def unnormalized_inputs(ctx: Context) -> Found:
    ev: list[Evidence] = []
    rng = ctx.input_range
    if ctx.arch is not None and ctx.arch.has_normalization_layer:
        ev.append(Evidence(-3, "the model normalizes its inputs itself (Normalization layer)"))
    elif rng is not None:
        lo, hi = rng
        m = max(abs(lo), abs(hi))
        if m > 10:
            ev.append(
                Evidence(
                    1.5 + 1.5 * min(math.log10(m / 10) + 1, 3),
                    f"inputs reach the first layer in [{lo:g}, {hi:g}]: "
                    f"{m:.0f}× the unit scale that standard initializers assume",
                )
            )
        elif m > 3:
            ev.append(Evidence(0.8, f"inputs span [{lo:g}, {hi:g}], a few times the unit scale"))
        else:
            ev.append(Evidence(-2.5, f"inputs reach the first layer in [{lo:g}, {hi:g}]"))
        offset = _mean_offset(ctx)
        if offset is not None and offset > 5:
            ev.append(Evidence(1.5, f"input mean is {offset:.0f} standard deviations away from 0"))
    c = ctx.curve
    if ev and ev[0].weight > 0:
        if c.has("high_initial_loss"):
            ev.append(
                Evidence(
                    1,
                    "the first epoch's loss is far above chance, as large inputs make large logits",
                )
            )
        if c.has("non_finite_loss") or c.has("stuck_at_chance"):
            ev.append(Evidence(0.5, "training broke down early"))
    elif rng is None and c.has("high_initial_loss") and ctx.arch is None:
        ev.append(
            Evidence(
                0.5,
                "without the data's range, unscaled inputs are one of two "
                "explanations for a high first loss",
            )
        )
    return ev, lambda: fixes.normalize_inputs(ctx.run, rng)


def _mean_offset(ctx: Context) -> float | None:
    if not ctx.stats:
        return None
    ch = ctx.stats["channels"]
    offsets = [
        abs(m) / s for m, s in zip(ch["mean"], ch["std"], strict=True) if m is not None and s
    ]
    if not offsets:
        return None
    # Rescaling multiplies mean and std alike; only its offset could re-centre the inputs.
    return None if ctx.arch and ctx.arch.rescaling_offset else max(offsets)


def noisy_labels(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    if ctx.stats and ctx.stats.get("conflicting_duplicates"):
        n = ctx.stats["conflicting_duplicates"]
        ev.append(
            Evidence(2.5, f"{n} inputs of the sample appear more than once with different labels")
        )
    heavy_reg = _penalty_ratio(ctx) >= 0.1 or _max_dropout(ctx) >= 0.5
    acc, val_acc = c.final_accuracy, c.final_val_accuracy
    if acc is not None and val_acc is not None and val_acc - acc > 0.05:
        ev.append(
            Evidence(
                0.7 if heavy_reg else 2.0,
                f"training accuracy {acc:.2f} stays below validation accuracy "
                f"{val_acc:.2f}: the training labels are harder to fit than the "
                "validation labels",
            )
        )
    if c.val_gap is not None and c.val_gap < -0.05 and not heavy_reg:
        ev.append(
            Evidence(1, "training loss stays above validation loss without strong regularization")
        )
    if (
        c.val_rise is not None
        and c.val_rise > 0.05
        and c.level is not None
        and c.level > HIGH_LEVEL
    ):
        ev.append(
            Evidence(
                1,
                "validation loss turned up while training loss was still high: "
                "the net memorises labels it cannot learn",
            )
        )
    if (c.has("plateau") or c.has("noisy_floor")) and not heavy_reg and ev:
        ev.append(Evidence(0.5, "training loss levels off at a high floor"))
    # The label audit's suspects replace this fix when the report has them (report.py).
    return ev, lambda: fixes.no_label_fix(
        "no data sample to audit: upload one (POST /v1/datasets) with its labels so that "
        "the examples to relabel or drop can be listed"
        if ctx.stats is None
        else "the sample's labels were not audited, so no example can be named"
    )


def _penalty(ctx: Context) -> float:
    """L1/L2 penalty at initialisation, added to the loss Keras reports."""
    total = 0.0
    for layer in ctx.weighted_layers():
        for k in layer.kernels:
            if k.regularizer is None:
                continue
            n = math.prod(k.shape)
            total += k.regularizer.l2 * n * k.init_std**2
            total += k.regularizer.l1 * n * k.init_std * math.sqrt(2 / math.pi)
    return total


def _penalty_ratio(ctx: Context) -> float:
    return _penalty(ctx) / (ctx.chance or math.log(10))


def _max_dropout(ctx: Context) -> float:
    if ctx.run.model is None or ctx.run.model.layers is None:
        return 0.0
    return max(
        (
            layer.rate or 0.0
            for layer in ctx.run.model.layers
            if layer.type in ("dropout", "spatial_dropout2d")
        ),
        default=0.0,
    )


def excessive_regularization(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    penalty, ratio = _penalty(ctx), _penalty_ratio(ctx)
    if ratio >= 1:
        ev.append(
            Evidence(
                1.5 + 1.5 * min(math.log10(ratio) + 1, 3),
                f"the weight penalty is ≈ {penalty:.3g} at initialisation, "
                f"{ratio:.1f}× the chance loss: shrinking weights pays more than "
                "fitting the data",
            )
        )
    elif ratio >= 0.1:
        ev.append(
            Evidence(
                1,
                f"the weight penalty is ≈ {penalty:.3g} at initialisation, "
                f"{ratio:.0%} of the chance loss",
            )
        )
    drop = _max_dropout(ctx)
    if drop >= 0.7:
        ev.append(Evidence(2, f"dropout rate {drop:g} drops most activations in training"))
    if ev:
        if c.val_gap is not None and c.val_gap < -0.05:
            ev.append(
                Evidence(
                    1.5,
                    "training loss stays above validation loss, which carries "
                    "no penalty and no dropout",
                )
            )
        acc, val_acc = c.final_accuracy, c.final_val_accuracy
        if acc is not None and val_acc is not None and val_acc - acc > 0.05:
            ev.append(
                Evidence(
                    1.5,
                    f"training accuracy {acc:.2f} stays below validation "
                    f"accuracy {val_acc:.2f}: the handicap acts in training only",
                )
            )
        if c.has("plateau") or c.has("stuck_at_chance") or c.has("noisy_floor"):
            ev.append(Evidence(0.5, "the training loss levels off high"))
    if c.overfits and _fits_training_data(ctx):
        ev.append(Evidence(-2, "the model overfits, so it is not over-regularized"))
    return ev, lambda: _relax_fix(ctx)


def _relax_fix(ctx: Context) -> Fix:
    summary = "Weaken L1/L2 and dropout"
    if ctx.run.model is None or ctx.run.model.layers is None or ctx.arch is None:
        return fixes.none(summary, "run.model is needed to name the regularized layers")
    fix = fixes.relax_regularization(
        ctx.run, ctx.layer_names, _penalty(ctx), ctx.chance or math.log(10)
    )
    return fix or fixes.none(
        summary,
        f"no layer has an L1/L2 penalty or a dropout rate above {fixes.MAX_DROPOUT:g} to weaken",
    )


def insufficient_capacity(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c, arch, C = ctx.curve, ctx.arch, ctx.num_classes
    if arch is not None:
        narrow = arch.narrowest
        if narrow is not None and C and narrow.width < C:
            ev.append(
                Evidence(
                    2.5,
                    f"layer {narrow.name!r} carries only {narrow.width} "
                    f"channels/units, fewer than the {C} classes",
                )
            )
        elif narrow is not None and narrow.width <= 2:
            ev.append(
                Evidence(2, f"layer {narrow.name!r} carries only {narrow.width} channels/units")
            )
        if C and arch.total_params < 100 * C:
            ev.append(
                Evidence(1.5, f"the model has {arch.total_params} parameters for {C} classes")
            )
    if ev:
        quiet = c.tail_noise is not None and c.tail_noise < 0.03
        close = c.val_gap is None or abs(c.val_gap) < 0.1
        if (c.has("plateau") or c.has("slow_decrease")) and quiet and close:
            ev.append(
                Evidence(
                    1,
                    "training loss levels off high, smoothly, with validation "
                    "loss alongside: underfitting",
                )
            )
    if c.overfits and _fits_training_data(ctx):
        ev.append(Evidence(-2, "the model overfits, so it has capacity to spare"))
    return ev, lambda: _widen_fix(ctx)


def _widen_fix(ctx: Context) -> Fix:
    summary = "Widen the narrow hidden layers"
    if ctx.run.model is None or ctx.run.model.layers is None or ctx.arch is None:
        return fixes.none(summary, "run.model is needed to name the narrow layers")
    conv, dense = fixes.capacity_floors(ctx.arch.input_shape, ctx.num_classes)
    hidden = ctx.weighted_layers()[:-1]  # the last weighted layer is the output head
    linear = frozenset(layer.name for layer in hidden if (layer.activation or "linear") == "linear")
    # Only an all-linear stack lacks depth: one linear layer among ReLUs may be on purpose.
    activate = linear if len(linear) == len(hidden) else frozenset()
    # One hidden weighted layer feeding a dense output: too shallow, whatever its width.
    out = ctx.run.model.layers[-1]
    deepen = len(hidden) <= 1 and out.type == "dense" and fixes.can_insert(ctx.run)
    return fixes.widen(ctx.run, ctx.layer_names, conv, dense, activate, deepen) or fixes.none(
        summary, f"no hidden layer has fewer than {conv} filters or {dense} units"
    )


def _fits_training_data(ctx: Context) -> bool:
    """The training loss got low: what goes wrong happens on held-out data."""
    return ctx.curve.level is not None and ctx.curve.level < HIGH_LEVEL


def overfitting(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    if c.overfits:
        rise = f"{c.val_rise * ctx.chance:.3g} " if ctx.chance and c.val_rise else ""
        # Overfitting needs a model that fits its training data; with the training loss still
        # high, the causes of that come first.
        ev.append(
            Evidence(
                3 if _fits_training_data(ctx) else 1,
                f"validation loss rose {rise}from its best (epoch "
                f"{c.val_min_epoch}) while training loss kept falling",
            )
        )
    elif c.val_gap is not None and c.val_gap > 0.3 and ctx.chance:
        ev.append(Evidence(1.5, "validation loss stays far above training loss"))
    if ev:
        if c.level is not None and c.level < HIGH_LEVEL:
            ev.append(Evidence(0.5, "the training loss itself is low"))
        prep = ctx.run.preprocessing
        # Only a run that describes its pipeline can be said to lack augmentation.
        if (
            prep is not None
            and prep.augmentation is None
            and ctx.arch is not None
            and not ctx.arch.augmentation_layers
        ):
            ev.append(Evidence(0.5, "the run uses no data augmentation"))
        if ctx.arch and ctx.num_examples and ctx.arch.total_params > 100 * ctx.num_examples:
            ev.append(
                Evidence(
                    0.5,
                    f"{ctx.arch.total_params} parameters for {ctx.num_examples} training examples",
                )
            )
    best = c.val_min_epoch
    if best is not None and best < c.epochs:
        return ev, lambda: fixes.stop_early(ctx.run, best)
    return ev, lambda: fixes.augmentation(ctx.run)


def batch_size_too_small(ctx: Context) -> Found:
    ev: list[Evidence] = []
    b = ctx.run.batch_size
    if b is None:
        return ev, lambda: fixes.batch_size(ctx.run, 32, "less gradient noise")
    has_bn = bool(
        ctx.arch and any(layer.type == "batch_normalization" for layer in ctx.arch.layers)
    )
    if b <= 2:
        ev.append(Evidence(3, f"batch size {b}: every step follows one or two examples"))
    elif b <= 4:
        ev.append(Evidence(2, f"batch size {b} gives very noisy gradients"))
    elif b <= 8:
        ev.append(Evidence(0.5, f"batch size {b} is small"))
    if ev and has_bn and b <= 4:
        ev.append(Evidence(1.5, f"BatchNormalization estimates its statistics from {b} examples"))
    if ev and (ctx.curve.has("oscillation") or ctx.curve.has("noisy_floor")):
        ev.append(Evidence(1, "the loss is noisy from epoch to epoch"))
    if b >= 16:
        ev.append(Evidence(-2, f"batch size {b} is not small"))
    return ev, lambda: fixes.batch_size(ctx.run, 32, "averages out gradient noise")


def batch_size_too_large(ctx: Context) -> Found:
    ev: list[Evidence] = []
    b, n = ctx.run.batch_size, ctx.num_examples
    if b is None or n is None:
        return ev, lambda: fixes.batch_size(ctx.run, 32, "more updates per epoch")
    steps = math.ceil(n / b)
    updates = steps * ctx.curve.epochs
    if b >= n:
        ev.append(
            Evidence(2.5, f"batch size {b} ≥ the {n} training examples: one update per epoch")
        )
    elif steps <= 4:
        ev.append(Evidence(1.5, f"only {steps} updates per epoch ({n} examples / batch {b})"))
    if ev and updates < 300:
        ev.append(Evidence(1, f"{updates} updates in the whole run"))
    if ev and (
        ctx.curve.has("slow_decrease")
        or ctx.curve.has("plateau")
        or ctx.curve.has("stuck_at_chance")
    ):
        ev.append(Evidence(1, "the loss falls slowly per epoch"))
    new = 32 if n >= 320 else max(1, n // 10)
    return ev, lambda: fixes.batch_size(ctx.run, new, f"{math.ceil(n / new)} updates per epoch")


def kernel_size_mismatch(ctx: Context) -> Found:
    ev: list[Evidence] = []
    if ctx.arch is None:
        return ev, lambda: fixes.none(
            "Use 3×3 kernels with stride 1 in the first layers",
            "run.model is needed to name the layers",
        )
    convs = [layer for layer in ctx.arch.layers if layer.spatial_in and layer.kernels]
    for i, layer in enumerate(convs):
        k = layer.kernels[0].shape[:2]
        h, w = layer.spatial_in or (1, 1)
        out_h, out_w = layer.spatial_out or (0, 0)
        cover = max(k[0] / h, k[1] / w)
        # 3×3 is the smallest kernel that sees a neighbourhood: never "too large" unless it
        # exceeds its input. Larger ones waste the input when they cover most of it.
        if layer.kernel_exceeds_input:
            ev.append(
                Evidence(
                    3,
                    f"layer {layer.name!r}: kernel {k[0]}×{k[1]} is larger than its {h}×{w} input",
                )
            )
        elif max(k) >= 5 and cover > 0.5:
            ev.append(
                Evidence(
                    3 + 4 * (cover - 0.5) if i == 0 else 2,
                    f"layer {layer.name!r}: kernel {k[0]}×{k[1]} covers {cover:.0%} "
                    f"of its {h}×{w} input, leaving {out_h}×{out_w} positions",
                )
            )
        elif max(k) >= 5 and cover > 0.3 and i == 0:
            ev.append(
                Evidence(1.5, f"first kernel {k[0]}×{k[1]} covers {cover:.0%} of the {h}×{w} input")
            )
        stride = _stride(ctx, layer.name)
        if stride > max(k):
            skipped = 1 - (k[0] * k[1]) / stride**2
            ev.append(
                Evidence(
                    2 + 2 * skipped,
                    f"layer {layer.name!r}: stride {stride} is larger than its "
                    f"{k[0]}×{k[1]} kernel, so {skipped:.0%} of the pixels are "
                    "never seen",
                )
            )
        if len(ev) >= 3:
            break
    return ev, lambda: _kernel_fix(ctx)


def _stride(ctx: Context, name: str) -> int:
    layers = ctx.run.model.layers if ctx.run.model and ctx.run.model.layers else []
    for layer, lname in zip(layers, ctx.layer_names, strict=False):
        if lname == name and layer.type in ("conv2d", "separable_conv2d", "depthwise_conv2d"):
            s = layer.strides or 1
            return max(s) if isinstance(s, tuple) else s
    return 1


def _kernel_fix(ctx: Context) -> Fix:
    assert ctx.arch is not None
    convs = {layer.name for layer in ctx.arch.layers if layer.spatial_in and layer.kernels}

    if ctx.run.model is None or ctx.run.model.layers is None:
        return fixes.none("Use 3×3 kernels with stride 1", "run.model is needed")
    edits: fixes.Edits = {}
    for layer, name in zip(ctx.run.model.layers, ctx.layer_names, strict=True):
        if name not in convs:
            continue
        k = (
            layer.kernel_size
            if isinstance(layer.kernel_size, int)
            else max(layer.kernel_size or (1,))
        )
        s = layer.strides if isinstance(layer.strides, int) else max(layer.strides or (1,))
        out: dict[str, object] = {}
        if k > 5:
            out["kernel_size"] = (3, 3)
            if layer.padding == "valid":
                # A 3×3 kernel pads one pixel: the layer then keeps its input's size and edges.
                out["padding"] = "same"
        if s > min(k, 3):
            out["strides"] = (1, 1)
        edits[name] = out
    return fixes.model_fix(
        ctx.run,
        ctx.layer_names,
        edits,
        "Use 3×3 kernels with stride 1 where kernels are large for their input",
    )


def output_loss_mismatch(ctx: Context) -> Found:
    ev: list[Evidence] = []
    loss = ctx.run.loss
    arch, C = ctx.arch, ctx.num_classes
    if loss is None or arch is None:
        return ev, lambda: fixes.none(
            "Use a softmax output with from_logits=False", "run.model and run.loss are needed"
        )
    act, units, name = arch.output_activation, arch.output_units, loss.name
    categorical = "categorical_crossentropy" in name
    if categorical and loss.from_logits and act == "softmax":
        ev.append(
            # Keras 3 on TensorFlow spots a softmax output and takes its logits back, so there
            # the run trains as if matched; other backends apply softmax twice.
            Evidence(
                1.5,
                "the output applies softmax and the loss has from_logits=True: softmax twice "
                "(Keras 3 on TensorFlow undoes it, other backends do not)",
            )
        )
    elif categorical and not loss.from_logits and act in ("linear", "relu", "elu", "selu", "tanh"):
        ev.append(
            Evidence(
                4.5,
                f"the output activation is {act} but the loss expects "
                "probabilities (from_logits=False)",
            )
        )
    elif categorical and act == "sigmoid" and units > 2:
        ev.append(
            # Keras renormalises probabilities that do not sum to 1, which blunts this one.
            Evidence(
                1.5, f"sigmoid outputs over {units} classes do not sum to 1, as {name} assumes"
            )
        )
    if "binary_crossentropy" in name and units > 2:
        ev.append(Evidence(3, f"binary_crossentropy on {units} mutually exclusive classes"))
    if name in ("mean_squared_error", "mse", "mean_absolute_error", "mae") and units > 1:
        ev.append(Evidence(2, f"{name} on class outputs learns slowly; cross-entropy fits"))
    if C and units > 1 and units != C:
        ev.append(
            Evidence(4 if units < C else 1.5, f"the output has {units} units for {C} classes")
        )
    if not ev:
        return ev, lambda: fixes.none("Output and loss match", "nothing to change")
    return ev, lambda: _output_fix(ctx)


def _output_fix(ctx: Context) -> Fix:
    assert ctx.run.loss is not None
    loss = ctx.run.loss.name
    if "categorical" not in loss:
        loss = "sparse_categorical_crossentropy"
    C = ctx.num_classes
    summary = f"End with a {C or ''}-unit softmax and use {loss} with from_logits=False"
    summary = summary.replace("  ", " ")
    if ctx.run.model is None or ctx.run.model.layers is None:
        return fixes.none(summary, "run.model is needed to name the output layer")
    layer, name = ctx.run.model.layers[-1], ctx.layer_names[-1]
    out: dict[str, object] = {}
    if layer.type == "dense":
        if layer.activation != "softmax":
            out["activation"] = "softmax"
        if C and layer.units != C:
            out["units"] = C
    elif layer.type == "activation" and layer.activation != "softmax":
        out["activation"] = "softmax"
    fix = fixes.model_fix(ctx.run, ctx.layer_names, {name: out}, summary)
    return fixes.with_loss(fix, ctx.run, loss, from_logits=False)


Detector = Callable[[Context], "Found"]
DETECTORS: dict[CauseId, Detector] = {
    "learning_rate_too_high": learning_rate_too_high,
    "learning_rate_too_low": learning_rate_too_low,
    "missing_lr_decay": missing_lr_decay,
    "poor_weight_initialization": poor_weight_initialization,
    "unnormalized_inputs": unnormalized_inputs,
    "noisy_labels": noisy_labels,
    "excessive_regularization": excessive_regularization,
    "insufficient_capacity": insufficient_capacity,
    "overfitting": overfitting,
    "batch_size_too_small": batch_size_too_small,
    "batch_size_too_large": batch_size_too_large,
    "kernel_size_mismatch": kernel_size_mismatch,
    "output_loss_mismatch": output_loss_mismatch,
}


def rank(ctx: Context, floor: float = 0.15) -> list[Cause]:
    """Every cause with confidence ≥ floor, most likely first."""
    causes = []
    for cause_id, detect in DETECTORS.items():
        ev, make_fix = detect(ctx)
        if cause_id in _TRAIN_LOSS_CAUSES and ctx.health > 0 and any(e.weight > 0 for e in ev):
            ev.append(
                Evidence(
                    -4 * ctx.health,
                    f"yet the training loss reached "
                    f"{ctx.curve.final_loss:.3g}, and nothing "
                    "alarming shows in the curve",
                )
            )
        score = PRIOR + sum(e.weight for e in ev)
        confidence = round(sigmoid(score), 3)
        if confidence >= floor:
            shown = [e.text for e in sorted(ev, key=lambda e: -e.weight) if e.weight >= 0][:5]
            against = [f"against: {e.text}" for e in ev if e.weight < 0][:2]
            causes.append(
                Cause(id=cause_id, confidence=confidence, evidence=shown + against, fix=make_fix())
            )
    return sorted(causes, key=lambda c: -c.confidence)
