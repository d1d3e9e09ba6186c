"""Probe plans (which one-factor changes to train) and verdicts (what their losses prove).

Pure logic: the worker trains, this module decides. A probe's change is a merge patch of
`run`, so a confirmed probe *is* a verified fix.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from service.analysis import fixes
from service.analysis.causes import PRIOR, label_noise_alarm
from service.analysis.curves import HIGH_LEVEL
from service.analysis.evidence import Context, sigmoid
from service.schemas.report import Cause, Fix, ProbeEvidence, Report
from service.schemas.run import RunSpec


@dataclass(frozen=True)
class Probe:
    name: str
    tests: str  # the cause id it can confirm or refute ("" for the baseline)
    change: dict[str, Any]
    metric: str = "train"  # "train": data loss on training examples; "val": held-out loss
    needs_sample: bool = False  # preprocessing probes mean nothing on stand-in data


@dataclass
class Outcome:
    """What one probe measured, per seed."""

    probe: Probe
    losses: list[float | None]  # final training loss per seed; None = non-finite
    val_losses: list[float | None] = field(default_factory=list)  # held-out loss per seed
    curve: list[float | None] = field(default_factory=list)
    device: str | None = None
    steps: int = 0

    def finite(self, metric: str = "train") -> list[float]:
        values = self.val_losses if metric == "val" else self.losses
        return [x for x in values if x is not None and math.isfinite(x)]

    def mean(self, metric: str = "train") -> float | None:
        values = self.finite(metric)
        return statistics.fmean(values) if values else None

    def spread(self, metric: str = "train") -> float:
        values = self.finite(metric)
        return max(values) - min(values) if len(values) > 1 else 0.0


def plan(ctx: Context, static: Report) -> list[Probe]:
    """The baseline, then one change at a time. Probes that need the user's sample say so."""
    run, probes = ctx.run, [Probe("baseline", "", {})]
    r = ctx.lr
    if r is not None:
        lr = r.learning_rate
        probes += [
            Probe("lr_x0.1", "learning_rate_too_high", {"optimizer": {"learning_rate": lr / 10}}),
            Probe("lr_x10", "learning_rate_too_low", {"optimizer": {"learning_rate": lr * 10}}),
            Probe("lr_range_test", "", {}),  # sized by the worker's LR sweep
            # Schedules are in the run's epochs; the worker maps them onto the probe's
            # steps, so the probe sees the shape the full run would.
            Probe("step_decay", "missing_lr_decay", fixes.step_decay(run, lr, run.epochs).patch),
            Probe(
                "cosine_warmup",
                "missing_lr_decay",
                {
                    "lr_schedule": {
                        "name": "cosine",
                        "initial_lr": lr,
                        "alpha": 0.0,
                        "warmup_epochs": max(1, (run.epochs or 20) // 20),
                    }
                },
            ),
        ]
    if ctx.arch is not None and run.model is not None:
        by_cause = {c.id: c for c in static.causes}
        init = by_cause.get("poor_weight_initialization")
        acts = {layer.name: layer.activation for layer in ctx.weighted_layers()}
        patch = (
            init.fix.patch
            if init and init.fix.patch
            else fixes.reinitialize(run, ctx.layer_names, acts).patch
        )
        if patch:
            probes.append(Probe("initializer_by_activation", "poor_weight_initialization", patch))
        names = ctx.layer_names
        relax = by_cause.get("excessive_regularization")
        for label, fix in (
            ("recommended", relax.fix if relax else None),
            ("removed", fixes.strip_regularization(run, names)),
        ):
            if fix is not None and fix.patch:
                probes.append(
                    Probe(f"regularization_{label}", "excessive_regularization", fix.patch)
                )
        probes += [
            Probe(f"width_x{k}", "insufficient_capacity", fixes.scale_width(run, names, k).patch)
            for k in (2, 4)
        ]
        for cause_id in ("kernel_size_mismatch", "output_loss_mismatch"):
            cause = by_cause.get(cause_id)
            if cause and cause.fix.patch:
                probes.append(Probe(f"fix_{cause_id}", cause_id, cause.fix.patch))
    probes += [
        Probe(
            "rescale",
            "unnormalized_inputs",
            {"preprocessing": {"normalization": "rescale"}},
            needs_sample=True,
        ),
        Probe(
            "standardize",
            "unnormalized_inputs",
            {"preprocessing": {"normalization": "standardize"}},
            needs_sample=True,
        ),
        Probe(
            "augmentation",
            "overfitting",
            fixes.augmentation(run).patch,
            metric="val",
            needs_sample=True,
        ),
    ]
    b = run.batch_size or 32
    probes += [
        Probe("batch_x4", "batch_size_too_small", {"batch_size": b * 4}),
        Probe("batch_div4", "batch_size_too_large", {"batch_size": max(1, b // 4)}),
    ]
    return probes + _label_steps(ctx)


# The label audit is a step, not a training: the worker runs it first (on the user's sample)
# and plans again with its result; `clean_labels` then retrains without the suspects.
LABEL_AUDIT = "label_audit"
CLEAN_LABELS = "clean_labels"


def _label_steps(ctx: Context) -> list[Probe]:
    if ctx.regression or ctx.run.data is None or not ctx.run.data.dataset_id:
        return []
    if ctx.stats is not None and not ctx.stats.get("class_counts"):
        return []  # y holds values or multi-hot rows: no one label per example to audit
    audit = ctx.label_audit
    if audit is None:
        return [Probe(LABEL_AUDIT, "", {}, needs_sample=True)]
    if label_noise_alarm(audit) and audit.suspects:
        drop = fixes.drop_suspect_labels(audit.suspects).patch  # the label fix, as trained
        return [Probe(CLEAN_LABELS, "noisy_labels", drop, needs_sample=True)]
    return []


# ------------------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class Judgement:
    probe: str
    cause: str
    improvement: float | None  # baseline − probe, in loss units (positive = better)
    noise: float
    confirmed: bool
    refuted: bool


def judge(
    baseline: Outcome, outcome: Outcome, chance: float | None, best: float | None = None
) -> Judgement:
    """Confirmed: better than the baseline by more than seed noise and by a real amount, and
    (given `best`, the lowest loss any probe reached) close to the best fix found.

    "Real" is absolute, on the scale of ln C, because a healthy run also improves a little
    under most changes (a higher LR or standardized inputs train faster early). "Close to the
    best" keeps a change that merely softens a broken run (a larger step against a bad init)
    from being named as its root cause.
    """
    metric = outcome.probe.metric
    base, probe = baseline.mean(metric), outcome.mean(metric)
    scale = chance or max(abs(base or 1.0), 1e-6)
    noise = max(baseline.spread(metric), outcome.spread(metric))
    name, cause = outcome.probe.name, outcome.probe.tests
    if probe is None:
        return Judgement(name, cause, None, noise, False, True)
    near_best = best is None or probe <= best + 0.25 * scale
    if base is None:  # the baseline blew up and the probe did not: that is the effect
        return Judgement(name, cause, math.inf, noise, near_best, False)
    gain = base - probe
    confirmed = (
        gain > max(2 * noise, 0.1 * scale) and near_best and _generalizes(baseline, outcome, scale)
    )
    refuted = gain < max(noise, 0.03 * scale)
    return Judgement(name, cause, gain, noise, confirmed, refuted)


def _generalizes(baseline: Outcome, outcome: Outcome, scale: float) -> bool:
    """A fix lowers the training loss without raising the held-out loss beyond noise: a lower
    training loss bought with a worse held-out one is memorisation (of noisy labels, say)."""
    base, probe = baseline.mean("val"), outcome.mean("val")
    if outcome.probe.metric == "val" or base is None or probe is None:
        return True
    noise = max(baseline.spread("val"), outcome.spread("val"))
    return probe <= base + max(noise, 0.05 * scale)


def reproduced(baseline: Outcome, chance: float | None) -> bool:
    """The replayed run is in trouble too: its loss stays high (or non-finite)."""
    loss = baseline.mean()
    if loss is None:
        return True
    return chance is None or loss > HIGH_LEVEL * chance


def revise(
    static: Report,
    judgements: list[Judgement],
    baseline_bad: bool,
    compared: dict[str, tuple[Outcome, Outcome]],
    seeds: int,
) -> list[Cause]:
    """Static causes with their probe evidence folded into the confidence.

    `compared` maps each probe to (the baseline it was judged against, its own outcome).
    A probe can also bring up a cause the static analysis missed.
    """
    by_cause: dict[str, list[Judgement]] = {}
    for j in judgements:
        if j.cause:
            by_cause.setdefault(j.cause, []).append(j)
    causes: dict[str, Cause] = {c.id: c for c in static.causes}
    for cause_id, js in by_cause.items():
        confirmed = [j for j in js if j.confirmed]
        if cause_id not in causes and confirmed and baseline_bad:
            change = compared[confirmed[0].probe][1].probe.change
            causes[cause_id] = Cause(
                id=cause_id,  # type: ignore[arg-type]
                # A probe alone (+3 below) leaves it short of credible: a static cause with
                # evidence of its own, which no probe can test (noisy labels), still outranks it.
                confidence=round(sigmoid(PRIOR - 1), 3),
                evidence=[],
                fix=Fix(summary=f"Apply probe {confirmed[0].probe}'s change", patch=change),
            )
    revised = [
        _revised(c, by_cause.get(c.id, []), baseline_bad, compared, seeds) for c in causes.values()
    ]
    return sorted(revised, key=lambda c: -c.confidence)


def _revised(
    cause: Cause,
    js: list[Judgement],
    baseline_bad: bool,
    compared: dict[str, tuple[Outcome, Outcome]],
    seeds: int,
) -> Cause:
    best = max(
        js, key=lambda j: j.improvement if j.improvement is not None else -math.inf, default=None
    )
    if best is None:
        return cause
    logit = math.log(cause.confidence / max(1e-6, 1 - cause.confidence))
    if baseline_bad and best.confirmed:
        logit += 3.0
    elif baseline_bad and all(j.refuted for j in js):
        logit -= 2.0
    base, out = compared[best.probe]
    measured = fix_effect(base, out, best, seeds)
    probe = measured.model_copy(update={"confirmed": best.confirmed and baseline_bad})
    what = "held-out loss" if out.probe.metric == "val" else "training loss"
    verb = "lowered" if probe.confirmed else "did not clearly lower"
    line = (
        f"probe {best.probe} {verb} the {what} from {probe.baseline_loss} to "
        f"{probe.probe_loss} ({seeds} seeds, spread {probe.spread})"
    )
    return cause.model_copy(
        update={
            "confidence": round(sigmoid(logit), 3),
            "probe": probe,
            "evidence": [line, *cause.evidence],
        }
    )


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


def fix_effect(baseline: Outcome, fixed: Outcome, j: Judgement, seeds: int) -> ProbeEvidence:
    """What training a change (a probe, or the recommended fix) did to the replayed run."""
    metric = fixed.probe.metric
    return ProbeEvidence(
        name=fixed.probe.name,
        change=fixed.probe.change,
        baseline_loss=_r(baseline.mean(metric)),
        probe_loss=_r(fixed.mean(metric)),
        improvement=_r(j.improvement),
        seeds=seeds,
        spread=_r(j.noise),
        confirmed=j.confirmed,
    )


LR_RANGE_PROBE = "lr_range_suggested"  # the worker's probe of the LR range test's suggestion


def combined_fix(
    causes: list[Cause],
    judgements: list[Judgement],
    run: RunSpec | None = None,
    measured_lr: float | None = None,
    limit: int = 3,
) -> Fix | None:
    """The recommended fixes of the probe-confirmed causes (best first, one per cause), as one
    fix for the `combined` probe to verify. A learning-rate cause confirmed by the LR range
    test's probe takes the rate it measured (`measured_lr`) over the computed one. Only one
    fix may rewrite the model: each model fix carries the whole model, so a second would
    overwrite the first."""
    by_id = {c.id: c for c in causes}
    chosen: list[Fix] = []
    seen: set[str] = set()
    for j in sorted(
        (j for j in judgements if j.confirmed),
        key=lambda j: -(j.improvement if j.improvement is not None else 0),
    ):
        cause = by_id.get(j.cause)  # type: ignore[call-overload]
        if j.cause in seen or cause is None or not cause.fix.patch:
            continue
        if "model" in cause.fix.patch and any("model" in f.patch for f in chosen):
            continue
        seen.add(j.cause)
        if j.probe == LR_RANGE_PROBE and run is not None and measured_lr is not None:
            chosen.append(fixes.learning_rate(run, measured_lr, "the LR range test's valley"))
            continue
        chosen.append(cause.fix)
        if len(chosen) == limit:
            break
    return fixes.combine(chosen) if chosen else None
