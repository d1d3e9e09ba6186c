"""One detector per cause: evidence from the curve, the spec and the data, and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from service.analysis import fixes
from service.analysis.architecture import CONVS, Architecture, LayerInfo
from service.analysis.curves import HIGH_LEVEL
from service.analysis.evidence import REGRESSION_LOSSES, Context, Evidence, sigmoid
from service.analysis.optimizers import display
from service.schemas.report import Cause, CauseId, Fix, LabelAudit

# Every cause starts unlikely (≈8%); only evidence makes it credible.
PRIOR = -2.5
# Per unit of health (0…1): a run that trains well refutes the causes of a high training loss.
HEALTHY_RUN = -4.0
# Causes that keep the *training* loss high: a run that trains well refutes them.
_TRAIN_LOSS_CAUSES = set(get_args(CauseId)) - {"overfitting", "output_loss_mismatch"}
_ADAPTIVE = {"adam", "adamw", "nadam", "adamax", "rmsprop", "lamb", "lion", "adafactor"}


# Evidence, and the fix — built only for the causes that make it into the report.
Found = tuple[list[Evidence], Callable[[], Fix]]


def _decades(x: float) -> str:
    return f"{10**x:.0f}×" if x < 3 else f"10^{x:.1f}×"


# ---- learning_rate_too_high ---------------------------------------------------------------
HIGH_LR_ABOVE = 1.5  # the rate is above the optimizer's usual ceiling ...
HIGH_LR_PER_DECADE = 2.0  # ... and each decade above it (up to 2) makes it likelier
HIGH_LR_BELOW_RANGE = -2.0  # the rate is below the usual range: steps too small to blow up
HIGH_LR_COMMON = -1.0  # the rate sits well inside the usual range
HIGH_LR_NON_FINITE = 2.0  # the loss overflowed: the classic sign of oversized steps
HIGH_LR_EXPLOSION = 1.5  # the loss grew tenfold
HIGH_LR_ROSE_AGAIN = 1.5  # the loss climbed back up after its minimum
HIGH_LR_OSCILLATION = 1.0  # the loss bounces from epoch to epoch
HIGH_LR_EARLY_RISES = 0.5  # the loss rose in several of the first epochs
HIGH_LR_YET_LEARNED = -1.0  # a rate above the usual still brought the loss well down
HIGH_LR_DEAD_AT_CHANCE = 1.5  # stuck at chance with a large adaptive step: dead ReLUs
HIGH_LR_AT_CHANCE_UNKNOWN = 1.0  # stuck at chance, optimizer unknown


def learning_rate_too_high(ctx: Context) -> Found:
    ev: list[Evidence] = []
    r, c = ctx.lr, ctx.curve
    if r is not None:
        up = r.decades_above
        if up > 0:
            ev.append(
                Evidence(
                    HIGH_LR_ABOVE + HIGH_LR_PER_DECADE * min(up, 2),
                    f"{r.describe()} is {_decades(up)} above "
                    f"the usual ceiling {r.band.high:g} for {display(r.optimizer)}",
                )
            )
        elif r.decades_below > 0:
            ev.append(
                Evidence(
                    HIGH_LR_BELOW_RANGE,
                    f"{r.describe()} is below {display(r.optimizer)}'s usual range",
                )
            )
        elif up < -1:
            ev.append(
                Evidence(
                    HIGH_LR_COMMON, f"{r.describe()} is a common choice for {display(r.optimizer)}"
                )
            )
    if c.has("non_finite_loss"):
        ev.append(
            Evidence(HIGH_LR_NON_FINITE, f"the loss became non-finite at epoch {c.non_finite_at}")
        )
    if c.has("explosion"):
        ev.append(Evidence(HIGH_LR_EXPLOSION, "the loss grew by more than 10×"))
    if c.has("divergence") or c.has("late_collapse"):
        ev.append(Evidence(HIGH_LR_ROSE_AGAIN, "the loss rose again after reaching its minimum"))
    if c.has("oscillation"):
        ev.append(Evidence(HIGH_LR_OSCILLATION, "the loss oscillates from epoch to epoch"))
    if c.early_rises >= 2:
        ev.append(
            Evidence(HIGH_LR_EARLY_RISES, f"the loss rose in {c.early_rises} of the first 4 epochs")
        )
    if r is not None and r.decades_above > 0 and _learned(ctx):
        ev.append(
            Evidence(
                HIGH_LR_YET_LEARNED,
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
                HIGH_LR_DEAD_AT_CHANCE if r else HIGH_LR_AT_CHANCE_UNKNOWN,
                "the loss sits at chance, as when large steps kill the ReLUs",
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


# ---- learning_rate_too_low ----------------------------------------------------------------
LOW_LR_BELOW = 1.5  # the rate is below the optimizer's usual floor ...
LOW_LR_PER_DECADE = 2.0  # ... and each decade below it (up to 2) makes it likelier
LOW_LR_ABOVE_RANGE = -2.5  # the rate is above the usual range: not too small
LOW_LR_COMMON = -1.0  # the rate sits well inside the usual range
LOW_LR_NEAR_FLOOR = 1.0  # the rate sits at the usual floor (less as it rises toward a decade above)
LOW_LR_SLOW = 1.5  # the loss falls steadily, too slowly to get anywhere in this run
LOW_LR_LINEAR = 1.5  # ... along a straight line from chance, with no sign of levelling off
LOW_LR_UNMOVED = 0.5  # the loss barely left its starting point
LOW_LR_BLEW_UP = -2.5  # the loss blew up, which small steps cannot do
# The run's schedule took the rate more than a decade below the optimizer's usual floor in the
# first half of the run, and the loss made no progress after that: the steps vanished.
LOW_LR_SCHEDULE_VANISHED = 3.5


def learning_rate_too_low(ctx: Context) -> Found:
    ev: list[Evidence] = []
    r, c = ctx.lr, ctx.curve
    if r is not None:
        down = r.decades_below
        if down > 0:
            ev.append(
                Evidence(
                    LOW_LR_BELOW + LOW_LR_PER_DECADE * min(down, 2),
                    f"{r.describe()} is {_decades(down)} below "
                    f"the usual floor {r.band.low:g} for {display(r.optimizer)}",
                )
            )
        elif r.decades_above > 0:
            ev.append(
                Evidence(
                    LOW_LR_ABOVE_RANGE,
                    f"{r.describe()} is above {display(r.optimizer)}'s usual range",
                )
            )
        elif down < -1:
            ev.append(
                Evidence(
                    LOW_LR_COMMON, f"{r.describe()} is a common choice for {display(r.optimizer)}"
                )
            )
        elif down > -1:
            # Inside the range but within a decade of its floor: say how far.
            ev.append(
                Evidence(
                    LOW_LR_NEAR_FLOOR * (1 + down),
                    f"{r.describe()} is {_decades(-down)} above the usual floor "
                    f"{r.band.low:g} for {display(r.optimizer)} (typical {r.band.typical:g})",
                )
            )
    if c.linear_descent:
        ev.append(
            Evidence(
                LOW_LR_LINEAR,
                "the loss falls in a straight line from near chance with no sign of levelling "
                "off: every step moves the weights the same small way",
            )
        )
    if c.has("slow_decrease"):
        ev.append(Evidence(LOW_LR_SLOW, "the loss decreases steadily but slowly"))
    if c.has("stuck_at_chance") and c.total_drop is not None and 0 <= c.total_drop < 0.05:
        ev.append(Evidence(LOW_LR_UNMOVED, "the loss barely moved from where it started"))
    if any(c.has(s) for s in ("non_finite_loss", "explosion", "divergence")):
        ev.append(Evidence(LOW_LR_BLEW_UP, "the loss blew up, which a too-small step cannot do"))
    gone = _rate_vanished(ctx)
    if gone is not None and r is not None:
        epoch, rate = gone
        ev.append(
            Evidence(
                LOW_LR_SCHEDULE_VANISHED,
                f"the learning-rate schedule takes {display(r.optimizer)}'s rate to {rate:.2g} "
                f"by epoch {epoch} of {c.epochs}, over a decade below the usual floor "
                f"{r.band.low:g}, and the loss made no progress after that",
            )
        )
    return ev, lambda: _lr_fix(ctx, "Raise the learning rate 10×, or run an LR range test")


def _rate_vanished(ctx: Context) -> tuple[int, float] | None:
    """(epoch, rate) at which the run's Keras schedule has taken the rate a decade below the
    optimizer's usual floor, when that happens in the first half of the run and the loss,
    still high, stopped improving; None otherwise (or when the steps per epoch are unknown)."""
    r, c, run = ctx.lr, ctx.curve, ctx.run
    schedule = run.optimizer.schedule if run.optimizer else None
    keras = schedule.keras if schedule is not None else None
    examples = run.data.num_examples if run.data else None
    if r is None or keras is None or not examples or c.epochs < 2:
        return None
    if (_learned(ctx) and _fits_training_data(ctx)) or c.late_gain is None:
        return None
    if c.late_gain >= STALLED_GAIN:
        return None
    per_epoch = math.ceil(examples / (run.batch_size or 32))  # Keras fit()'s default batch
    for epoch in range(1, c.epochs // 2 + 1):
        rate = keras.lr(epoch * per_epoch)
        if rate < r.band.low / 10:
            return epoch, rate
    return None


def _learned(ctx: Context) -> bool:
    """The loss fell by a real part of chance (or of where it started) with nothing severe."""
    c = ctx.curve
    if ctx.severe or c.total_drop is None:
        return False
    first, final = c.first_loss, c.final_loss
    halved = first is not None and final is not None and 0 < final < 0.5 * first
    return c.total_drop > 0.3 or halved


# After validation's best epoch an overfitting model goes on fitting its training set: the
# training loss loses at least this share of its value. Less, and the validation rise is the
# weights moving (a large step, noise), not memorisation.
MEMORISED = 0.5


def wandering(ctx: Context) -> bool:
    """Validation rose from its best while the training loss hardly fell."""
    fall = ctx.curve.train_fall_after_val_best
    return ctx.curve.overfits and fall is not None and fall < MEMORISED


# ---- missing_lr_decay ---------------------------------------------------------------------
DECAY_ALREADY = -3.0  # the rate already decays: decay cannot be what is missing
DECAY_CONSTANT = 0.3  # the rate stays constant (a precondition, weak on its own)
DECAY_NOISY_FLOOR = 2.0  # the loss levelled off with noise: the step is too big to settle
DECAY_OSCILLATES = 0.8  # the loss oscillates around its floor
DECAY_FELL_THEN_FLAT = 0.7  # the loss fell, then flattened out
DECAY_AT_CHANCE = -2.0  # never left chance: decay helps only after learning
DECAY_STILL_FALLING = -1.5  # the loss is still falling: decay would slow it
DECAY_BLEW_UP = -1.0  # the run blew up, which a schedule only postpones
DECAY_SMALL_RATE = -1.0  # the rate is already small for the optimizer
DECAY_LARGE_RATE_LEARNED = 1.5  # a large rate that learned must shrink to settle lower
# Validation rose from its best while training stood still, at a large step: the weights
# wander around the minimum (the same observation overfitting reads when training fell).
DECAY_VAL_WANDERS = 3.0
# The second half of the run bettered the first half's best training loss by less than this
# share: at a large constant step the loss stopped improving.
STALLED_GAIN = 0.1
DECAY_STALLED_LARGE = 2.0


def missing_lr_decay(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c, run = ctx.curve, ctx.run
    schedule = run.lr_schedule or (run.optimizer.schedule if run.optimizer else None)
    lrs = [v for v in ctx.lr_history if math.isfinite(v) and v > 0]
    decays = (schedule is not None and schedule.name != "constant") or (
        len(lrs) > 1 and max(lrs) > 1.01 * min(lrs)
    )
    if decays:
        ev.append(Evidence(DECAY_ALREADY, "the learning rate already decays during the run"))
    elif schedule is not None or lrs:
        ev.append(Evidence(DECAY_CONSTANT, "the learning rate stays constant for the whole run"))
    if c.has("noisy_floor"):
        ev.append(
            Evidence(
                DECAY_NOISY_FLOOR,
                "the loss levelled off with epoch-to-epoch noise: the step is too "
                "large to settle lower",
            )
        )
    if c.has("oscillation") and not c.has("divergence"):
        ev.append(Evidence(DECAY_OSCILLATES, "the loss oscillates around its floor"))
    if c.has("plateau") and c.total_drop is not None and c.total_drop > 0.3:
        ev.append(Evidence(DECAY_FELL_THEN_FLAT, "the loss fell and then flattened out"))
    if c.has("stuck_at_chance"):
        ev.append(
            Evidence(
                DECAY_AT_CHANCE, "the model never left chance; decay helps only after learning"
            )
        )
    if c.has("slow_decrease") or c.linear_descent:
        ev.append(
            Evidence(DECAY_STILL_FALLING, "the loss is still falling; decay would slow it further")
        )
    if c.has("non_finite_loss") or c.has("explosion"):
        ev.append(Evidence(DECAY_BLEW_UP, "the run blew up, which a schedule only postpones"))
    r = ctx.lr
    if r is not None and r.effective < r.band.typical / 3:
        ev.append(
            Evidence(
                DECAY_SMALL_RATE, f"{r.describe()} is already small for {display(r.optimizer)}"
            )
        )
    if r is not None and not decays and _learned(ctx) and r.effective >= 3 * r.band.typical:
        ev.append(
            Evidence(
                DECAY_LARGE_RATE_LEARNED,
                f"{r.describe()} is large for {display(r.optimizer)}, and the "
                "loss fell: a step this size needs to shrink to settle lower",
            )
        )
    large = r is not None and r.effective >= 3 * r.band.typical
    if r is not None and large and not decays and _learned(ctx) and wandering(ctx):
        ev.append(
            Evidence(
                DECAY_VAL_WANDERS,
                f"validation loss rose from its best (epoch {c.val_min_epoch}) while the "
                f"training loss hardly fell: at {r.describe()} the weights keep moving "
                "instead of settling",
            )
        )
    # Stalled low, not high: a rate too large for the optimizer stalls far above the minimum
    # (learning_rate_too_high); a large rate without decay gets close, then cannot settle.
    gain = c.late_gain
    low = _learned(ctx) and _fits_training_data(ctx)
    stalled = gain is not None and gain < STALLED_GAIN
    if r is not None and large and not decays and low and stalled:
        ev.append(
            Evidence(
                DECAY_STALLED_LARGE,
                f"the training loss got low, then the second half of the run lowered its "
                f"best by only {max(gain or 0.0, 0.0):.0%}: at {r.describe()} it stopped "
                "improving",
            )
        )
    lr = r.learning_rate if r else 1e-3
    return ev, lambda: fixes.cosine_decay(run, lr, run.epochs or ctx.curve.epochs)


# ---- poor_weight_initialization -----------------------------------------------------------
INIT_CONSTANT = 3.5  # a layer starts constant: its units stay identical (symmetry never breaks)
INIT_GAIN_BASE = 1.0  # the signal scale drifts ≥ 10× through the layers ...
INIT_GAIN_PER_DECADE = 1.5  # ... and each decade of drift (up to 3) makes it likelier
INIT_GAIN_SOME = 0.5  # the signal scale drifts 3–10×
INIT_NORMALIZED = -1.5  # a normalization layer follows each badly scaled layer and undoes it
INIT_HIGH_FIRST_LOSS_GROWS = 1.5  # a first loss far above chance, with a growing signal
INIT_HIGH_FIRST_LOSS = 0.7  # a first loss far above chance, whatever the signal does
INIT_VANISHED_AT_CHANCE = 1.5  # stuck at chance with a vanishing (or constant) signal
INIT_SATURATED_AT_CHANCE = 0.7  # stuck at chance with a growing signal (saturation)
INIT_NON_FINITE = 0.5  # the loss overflowed with a growing signal
INIT_UNSEEN_MODEL = 0.5  # no model: one of two explanations for a high first loss


@dataclass(frozen=True)
class _InitScan:
    """What the kernels' initial scales say, layer by layer."""

    worst: float  # largest |log10| drift of the signal scale between normalizations
    direction: int  # +1 grows, -1 shrinks
    culprits: list[str]  # layers worth re-initialising
    constant: bool  # some layer starts from a constant
    evidence: list[Evidence]


def poor_weight_initialization(ctx: Context) -> Found:
    c = ctx.curve
    scan = _init_gain(ctx)
    ev = list(scan.evidence)
    worst, direction, culprits = scan.worst, scan.direction, scan.culprits
    if worst >= 1:
        ev.append(
            Evidence(
                INIT_GAIN_BASE + INIT_GAIN_PER_DECADE * min(worst, 3),
                f"initial signal scale {'grows' if direction > 0 else 'shrinks'} by "
                f"about {_decades(worst)} through the layers before any normalization",
            )
        )
    elif worst >= 0.5:
        ev.append(Evidence(INIT_GAIN_SOME, f"initial signal scale is off by {_decades(worst)}"))
    if culprits and all(ctx.arch.layer(n).normalized_after for n in culprits):  # type: ignore[union-attr]
        ev.append(
            Evidence(INIT_NORMALIZED, "a normalization layer follows each badly scaled layer")
        )
    exploding = direction > 0 and worst >= 1
    if c.has("high_initial_loss"):
        ev.append(
            Evidence(
                INIT_HIGH_FIRST_LOSS_GROWS if exploding else INIT_HIGH_FIRST_LOSS,
                "the first epoch's loss is far above chance: the initial logits are too large",
            )
        )
    if c.has("stuck_at_chance") and (direction < 0 or scan.constant):
        ev.append(
            Evidence(
                INIT_VANISHED_AT_CHANCE, "the loss sits at chance, as when the signal vanishes"
            )
        )
    elif c.has("stuck_at_chance") and exploding:
        ev.append(
            Evidence(
                INIT_SATURATED_AT_CHANCE, "the loss sits at chance, as when activations saturate"
            )
        )
    if c.has("non_finite_loss") and exploding:
        ev.append(Evidence(INIT_NON_FINITE, "the loss became non-finite"))
    if ctx.arch is None and c.has("high_initial_loss"):
        ev.append(
            Evidence(
                INIT_UNSEEN_MODEL,
                "without the model, initialization is one of two explanations "
                "for a high first loss",
            )
        )
    return ev, lambda: _reinit_fix(ctx, culprits)


def _init_gain(ctx: Context) -> _InitScan:
    """Worst |log10| signal gain over runs of weighted layers between normalizations."""
    texts: list[Evidence] = []
    culprits: list[str] = []
    constant = False
    worst, direction, gain = 0.0, 0, 0.0
    for layer in ctx.weighted_layers():
        if layer.init_constant:
            constant = True
            culprits.append(layer.name)
            texts.append(
                Evidence(
                    INIT_CONSTANT,
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
                        0,  # a reading, weighed through the accumulated gain below
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
    return _InitScan(worst, direction, culprits, constant, texts)


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


# ---- unnormalized_inputs ------------------------------------------------------------------
SCALE_NORMALIZATION_LAYER = -3.0  # the model normalizes its own inputs
SCALE_LARGE_BASE = 1.5  # inputs reach the first layer above 10× unit scale ...
SCALE_LARGE_PER_DECADE = 1.5  # ... and each decade above that (up to 3) makes it likelier
SCALE_FEW_TIMES = 0.8  # inputs are 3–10× the unit scale
SCALE_UNIT = -2.5  # inputs are at unit scale: nothing to normalize
SCALE_OFF_CENTRE = 1.5  # the input mean sits many standard deviations from 0
SCALE_FEATURE_SPREAD = 1.5  # tabular features on scales decades apart (per-feature spread)
SCALE_HIGH_FIRST_LOSS = 1.0  # large inputs make large logits: a first loss far above chance
SCALE_BROKE_DOWN = 0.5  # training broke down early
SCALE_UNSEEN_RANGE = 0.5  # no range known: one of two explanations for a high first loss


def unnormalized_inputs(ctx: Context) -> Found:
    ev: list[Evidence] = []
    rng = ctx.input_range
    if ctx.arch is not None and ctx.arch.has_normalization_layer:
        ev.append(
            Evidence(
                SCALE_NORMALIZATION_LAYER,
                "the model normalizes its inputs itself (Normalization layer)",
            )
        )
    elif rng is not None and (rms := _unit_rms(ctx)) is not None:
        # Standardized features with a few far outliers: the extremes are not the scale.
        ev.append(
            Evidence(
                SCALE_UNIT,
                f"every feature of the sample has unit scale (root-mean-square ≤ {rms:.2g}); "
                f"only outliers reach [{rng[0]:g}, {rng[1]:g}]",
            )
        )
    elif rng is not None:
        lo, hi = rng
        m = max(abs(lo), abs(hi))
        if m > 10:
            ev.append(
                Evidence(
                    SCALE_LARGE_BASE + SCALE_LARGE_PER_DECADE * min(math.log10(m / 10) + 1, 3),
                    f"inputs reach the first layer in [{lo:g}, {hi:g}]: "
                    f"{m:.0f}× the unit scale that standard initializers assume",
                )
            )
        elif m > 3:
            ev.append(
                Evidence(
                    SCALE_FEW_TIMES, f"inputs span [{lo:g}, {hi:g}], a few times the unit scale"
                )
            )
        else:
            ev.append(Evidence(SCALE_UNIT, f"inputs reach the first layer in [{lo:g}, {hi:g}]"))
        offset = _mean_offset(ctx)
        if offset is not None and offset > 5:
            ev.append(
                Evidence(
                    SCALE_OFF_CENTRE, f"input mean is {offset:.0f} standard deviations away from 0"
                )
            )
        spread = _feature_spread(ctx)
        if spread is not None and m > 3:
            low, high, ratio = spread
            ev.append(
                Evidence(
                    SCALE_FEATURE_SPREAD,
                    f"the features' standard deviations range from {low:.3g} to {high:.3g} "
                    f"({ratio:.0f}×): the widest ones dominate the first layer",
                )
            )
    c = ctx.curve
    if ev and ev[0].weight > 0:
        if c.has("high_initial_loss"):
            ev.append(
                Evidence(
                    SCALE_HIGH_FIRST_LOSS,
                    "the first epoch's loss is far above chance, as large inputs make large logits",
                )
            )
        if c.has("non_finite_loss") or c.has("stuck_at_chance"):
            ev.append(Evidence(SCALE_BROKE_DOWN, "training broke down early"))
    elif rng is None and c.has("high_initial_loss") and ctx.arch is None:
        ev.append(
            Evidence(
                SCALE_UNSEEN_RANGE,
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


# A feature whose root-mean-square value is at most this is at unit scale, whatever its extremes.
_UNIT_RMS = 3.0


def _unit_rms(ctx: Context) -> float | None:
    """The largest per-feature RMS of a tabular sample when all are at unit scale, else None."""
    if not ctx.stats or (ctx.arch is not None and ctx.arch.rescaling_scale is not None):
        return None
    ch = ctx.stats["channels"]
    if len(ch["std"]) < 3:  # images: one to four channels, read by their range
        return None
    rms = [
        math.hypot(m, s)
        for m, s in zip(ch["mean"], ch["std"], strict=True)
        if m is not None and s is not None
    ]
    return max(rms) if rms and max(rms) <= _UNIT_RMS else None


# Features whose standard deviations differ this many times are on different scales.
_FEATURE_SPREAD_RATIO = 100.0


def _feature_spread(ctx: Context) -> tuple[float, float, float] | None:
    """(smallest std, largest std, ratio) over a tabular sample's features, when they differ
    by ≥ 100×; None for images (few channels) or without a sample."""
    if not ctx.stats or (ctx.arch is not None and ctx.arch.rescaling_scale is not None):
        return None
    stds = [s for s in ctx.stats["channels"]["std"] if s]
    if len(stds) < 3:
        return None
    low, high = min(stds), max(stds)
    return (low, high, high / low) if high >= _FEATURE_SPREAD_RATIO * low else None


# ---- noisy_labels -------------------------------------------------------------------------
LABELS_CONFLICTING_DUPLICATES = 2.5  # identical inputs carry different labels in the sample
LABELS_AUDIT = 3.0  # confident learning found many examples whose label disagrees with the data
LABELS_AUDIT_CLEAN = -2.0  # confident learning found (almost) no label issue
LABELS_TRAIN_ACC_BELOW_VAL = 2.0  # training accuracy below validation: training labels are harder
LABELS_TRAIN_ACC_BELOW_VAL_REG = 0.7  # ... the same, with heavy regularization to explain it
LABELS_TRAIN_LOSS_ABOVE_VAL = 1.0  # training loss above validation without a penalty to explain it
LABELS_MEMORISING = 1.0  # validation turned up while training was still high: memorising noise
LABELS_HIGH_FLOOR = 0.5  # training loss levels off at a high floor
LABELS_NO_TRANSFER = 2.0  # training fits beyond the class frequencies, held-out never does
# An audit's estimated noise rate at or above this share of the sample is an alarm. Below it,
# confident learning also counts the judge model's own confusions (shirt vs T-shirt): on clean
# Fashion-MNIST samples a small MLP's audit estimates about 15%.
AUDIT_NOISE_ALARM = 0.25


def label_noise_alarm(audit: LabelAudit) -> bool:
    """The audit's verdict: enough of the sample looks mislabeled to matter."""
    return audit.noise_rate >= AUDIT_NOISE_ALARM


def noisy_labels(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    if ctx.stats and ctx.stats.get("conflicting_duplicates"):
        n = ctx.stats["conflicting_duplicates"]
        ev.append(
            Evidence(
                LABELS_CONFLICTING_DUPLICATES,
                f"{n} inputs of the sample appear more than once with different labels",
            )
        )
    audit = ctx.label_audit
    if audit is not None:
        if label_noise_alarm(audit):
            ev.append(
                Evidence(
                    LABELS_AUDIT,
                    f"a label audit of the sample (cleanlab, {audit.folds}-fold out-of-sample "
                    f"predictions) estimates {audit.noise_rate:.0%} of the labels are wrong; "
                    f"{len(audit.suspects)} suspects listed",
                )
            )
        else:
            ev.append(
                Evidence(
                    LABELS_AUDIT_CLEAN,
                    f"a label audit of the sample estimates only {audit.noise_rate:.0%} "
                    "of the labels are wrong",
                )
            )
    heavy_reg = _penalty_ratio(ctx) >= 0.1 or _max_dropout(ctx) >= 0.5
    if ctx.tiny:  # a few validation examples cannot carry a train/validation comparison
        return ev, lambda: _label_fix(ctx)
    acc, val_acc = c.final_accuracy, c.final_val_accuracy
    if acc is not None and val_acc is not None and val_acc - acc > 0.05:
        ev.append(
            Evidence(
                LABELS_TRAIN_ACC_BELOW_VAL_REG if heavy_reg else LABELS_TRAIN_ACC_BELOW_VAL,
                f"training accuracy {acc:.2f} stays below validation accuracy "
                f"{val_acc:.2f}: the training labels are harder to fit than the "
                "validation labels",
            )
        )
    if c.val_gap is not None and c.val_gap < -0.05 and not heavy_reg:
        ev.append(
            Evidence(
                LABELS_TRAIN_LOSS_ABOVE_VAL,
                "training loss stays above validation loss without strong regularization",
            )
        )
    if (
        c.val_rise is not None
        and c.val_rise > 0.05
        and c.level is not None
        and c.level > HIGH_LEVEL
    ):
        ev.append(
            Evidence(
                LABELS_MEMORISING,
                "validation loss turned up while training loss was still high: "
                "the net memorises labels it cannot learn",
            )
        )
    prior = _prior_loss(ctx)
    if (
        prior is not None
        and c.val_best is not None
        and c.final_loss is not None
        and c.epochs >= 5
        and c.val_best >= 0.97 * prior
        and 0 <= c.final_loss <= 0.95 * prior
    ):
        # Labels that are not a function of the inputs (shuffled apart from them, or mostly
        # flipped) can only be memorised: training creeps below the loss of guessing the class
        # frequencies while held-out examples never get there.
        ev.append(
            Evidence(
                LABELS_NO_TRANSFER,
                f"the training loss fell to {c.final_loss:.3g} but the validation loss never "
                f"got below {c.val_best:.3g}, where guessing the class frequencies scores "
                f"{prior:.3g}: what the model fits in the training labels does not carry over",
            )
        )
    if (c.has("plateau") or c.has("noisy_floor")) and not heavy_reg and ev:
        ev.append(Evidence(LABELS_HIGH_FLOOR, "training loss levels off at a high floor"))
    return ev, lambda: _label_fix(ctx)


def _prior_loss(ctx: Context) -> float | None:
    """Cross-entropy of predicting the class frequencies: ln C when balanced, less when one
    class dominates (from the sample's class counts when there is one)."""
    if ctx.chance is None or ctx.regression:
        return None
    counts = [v for v in (ctx.stats or {}).get("class_counts", {}).values() if v]
    total = sum(counts)
    if len(counts) < 2 or not total:
        return ctx.chance
    return -sum(n / total * math.log(n / total) for n in counts)


def _label_fix(ctx: Context) -> Fix:
    """The label audit's suspects to relabel or drop; without them, precisely why none."""
    audit = ctx.label_audit
    if audit is not None and audit.suspects:
        return fixes.drop_suspect_labels(audit.suspects)
    if audit is not None:
        why = (
            "the label audit of the sample flagged no example: the noise it shows is spread "
            "too thin to name examples (a larger sample may)"
        )
    elif ctx.stats is None:
        why = (
            "no data sample to audit: upload one (POST /v1/datasets) with its labels so that "
            "the examples to relabel or drop can be listed"
        )
    else:
        why = "the sample's labels were not audited (run with probes), so no example is named"
    return fixes.no_label_fix(why)


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


# ---- excessive_regularization -------------------------------------------------------------
REG_PENALTY_BASE = 1.5  # the initial weight penalty is at least the chance loss ...
REG_PENALTY_PER_DECADE = 1.5  # ... and each decade above it (up to 3) makes it likelier
REG_PENALTY_SOME = 1.0  # the initial penalty is 10–100% of the chance loss
REG_DROPOUT = 2.0  # dropout removes most activations in training
REG_TRAIN_LOSS_ABOVE_VAL = 1.5  # training loss above validation, which has no penalty/dropout
REG_TRAIN_ACC_BELOW_VAL = 1.5  # training accuracy below validation: a training-only handicap
REG_HIGH_FLOOR = 0.5  # the training loss levels off high
REG_OVERFITS = -2.0  # the model overfits: it is not held back


def excessive_regularization(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    penalty, ratio = _penalty(ctx), _penalty_ratio(ctx)
    if ratio >= 1:
        ev.append(
            Evidence(
                REG_PENALTY_BASE + REG_PENALTY_PER_DECADE * min(math.log10(ratio) + 1, 3),
                f"the weight penalty is ≈ {penalty:.3g} at initialisation, "
                f"{ratio:.1f}× the chance loss: shrinking weights pays more than "
                "fitting the data",
            )
        )
    elif ratio >= 0.1:
        ev.append(
            Evidence(
                REG_PENALTY_SOME,
                f"the weight penalty is ≈ {penalty:.3g} at initialisation, "
                f"{ratio:.0%} of the chance loss",
            )
        )
    drop = _max_dropout(ctx)
    if drop >= 0.7:
        ev.append(
            Evidence(REG_DROPOUT, f"dropout rate {drop:g} drops most activations in training")
        )
    if ev and not ctx.tiny:
        if c.val_gap is not None and c.val_gap < -0.05:
            ev.append(
                Evidence(
                    REG_TRAIN_LOSS_ABOVE_VAL,
                    "training loss stays above validation loss, which carries "
                    "no penalty and no dropout",
                )
            )
        acc, val_acc = c.final_accuracy, c.final_val_accuracy
        if acc is not None and val_acc is not None and val_acc - acc > 0.05:
            ev.append(
                Evidence(
                    REG_TRAIN_ACC_BELOW_VAL,
                    f"training accuracy {acc:.2f} stays below validation "
                    f"accuracy {val_acc:.2f}: the handicap acts in training only",
                )
            )
        if c.has("plateau") or c.has("stuck_at_chance") or c.has("noisy_floor"):
            ev.append(Evidence(REG_HIGH_FLOOR, "the training loss levels off high"))
    if c.overfits and _fits_training_data(ctx):
        ev.append(Evidence(REG_OVERFITS, "the model overfits, so it is not over-regularized"))
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


# ---- insufficient_capacity ----------------------------------------------------------------
CAPACITY_NARROWER_THAN_CLASSES = 2.5  # a hidden layer has fewer units than there are classes
CAPACITY_BOTTLENECK = 2.0  # a hidden layer carries at most two units
CAPACITY_FEW_PARAMS = 1.5  # fewer than 100 parameters per class (see _few_params)
# ... unless the inputs are so few that this many linear classifiers on them need less: a
# 275-parameter MLP on 13 tabular features is not short of capacity for 3 classes.
LINEAR_MODELS = 4
CAPACITY_UNDERFITS = 1.0  # training loss levels off high, smoothly, with validation alongside
CAPACITY_OVERFITS = -2.0  # the model overfits: it has capacity to spare


def insufficient_capacity(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c, arch, C = ctx.curve, ctx.arch, ctx.num_classes
    if arch is not None:
        narrow = arch.narrowest
        if narrow is not None and C and narrow.width < C:
            ev.append(
                Evidence(
                    CAPACITY_NARROWER_THAN_CLASSES,
                    f"layer {narrow.name!r} carries only {narrow.width} "
                    f"channels/units, fewer than the {C} classes",
                )
            )
        elif narrow is not None and narrow.width <= 2:
            ev.append(
                Evidence(
                    CAPACITY_BOTTLENECK,
                    f"layer {narrow.name!r} carries only {narrow.width} channels/units",
                )
            )
        if C and arch.params_known and arch.total_params < _few_params(arch, C):
            ev.append(
                Evidence(
                    CAPACITY_FEW_PARAMS,
                    f"the model has {arch.total_params} parameters for {C} classes",
                )
            )
    if ev:
        quiet = c.tail_noise is not None and c.tail_noise < 0.03
        close = c.val_gap is None or abs(c.val_gap) < 0.1
        if (c.has("plateau") or c.has("slow_decrease")) and quiet and close:
            ev.append(
                Evidence(
                    CAPACITY_UNDERFITS,
                    "training loss levels off high, smoothly, with validation "
                    "loss alongside: underfitting",
                )
            )
    if c.overfits and _fits_training_data(ctx):
        ev.append(Evidence(CAPACITY_OVERFITS, "the model overfits, so it has capacity to spare"))
    return ev, lambda: _widen_fix(ctx)


def _few_params(arch: Architecture, classes: int) -> int:
    """Parameters below which a model is short of capacity: 100 per class, or LINEAR_MODELS
    linear classifiers on the input when that is fewer (small tabular inputs)."""
    shape = arch.input_shape
    if not shape or any(not d for d in shape):  # sizes left open: no input size to go by
        return 100 * classes
    return min(100 * classes, LINEAR_MODELS * (math.prod(shape) + 1) * classes)


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
    deepen = (
        len(hidden) <= 1
        and out.type == "dense"
        and fixes.can_insert(ctx.run, ctx.layer_names[-1], ctx.layer_names)
    )
    return fixes.widen(ctx.run, ctx.layer_names, conv, dense, activate, deepen) or fixes.none(
        summary, f"no hidden layer has fewer than {conv} filters or {dense} units"
    )


def _fits_training_data(ctx: Context) -> bool:
    """The training loss got low: what goes wrong happens on held-out data."""
    return ctx.curve.level is not None and ctx.curve.level < HIGH_LEVEL


# ---- overfitting --------------------------------------------------------------------------
OVERFIT_VAL_ROSE = 3.0  # validation rose from its best while training fell, on a fitted model
OVERFIT_VAL_ROSE_UNFITTED = 1.0  # ... the same while training is still high (other causes first)
OVERFIT_VAL_FAR_ABOVE = 1.5  # validation stays far above training
OVERFIT_LOW_TRAIN = 0.5  # the training loss itself is low
OVERFIT_NO_AUGMENTATION = 0.5  # a described pipeline without augmentation
OVERFIT_MANY_PARAMS = 0.5  # more than 100 parameters per training example
OVERFIT_NOT_MEMORISING = -1.5  # validation rose, but training stood still meanwhile


def overfitting(ctx: Context) -> Found:
    ev: list[Evidence] = []
    c = ctx.curve
    if c.overfits:
        rise = f"{c.val_rise * ctx.chance:.3g} " if ctx.chance and c.val_rise else ""
        wanders = wandering(ctx)
        # Overfitting needs a model that fits its training data, and goes on fitting it while
        # validation rises; otherwise the causes of the high or stalled loss come first.
        ev.append(
            Evidence(
                OVERFIT_VAL_ROSE
                if _fits_training_data(ctx) and not wanders
                else OVERFIT_VAL_ROSE_UNFITTED,
                f"validation loss rose {rise}from its best (epoch {c.val_min_epoch})"
                + ("" if wanders else " while training loss kept falling"),
            )
        )
        if wanders:
            ev.append(
                Evidence(
                    OVERFIT_NOT_MEMORISING,
                    f"the training loss fell only {c.train_fall_after_val_best:.0%} after that "
                    "epoch: the model did not go on memorising its training set",
                )
            )
    elif c.val_gap is not None and c.val_gap > 0.3 and ctx.chance:
        ev.append(Evidence(OVERFIT_VAL_FAR_ABOVE, "validation loss stays far above training loss"))
    if ev:
        if c.level is not None and c.level < HIGH_LEVEL:
            ev.append(Evidence(OVERFIT_LOW_TRAIN, "the training loss itself is low"))
        prep = ctx.run.preprocessing
        # Only a run that describes its pipeline can be said to lack augmentation.
        if (
            prep is not None
            and prep.augmentation is None
            and ctx.arch is not None
            and not ctx.arch.augmentation_layers
        ):
            ev.append(Evidence(OVERFIT_NO_AUGMENTATION, "the run uses no data augmentation"))
        if ctx.arch and ctx.num_examples and ctx.arch.total_params > 100 * ctx.num_examples:
            ev.append(
                Evidence(
                    OVERFIT_MANY_PARAMS,
                    f"{ctx.arch.total_params} parameters for {ctx.num_examples} training examples",
                )
            )
    best = c.val_min_epoch
    if best is not None and best < c.epochs:
        return ev, lambda: fixes.stop_early(ctx.run, best)
    return ev, lambda: fixes.augmentation(ctx.run)


# ---- batch_size_too_small -----------------------------------------------------------------
SMALL_BATCH_1_2 = 3.0  # one or two examples per step
SMALL_BATCH_3_4 = 2.0  # three or four: very noisy gradients
SMALL_BATCH_5_8 = 0.5  # up to eight: small
SMALL_BATCH_BN = 1.5  # BatchNormalization estimates its statistics from ≤ 4 examples
SMALL_BATCH_NOISY = 1.0  # the loss is noisy from epoch to epoch
SMALL_BATCH_NOT_SMALL = -2.0  # 16 or more examples per step


def batch_size_too_small(ctx: Context) -> Found:
    ev: list[Evidence] = []
    b = ctx.run.batch_size
    if b is None:
        return ev, lambda: fixes.batch_size(ctx.run, 32, "less gradient noise")
    has_bn = bool(
        ctx.arch and any(layer.type == "batch_normalization" for layer in ctx.arch.layers)
    )
    if b <= 2:
        ev.append(
            Evidence(SMALL_BATCH_1_2, f"batch size {b}: every step follows one or two examples")
        )
    elif b <= 4:
        ev.append(Evidence(SMALL_BATCH_3_4, f"batch size {b} gives very noisy gradients"))
    elif b <= 8:
        ev.append(Evidence(SMALL_BATCH_5_8, f"batch size {b} is small"))
    if ev and has_bn and b <= 4:
        ev.append(
            Evidence(
                SMALL_BATCH_BN, f"BatchNormalization estimates its statistics from {b} examples"
            )
        )
    if ev and (ctx.curve.has("oscillation") or ctx.curve.has("noisy_floor")):
        ev.append(Evidence(SMALL_BATCH_NOISY, "the loss is noisy from epoch to epoch"))
    if b >= 16:
        ev.append(Evidence(SMALL_BATCH_NOT_SMALL, f"batch size {b} is not small"))
    return ev, lambda: fixes.batch_size(ctx.run, 32, "averages out gradient noise")


# ---- batch_size_too_large -----------------------------------------------------------------
LARGE_BATCH_FULL = 2.5  # the batch holds the whole training set: one update per epoch
LARGE_BATCH_FEW_STEPS = 1.5  # at most four updates per epoch
LARGE_BATCH_FEW_UPDATES = 1.0  # fewer than 300 updates in the whole run
LARGE_BATCH_SLOW = 1.0  # the loss falls slowly per epoch


def batch_size_too_large(ctx: Context) -> Found:
    ev: list[Evidence] = []
    b, n = ctx.run.batch_size, ctx.num_examples
    if b is None or n is None:
        return ev, lambda: fixes.batch_size(ctx.run, 32, "more updates per epoch")
    steps = math.ceil(n / b)
    updates = steps * ctx.curve.epochs
    if b >= n:
        ev.append(
            Evidence(
                LARGE_BATCH_FULL,
                f"batch size {b} ≥ the {n} training examples: one update per epoch",
            )
        )
    elif steps <= 4:
        ev.append(
            Evidence(
                LARGE_BATCH_FEW_STEPS, f"only {steps} updates per epoch ({n} examples / batch {b})"
            )
        )
    if ev and updates < 300:
        ev.append(Evidence(LARGE_BATCH_FEW_UPDATES, f"{updates} updates in the whole run"))
    if ev and (
        ctx.curve.has("slow_decrease")
        or ctx.curve.has("plateau")
        or ctx.curve.has("stuck_at_chance")
    ):
        ev.append(Evidence(LARGE_BATCH_SLOW, "the loss falls slowly per epoch"))
    new = 32 if n >= 320 else max(1, n // 10)
    return ev, lambda: fixes.batch_size(ctx.run, new, f"{math.ceil(n / new)} updates per epoch")


# ---- kernel_size_mismatch -----------------------------------------------------------------
KERNEL_EXCEEDS_INPUT = 3.0  # a kernel larger than its input
KERNEL_COVERS_MOST = 3.0  # the first kernel covers over half its input ...
KERNEL_COVERS_MOST_PER_SHARE = 4.0  # ... and each further share of the input it covers adds this
KERNEL_COVERS_MOST_LATER = 2.0  # a later kernel covers over half its input
KERNEL_COVERS_THIRD = 1.5  # the first kernel covers a third of its input
KERNEL_STRIDE_SKIPS = 2.0  # a stride larger than the kernel skips pixels ...
KERNEL_STRIDE_PER_SKIPPED = 2.0  # ... weighted by the share of pixels never seen


def kernel_size_mismatch(ctx: Context) -> Found:
    ev: list[Evidence] = []
    if ctx.arch is None:
        return ev, lambda: fixes.none(
            "Use 3×3 kernels with stride 1 in the first layers",
            "run.model is needed to name the layers",
        )
    convs = [layer for layer in _sliding(ctx.arch) if layer.shares is None]
    for i, layer in enumerate(convs):
        dims = layer.spatial_in or (1,)
        k = layer.kernels[0].shape[: len(dims)]
        size, kernel, out = _by(dims), _by(k), _by(layer.spatial_out or (0,))
        cover = max(a / n for a, n in zip(k, dims, strict=True))
        # 3×3 is the smallest kernel that sees a neighbourhood: never "too large" unless it
        # exceeds its input. Larger ones waste the input when they cover most of it.
        if layer.kernel_exceeds_input:
            ev.append(
                Evidence(
                    KERNEL_EXCEEDS_INPUT,
                    f"layer {layer.name!r}: kernel {kernel} is larger than its {size} input",
                )
            )
        elif max(k) >= 5 and cover > 0.5:
            ev.append(
                Evidence(
                    KERNEL_COVERS_MOST + KERNEL_COVERS_MOST_PER_SHARE * (cover - 0.5)
                    if i == 0
                    else KERNEL_COVERS_MOST_LATER,
                    f"layer {layer.name!r}: kernel {kernel} covers {cover:.0%} "
                    f"of its {size} input, leaving {out} positions",
                )
            )
        elif max(k) >= 5 and cover > 0.3 and i == 0:
            ev.append(
                Evidence(
                    KERNEL_COVERS_THIRD,
                    f"first kernel {kernel} covers {cover:.0%} of the {size} input",
                )
            )
        stride = _stride(ctx, layer.name)
        if stride > max(k):
            skipped = 1 - math.prod(k) / stride ** len(k)
            ev.append(
                Evidence(
                    KERNEL_STRIDE_SKIPS + KERNEL_STRIDE_PER_SKIPPED * skipped,
                    f"layer {layer.name!r}: stride {stride} is larger than its "
                    f"{kernel} kernel, so {skipped:.0%} of the input positions are "
                    "never seen",
                )
            )
        if len(ev) >= 3:
            break
    return ev, lambda: _kernel_fix(ctx)


def _sliding(arch: Architecture) -> list[LayerInfo]:
    """Convolutions whose kernel slides over their input (1-D, 2-D or 3-D)."""
    return [layer for layer in arch.layers if layer.spatial_in and layer.kernels]


def _by(dims: Sequence[int]) -> str:
    return "×".join(map(str, dims))


def _stride(ctx: Context, name: str) -> int:
    layers = ctx.run.model.layers if ctx.run.model and ctx.run.model.layers else []
    for layer, lname in zip(layers, ctx.layer_names, strict=False):
        if lname == name and layer.type in CONVS:
            s = layer.strides or 1
            return max(s) if isinstance(s, tuple) else s
    return 1


def _kernel_fix(ctx: Context) -> Fix:
    assert ctx.arch is not None
    rank = {layer.name: len(layer.spatial_in or ()) for layer in _sliding(ctx.arch)}

    if ctx.run.model is None or ctx.run.model.layers is None:
        return fixes.none("Use 3×3 kernels with stride 1", "run.model is needed")
    edits: fixes.Edits = {}
    for layer, name in zip(ctx.run.model.layers, ctx.layer_names, strict=True):
        if name not in rank or layer.shares is not None:  # a shared call: its owner is edited
            continue
        k = (
            layer.kernel_size
            if isinstance(layer.kernel_size, int)
            else max(layer.kernel_size or (1,))
        )
        s = layer.strides if isinstance(layer.strides, int) else max(layer.strides or (1,))
        out: dict[str, object] = {}
        if k > 5:
            out["kernel_size"] = (3,) * rank[name]
            if layer.padding == "valid":
                # A 3×3 kernel pads one pixel: the layer then keeps its input's size and edges.
                out["padding"] = "same"
        if s > min(k, 3):
            out["strides"] = (1,) * rank[name]
        edits[name] = out
    return fixes.model_fix(
        ctx.run,
        ctx.layer_names,
        edits,
        "Use 3×3 kernels with stride 1 where kernels are large for their input",
    )


# ---- output_loss_mismatch -----------------------------------------------------------------
OUT_SOFTMAX_TWICE = 1.5  # softmax output and from_logits=True (TF undoes it, others do not)
OUT_NOT_PROBABILITIES = 4.5  # the loss expects probabilities, the head gives unbounded values
OUT_SIGMOID_MULTICLASS = 1.5  # sigmoids over several exclusive classes do not sum to 1
OUT_SOFTMAX_ONE_UNIT = 5.0  # softmax over a single unit outputs 1 whatever the input
OUT_BCE_MANY_CLASSES = 4.0  # binary cross-entropy over more than two exclusive classes
OUT_ONE_UNIT_MANY_CLASSES = 4.0  # a one-unit (binary) head for labels of more than two classes
OUT_MSE_ON_CLASSES = (
    3.0  # a regression loss on class outputs: flat gradients on a saturated softmax
)
OUT_FEWER_UNITS = 4.0  # fewer output units than classes: some classes cannot be predicted
OUT_MORE_UNITS = 1.5  # more output units than classes
OUT_BOUNDED_REGRESSION = 4.5  # the head's range cannot reach most of the regression targets
OUT_BOUNDED_REGRESSION_PART = 2.0  # ... a real part of them
OUT_LOSS_BEYOND_RANGE = 3.0  # the loss exceeds what any target inside the head's range allows
OUT_NO_BETTER_THAN_MEAN = 1.0  # the regression ends no better than predicting the mean of y
OUT_NEGATIVE_CROSS_ENTROPY = 4.0  # cross-entropy went negative: outputs outside [0, 1] reach it

# What each activation can output; a regression target outside it cannot be reached.
_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "relu": (0.0, math.inf),
    "relu6": (0.0, 6.0),
    "softplus": (0.0, math.inf),
    "exponential": (0.0, math.inf),
    "elu": (-1.0, math.inf),
    "selu": (-1.7581, math.inf),
}
# Activations whose outputs are not probabilities.
_UNBOUNDED = ("linear", "relu", "elu", "selu", "tanh", "leaky_relu", "relu6", "softplus")


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
    binary = "binary_crossentropy" in name or name == "binary_focal_crossentropy"
    if act == "softmax" and units == 1:
        ev.append(
            Evidence(
                OUT_SOFTMAX_ONE_UNIT,
                "the output is a softmax over a single unit: it is 1 for every input",
            )
        )
    elif categorical and loss.from_logits and act == "softmax":
        ev.append(
            # Keras 3 on TensorFlow spots a softmax output and takes its logits back, so there
            # the run trains as if matched; other backends apply softmax twice.
            Evidence(
                OUT_SOFTMAX_TWICE,
                "the output applies softmax and the loss has from_logits=True: softmax twice "
                "(Keras 3 on TensorFlow undoes it, other backends do not)",
            )
        )
    elif (categorical or binary) and not loss.from_logits and act in _UNBOUNDED:
        ev.append(
            Evidence(
                OUT_NOT_PROBABILITIES,
                f"the output activation is {act} but {name} expects "
                "probabilities (from_logits=False)",
            )
        )
    elif categorical and act == "sigmoid" and units > 2:
        ev.append(
            # Keras renormalises probabilities that do not sum to 1, which blunts this one.
            Evidence(
                OUT_SIGMOID_MULTICLASS,
                f"sigmoid outputs over {units} classes do not sum to 1, as {name} assumes",
            )
        )
    low = min((v for v in (ctx.curve.first_loss, ctx.curve.final_loss) if v is not None), default=0)
    if (categorical or binary) and low < 0:
        ev.append(
            Evidence(
                OUT_NEGATIVE_CROSS_ENTROPY,
                f"the loss went negative ({low:.3g}), which cross-entropy on probabilities "
                f"cannot: the {act} outputs reach {name} outside [0, 1]",
            )
        )
    if binary and units > 2:
        ev.append(
            Evidence(
                OUT_BCE_MANY_CLASSES, f"binary_crossentropy on {units} mutually exclusive classes"
            )
        )
    if C and C > 2 and units == 1 and not ctx.regression:
        ev.append(
            Evidence(
                OUT_ONE_UNIT_MANY_CLASSES,
                f"one output unit (a yes/no head) for labels of {C} classes",
            )
        )
    if name in REGRESSION_LOSSES and units > 1:
        ev.append(
            Evidence(
                OUT_MSE_ON_CLASSES, f"{name} on class outputs learns slowly; cross-entropy fits"
            )
        )
    if C and units > 1 and units != C:
        ev.append(
            Evidence(
                OUT_FEWER_UNITS if units < C else OUT_MORE_UNITS,
                f"the output has {units} units for {C} classes",
            )
        )
    if ctx.regression and units == 1:
        ev += _regression_head(ctx, act)
    if not ev:
        return ev, lambda: fixes.none("Output and loss match", "nothing to change")
    if ctx.regression:
        return ev, lambda: _head_fix(
            ctx, "linear", "End with a linear unit for real-valued targets"
        )
    if binary and units == 1 and (not C or C <= 2):
        return ev, lambda: _head_fix(ctx, "sigmoid", "End with one sigmoid unit for yes/no labels")
    return ev, lambda: _output_fix(ctx)


def _regression_head(ctx: Context, act: str) -> list[Evidence]:
    """A bounded head against real-valued targets: from their range when sent, else from the
    loss itself (an MSE above the head's span² needs targets outside its range)."""
    ev: list[Evidence] = []
    bounds = _RANGES.get(act)
    t = ctx.targets
    if bounds is not None and t is not None and t.low is not None and t.high is not None:
        lo, hi = bounds
        width = max(t.high - t.low, 1e-12)
        outside = (max(0.0, lo - t.low) + max(0.0, t.high - hi)) / width
        if outside >= 0.1:
            ev.append(
                Evidence(
                    OUT_BOUNDED_REGRESSION if outside >= 0.5 else OUT_BOUNDED_REGRESSION_PART,
                    f"the output activation {act} only reaches [{lo:g}, {hi:g}] but the targets "
                    f"span [{t.low:g}, {t.high:g}]: {min(outside, 1):.0%} of their range is "
                    "out of reach",
                )
            )
    elif bounds is not None and math.isfinite(bounds[1] - bounds[0]):
        span = bounds[1] - bounds[0]
        floor = ctx.curve.final_loss
        loss = ctx.run.loss.name if ctx.run.loss else ""
        limit = span**2 if loss in ("mean_squared_error", "mse") else span
        regression_loss = loss in ("mean_squared_error", "mse", "mean_absolute_error", "mae")
        if floor is not None and regression_loss and floor > limit:
            ev.append(
                Evidence(
                    OUT_LOSS_BEYOND_RANGE,
                    f"the output activation {act} only reaches [{bounds[0]:g}, "
                    f"{bounds[1]:g}], yet the loss ends at {floor:.3g}: targets inside that "
                    f"range could not leave it above {limit:g}",
                )
            )
    if (ctx.targets is None or ctx.targets.low is None) and act == "softmax":
        return ev  # the single-unit softmax was reported already
    level = ctx.explained_level
    if ev and level is not None and level >= 0.9:
        ev.append(
            Evidence(
                OUT_NO_BETTER_THAN_MEAN,
                f"the training loss ends at {level:.2f}× Var(y): no better than predicting "
                "the mean of the targets",
            )
        )
    return ev


# Layer types that are an activation of their own class (Keras ReLU, Softmax …).
_ACTIVATION_CLASSES = {"relu", "leaky_relu", "prelu", "softmax"}


def _head(ctx: Context) -> set[str]:
    """The last weighted layer and everything after it: where the output activation lives."""
    assert ctx.arch is not None
    names = [layer.name for layer in ctx.arch.layers]
    weighted = [i for i, layer in enumerate(ctx.arch.layers) if layer.weighted]
    return set(names[weighted[-1] :]) if weighted else set(names[-1:])


def _head_fix(ctx: Context, activation: str, summary: str) -> Fix:
    """Give the head's weighted layer `activation`; Activation layers after it become linear."""
    if ctx.run.model is None or ctx.run.model.layers is None or ctx.arch is None:
        return fixes.none(summary, "run.model is needed to name the output layer")
    return fixes.model_fix(ctx.run, ctx.layer_names, _head_edits(ctx, activation, None), summary)


def _head_edits(ctx: Context, activation: str, units: int | None) -> fixes.Edits:
    """Edits of the head (the last weighted layer and the layers after it) so that the model
    ends in `activation`: the weighted layer gets it when nothing follows, else stays linear
    and the last activation layer applies it (a ReLU, LeakyReLU, PReLU or Softmax layer is
    replaced by an Activation layer of the same name)."""
    assert ctx.run.model is not None and ctx.run.model.layers is not None
    head = _head(ctx) if ctx.arch is not None else set(ctx.layer_names[-1:])
    pairs = list(zip(ctx.run.model.layers, ctx.layer_names, strict=True))
    last = ctx.layer_names[-1]
    edits: fixes.Edits = {}
    for layer, name in pairs:
        if name not in head:
            continue
        want = activation if name == last else "linear"
        out: dict[str, object] = {}
        if layer.type == "dense":
            if layer.activation != want:
                out["activation"] = want
            if units and layer.units != units:
                out["units"] = units
        elif layer.type == "activation" and layer.activation != want:
            out["activation"] = want
        elif layer.type in _ACTIVATION_CLASSES and not (layer.type == want == "softmax"):
            out = {"type": "activation", "activation": want}  # an Activation in its place
        edits[name] = out
    return edits


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
    edits = _head_edits(ctx, "softmax", C)
    fix = fixes.model_fix(ctx.run, ctx.layer_names, edits, summary)
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


# A run whose training loss is this healthy (0…1, see Context.health) with nothing severe and no
# overfitting has no cause of a high training loss: what still looks odd becomes a note.
SETTLED_HEALTH = 0.6


def settled(ctx: Context) -> bool:
    """The run reached a low training loss with nothing severe and no overfitting."""
    return ctx.health >= SETTLED_HEALTH and not ctx.curve.overfits


def settle(ctx: Context, causes: list[Cause]) -> tuple[list[Cause], list[str]]:
    """Causes that stand, and notes for the oddities of a run that reached a low loss anyway:
    structural evidence for a cause of a high training loss that, before the run's own success
    is weighed against it, would be credible."""
    if not settled(ctx):
        return causes, []
    notes = []
    for cause_id, detect in DETECTORS.items():
        if cause_id not in _TRAIN_LOSS_CAUSES:
            continue
        ev, _ = detect(ctx)
        if sigmoid(PRIOR + sum(e.weight for e in ev)) >= 0.5:
            reason = max(ev, key=lambda e: e.weight).text
            notes.append(
                f"Oddity, not a cause (the run reached a low training loss): "
                f"{cause_id.replace('_', ' ')} — {reason}."
            )
    return [c for c in causes if c.id not in _TRAIN_LOSS_CAUSES], notes


def rank(ctx: Context, floor: float = 0.15) -> list[Cause]:
    """Every cause with confidence ≥ floor, most likely first."""
    causes = []
    for cause_id, detect in DETECTORS.items():
        ev, make_fix = detect(ctx)
        if cause_id in _TRAIN_LOSS_CAUSES and ctx.health > 0 and any(e.weight > 0 for e in ev):
            ev.append(
                Evidence(
                    HEALTHY_RUN * ctx.health,
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
