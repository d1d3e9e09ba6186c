"""Run a diagnosis' probe plan with successive halving, and write the verdict back.

Plain Python over the job store; the Celery task only calls `run_diagnosis`. Every finished
training is stored under a key (probe|seed|rung) first, so a redelivered task reuses it
instead of training (and reporting) it twice.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from service.analysis.patch import apply
from service.analysis.probes import (
    LR_RANGE_PROBE,
    Outcome,
    Probe,
    combined_fix,
    fix_effect,
    judge,
    plan,
    reproduced,
    revise,
)
from service.analysis.report import build_context
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import ProbeRun, Report
from service.schemas.run import RunSpec
from service.settings import Settings
from service.store import Store
from service.webhooks import completion_event, deliver
from workers.data import ProbeData, from_sample, stand_in
from workers.train import TrainResult, lr_range_test, train

log = logging.getLogger(__name__)
RUNGS = 3  # rung r trains 2^max(0, r-1) × S0 more steps: S0, 2·S0, 4·S0 in all
KEEP = 3  # after each rung the best 1/KEEP of the unprotected probes go on
MAX_PASSES = 8  # epochs over the sample that the longest probe may take
PROTECT = 0.3  # static confidence above which a cause's probes always go on


class Canceled(Exception):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat()


def finish(store: Store, diagnosis_id: str, changes: dict[str, Any], settings: Settings) -> None:
    """Write the outcome, then tell the caller's callback_url, if it gave one."""
    doc = store.update_diagnosis(diagnosis_id, changes | {"updated_at": _now()})
    request = store.get_request(diagnosis_id) or {}
    if doc is not None and request.get("callback_url"):
        deliver(request["callback_url"], completion_event(doc), settings)


def fail(store: Store, diagnosis_id: str, reason: str, settings: Settings) -> None:
    finish(store, diagnosis_id, {"status": "failed", "error": reason}, settings)


@dataclass
class Session:
    """One diagnosis' probing: its store, plan, data and what has been measured so far."""

    store: Store
    diagnosis_id: str
    settings: Settings
    request: DiagnosisRequest
    data: ProbeData
    seeds: int
    budget: float
    done: int = 0
    total: int = 0
    weights: dict[tuple[str, int], Any] = field(default_factory=dict)
    last_check: float = 0.0
    canceled: bool = False
    epoch_steps: int | None = None  # steps standing for one of the run's epochs in a probe
    halving: bool = True  # False: every probe trains the full 4·S0 (the benchmark's reference)
    eval_every: int = 10  # steps per curve point, the same in every rung so curves join up

    def should_stop(self) -> bool:
        # Throttled: one store read per half second is enough to stop within one window.
        now = time.monotonic()
        if now - self.last_check > 0.5:
            self.last_check = now
            doc = self.store.get_diagnosis(self.diagnosis_id)
            self.canceled = doc is None or doc["status"] == "canceled"
        return self.canceled

    def progress(self, current: str | None) -> None:
        self.store.update_diagnosis(
            self.diagnosis_id,
            {
                "progress": {
                    "probes_done": self.done,
                    "probes_total": self.total,
                    "current_probe": current,
                },
                "updated_at": _now(),
            },
        )

    def run_of(self, probe: Probe) -> RunSpec:
        base = self.request.run.model_dump(mode="json", exclude_none=True)
        return RunSpec.model_validate(apply(base, probe.change))

    def measure(self, probe: Probe, seed: int, rung: int, steps: int, start: int) -> dict[str, Any]:
        """Train (or recall) one probe for one seed up to `start + steps` steps."""
        key = f"{probe.name}|{seed}|{rung}"
        stored = self.store.probe_results(self.diagnosis_id).get(key)
        if stored is not None:  # measured before a redelivery: reuse, never train twice
            self.done += 1
            return stored
        if self.should_stop():
            raise Canceled
        self.progress(probe.name)
        weights = self.weights.get((probe.name, seed)) if start else None
        result: TrainResult = train(
            self.run_of(probe),
            self.data,
            steps if weights is not None else start + steps,
            seed,
            eval_every=self.eval_every,
            should_stop=self.should_stop,
            param_budget=self.settings.param_budget,
            initial_weights=weights,
            start_step=start if weights is not None else 0,
            keep_weights=True,
            schedule_epoch_steps=self.epoch_steps,
        )
        if result.stopped:
            raise Canceled
        self.weights[(probe.name, seed)] = result.weights
        doc = {
            "train_loss": result.final_loss,
            "val_loss": result.val_loss,
            "curve": result.curve,
            "device": result.device,
            "steps": start + steps,
            "seconds": result.seconds,
            "non_finite": result.non_finite,
        }
        self.store.add_probe_result(self.diagnosis_id, key, doc)
        self.done += 1
        return doc


def run_diagnosis(
    store: Store, diagnosis_id: str, settings: Settings, *, halving: bool = True
) -> None:
    doc = store.get_diagnosis(diagnosis_id)
    if doc is None or doc["status"] not in ("queued", "running"):
        return  # deleted, canceled, or a redelivery of a finished task
    try:
        request = DiagnosisRequest.model_validate(store.get_request(diagnosis_id))
        session = _session(store, diagnosis_id, settings, request)
        session.halving = halving
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        log.exception("diagnosis %s cannot start", diagnosis_id)
        fail(store, diagnosis_id, f"probes cannot start: {exc}", settings)
        return
    store.update_diagnosis(diagnosis_id, {"status": "running", "updated_at": _now()})
    try:
        report = _probe(session, Report.model_validate(doc["report"]))
    except Canceled:
        return
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        # Poison input (NaN data, shapes TF refuses…) fails this diagnosis, not the worker.
        log.exception("diagnosis %s failed", diagnosis_id)
        fail(store, diagnosis_id, f"a probe failed: {type(exc).__name__}: {exc}"[:1000], settings)
        return
    finish(
        store,
        diagnosis_id,
        {
            "status": "succeeded",
            "report": report.model_dump(mode="json"),
            "progress": {
                "probes_done": session.done,
                "probes_total": session.total,
                "current_probe": None,
            },
        },
        settings,
    )


def _session(
    store: Store, diagnosis_id: str, settings: Settings, request: DiagnosisRequest
) -> Session:
    run = request.run
    if run.model is None or run.model.layers is None or run.model.input_shape is None:
        raise ValueError("probes need run.model (Keras JSON or a layer list)")
    dataset_id = run.data.dataset_id if run.data else None
    classes = (run.data.num_classes if run.data else None) or _output_units(run)
    if dataset_id:
        from service.analysis.data import load_sample

        blob = store.get_dataset_blob(dataset_id)
        if blob is None:
            raise ValueError(f"dataset {dataset_id!r} is gone")
        x, y = load_sample(blob, settings.max_dataset_examples, settings.max_dataset_unpacked_bytes)
        if list(x.shape[1:]) != list(run.model.input_shape):
            raise ValueError(
                f"the sample's examples have shape {list(x.shape[1:])} but the "
                f"model takes {list(run.model.input_shape)}"
            )
        if not np.isfinite(x).all():
            raise ValueError("the sample holds NaN or Inf inputs: training on it is meaningless")
        data = from_sample(x, y, cap=settings.probe_max_examples)
    else:
        lo = run.data.input_min if run.data and run.data.input_min is not None else 0.0
        hi = run.data.input_max if run.data and run.data.input_max is not None else 1.0
        data = stand_in(run.model.input_shape, classes or 10, value_range=(lo, hi))
    return Session(
        store,
        diagnosis_id,
        settings,
        request,
        data,
        seeds=request.probes.seeds or settings.probe_seeds,
        budget=request.probes.budget_seconds or settings.probe_budget_seconds_default,
    )


def _output_units(run: RunSpec) -> int | None:
    from service.analysis.report import architecture

    arch = architecture(run)
    return arch.output_units if arch and arch.output_units > 1 else None


def _probe(s: Session, static: Report) -> Report:
    started = time.monotonic()
    ctx = build_context(
        s.request,
        s.store.get_dataset(s.request.run.data.dataset_id)
        if s.request.run.data and s.request.run.data.dataset_id
        else None,
    )
    has_sample = s.data.source == "sample"
    planned = plan(ctx, static)
    skipped = [p for p in planned if p.needs_sample and not has_sample]
    probes = [p for p in planned if p not in skipped and p.name != "lr_range_test"]
    lr_test = (
        _lr_probe(s, ctx.lr.learning_rate if ctx.lr else None)
        if any(p.name == "lr_range_test" for p in planned)
        else None
    )
    if lr_test is not None:
        probes.append(lr_test)
    # Probes of causes the static pass already suspects survive every rung: their effect may
    # show late (a decay schedule acts in the run's second half), and the priors matter.
    suspects = {c.id for c in static.causes if c.confidence >= PROTECT}
    protected = {p.name for p in probes if p.tests in suspects}
    s0 = _first_rung_steps(s, len(probes), len(protected), time.monotonic() - started)
    # The longest probes (4·S0 steps) stand for the run's whole length: schedules in epochs
    # are scaled onto them ("halve every 10 epochs" of a 40-epoch run: every 1/4 of a probe).
    s.epoch_steps = max(1, 4 * s0 // (s.request.run.epochs or 20))
    s.eval_every = max(1, s0 // 5)
    outcomes = _successive_halving(s, probes, s0, ctx.chance, protected)
    # The user's own, full-length history outranks short probes: a run that trains
    # convincingly is not made a problem by a change that trains it faster.
    user_healthy = ctx.health >= 0.5
    return _verdict(s, static, ctx.chance, outcomes, skipped, s0, user_healthy)


def _lr_probe(s: Session, lr: float | None) -> Probe | None:
    """The LR range test's suggestion, as a probe of whichever LR cause it points to."""
    if lr is None:
        return None
    sweep = lr_range_test(s.run_of(Probe("baseline", "", {})), s.data, seed=0)
    suggested = float(sweep["suggested_lr"])
    if not math.isfinite(suggested) or suggested <= 0 or 1 / 3 < suggested / lr < 3:
        return None
    cause = "learning_rate_too_high" if suggested < lr else "learning_rate_too_low"
    return Probe(LR_RANGE_PROBE, cause, {"optimizer": {"learning_rate": float(f"{suggested:.2g}")}})


def _survivors(n: int, protected: int) -> int:
    """Probes (baseline included) that go on after a rung: the protected and the best third."""
    return min(n, 1 + protected + max(1, math.ceil((n - 1 - protected) / KEEP)))


def _first_rung_steps(s: Session, n: int, protected: int, spent: float) -> int:
    """Steps per probe in rung 0 (S0), sized so the whole plan fits the budget."""
    t0 = time.monotonic()
    timing = train(
        s.run_of(Probe("baseline", "", {})),
        s.data,
        20,
        0,
        eval_every=10,
        param_budget=s.settings.param_budget,
    )
    per_step = max(timing.seconds / 20, 1e-4)
    overhead = max(0.0, (time.monotonic() - t0) - timing.seconds) + 0.3
    # Sized for successive halving in both modes, so that the reference mode (every probe at
    # full length) trains the same probe lengths, only more of them.
    m = _survivors(n, protected)
    # In S0 units: rung 0 all n probes, rung 1 m of them, rung 2 m for 2·S0, combined 4·S0.
    units = n + m + 2 * m + 4
    trainings = s.seeds * (n + 2 * m + 1)
    left = 0.85 * s.budget - spent - (time.monotonic() - t0) - overhead * trainings
    # Nor longer than needed: the longest probe sees the sample MAX_PASSES times.
    batch = min(s.request.run.batch_size or 32, len(s.data.y_train))
    most = max(20, MAX_PASSES * len(s.data.y_train) // (4 * batch))
    return max(20, min(int(left / (per_step * s.seeds * units)), most))


def _successive_halving(
    s: Session, probes: list[Probe], s0: int, chance: float | None, protected: set[str]
) -> dict[str, list[Outcome]]:
    """Outcomes per rung: every probe for S0 steps, then the protected ones and the best third
    for S0 more, then those again for 2·S0 more (4·S0 in all)."""
    rungs: dict[str, list[Outcome]] = {}
    alive = list(probes)
    baseline = probes[0]
    start = 0
    s.total = s.seeds * (len(probes) + 2 * _survivors(len(probes), len(protected)) + 1)
    for rung in range(RUNGS):
        steps = s0 * (2 ** max(0, rung - 1))
        results = {p.name: _outcome(s, p, rung, steps, start) for p in alive}
        for name, out in results.items():
            rungs.setdefault(name, []).append(out)
        start += steps
        if s.halving:
            alive = _keep(alive, results, baseline, protected, chance)
    return rungs


def _keep(
    alive: list[Probe],
    results: dict[str, Outcome],
    baseline: Probe,
    protected: set[str],
    chance: float | None,
) -> list[Probe]:
    def gain(p: Probe) -> float:
        j = judge(results[baseline.name], results[p.name], chance)
        return j.improvement if j.improvement is not None else -math.inf

    others = sorted(
        (p for p in alive if p is not baseline and p.name not in protected), key=gain, reverse=True
    )
    keep = max(1, math.ceil(len(others) / KEEP))
    return [baseline, *(p for p in alive if p.name in protected), *others[:keep]]


def _outcome(s: Session, probe: Probe, rung: int, steps: int, start: int) -> Outcome:
    docs = [s.measure(probe, seed, rung, steps, start) for seed in range(s.seeds)]
    return Outcome(
        probe,
        [_finite(d["train_loss"]) for d in docs],
        [_finite(d["val_loss"]) for d in docs],
        _mean_curve([d["curve"] for d in docs]),
        docs[0]["device"],
        docs[0]["steps"],
    )


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _mean_curve(curves: list[list[float | None]]) -> list[float | None]:
    out: list[float | None] = []
    for points in zip(*curves, strict=False):
        finite = [p for p in points if p is not None and math.isfinite(p)]
        out.append(round(sum(finite) / len(finite), 5) if len(finite) == len(points) else None)
    return out


def _verdict(
    s: Session,
    static: Report,
    chance: float | None,
    rungs: dict[str, list[Outcome]],
    skipped: list[Probe],
    s0: int,
    user_healthy: bool,
) -> Report:
    baselines = rungs["baseline"]
    compared = {
        name: (baselines[len(outs) - 1], outs[-1])
        for name, outs in rungs.items()
        if name != "baseline"
    }
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
    bad = reproduced(baselines[-1], chance) and not user_healthy
    # A probe's curve runs across its rungs (each rung continued the last one's weights).
    finals = {
        name: replace(outs[-1], curve=[p for o in outs for p in o.curve])
        for name, outs in rungs.items()
    }
    lr_probe = rungs.get(LR_RANGE_PROBE)
    measured_lr = lr_probe[-1].probe.change["optimizer"]["learning_rate"] if lr_probe else None
    combined = combined_fix(static.causes, judgements, s.request.run, measured_lr)
    runs = [_probe_run(o, s.seeds) for o in finals.values()]
    effect = None
    if combined and bad:
        out = _outcome(s, Probe("combined", "", combined.patch), RUNGS, baselines[-1].steps, 0)
        runs.append(_probe_run(out, s.seeds))
        effect = fix_effect(baselines[-1], out, judge(baselines[-1], out, chance), s.seeds)
    runs += [
        ProbeRun(
            name=p.name,
            change=p.change,
            status="not_applicable",
            detail="needs your data sample: probes ran on stand-in data",
        )
        for p in skipped
    ]
    causes = revise(static, judgements, bad, compared, s.seeds)
    verified = bool(effect and effect.confirmed)
    if combined and verified and causes and causes[0].probe and causes[0].probe.confirmed:
        # The recommended fix is what the combined probe trained; it carries the measurement.
        fix = combined.model_copy(update={"verified": effect})
        causes[0] = causes[0].model_copy(update={"fix": fix})
    notes = [
        *static.notes,
        f"Probes: {len(runs)} configurations × {s.seeds} seeds on {s.data.source} "
        f"({len(s.data.y_train)} training examples), {s0}–{4 * s0} steps each.",
    ]
    if s.data.note:
        notes.append(s.data.note)
    if not bad:
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
            f"{c.probe.baseline_loss} → {c.probe.probe_loss} ({s.seeds} seeds, spread "
            f"{c.probe.spread})."
        )
    credible = any(c.confidence >= 0.5 for c in causes)
    return static.model_copy(
        update={
            "causes": causes,
            "probes": runs,
            "notes": notes,
            "summary": summary,
            "verdict": "problem" if credible or static.verdict == "problem" else "healthy",
        }
    )


def _probe_run(out: Outcome, seeds: int) -> ProbeRun:
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
