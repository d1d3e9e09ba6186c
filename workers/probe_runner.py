"""Run a diagnosis' probe plan with successive halving, and write the verdict back.

Plain Python over the job store; the Celery task only calls `run_diagnosis`. Every finished
training is stored under a key (probe|seed|rung) first, so a redelivered task reuses it
instead of training (and reporting) it twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from service.analysis.architecture import Architecture, describe
from service.analysis.evidence import Context
from service.analysis.labels import with_audit
from service.analysis.patch import patched
from service.analysis.probes import LABEL_AUDIT, Outcome, Probe, plan
from service.analysis.report import build_context
from service.analysis.verdict import (
    MIN_STEPS,
    ProbeSetting,
    Timing,
    conclude,
    first_rung_steps,
    keep,
    lr_range_probe,
    outcome,
    protect,
    survivors,
    weigh,
    within_budget,
)
from service.errors import ServiceUnavailable
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.model import TRANSLATED
from service.schemas.report import Report
from service.schemas.run import RunSpec
from service.settings import Settings
from service.store import Store
from workers.celery_app import DELIVER_WEBHOOK, app
from workers.data import ProbeData, from_sample, stand_in, without_rows
from workers.train import TrainResult, lr_range_test, train

log = logging.getLogger(__name__)
RUNGS = 3  # rung r trains 2^max(0, r-1) × S0 more steps: S0, 2·S0, 4·S0 in all
MAX_PASSES = 8  # epochs over the sample that the longest probe may take


class Canceled(Exception):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat()


def finish(store: Store, diagnosis_id: str, changes: dict[str, Any], settings: Settings) -> None:
    """Write the outcome, then queue the webhook to the caller's callback_url, if it gave one."""
    doc = store.update_diagnosis(diagnosis_id, changes | {"updated_at": _now()})
    request = store.get_request(diagnosis_id) or {}
    if doc is not None and request.get("callback_url"):
        # Its own task, with retries that survive restarts: never sleeps in this training slot.
        app.send_task(DELIVER_WEBHOOK, args=[diagnosis_id])


def fail(store: Store, diagnosis_id: str, reason: str, settings: Settings) -> None:
    finish(store, diagnosis_id, {"status": "failed", "error": reason}, settings)


@dataclass
class Session:
    """One diagnosis' probing: its store, plan, data and what has been measured so far."""

    store: Store
    diagnosis_id: str
    settings: Settings
    request: DiagnosisRequest
    ctx: Context  # the static analysis' context, rebuilt once: the plan and verdict read it
    data: ProbeData
    seeds: int
    budget: float
    measured: dict[str, dict[str, Any]]  # stored results by probe|seed|rung (a redelivery's)
    done: int = 0
    total: int = 0
    weights: dict[tuple[str, int], Any] = field(default_factory=dict)
    runs: dict[str, tuple[RunSpec, Architecture]] = field(default_factory=dict)
    last_check: float = 0.0
    canceled: bool = False
    epoch_steps: int | None = None  # steps standing for one of the run's epochs in a probe
    halving: bool = True  # False: every probe trains the full 4·S0 (the benchmark's reference)
    eval_every: int = 10  # steps per curve point, the same in every rung so curves join up
    sample: tuple[np.ndarray, np.ndarray] | None = None  # the user's upload, as loaded
    data_of: dict[str, ProbeData] = field(default_factory=dict)  # probes with their own data

    def should_stop(self) -> bool:
        # Throttled: one store read per half second is enough to stop within one window.
        now = time.monotonic()
        if now - self.last_check > 0.5:
            self.last_check = now
            doc = self.store.get_diagnosis(self.diagnosis_id)
            self.canceled = doc is None or doc.status == "canceled"
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

    def run_of(self, probe: Probe) -> tuple[RunSpec, Architecture]:
        """The probe's run and its model's architecture, made once per probe. A probe that
        changes the model has a new model, described here; any other keeps the run's own."""
        if probe.name not in self.runs:
            assert self.ctx.arch is not None  # `_session` refuses a run without a model
            run, arch = self.request.run, self.ctx.arch
            if probe.change:
                run = patched(run, probe.change)
            if "model" in probe.change:
                assert run.model is not None and run.model.layers is not None
                assert run.model.input_shape is not None
                arch = describe(run.model.input_shape, run.model.layers)
            self.runs[probe.name] = (run, arch)
        return self.runs[probe.name]

    def data_for(self, probe: Probe) -> ProbeData:
        """What the probe trains on: the sample without the rows its run drops (a label fix's
        `data.drop_examples`, e.g. the combined fix or `clean_labels`), else the session's."""
        if probe.name not in self.data_of:
            run, _ = self.run_of(probe)
            drop = run.data.drop_examples if run.data else None
            own = self.request.run.data.drop_examples if self.request.run.data else None
            if self.sample is None or not drop or drop == own:
                return self.data
            x, y = self.sample
            self.data_of[probe.name] = from_sample(
                *without_rows(x, y, drop), cap=self.settings.probe_max_examples
            )
        return self.data_of[probe.name]

    def measure(self, probe: Probe, seed: int, rung: int, steps: int, start: int) -> dict[str, Any]:
        """Train (or recall) one probe for one seed up to `start + steps` steps."""
        key = f"{probe.name}|{seed}|{rung}"
        stored = self.measured.get(key)
        if stored is not None:  # measured before a redelivery: reuse, never train twice
            self.done += 1
            return stored
        if self.should_stop():
            raise Canceled
        self.progress(probe.name)
        weights = self.weights.get((probe.name, seed)) if start else None
        run, arch = self.run_of(probe)
        result: TrainResult = train(
            run,
            self.data_for(probe),
            steps if weights is not None else start + steps,
            seed,
            eval_every=self.eval_every,
            should_stop=self.should_stop,
            param_budget=self.settings.param_budget,
            initial_weights=weights,
            start_step=start if weights is not None else 0,
            keep_weights=True,
            schedule_epoch_steps=self.epoch_steps,
            arch=arch,
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
        self.measured[key] = doc
        self.done += 1
        return doc


def run_diagnosis(
    store: Store, diagnosis_id: str, settings: Settings, *, halving: bool = True
) -> None:
    doc = store.get_diagnosis(diagnosis_id)
    if doc is None or doc.status not in ("queued", "running"):
        return  # deleted, canceled, or a redelivery of a finished task
    try:
        # Stored as validated at POST, Keras JSON already translated to a layer list.
        request = DiagnosisRequest.model_validate(
            store.get_request(diagnosis_id), context=TRANSLATED
        )
        session = _session(store, diagnosis_id, settings, request)
        session.halving = halving
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        log.exception("diagnosis %s cannot start", diagnosis_id)
        fail(store, diagnosis_id, f"probes cannot start: {exc}", settings)
        return
    store.update_diagnosis(diagnosis_id, {"status": "running", "updated_at": _now()})
    try:
        assert doc.report is not None  # every diagnosis is created with its static report
        report = _probe(session, doc.report)
    except Canceled:
        return
    except (SoftTimeLimitExceeded, ServiceUnavailable):
        raise  # the task handles both: a time-limit failure, a wait for the store
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
    ctx = build_context(request, store.get_dataset(dataset_id) if dataset_id else None)
    head = ctx.arch.output_units if ctx.arch and ctx.arch.output_units > 1 else None
    classes = (run.data.num_classes if run.data else None) or head
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
        sample = (x, y)
        if run.data and run.data.drop_examples:  # a fixed run: the user dropped these rows
            x, y = without_rows(x, y, run.data.drop_examples)
        data = from_sample(x, y, cap=settings.probe_max_examples)
    else:
        lo = run.data.input_min if run.data and run.data.input_min is not None else 0.0
        hi = run.data.input_max if run.data and run.data.input_max is not None else 1.0
        data = stand_in(run.model.input_shape, classes or 10, value_range=(lo, hi))
        sample = None
    return Session(
        store,
        diagnosis_id,
        settings,
        request,
        ctx,
        data,
        seeds=request.probes.seeds or settings.probe_seeds,
        budget=request.probes.budget_seconds or settings.probe_budget_seconds_default,
        sample=sample,
        # Read once: this session's own results are remembered as they are stored.
        measured=store.probe_results(diagnosis_id),
    )


def _probe(s: Session, static: Report) -> Report:
    started = time.monotonic()
    ctx = s.ctx
    has_sample = s.data.source == "sample"
    planned = plan(ctx, static)
    if s.sample is not None and any(p.name == LABEL_AUDIT for p in planned):
        ctx, static, planned = _audit_labels(s, ctx, static)
    skipped = [p for p in planned if p.needs_sample and not has_sample]
    probes = [
        p for p in planned if p not in skipped and p.name not in ("lr_range_test", LABEL_AUDIT)
    ]
    lr_test = (
        _lr_probe(s, ctx.lr.learning_rate if ctx.lr else None)
        if any(p.name == "lr_range_test" for p in planned)
        else None
    )
    if lr_test is not None:
        probes.append(lr_test)
    protected = protect(probes, static)
    timing, most = _timing(s)
    # What is left of the budget (15% kept for storing and the report) after the audit, the
    # LR sweep and the timing run.
    left = 0.85 * s.budget - (time.monotonic() - started)
    probes, dropped = within_budget(probes, protected, static, left, s.seeds, timing)
    s0 = first_rung_steps(len(probes), len(protected), s.seeds, left, timing, most)
    # The longest probes (4·S0 steps) stand for the run's whole length: schedules in epochs
    # are scaled onto them ("halve every 10 epochs" of a 40-epoch run: every 1/4 of a probe).
    s.epoch_steps = max(1, 4 * s0 // (s.request.run.epochs or 20))
    s.eval_every = max(1, s0 // 5)
    rungs = _successive_halving(s, probes, s0, ctx.chance, protected)
    findings = weigh(rungs, ctx.chance, ctx.health, static.causes, s.request.run)
    combined = (
        _outcome(s, findings.combined_probe, RUNGS, findings.baseline.steps, 0)
        if findings.combined_probe is not None
        else None
    )
    setting = ProbeSetting(s.seeds, s.data.source, len(s.data.y_train), s.data.note, s0)
    return conclude(static, findings, ctx.chance, combined, skipped, setting, dropped)


def _audit_labels(s: Session, ctx: Context, static: Report) -> tuple[Context, Report, list[Probe]]:
    """The plan's label_audit step: audit the sample, fold the audit into the report, plan
    again (a `clean_labels` probe drops the suspects: `Session.data_for` trains it without)."""
    from workers.label_audit import audit_upload

    assert s.sample is not None
    x, y = s.sample
    s.progress(LABEL_AUDIT)
    found = audit_upload(x, y, ctx.num_classes, s.settings.probe_max_examples)
    ctx = replace(ctx, label_audit=found)
    static = with_audit(static, ctx)
    return ctx, static, plan(ctx, static)


def _lr_probe(s: Session, lr: float | None) -> Probe | None:
    """The LR range test's suggestion, as a probe of whichever LR cause it points to."""
    if lr is None:
        return None
    run, arch = s.run_of(Probe("baseline", "", {}))
    sweep = lr_range_test(run, s.data, seed=0, arch=arch)
    return lr_range_probe(lr, float(sweep["suggested_lr"]))


def _timing(s: Session) -> tuple[Timing, int]:
    """One short baseline training on this worker: seconds per step and per training; and the
    most steps a first rung needs (the longest probe sees the sample MAX_PASSES times)."""
    t0 = time.monotonic()
    run, arch = s.run_of(Probe("baseline", "", {}))
    timing = train(
        run, s.data, 20, 0, eval_every=10, param_budget=s.settings.param_budget, arch=arch
    )
    per_step = max(timing.seconds / 20, 1e-4)
    overhead = max(0.0, (time.monotonic() - t0) - timing.seconds) + 0.3
    batch = min(s.request.run.batch_size or 32, len(s.data.y_train))
    most = max(MIN_STEPS, MAX_PASSES * len(s.data.y_train) // (4 * batch))
    return Timing(per_step, overhead), most


def _successive_halving(
    s: Session, probes: list[Probe], s0: int, chance: float | None, protected: set[str]
) -> dict[str, list[Outcome]]:
    """Outcomes per rung: every probe for S0 steps, then the protected ones and the best third
    for S0 more, then those again for 2·S0 more (4·S0 in all)."""
    rungs: dict[str, list[Outcome]] = {}
    alive = list(probes)
    baseline = probes[0]
    start = 0
    s.total = s.seeds * (len(probes) + 2 * survivors(len(probes), len(protected)) + 1)
    for rung in range(RUNGS):
        steps = s0 * (2 ** max(0, rung - 1))
        results = {p.name: _outcome(s, p, rung, steps, start) for p in alive}
        for name, out in results.items():
            rungs.setdefault(name, []).append(out)
        start += steps
        if s.halving:
            alive = keep(alive, results, baseline, protected, chance)
    return rungs


def _outcome(s: Session, probe: Probe, rung: int, steps: int, start: int) -> Outcome:
    return outcome(probe, [s.measure(probe, seed, rung, steps, start) for seed in range(s.seeds)])
