"""The probes' verdict: which probes go on after a rung, and what the finished probes prove.

Pure logic over measured losses (`Outcome`s); the worker trains what `plan` and `keep` say and
hands the curves back here. `weigh` judges every probe against its baseline; if the confirmed
changes together need a check, the worker trains `Findings.combined` once and `conclude`
writes the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from service.analysis.probes import (
    LR_RANGE_PROBE,
    Judgement,
    Outcome,
    Probe,
    combined_fix,
    fix_effect,
    judge,
    reproduced,
    revise,
)
from service.analysis.report import CREDIBLE
from service.schemas.report import Cause, Fix, ProbeRun, Report
from service.schemas.run import RunSpec

KEEP = 3  # after each rung the best 1/KEEP of the unprotected probes go on
PROTECT = 0.3  # static confidence above which a cause's probes always go on
# `Context.health` at or above which the user's own, full-length run trains convincingly: half
# way from 0.25·ln C (or a loss that barely fell) to zero loss.
TRAINS_WELL = 0.5


@dataclass(frozen=True)
class ProbeSetting:
    """Where the probes trained, for the report's note."""

    seeds: int
    data_source: str  # "sample" (the user's) or "stand-in"
    train_examples: int
    data_note: str | None
    shortest_steps: int  # S0: the first rung's steps; the longest probe trains 4·S0


def protect(probes: list[Probe], static: Report) -> set[str]:
    """Probes of causes the static pass already suspects: they survive every rung, because
    their effect may show late (a decay schedule acts in the run's second half), and the
    priors matter."""
    suspects = {c.id for c in static.causes if c.confidence >= PROTECT}
    return {p.name for p in probes if p.tests in suspects}


MIN_STEPS = 20  # the fewest steps a probe trains in the first rung


@dataclass(frozen=True)
class Timing:
    """What one short training cost on this worker: seconds per step and per training."""

    per_step: float
    overhead: float  # model build, compile and tracing: paid once per training


def plan_cost(n: int, protected: int, seeds: int, s0: int, timing: Timing) -> float:
    """Seconds to train `n` probes by successive halving with S0 = `s0`, plus the combined.

    Rung 0 trains all n for S0, rung 1 the survivors m for S0, rung 2 m for 2·S0, the combined
    probe 4·S0: n + 3m + 4 S0-units of steps in n + 2m + 1 trainings, per seed."""
    m = survivors(n, protected)
    units = n + 3 * m + 4
    trainings = n + 2 * m + 1
    return seeds * (trainings * timing.overhead + units * s0 * timing.per_step)


def within_budget(
    probes: list[Probe],
    protected: set[str],
    static: Report,
    seconds: float,
    seeds: int,
    timing: Timing,
) -> tuple[list[Probe], list[Probe]]:
    """The probes that fit `seconds` at the shortest length, and those dropped.

    The baseline and the probes of suspected causes always run; the others go in order of
    their cause's static confidence, so a small budget tests the likeliest causes first."""
    confidence: dict[str, float] = {c.id: c.confidence for c in static.causes}
    fixed = [p for p in probes if p is probes[0] or p.name in protected]
    optional = sorted(
        (p for p in probes if p not in fixed), key=lambda p: -confidence.get(p.tests, 0.0)
    )
    k = len(optional)
    while k > 0 and (plan_cost(len(fixed) + k, len(protected), seeds, MIN_STEPS, timing) > seconds):
        k -= 1
    kept = {p.name for p in fixed + optional[:k]}
    return [p for p in probes if p.name in kept], [p for p in probes if p.name not in kept]


def first_rung_steps(
    n: int, protected: int, seeds: int, seconds: float, timing: Timing, most: int
) -> int:
    """S0: the first rung's steps, sized so the plan fills `seconds` (at least MIN_STEPS, at
    most `most`)."""
    fixed = plan_cost(n, protected, seeds, 0, timing)
    per_s0 = plan_cost(n, protected, seeds, 1, timing) - fixed
    return max(MIN_STEPS, min(int((seconds - fixed) / per_s0), most))


def lr_range_probe(lr: float, suggested: float) -> Probe | None:
    """The LR range test's suggestion as a probe of whichever LR cause it points to; None
    when it is no suggestion or within 3× of the run's own rate."""
    if not math.isfinite(suggested) or suggested <= 0 or 1 / 3 < suggested / lr < 3:
        return None
    cause = "learning_rate_too_high" if suggested < lr else "learning_rate_too_low"
    return Probe(LR_RANGE_PROBE, cause, {"optimizer": {"learning_rate": float(f"{suggested:.2g}")}})


def survivors(n: int, protected: int) -> int:
    """Probes (baseline included) that go on after a rung: the protected and the best third."""
    return min(n, 1 + protected + max(1, math.ceil((n - 1 - protected) / KEEP)))


def keep(
    alive: list[Probe],
    results: dict[str, Outcome],
    baseline: Probe,
    protected: set[str],
    chance: float | None,
) -> list[Probe]:
    """The probes for the next rung: the baseline, the protected, then the best third."""

    def gain(p: Probe) -> float:
        j = judge(results[baseline.name], results[p.name], chance)
        return j.improvement if j.improvement is not None else -math.inf

    others = sorted(
        (p for p in alive if p is not baseline and p.name not in protected), key=gain, reverse=True
    )
    kept = max(1, math.ceil(len(others) / KEEP))
    return [baseline, *(p for p in alive if p.name in protected), *others[:kept]]


def mean_curve(curves: list[list[float | None]]) -> list[float | None]:
    """The seeds' mean per curve point; None where any seed's point is missing or non-finite."""
    out: list[float | None] = []
    for points in zip(*curves, strict=False):
        finite = [p for p in points if p is not None and math.isfinite(p)]
        out.append(round(sum(finite) / len(finite), 5) if len(finite) == len(points) else None)
    return out


def outcome(probe: Probe, measured: list[dict[str, Any]]) -> Outcome:
    """One probe's outcome from its stored measurements, one per seed."""
    return Outcome(
        probe,
        [_finite(m["train_loss"]) for m in measured],
        [_finite(m["val_loss"]) for m in measured],
        mean_curve([m["curve"] for m in measured]),
        measured[0]["device"],
        measured[0]["steps"],
    )


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class Findings:
    """Every probe judged against the baseline of the same length."""

    baseline: Outcome  # the longest baseline
    compared: dict[str, tuple[Outcome, Outcome]]  # probe → (its baseline, its last outcome)
    judgements: list[Judgement]
    finals: dict[str, Outcome]  # each probe's last outcome, its curve across all rungs
    bad: bool  # the run is in trouble: probe gains count as evidence of a fault
    combined: Fix | None  # the confirmed causes' recommended fixes as one fix (None: none)

    @property
    def combined_probe(self) -> Probe | None:
        """The recommended fix as one probe, when the run is in trouble and there is one."""
        if self.combined is None or not self.bad:
            return None
        return Probe("combined", "", self.combined.patch)


def weigh(
    rungs: dict[str, list[Outcome]],
    chance: float | None,
    health: float,
    causes: list[Cause],
    run: RunSpec,
) -> Findings:
    """Judge each probe's last rung against the baseline's same rung.

    `health`: how convincingly the user's own run trains (`Context.health`). Its full-length
    history outranks short probes: a run that trains well is not made a problem by a change
    that merely trains it faster. `causes` (the static report's, with their recommended fixes)
    and `run` give the fix that the combined probe verifies.
    """
    baselines = rungs["baseline"]
    compared = {
        name: (baselines[len(outs) - 1], outs[-1])
        for name, outs in rungs.items()
        if name != "baseline"
    }
    # The lowest loss any probe reached, per metric: a confirmed fix must come close to it.
    best = {
        m: min(
            (
                v
                for _, o in compared.values()
                if o.probe.metric == m
                for v in [o.mean(m)]
                if v is not None
            ),
            default=None,
        )
        for m in ("train", "val")
    }
    judgements = [
        judge(base, out, chance, best[out.probe.metric]) for base, out in compared.values()
    ]
    # A probe's curve runs across its rungs (each rung continued the last one's weights).
    finals = {
        name: replace(outs[-1], curve=[p for o in outs for p in o.curve])
        for name, outs in rungs.items()
    }
    return Findings(
        baseline=baselines[-1],
        compared=compared,
        judgements=judgements,
        finals=finals,
        bad=reproduced(baselines[-1], chance) and health < TRAINS_WELL,
        combined=combined_fix(causes, judgements, run, _measured_lr(rungs)),
    )


def _measured_lr(rungs: dict[str, list[Outcome]]) -> float | None:
    """The rate the LR range test's probe trained with, when it ran."""
    outs = rungs.get(LR_RANGE_PROBE)
    return float(outs[-1].probe.change["optimizer"]["learning_rate"]) if outs else None


def conclude(
    static: Report,
    findings: Findings,
    chance: float | None,
    combined: Outcome | None,
    skipped: list[Probe],
    setting: ProbeSetting,
    dropped: Sequence[Probe] = (),
) -> Report:
    """The static report with the probes' evidence folded in: causes, summary, notes, verdict.

    `combined`: the outcome of training `findings.combined_probe` (when there was one)."""
    seeds = setting.seeds
    runs = [probe_run(o, seeds) for o in findings.finals.values()]
    effect = None
    if combined is not None:
        runs.append(probe_run(combined, seeds))
        judged = judge(findings.baseline, combined, chance)
        effect = fix_effect(findings.baseline, combined, judged, seeds)
    runs += _not_run(
        skipped, "not_applicable", "needs your data sample: probes ran on stand-in data"
    )
    runs += _not_run(
        dropped,
        "skipped",
        "left out to fit budget_seconds: the probes of likelier causes ran first",
    )
    causes = revise(static, findings.judgements, findings.bad, findings.compared, seeds)
    verified = effect is not None and effect.confirmed
    if findings.combined and verified and causes and causes[0].probe and causes[0].probe.confirmed:
        # The recommended fix is what the combined probe trained; it carries the measurement.
        fix = findings.combined.model_copy(update={"verified": effect})
        causes[0] = causes[0].model_copy(update={"fix": fix})
    s0 = setting.shortest_steps
    notes = [
        *static.notes,
        f"Probes: {len(runs)} configurations × {seeds} seeds on {setting.data_source} "
        f"({setting.train_examples} training examples), {s0}–{4 * s0} steps each.",
    ]
    if setting.data_note:
        notes.append(setting.data_note)
    if dropped:
        notes.append(
            f"The probe budget fitted {len(findings.finals)} of "
            f"{len(findings.finals) + len(dropped)} configurations; "
            f"a larger probes.budget_seconds also tries {', '.join(p.name for p in dropped)}."
        )
    if not findings.bad:
        notes.append(
            "Your run (or its replayed baseline) trains well, so probe improvements were not "
            "taken as evidence of a fault."
        )
    summary = static.summary
    confirmed = [c for c in causes if c.probe and c.probe.confirmed]
    if confirmed:
        c = confirmed[0]
        assert c.probe is not None
        summary += (
            f" Probe {c.probe.name} confirmed {c.id.replace('_', ' ')}: loss "
            f"{c.probe.baseline_loss} → {c.probe.probe_loss} ({seeds} seeds, spread "
            f"{c.probe.spread})."
        )
    credible = any(c.confidence >= CREDIBLE for c in causes)
    return static.model_copy(
        update={
            "causes": causes,
            "probes": runs,
            "notes": notes,
            "summary": summary,
            "verdict": "problem" if credible or static.verdict == "problem" else "healthy",
        }
    )


def _not_run(
    probes: Sequence[Probe], status: Literal["skipped", "not_applicable"], detail: str
) -> list[ProbeRun]:
    return [ProbeRun(name=p.name, change=p.change, status=status, detail=detail) for p in probes]


def probe_run(out: Outcome, seeds: int) -> ProbeRun:
    """One probe as the report shows it."""
    return ProbeRun(
        name=out.probe.name,
        change=out.probe.change,
        status="succeeded" if out.finite() else "failed",
        device=out.device,
        seeds=seeds,
        steps=out.steps,
        final_loss=out.mean(),
        spread=out.spread(),
        curve=out.curve,
        detail=None if out.finite() else "loss became non-finite",
    )
