"""Probe plans and verdicts (pure logic), and RFC 7396 merge patches."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from service.analysis import fixes
from service.analysis.patch import apply, merge, patched
from service.analysis.probes import Outcome, Probe, combined_fix, judge, plan, revise
from service.analysis.report import build_context, static_report
from service.schemas import model as model_schema
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.model import TRANSLATED
from service.schemas.run import RunSpec
from tests.runs import LN10, body, cnn, run, stuck_curve


def outcome(name: str, losses: list[float | None], tests: str = "x") -> Outcome:
    return Outcome(Probe(name, tests, {"name": name}), losses)


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert apply(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert apply({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}  # arrays are replaced whole
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # not modified
    assert merge({"optimizer": {"learning_rate": 0.1}}, {"optimizer": {"momentum": 0.9}}) == {
        "optimizer": {"learning_rate": 0.1, "momentum": 0.9}
    }


def test_a_probe_changing_a_keras_model_gets_the_changed_model_and_others_keep_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keras_json = (Path(__file__).parent / "fixtures/keras/seed_cnn.json").read_text()
    sent = RunSpec.model_validate({"model": {"keras_json": keras_json}})
    # The run as the worker reads it back: stored with its translation.
    stored = sent.model_dump(mode="json", exclude_none=True, context=TRANSLATED)
    run = RunSpec.model_validate(stored, context=TRANSLATED)
    assert run.model is not None and run.model.layers is not None
    names = [layer.name or "" for layer in run.model.layers]
    widths = [layer.filters or layer.units for layer in run.model.layers]

    wider = patched(run, fixes.scale_width(run, names, 2).patch)  # an edited Keras JSON
    assert wider.model is not None and wider.model.layers is not None
    doubled = [w * 2 if w and i < len(widths) - 1 else w for i, w in enumerate(widths)]
    assert [layer.filters or layer.units for layer in wider.model.layers] == doubled

    def translated_again(_: object) -> None:
        raise AssertionError("an unchanged model was translated again")

    monkeypatch.setattr(model_schema, "read", translated_again)
    faster = patched(run, {"optimizer": {"name": "Adam", "learning_rate": 0.01}})
    assert faster.optimizer is not None and faster.optimizer.learning_rate == 0.01
    assert faster.model is not None and faster.model.layers == run.model.layers


def test_improvement_beyond_noise_and_near_the_best_is_confirmed() -> None:
    baseline = outcome("baseline", [2.30, 2.31])
    good = outcome("he", [0.60, 0.64])
    j = judge(baseline, good, LN10, best=0.62)
    assert j.confirmed and not j.refuted and math.isclose(j.improvement or 0, 1.685)


def test_improvement_within_seed_noise_is_not_confirmed() -> None:
    baseline = outcome("baseline", [1.0, 1.6])
    noisy = outcome("lr", [0.9, 1.3])
    assert not judge(baseline, noisy, LN10).confirmed


def test_a_change_that_only_softens_a_broken_run_is_not_its_root_cause() -> None:
    baseline = outcome("baseline", [20.0, 22.0])
    softer = outcome("lr_x10", [3.6, 3.8])
    assert not judge(baseline, softer, LN10, best=0.7).confirmed
    assert judge(baseline, softer, LN10, best=None).confirmed


def test_tiny_absolute_gains_on_a_healthy_run_are_refuted() -> None:
    baseline = outcome("baseline", [0.30, 0.31])
    faster = outcome("standardize", [0.27, 0.28])
    j = judge(baseline, faster, LN10)
    assert not j.confirmed and j.refuted


def test_probe_that_stays_finite_where_the_baseline_blew_up_is_confirmed() -> None:
    j = judge(outcome("baseline", [None, None]), outcome("lr_x0.1", [1.0, 1.1]), LN10)
    assert j.confirmed and j.improvement == math.inf


def test_plan_swaps_initializers_and_marks_preprocessing_as_needing_a_sample() -> None:
    request = DiagnosisRequest.model_validate(
        body(run(model=cnn(init={"name": "random_normal", "stddev": 1.0}, l2=0.01)), stuck_curve())
    )
    ctx = build_context(request, None)
    probes = {p.name: p for p in plan(ctx, static_report(request, None))}
    assert {
        "baseline",
        "initializer_by_activation",
        "lr_x0.1",
        "lr_x10",
        "step_decay",
        "cosine_warmup",
        "regularization_recommended",
        "regularization_removed",
        "width_x2",
        "width_x4",
        "batch_x4",
        "batch_div4",
        "augmentation",
    } <= set(probes)
    layers = probes["initializer_by_activation"].change["model"]["layers"]
    assert layers[0]["kernel_initializer"] == "he_normal"
    assert probes["rescale"].needs_sample and probes["augmentation"].metric == "val"
    assert (
        probes["regularization_removed"]
        .change["model"]["layers"][0]
        .get("kernel_regularizer", "gone")
        is None
    )


def test_revise_raises_confirmed_causes_lowers_refuted_ones_and_combines_fixes() -> None:
    request = DiagnosisRequest.model_validate(
        body(run(model=cnn(init={"name": "random_normal", "stddev": 1.0})), stuck_curve(first=40))
    )
    static = static_report(request, None)
    baseline = outcome("baseline", [2.30, 2.30])
    he = Outcome(Probe("he", "poor_weight_initialization", {"model": {"x": 1}}), [0.6, 0.62])
    lr = Outcome(Probe("lr_x0.1", "learning_rate_too_high", {"optimizer": {"lr": 1}}), [2.3, 2.3])
    judgements = [judge(baseline, he, LN10, 0.61), judge(baseline, lr, LN10, 0.61)]
    compared = {"he": (baseline, he), "lr_x0.1": (baseline, lr)}
    causes = revise(static, judgements, True, compared, seeds=2)
    top = causes[0]
    assert top.id == "poor_weight_initialization" and top.probe and top.probe.confirmed
    assert top.evidence[0].startswith("probe he lowered the training loss")
    before = {c.id: c.confidence for c in static.causes}
    after = {c.id: c.confidence for c in causes}
    if "learning_rate_too_high" in before:
        assert after["learning_rate_too_high"] < before["learning_rate_too_high"]
    # The combined probe trains the confirmed causes' recommended fixes, not the probe changes.
    combined = combined_fix(causes, judgements)
    assert combined is not None
    init_fix = next(c.fix for c in causes if c.id == "poor_weight_initialization")
    assert combined.patch == init_fix.patch and combined.changes == init_fix.changes


def test_a_lower_training_loss_bought_with_a_worse_held_out_loss_is_not_a_fix() -> None:
    baseline = Outcome(Probe("baseline", "", {}), [1.9, 1.92], val_losses=[1.2, 1.22])
    memorises = Outcome(
        Probe("lr_x10", "learning_rate_too_low", {}), [0.9, 0.95], val_losses=[1.9, 2.0]
    )
    generalises = Outcome(
        Probe("he", "poor_weight_initialization", {}), [0.9, 0.95], val_losses=[0.8, 0.82]
    )
    assert not judge(baseline, memorises, LN10).confirmed
    assert judge(baseline, generalises, LN10).confirmed


def test_combined_fix_takes_the_rate_the_lr_range_test_measured() -> None:
    sent = run(optimizer={"name": "sgd", "learning_rate": 5.0, "momentum": 0.9})
    request = DiagnosisRequest.model_validate(body(sent, stuck_curve()))
    static = static_report(request, None)
    assert static.causes[0].id == "learning_rate_too_high"
    baseline = outcome("baseline", [2.30, 2.30])
    swept = Outcome(Probe("lr_range_suggested", "learning_rate_too_high", {}), [0.6, 0.62])
    judgements = [judge(baseline, swept, LN10, 0.61)]
    fix = combined_fix(static.causes, judgements, request.run, measured_lr=0.03)
    assert fix is not None and fix.patch == {"optimizer": {"learning_rate": 0.03}}
    assert fix.keras == ["keras.optimizers.SGD(learning_rate=0.03, momentum=0.9)"]
    # Without the measurement, the computed rate stands.
    computed = combined_fix(static.causes, judgements)
    assert computed is not None and computed.patch == static.causes[0].fix.patch
