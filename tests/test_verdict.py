"""The probes' verdict in the analysis core: survivors, curves, judging and the final report,
all on measured losses, without TensorFlow."""

from __future__ import annotations

import math
from typing import Any

from service.analysis.probes import Outcome, Probe
from service.analysis.report import CREDIBLE, static_report
from service.analysis.verdict import (
    MIN_STEPS,
    PROTECT,
    TRAINS_WELL,
    ProbeSetting,
    Timing,
    conclude,
    first_rung_steps,
    keep,
    lr_range_probe,
    mean_curve,
    outcome,
    plan_cost,
    protect,
    survivors,
    weigh,
    within_budget,
)
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import Report
from tests.runs import LN10, body, cnn, healthy_curve, run, stuck_curve

BASELINE = Probe("baseline", "", {})
HE = Probe("he", "poor_weight_initialization", {"model": {"x": 1}})
LR = Probe("lr_x0.1", "learning_rate_too_high", {"optimizer": {"learning_rate": 0.001}})
WIDE = Probe("width_x2", "insufficient_capacity", {"model": {"w": 2}})
SETTING = ProbeSetting(2, "sample", 512, None, 40)


def _out(probe: Probe, losses: list[float | None], curve: list[float | None]) -> Outcome:
    return Outcome(probe, losses, [], curve, "CPU:0", 40)


STUCK = DiagnosisRequest.model_validate(
    body(run(model=cnn(init={"name": "random_normal", "stddev": 1.0})), stuck_curve(first=40))
)


def _stuck_static() -> Report:
    return static_report(STUCK, None)


def _init_fix_patch(static: Report) -> dict[str, Any]:
    return next(c.fix.patch for c in static.causes if c.id == "poor_weight_initialization")


def test_after_a_rung_the_baseline_the_protected_and_the_best_third_go_on() -> None:
    assert survivors(10, 0) == 1 + 3  # baseline + ceil(9 / 3)
    assert survivors(10, 2) == 1 + 2 + 3  # baseline + protected + ceil(7 / 3)
    assert survivors(2, 5) == 2  # never more than there are
    results = {
        "baseline": _out(BASELINE, [2.3, 2.3], []),
        "he": _out(HE, [0.6, 0.62], []),
        "lr_x0.1": _out(LR, [2.2, 2.25], []),
        "width_x2": _out(WIDE, [2.4, 2.4], []),
    }
    kept = keep([BASELINE, HE, LR, WIDE], results, BASELINE, {"width_x2"}, LN10)
    assert [p.name for p in kept] == ["baseline", "width_x2", "he"]


def test_mean_curve_averages_seeds_and_leaves_a_gap_where_any_seed_is_non_finite() -> None:
    assert mean_curve([[1.0, 2.0, 3.0], [3.0, None, math.inf]]) == [2.0, None, None]


def test_an_outcome_is_read_from_stored_measurements_one_per_seed() -> None:
    measured: list[dict[str, Any]] = [
        {"train_loss": 0.5, "val_loss": 0.7, "curve": [1.0, 0.5], "device": "GPU:0", "steps": 80},
        {
            "train_loss": math.nan,
            "val_loss": None,
            "curve": [1.2, None],
            "device": "GPU:0",
            "steps": 80,
        },
    ]
    out = outcome(HE, measured)
    assert out.losses == [0.5, None] and out.val_losses == [0.7, None]
    assert out.curve == [1.1, None] and out.device == "GPU:0" and out.steps == 80


def test_a_probe_is_judged_against_the_baseline_of_its_own_last_rung() -> None:
    rungs = {
        "baseline": [_out(BASELINE, [2.3, 2.3], [2.3]), _out(BASELINE, [2.2, 2.2], [2.2])],
        "he": [_out(HE, [1.0, 1.0], [1.0]), _out(HE, [0.4, 0.42], [0.4])],
        "lr_x0.1": [_out(LR, [2.25, 2.3], [2.3])],  # dropped after rung 0
    }
    static = _stuck_static()
    findings = weigh(rungs, LN10, 0.0, static.causes, STUCK.run)
    base_of = {name: pair[0] for name, pair in findings.compared.items()}
    assert base_of["he"] is rungs["baseline"][1] and base_of["lr_x0.1"] is rungs["baseline"][0]
    assert findings.finals["he"].curve == [1.0, 0.4]  # its curve runs across its rungs
    # The combined probe trains the confirmed cause's recommended fix, not the probe's change.
    assert findings.bad and findings.combined is not None
    assert findings.combined.patch == _init_fix_patch(static)
    assert findings.combined_probe is not None
    assert findings.combined_probe.change == findings.combined.patch


def test_a_user_run_that_trains_well_outranks_short_probes() -> None:
    rungs = {
        "baseline": [_out(BASELINE, [2.3, 2.3], [2.3])],
        "he": [_out(HE, [0.4, 0.42], [0.4])],
    }
    findings = weigh(rungs, LN10, TRAINS_WELL, _stuck_static().causes, STUCK.run)
    assert not findings.bad and findings.combined_probe is None


def test_a_verified_combined_fix_becomes_the_top_fix_with_its_measured_effect() -> None:
    static = _stuck_static()
    rungs = {
        "baseline": [_out(BASELINE, [2.3, 2.3], [2.3])],
        "he": [_out(HE, [0.4, 0.42], [0.4])],
        "lr_x0.1": [_out(LR, [2.3, 2.31], [2.3])],
    }
    findings = weigh(rungs, LN10, 0.0, static.causes, STUCK.run)
    assert findings.combined_probe is not None
    combined = _out(findings.combined_probe, [0.3, 0.31], [0.3])
    skipped = [Probe("rescale", "unnormalized_inputs", {}, needs_sample=True)]
    report = conclude(static, findings, LN10, combined, skipped, SETTING)
    top = report.causes[0]
    assert top.id == "poor_weight_initialization" and top.confidence >= CREDIBLE
    assert top.fix.patch == _init_fix_patch(static)
    effect = top.fix.verified
    assert effect is not None and effect.confirmed
    assert effect.baseline_loss == 2.3 and effect.probe_loss == 0.305 and effect.seeds == 2
    assert report.verdict == "problem"
    assert [p.name for p in report.probes] == ["baseline", "he", "lr_x0.1", "combined", "rescale"]
    assert report.probes[-1].status == "not_applicable"
    assert "confirmed poor weight initialization" in report.summary
    assert (
        "Probes: 5 configurations × 2 seeds on sample (512 training examples), 40–160"
        in (report.notes[-1])
    )


def test_probes_on_a_healthy_run_leave_it_healthy() -> None:
    request = DiagnosisRequest.model_validate(body(run(model=cnn()), healthy_curve()))
    static = static_report(request, None)
    assert static.verdict == "healthy"
    rungs = {
        "baseline": [_out(BASELINE, [0.15, 0.15], [0.15])],
        "lr_x0.1": [_out(LR, [0.14, 0.15], [0.14])],
    }
    findings = weigh(rungs, LN10, 0.9, static.causes, request.run)
    report = conclude(static, findings, LN10, None, [], SETTING)
    assert report.verdict == "healthy"
    assert all(c.confidence < CREDIBLE for c in report.causes)
    assert any("trains well" in note for note in report.notes)
    assert report.probes[1].status == "succeeded" and report.probes[1].seeds == 2


def test_probes_of_causes_the_static_pass_suspects_are_protected() -> None:
    static = _stuck_static()
    suspected = {c.id for c in static.causes if c.confidence >= PROTECT}
    assert "poor_weight_initialization" in suspected
    protected = protect([BASELINE, HE, LR, WIDE], static)
    assert "he" in protected and "baseline" not in protected
    assert protected == {p.name for p in (HE, LR, WIDE) if p.tests in suspected}


def test_the_lr_range_test_suggests_a_probe_only_beyond_3x_of_the_runs_rate() -> None:
    lower = lr_range_probe(0.1, 0.0123)
    assert lower is not None and lower.tests == "learning_rate_too_high"
    assert lower.change == {"optimizer": {"learning_rate": 0.012}}
    higher = lr_range_probe(0.001, 0.05)
    assert higher is not None and higher.tests == "learning_rate_too_low"
    assert lr_range_probe(0.01, 0.02) is None  # within 3×: the run's own rate is fine
    assert lr_range_probe(0.01, math.nan) is None


def test_a_small_budget_keeps_the_baseline_the_suspects_and_the_likeliest_causes() -> None:
    base = _stuck_static()
    top = base.causes[0]
    confidences = {"poor_weight_initialization": 0.9, "learning_rate_too_high": 0.2}
    confidences |= {"insufficient_capacity": 0.1}
    causes = [top.model_copy(update={"id": c, "confidence": p}) for c, p in confidences.items()]
    static = base.model_copy(update={"causes": causes})
    unlikely = Probe("batch_div4", "batch_size_too_large", {})
    probes = [BASELINE, WIDE, unlikely, HE, LR]
    protected = protect(probes, static)
    timing = Timing(per_step=0.01, overhead=1.0)
    # Everything fits a generous budget, in plan order.
    assert within_budget(probes, protected, static, 1e4, 2, timing) == (probes, [])
    # The fewest that fit: the baseline and the protected probes, whatever the budget.
    kept, dropped = within_budget(probes, protected, static, 0.0, 2, timing)
    assert kept == [p for p in probes if p is BASELINE or p.name in protected]
    assert {p.name for p in dropped} == {p.name for p in probes} - {p.name for p in kept}
    # In between, the likelier cause's probe is kept before the less likely one.
    fixed = len(kept)
    seconds = plan_cost(fixed + 1, len(protected), 2, MIN_STEPS, timing)
    kept, _ = within_budget(probes, protected, static, seconds, 2, timing)
    assert protected == {"he"}
    assert kept == [BASELINE, HE, LR]


def test_the_first_rung_fills_what_the_budget_leaves_and_no_more() -> None:
    timing = Timing(per_step=0.01, overhead=1.0)
    s0 = first_rung_steps(6, 1, 2, 300.0, timing, most=10_000)
    assert plan_cost(6, 1, 2, s0, timing) <= 300.0 < plan_cost(6, 1, 2, s0 + 1, timing)
    assert first_rung_steps(6, 1, 2, 300.0, timing, most=50) == 50
    assert first_rung_steps(6, 1, 2, 1.0, timing, most=10_000) == MIN_STEPS


def test_probes_left_out_by_the_budget_are_reported_as_skipped_with_a_note() -> None:
    static = _stuck_static()
    patch = _init_fix_patch(static)
    init = Probe("initializer_by_activation", "poor_weight_initialization", patch)
    curve: list[float | None] = [2.3, 2.3, 2.3]
    rungs = {
        "baseline": [_out(BASELINE, [2.3, 2.3], curve)],
        init.name: [_out(init, [0.5, 0.52], [2.3, 1.0, 0.5])],
    }
    findings = weigh(rungs, LN10, 0.0, static.causes, STUCK.run)
    report = conclude(static, findings, LN10, None, [], SETTING, [WIDE])
    skipped = [p for p in report.probes if p.status == "skipped"]
    assert [p.name for p in skipped] == ["width_x2"] and "budget_seconds" in (
        skipped[0].detail or ""
    )
    assert any("fitted 2 of 3 configurations" in n and "width_x2" in n for n in report.notes)
