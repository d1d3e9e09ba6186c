"""Curve symptoms: what the loss history shows, measured on the scale of ln C (chance loss)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from service.schemas.history import History
from service.schemas.report import Symptom

# Long histories are summarised into this many buckets (medians): every rule below then costs
# the same for 3 epochs or 100k steps, and medians keep single spikes from driving a verdict.
_MAX_POINTS = 256
# "Good" training loss, as a fraction of ln C: a classifier at 0.1·ln C puts ~80% probability on
# the right class (C=10); above 0.25·ln C it is still far from fitting the training data.
HIGH_LEVEL = 0.25
# A change smaller than this fraction of ln C over a window is "flat".
FLAT = 0.02


@dataclass(frozen=True)
class CurveFacts:
    """Numbers about one history that rules downstream read, besides the symptoms."""

    epochs: int
    chance_loss: float | None
    first_loss: float | None = None
    final_loss: float | None = None
    total_drop: float | None = None  # (first - final) / chance_loss
    tail_noise: float | None = None  # epoch-to-epoch noise in the tail, in units of chance_loss
    level: float | None = None  # final loss / chance_loss
    early_rises: int = 0  # epochs among the first four where the loss went up
    non_finite_at: int | None = None  # 1-based epoch of the first non-finite loss
    val_gap: float | None = None  # (val - train) at the end, in units of chance_loss
    val_rise: float | None = None  # val final - val min, in units of chance_loss
    val_min_epoch: int | None = None
    val_best: float | None = None  # the lowest validation loss, as reported
    overfits: bool = False  # validation loss rose well above its best while training fell
    linear_descent: bool = False  # a straight, unsaturated fall from near chance, still high
    # Share of its value the training loss lost after validation's best epoch: near 1 the
    # model went on memorising the training set; near 0 it stood still while validation rose.
    train_fall_after_val_best: float | None = None
    # How much lower the second half's best training loss is than the first half's, as a
    # share of the latter (0: the second half of the run made no progress).
    late_gain: float | None = None
    final_accuracy: float | None = None
    final_val_accuracy: float | None = None
    symptoms: list[Symptom] = field(default_factory=list)

    def has(self, symptom_id: str) -> bool:
        return any(s.id == symptom_id for s in self.symptoms)


def chance_loss(loss_name: str | None, num_classes: int | None) -> float | None:
    """Loss of a uniform prediction: ln C for categorical cross-entropy, ln 2 for binary."""
    name = (loss_name or "categorical_crossentropy").lower()
    if "binary" in name:
        return math.log(2.0)
    if "crossentropy" in name and num_classes and num_classes >= 2:
        return math.log(num_classes)
    return None


def _median(values: np.ndarray) -> float:
    """np.median (the same value, for the finite values these rules take), without its ~20 µs
    overhead: sorting up to a few hundred floats in Python costs less than that."""
    n = len(values)
    if n > 200:
        return float(np.median(values))
    ordered = sorted(values.tolist())
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


_MAX_LN_CLASSES = math.log(1000) + 0.01


def infer_classes(loss: list[float]) -> int | None:
    """C when the loss sits flat at ln C: the exact signature of a uniform guess over C classes."""
    tail = np.asarray(loss[-5:], dtype=float)
    if len(tail) < 3 or not np.all(np.isfinite(tail)):
        return None
    level = float(np.median(tail))
    # ln C for C ≤ 1000 is below 7: a flat loss far above (a regression's MSE) names no C, and
    # exp() of it would overflow.
    if not 0 < level < _MAX_LN_CLASSES or np.ptp(tail) > 0.01 * level:
        return None
    k = math.exp(level)
    c = round(k)
    return c if 2 <= c <= 1000 and abs(k - c) / c < 0.01 else None


def _bucket(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median per bucket, and each bucket's last epoch (1-based), for long series."""
    n = len(values)
    if n <= _MAX_POINTS:
        return values, np.arange(1, n + 1)
    edges = np.linspace(0, n, _MAX_POINTS + 1).astype(int)
    med = np.array([_median(values[a:b]) for a, b in itertools.pairwise(edges)])
    return med, edges[1:]


def _slope(y: np.ndarray) -> float:
    """Least-squares slope per point."""
    if len(y) < 2:
        return 0.0
    x = np.arange(len(y), dtype=float)
    x -= x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def analyze(history: History, chance: float | None, num_classes: int | None) -> CurveFacts:
    raw = np.asarray(history.loss, dtype=float)
    finite = np.isfinite(raw)
    non_finite_at = None if finite.all() else int(np.argmax(~finite)) + 1
    symptoms: list[Symptom] = []
    n_raw = len(raw)
    if non_finite_at is not None:
        symptoms.append(
            Symptom(
                id="non_finite_loss",
                epochs=(non_finite_at, n_raw),
                detail=f"loss is {raw[non_finite_at - 1]} from epoch {non_finite_at} of {n_raw}",
            )
        )
    prefix = raw[: (non_finite_at - 1) if non_finite_at else n_raw]
    if len(prefix) == 0:
        return CurveFacts(n_raw, chance, non_finite_at=non_finite_at, symptoms=symptoms)
    loss, at = _bucket(prefix)
    scale = chance or max(float(_median(np.abs(loss))), 1e-12)
    n = len(loss)
    first, final = float(loss[0]), float(_median(loss[-min(3, n) :]))
    window = loss[-max(3, n // 4) :] if n >= 3 else loss
    detrended = np.diff(window) - _slope(window) if len(window) > 2 else np.zeros(1)
    symptoms += _loss_symptoms(loss, at, scale, chance, history, num_classes)
    if not any(s.id == "explosion" for s in symptoms):
        symptoms += _gradient_explosion(history)
    val = _val_facts(history, scale, chance)
    symptoms += val.symptoms
    return CurveFacts(
        epochs=n_raw,
        chance_loss=chance,
        first_loss=first,
        final_loss=final,
        total_drop=(first - final) / scale,
        tail_noise=float(np.std(detrended)) / scale,
        level=final / scale,
        early_rises=int((np.diff(loss[:5]) > 0).sum()),
        non_finite_at=non_finite_at,
        val_gap=val.gap,
        val_rise=val.rise,
        val_min_epoch=val.min_epoch,
        val_best=val.best,
        overfits=val.overfits,
        linear_descent=_linear_descent(loss, chance),
        train_fall_after_val_best=_train_fall_after(history, val.min_epoch),
        late_gain=_late_gain(loss),
        final_accuracy=_last_finite(history.series("accuracy") or history.series("acc")),
        final_val_accuracy=_last_finite(
            history.series("val_accuracy") or history.series("val_acc")
        ),
        symptoms=symptoms,
    )


def _late_gain(loss: np.ndarray) -> float | None:
    if len(loss) < 6:
        return None
    early, late = float(loss[: len(loss) // 2].min()), float(loss[len(loss) // 2 :].min())
    return (early - late) / early if early > 0 else None


def _train_fall_after(history: History, epoch: int | None) -> float | None:
    """(training loss at `epoch` − at the end) / at `epoch`, over the epochs where both
    losses are finite (the end: the median of the last few, as for the validation rise)."""
    if epoch is None or not history.val_loss:
        return None
    val, train = np.asarray(history.val_loss, float), np.asarray(history.loss, float)
    m = min(len(val), len(train))
    ok = np.isfinite(val[:m]) & np.isfinite(train[:m])
    t = train[:m][ok]
    at = float(train[epoch - 1])
    k = max(1, min(3, len(t) // 4))
    return (at - float(_median(t[-k:]))) / at if at > 0 and len(t) else None


# Straight-line descent: the line explains this share of the curve's variance ...
_LINE_FIT = 0.95
# ... and the last third still falls at least this fraction of the first third's pace.
_UNSATURATED = 0.5


def _linear_descent(loss: np.ndarray, chance: float | None) -> bool:
    """The signature of steps far too small: the loss starts near chance and falls along a
    straight line, as fast at the end as at the start, and is still high. Any working run
    bends (fast early progress, then saturation); a run with tiny steps cannot bend yet."""
    n = len(loss)
    if chance is None or n < 5 or not 0.8 * chance <= loss[0] <= 1.2 * chance:
        return False
    level = float(loss[-1])
    if level <= HIGH_LEVEL * chance or loss[0] - level < FLAT * chance:
        return False
    return _straight_unsaturated(loss)


def against_baseline(
    facts: CurveFacts, history: History, baseline: float, high: float
) -> CurveFacts:
    """A regression's curve read against the loss of predicting the mean of y (`baseline`,
    Var(y) under MSE): the regression's "chance". Sitting there is `stuck_at_chance`; a fall
    too slow to reach `high`·baseline is `slow_decrease`, and a straight, unsaturated one still
    above it `linear_descent`."""
    raw = np.asarray(history.loss, dtype=float)
    loss = raw[np.isfinite(raw)]
    n = len(loss)
    if n < 3 or facts.has("stuck_at_chance"):
        return facts
    symptoms = list(facts.symptoms)
    tail = loss[-max(2, n // 4) :]
    if np.all(np.abs(tail - baseline) <= 0.1 * baseline) and np.ptp(tail) <= FLAT * baseline:
        symptoms.append(
            Symptom(
                id="stuck_at_chance",
                epochs=(n - len(tail) + 1, n),
                detail=f"loss {float(np.median(tail)):.4g} ≈ {baseline:.4g}, the loss of "
                "predicting the mean of y: the model outputs a constant",
            )
        )
    else:
        symptoms += _slow_toward(loss, high * baseline, baseline)
    linear = facts.linear_descent or (
        float(loss[-1]) > high * baseline and _straight_unsaturated(loss)
    )
    return replace(facts, symptoms=symptoms, linear_descent=linear)


def _slow_toward(loss: np.ndarray, goal: float, baseline: float) -> list[Symptom]:
    """`slow_decrease` for a regression still above `goal`: at the last quarter's pace it needs
    more than twice the epochs it ran to get there (the classifier's rule, on Var(y))."""
    n = len(loss)
    w = max(3, n // 4)
    slope, level = _slope(loss[-w:]), float(_median(loss[-3:]))
    if n < 5 or level <= goal or slope >= 0:
        return []
    more = (level - goal) / -slope
    if more <= 2 * n:
        return []
    return [
        Symptom(
            id="slow_decrease",
            epochs=(n - w + 1, n),
            detail=f"loss falls by {-slope:.3g}/epoch at {level / baseline:.2f}× Var(y); at "
            f"that pace it needs about {more:.0f} more epochs to reach {goal:.4g}",
        )
    ]


def _straight_unsaturated(loss: np.ndarray) -> bool:
    """A falling line that explains the curve and is as steep at the end as at the start."""
    n = len(loss)
    if n < 5:
        return False
    x = np.arange(n, dtype=float)
    slope, intercept = np.polyfit(x, loss, 1)
    residual = float(np.sum((loss - (slope * x + intercept)) ** 2))
    total = float(np.sum((loss - loss.mean()) ** 2))
    if slope >= 0 or total == 0 or 1 - residual / total < _LINE_FIT:
        return False
    third = max(2, n // 3)
    first, last = _slope(loss[:third]), _slope(loss[-third:])
    return first < 0 and last <= _UNSATURATED * first


def _last_finite(values: list[float] | None) -> float | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(_median(arr[-3:])) if len(arr) else None


def _loss_symptoms(
    loss: np.ndarray,
    at: np.ndarray,
    scale: float,
    chance: float | None,
    history: History,
    num_classes: int | None,
) -> list[Symptom]:
    out: list[Symptom] = []
    n = len(loss)
    first, last_epoch = float(loss[0]), int(at[-1])
    # High initial loss: a fresh, well-scaled classifier starts near chance; twice that in the
    # first epoch's average (or the very first step's loss, when sent) means logits far larger
    # than the init should produce.
    steps = history.step_loss
    initial, what = first, "first loss"
    if steps and math.isfinite(steps[0]):
        initial, what = steps[0], "first step's loss"
    if chance is not None and initial > 2.0 * chance:
        out.append(
            Symptom(
                id="high_initial_loss",
                epochs=(1, int(at[0])),
                detail=f"{what} {initial:.3g} is {initial / chance:.1f}× the chance "
                f"loss ln C = {chance:.3f}",
            )
        )

    # Explosion: the loss grows by an order of magnitude above where it started and above chance.
    peak_i = int(np.argmax(loss))
    peak = float(loss[peak_i])
    if peak_i > 0 and peak > 10 * max(first, scale):
        out.append(
            Symptom(
                id="explosion",
                epochs=(int(at[peak_i - 1]) + 1, int(at[peak_i])),
                detail=f"loss grew from {first:.3g} to {peak:.3g}",
            )
        )

    low_i = int(np.argmin(loss))
    low = float(loss[low_i])
    tail = loss[-max(2, n // 4) :] if n >= 4 else loss[-1:]
    tail_level = float(_median(tail))

    # Divergence: the end of the run is well above its best point, and got there by rising.
    if n >= 3 and low_i < n - 1 and tail_level - low > 0.2 * scale and tail_level > 1.5 * low:
        rises = int((np.diff(loss[low_i:]) > 0).sum())
        out.append(
            Symptom(
                id="divergence",
                epochs=(int(at[low_i]), last_epoch),
                detail=f"loss rose from its minimum {low:.3g} (epoch {int(at[low_i])}) "
                f"to {tail_level:.3g}; it went up in {rises} of "
                f"{n - 1 - low_i} epochs since",
            )
        )

    # Late collapse: a trained model (well below chance) that jumps back up in one step.
    jumps = np.diff(loss)
    if n >= 4 and chance is not None and low < 0.7 * chance:
        j = int(np.argmax(jumps))
        if j >= low_i and jumps[j] > 0.3 * chance and loss[-1] > low + 0.3 * chance:
            out.append(
                Symptom(
                    id="late_collapse",
                    epochs=(int(at[j]) + 1, last_epoch),
                    detail=f"loss jumped from {loss[j]:.3g} to {loss[j + 1]:.3g} at "
                    f"epoch {int(at[j]) + 1} after reaching {low:.3g}",
                )
            )

    stuck = _stuck_at_chance(loss, at, chance, history, num_classes)
    if stuck is not None:
        out.append(stuck)
    elif n >= 3:
        out += _tail_shape(loss, at, scale, chance)
    return out


def _gradient_explosion(history: History) -> list[Symptom]:
    """Gradient norms that grow a hundredfold (or overflow) explode before the loss shows it."""
    norms = np.asarray(history.grad_norm or [], dtype=float)
    if len(norms) < 2 or not math.isfinite(norms[0]) or norms[0] <= 0:
        return []
    later = norms[1:]
    bad = ~np.isfinite(later) | (later > 100 * norms[0])
    if not bad.any():
        return []
    at = int(np.argmax(bad)) + 2
    return [
        Symptom(
            id="explosion",
            epochs=(at, len(norms)),
            detail=f"gradient norm went from {norms[0]:.3g} to {norms[at - 1]:.3g} by epoch {at}",
        )
    ]


def _stuck_at_chance(
    loss: np.ndarray,
    at: np.ndarray,
    chance: float | None,
    history: History,
    num_classes: int | None,
) -> Symptom | None:
    """The trailing run of epochs whose loss sits at ln C (or whose accuracy sits at 1/C)."""
    if chance is None:
        return None
    near = np.abs(loss - chance) <= 0.05 * chance
    acc_raw = history.series("accuracy") or history.series("acc")
    if acc_raw and num_classes and len(acc_raw) == len(history.loss) and len(loss) == len(acc_raw):
        p = 1.0 / num_classes
        acc = np.asarray(acc_raw, dtype=float)[: len(loss)]
        near |= (acc <= p + 0.5 * p * (1 - p)) & (loss <= 1.3 * chance) & (loss >= 0.8 * chance)
    n = len(loss)
    run = 0
    while run < n and near[n - 1 - run]:
        run += 1
    if run < max(2, math.ceil(0.25 * n)) and not (run == n and n >= 1 and n < 2):
        return None
    start = n - run
    first_epoch = 1 if start == 0 else int(at[start - 1]) + 1
    level = float(_median(loss[start:]))
    return Symptom(
        id="stuck_at_chance",
        epochs=(first_epoch, int(at[-1])),
        detail=f"loss {level:.3f} ≈ ln({num_classes or round(math.exp(chance))}) = "
        f"{chance:.3f} for {int(at[-1]) - first_epoch + 1} epochs",
    )


def _tail_shape(
    loss: np.ndarray, at: np.ndarray, scale: float, chance: float | None
) -> list[Symptom]:
    """Plateau, slow decrease, oscillation and noisy floor, read off the last quarter."""
    out: list[Symptom] = []
    n = len(loss)
    w = max(3, n // 4)
    window = loss[-w:]
    start_epoch = int(at[n - w - 1]) + 1 if n > w else 1
    span = (start_epoch, int(at[-1]))
    slope = _slope(window)
    trend = slope * (w - 1)  # total change the trend explains over the window
    d = np.diff(window)
    noise = float(np.std(d - slope)) if len(d) > 1 else 0.0
    level = float(_median(window[-3:]))
    high = chance is not None and level > HIGH_LEVEL * chance
    # A steady fall (noise well under the slope) is slow progress, not a plateau, however small.
    steady = slope < 0 and noise < 0.5 * abs(slope) and abs(trend) > 0.005 * scale
    # No progress: the second half never beat the first half's best by a real amount, however
    # the last quarter happens to tilt (a noisy floor wanders up and down).
    stalled = n >= 6 and float(loss[n // 2 :].min()) > float(loss[: n // 2].min()) - FLAT * scale
    flat = (
        abs(trend) < FLAT * scale or (trend < 0 and abs(trend) < noise) or stalled
    ) and not steady

    signs = np.sign(d[d != 0])
    flips = float(np.mean(signs[1:] != signs[:-1])) if len(signs) > 2 else 0.0
    # Bumps: in the second half, epochs where the loss jumped up by 5% of its level and by a
    # real amount (2% of ln C). Two of them mean the steps are too large to settle.
    half = loss[n // 2 - 1 :] if n >= 6 else loss[:0]
    ups = np.diff(half)
    bumps = int(((ups > 0.05 * half[:-1]) & (ups > 0.02 * scale)).sum()) if len(half) > 1 else 0
    if bumps >= 2 and not (flips > 0.5 and noise > 0.02 * scale and noise > abs(slope)):
        out.append(
            Symptom(
                id="oscillation",
                epochs=(int(at[n // 2 - 1]) + 1, int(at[-1])),
                detail=f"the loss jumped up by more than 5% in {bumps} epochs of the second half",
            )
        )
    if flips > 0.5 and noise > 0.02 * scale and noise > abs(slope):
        out.append(
            Symptom(
                id="oscillation",
                epochs=span,
                detail=f"loss changed direction in {flips:.0%} of the last {w} epochs, "
                f"by ±{noise:.3g} on a trend of {slope:+.3g}/epoch",
            )
        )
    if flat and high:
        if noise > 0.03 * scale:
            out.append(
                Symptom(
                    id="noisy_floor",
                    epochs=span,
                    detail=f"loss levels off at {level:.3g} with epoch-to-epoch noise "
                    f"±{noise:.3g}, larger than its remaining trend",
                )
            )
        else:
            out.append(
                Symptom(
                    id="plateau",
                    epochs=span,
                    detail=f"loss changed by {trend:+.3g} over the last {w} epochs and "
                    f"sits at {level:.3g} ({level / scale:.2f}× ln C)",
                )
            )
    elif high and slope < 0:
        target = 0.1 * scale
        more = (level - target) / -slope
        if more > 2 * at[-1]:
            out.append(
                Symptom(
                    id="slow_decrease",
                    epochs=span,
                    detail=f"loss falls by {-slope:.3g}/epoch; at that pace it needs "
                    f"about {more:.0f} more epochs to reach {target:.3g} "
                    f"(0.1× ln C)",
                )
            )
    return out


@dataclass(frozen=True)
class _Val:
    gap: float | None = None
    rise: float | None = None
    min_epoch: int | None = None
    best: float | None = None
    overfits: bool = False
    symptoms: tuple[Symptom, ...] = ()


def _val_facts(history: History, scale: float, chance: float | None) -> _Val:
    """Train/validation gap and the validation loss's rise from its best epoch."""
    if not history.val_loss:
        return _Val()
    val = np.asarray(history.val_loss, dtype=float)
    train = np.asarray(history.loss, dtype=float)
    m = min(len(val), len(train))
    ok = np.isfinite(val[:m]) & np.isfinite(train[:m])
    if ok.sum() < 2:
        return _Val()
    v, t = val[:m][ok], train[:m][ok]
    epochs = np.arange(1, m + 1)[ok]
    k = max(1, min(3, len(v) // 4))
    gap = float(_median(v[-k:]) - _median(t[-k:])) / scale
    best = int(np.argmin(v))
    rise = float(_median(v[-k:]) - v[best]) / scale
    span = (int(epochs[best]), int(epochs[-1]))
    symptoms: tuple[Symptom, ...] = ()
    if chance is not None:  # on the scale of ln C
        overfits = gap > 0.15 and rise > 0.05
    else:  # no ln C: measure against the best validation loss itself
        best_val = max(float(v[best]), 1e-12)
        overfits = (gap * scale > 0.3 * best_val) and (rise * scale > 0.3 * best_val)
    if overfits:
        detail = (
            f"validation loss rose {rise * scale:.3g} from its best (epoch {span[0]}) while "
            f"training loss fell to {float(_median(t[-k:])):.3g}; gap {gap * scale:.3g}"
        )
        symptoms = (Symptom(id="train_val_gap", epochs=span, detail=detail),)
    elif gap < -0.1:
        detail = (
            f"training loss is {-gap * scale:.3g} above validation loss: something active "
            "only in training (penalty, dropout, augmentation, label noise) holds it up"
        )
        symptoms = (Symptom(id="train_val_gap", epochs=(int(epochs[0]), span[1]), detail=detail),)
    return _Val(gap, rise, span[0], float(v[best]), overfits, symptoms)
