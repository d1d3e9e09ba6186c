"""Rules for what users train besides image classifiers: regression heads against their targets,
binary heads, tabular scales, tiny data, healthy runs with oddities, slow straight descents,
and the label audit's place in the plan (pure logic; the real runs are in bench/programs)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from service.analysis.curves import analyze
from service.analysis.probes import CLEAN_LABELS, LABEL_AUDIT, plan
from service.analysis.report import build_context, static_report
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.history import History
from service.schemas.report import LabelAudit, LabelSuspect
from tests.runs import LN10, body, run


def mlp(out_units: int, out_activation: str, extra: list[dict[str, Any]] | None = None) -> dict:
    layers = [
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dense", "units": out_units, "activation": out_activation},
        *(extra or []),
    ]
    return {"input_shape": [10], "layers": layers}


def regression(model: dict, loss: list[float], **data: Any) -> DiagnosisRequest:
    spec = run(model=model, loss="mse", data={"num_examples": 300, **data})
    spec.pop("preprocessing")
    return DiagnosisRequest.model_validate(body(spec, {"loss": loss, "val_loss": loss}))


def top(request: DiagnosisRequest) -> str:
    report = static_report(request, None)
    return report.causes[0].id if report.verdict == "problem" and report.causes else "healthy"


FLAT_MSE = [28000.0 - 10 * i for i in range(30)]  # never below Var(y) = 77² ≈ 5900
DIABETES = {"target_min": 25.0, "target_max": 346.0, "target_mean": 152.0, "target_std": 77.0}


def test_a_sigmoid_head_cannot_reach_regression_targets_beyond_one() -> None:
    request = regression(mlp(1, "sigmoid"), FLAT_MSE, **DIABETES)
    report = static_report(request, None)
    assert report.causes[0].id == "output_loss_mismatch"
    assert "out of reach" in report.causes[0].evidence[0]
    assert report.causes[0].fix.patch["model"]["layers"][-1]["activation"] == "linear"


def test_the_head_is_read_through_a_separate_activation_layer() -> None:
    model = mlp(1, "linear", [{"type": "activation", "activation": "tanh"}])
    assert top(regression(model, FLAT_MSE, **DIABETES)) == "output_loss_mismatch"


def test_without_target_statistics_the_loss_itself_shows_targets_out_of_range() -> None:
    # An MSE above 1 is impossible for targets inside a sigmoid's [0, 1].
    assert top(regression(mlp(1, "sigmoid"), FLAT_MSE)) == "output_loss_mismatch"


def test_a_linear_regression_head_reaching_half_the_variance_is_healthy() -> None:
    loss = [30000 * math.exp(-0.3 * i) + 2500 for i in range(40)]  # ends ≈ 0.43·Var(y)
    assert top(regression(mlp(1, "linear"), loss, **DIABETES)) == "healthy"


def test_a_regression_crawling_far_above_the_variance_is_a_learning_rate_too_low() -> None:
    request = regression(mlp(1, "linear"), FLAT_MSE, **DIABETES)
    assert request.run.optimizer is not None
    request.run.optimizer = request.run.optimizer.model_copy(update={"learning_rate": 1e-4})
    report = static_report(request, None)
    assert "slow_decrease" in {s.id for s in report.symptoms}
    assert top(request) == "learning_rate_too_low"


def test_sgd_steps_grow_with_raw_regression_targets_under_mse() -> None:
    # A constant loss at Var(y) after one step of SGD 0.5 on targets around 150: the MSE's
    # gradient is ≈ 2·RMS(y) ≈ 340× a cross-entropy's, a step far past SGD's usual ceiling.
    stuck = [22000.0] + [6300.0] * 29
    request = regression(mlp(1, "linear"), stuck, **DIABETES)
    assert request.run.optimizer is not None
    request.run.optimizer = request.run.optimizer.model_copy(
        update={"name": "sgd", "learning_rate": 0.5}
    )
    report = static_report(request, None)
    assert report.causes[0].id == "learning_rate_too_high"
    assert "MSE targets" in report.causes[0].evidence[0]
    # The same rate on standardized targets is an ordinary SGD step.
    scaled = regression(
        mlp(1, "linear"),
        [1.0 * math.exp(-0.2 * i) + 0.3 for i in range(30)],
        target_min=-2.0,
        target_max=2.0,
        target_mean=0.0,
        target_std=1.0,
    )
    scaled.run.optimizer = request.run.optimizer
    assert top(scaled) == "healthy"


def test_labels_the_model_fits_but_held_out_examples_never_follow_are_noisy() -> None:
    # Labels shuffled apart from the inputs: training creeps below ln 3, validation never does.
    train = [1.1 - 0.0035 * i for i in range(30)]
    val = [1.13 + 0.004 * i for i in range(30)]
    spec = run(model=mlp(3, "softmax"), batch_size=16)
    spec["data"].update(num_classes=3, num_examples=105)
    request = DiagnosisRequest.model_validate(body(spec, {"loss": train, "val_loss": val}))
    report = static_report(request, None)
    assert report.causes[0].id == "noisy_labels"
    assert "does not carry over" in report.causes[0].evidence[0]


def test_softmax_on_one_unit_is_an_output_mismatch() -> None:
    spec = run(model=mlp(1, "softmax"), loss="binary_crossentropy")
    spec["data"]["num_classes"] = 2
    history = {"loss": [7.6] * 10, "val_loss": [7.7] * 10}
    request = DiagnosisRequest.model_validate(body(spec, history))
    report = static_report(request, None)
    assert report.causes[0].id == "output_loss_mismatch"
    assert "single unit" in report.causes[0].evidence[0]


def test_a_one_unit_head_for_three_classes_is_an_output_mismatch() -> None:
    spec = run(model=mlp(1, "sigmoid"), loss="binary_crossentropy")
    spec["data"]["num_classes"] = 3
    history = {"loss": [0.2 - 0.5 * (i / 30) for i in range(30)]}
    request = DiagnosisRequest.model_validate(body(spec, history))
    assert static_report(request, None).causes[0].id == "output_loss_mismatch"


def test_a_straight_slow_descent_from_chance_is_a_learning_rate_too_low() -> None:
    loss = [LN10 - 0.02 * i for i in range(30)]  # straight, unsaturated, still high
    facts = analyze(History.model_validate({"loss": loss}), LN10, 10)
    assert facts.linear_descent
    saturating = [0.2 + 2.1 * math.exp(-0.3 * i) for i in range(30)]
    assert not analyze(History.model_validate({"loss": saturating}), LN10, 10).linear_descent
    request = DiagnosisRequest.model_validate(body({"data": {"num_classes": 10}}, {"loss": loss}))
    assert top(request) == "learning_rate_too_low"


def test_a_run_that_trains_well_keeps_its_oddities_as_notes() -> None:
    spec = run(batch_size=2)  # a tiny batch is an oddity, not a cause, when the run trains
    loss = [0.05 + 2.2 * math.exp(-0.5 * i) for i in range(20)]
    request = DiagnosisRequest.model_validate(body(spec, {"loss": loss, "val_loss": loss}))
    report = static_report(request, None)
    assert report.verdict == "healthy"
    assert not any(c.id == "batch_size_too_small" for c in report.causes)
    assert any(n.startswith("Oddity") and "batch size too small" in n for n in report.notes)


def test_tiny_data_says_what_cannot_be_told_apart() -> None:
    spec = run()
    spec["data"]["num_examples"] = 20
    report = static_report(DiagnosisRequest.model_validate(body(spec)), None)
    assert any("Only 20 training examples" in n for n in report.notes)


def audit(noise: float) -> LabelAudit:
    return LabelAudit(
        method="test",
        folds=4,
        num_examples=100,
        out_of_sample_accuracy=1 - noise,
        noise_rate=noise,
        flip_matrix=[[1.0]],
        suspects=[LabelSuspect(index=3, given=1, likely=2, confidence=0.9)],
    )


def test_the_plan_audits_labels_first_and_retrains_without_suspects_after_an_alarm() -> None:
    spec = run()
    spec["data"]["dataset_id"] = "ds_1"
    request = DiagnosisRequest.model_validate(body(spec))
    ctx = build_context(request, None)
    static = static_report(request, None)
    assert LABEL_AUDIT in {p.name for p in plan(ctx, static)}
    noisy = {p.name: p for p in plan(replace(ctx, label_audit=audit(0.4)), static)}
    assert noisy[CLEAN_LABELS].tests == "noisy_labels" and LABEL_AUDIT not in noisy
    clean = {p.name for p in plan(replace(ctx, label_audit=audit(0.02)), static)}
    assert CLEAN_LABELS not in clean


def test_an_alarming_audit_makes_noisy_labels_the_top_cause() -> None:
    from service.analysis.labels import with_audit

    loss = [LN10 * (0.55 + 0.45 * math.exp(-0.4 * i)) for i in range(20)]  # levels off high
    request = DiagnosisRequest.model_validate(body(run(), {"loss": loss}))
    ctx = replace(build_context(request, None), label_audit=audit(0.45))
    report = with_audit(static_report(request, None), ctx)
    assert report.causes[0].id == "noisy_labels"
    assert report.label_audit is not None and report.label_audit.suspects[0].index == 3
    assert any(c.id == "label_audit" and c.status == "fail" for c in report.data_checks)


def test_every_benchmark_program_names_a_contract_cause_and_carries_its_fix() -> None:
    from typing import get_args

    from bench.programs.run import SCRIPTS, read_program
    from service.schemas.report import CauseId

    programs = [read_program(path) for path in sorted(SCRIPTS.glob("*.py"))]
    assert len(programs) >= 40
    programs += [read_program(p) for p in sorted((SCRIPTS.parent / "heldout").glob("*.py"))]
    for program in programs:
        assert program.cause in get_args(CauseId), program.name
        assert program.fixed != program.buggy
        compile(program.fixed, program.name, "exec")  # the fix is still a valid program
