"""Each cause of the vocabulary is named first when the spec and curve show it, not otherwise."""

from __future__ import annotations

import math
from typing import Any

import pytest

from service.analysis import causes
from service.analysis.report import build_context, static_report
from service.schemas.dataset import Dataset
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import Report
from tests.runs import LN10, body, cnn, healthy_curve, run, stuck_curve


def diagnose(payload: dict[str, Any], dataset: Dataset | None = None) -> Report:
    return static_report(DiagnosisRequest.model_validate(payload), dataset)


def top(report: Report) -> str:
    assert report.causes, report.summary
    return report.causes[0].id


def plateau(level: float, n: int = 20, noise: float = 0.0) -> list[float]:
    return [level + 1.0 * math.exp(-0.6 * i) + noise * ((-1) ** i) for i in range(n)]


def test_healthy_run_is_healthy_with_no_credible_cause() -> None:
    report = diagnose(body(run(), healthy_curve()))
    assert report.verdict == "healthy"
    assert all(c.confidence < 0.5 for c in report.causes)


def test_adam_at_half_is_learning_rate_too_high() -> None:
    report = diagnose(body(run(optimizer={"name": "Adam", "learning_rate": 0.5}), stuck_curve()))
    assert top(report) == "learning_rate_too_high"
    # Adam's typical 1e-3 is for batch 32; its step grows with √batch, so batch 64 gets 1.4e-3.
    fix = report.causes[0].fix
    assert fix.patch == {"optimizer": {"learning_rate": 0.0014}}
    assert [c.model_dump() for c in fix.changes] == [
        {"path": "optimizer.learning_rate", "from": 0.5, "to": 0.0014}
    ]
    assert fix.keras == ["keras.optimizers.Adam(learning_rate=0.0014)"]


def test_sgd_rate_fix_keeps_momentum_and_scales_with_batch() -> None:
    opt = {"name": "SGD", "learning_rate": 5.0, "momentum": 0.9}
    report = diagnose(body(run(optimizer=opt, batch_size=32), stuck_curve()))
    fix = next(c.fix for c in report.causes if c.id == "learning_rate_too_high")
    # SGD's typical step 0.1 (lr / (1 − momentum)) at batch 32: lr 0.01 with momentum kept.
    assert fix.patch == {"optimizer": {"learning_rate": 0.01}}
    assert fix.keras == ["keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)"]


def test_sgd_momentum_counts_in_the_effective_step() -> None:
    calm = diagnose(body(run(optimizer={"name": "sgd", "learning_rate": 0.1}), stuck_curve()))
    hot = diagnose(
        body(run(optimizer={"name": "sgd", "learning_rate": 0.5, "momentum": 0.99}), stuck_curve())
    )
    assert top(hot) == "learning_rate_too_high"
    assert all(c.id != "learning_rate_too_high" or c.confidence < 0.5 for c in calm.causes)


def test_sgd_at_a_millionth_is_learning_rate_too_low() -> None:
    slow = {
        "loss": [LN10 - 0.004 * i for i in range(20)],
        "val_loss": [LN10 - 0.004 * i for i in range(20)],
    }
    report = diagnose(body(run(optimizer={"name": "sgd", "learning_rate": 1e-6}), slow))
    assert top(report) == "learning_rate_too_low"


def test_constant_rate_with_noisy_floor_is_missing_lr_decay() -> None:
    history = {"loss": plateau(0.9, noise=0.12), "val_loss": plateau(0.95, noise=0.12)}
    report = diagnose(
        body(run(optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}), history)
    )
    assert top(report) == "missing_lr_decay"
    assert report.causes[0].fix.patch["lr_schedule"]["name"] == "cosine"


def test_random_normal_stddev_one_is_poor_weight_initialization() -> None:
    spec = run(model=cnn(init={"name": "random_normal", "stddev": 1.0}))
    report = diagnose(body(spec, stuck_curve(first=40.0)))
    assert top(report) == "poor_weight_initialization"
    layers = report.causes[0].fix.patch["model"]["layers"]
    assert layers[0]["kernel_initializer"] == "he_normal"


def test_zeros_initializer_is_poor_weight_initialization() -> None:
    report = diagnose(body(run(model=cnn(init="zeros")), stuck_curve()))
    assert top(report) == "poor_weight_initialization"


def test_raw_pixels_are_unnormalized_inputs() -> None:
    spec = run(
        preprocessing={"normalization": "none"},
        data={"num_classes": 10, "num_examples": 3000, "input_min": 0, "input_max": 255},
    )
    report = diagnose(body(spec, stuck_curve(first=30.0)))
    assert top(report) == "unnormalized_inputs"
    assert report.causes[0].fix.patch == {"preprocessing": {"normalization": "rescale"}}


def test_rescaling_layer_counts_as_normalization() -> None:
    model = cnn()
    model["layers"].insert(0, {"type": "rescaling", "scale": 1 / 255})
    spec = run(model=model, data={"num_classes": 10, "input_min": 0, "input_max": 255})
    report = diagnose(body(spec, healthy_curve()))
    assert all(c.id != "unnormalized_inputs" for c in report.causes)


def test_train_accuracy_below_validation_is_noisy_labels() -> None:
    n = 20
    history = {
        "loss": plateau(1.5, n),
        "val_loss": plateau(0.7, n),
        "accuracy": [0.45] * n,
        "val_accuracy": [0.78] * n,
    }
    report = diagnose(body(run(), history))
    assert top(report) == "noisy_labels"


def test_l2_of_one_is_excessive_regularization() -> None:
    history = {"loss": plateau(2.2), "val_loss": plateau(1.9)}
    report = diagnose(body(run(model=cnn(l2=1.0)), history))
    assert top(report) == "excessive_regularization"
    # The new coefficient brings the penalty at initialisation to 1% of ln C (not a fixed ÷100).
    request = DiagnosisRequest.model_validate(body(run(model=cnn(l2=1.0)), history))
    penalty = causes._penalty(build_context(request, None))
    layer = report.causes[0].fix.patch["model"]["layers"][0]
    scaled = layer["kernel_regularizer"]["l2"] * penalty  # the penalty at l2 = 1.0 is `penalty`
    assert scaled == pytest.approx(0.01 * math.log(10), rel=0.05)
    assert report.causes[0].fix.changes[0].path.endswith(".kernel_regularizer")


def test_two_unit_bottleneck_is_insufficient_capacity() -> None:
    history = {"loss": plateau(1.4), "val_loss": plateau(1.42)}
    report = diagnose(body(run(model=cnn(hidden=2)), history))
    assert top(report) == "insufficient_capacity"
    # The 2-unit layer is widened to 4 units per class (10 classes → 40, at least 64).
    changes = report.causes[0].fix.changes
    assert [(c.from_, c.to) for c in changes if c.path.endswith(".units")] == [(2, 64)]


def test_rising_validation_loss_is_overfitting() -> None:
    n = 30
    loss = [1.2 * math.exp(-0.25 * i) for i in range(n)]
    val = [0.6 + 0.02 * (i - 5) ** 2 / 5 for i in range(n)]
    report = diagnose(
        body(run(data={"num_classes": 10, "num_examples": 300}), {"loss": loss, "val_loss": val})
    )
    assert top(report) == "overfitting"
    # Validation loss was lowest at epoch 6: the fix stops there.
    assert report.causes[0].fix.patch == {"epochs": 6}
    assert report.causes[0].fix.changes[0].model_dump() == {"path": "epochs", "from": 20, "to": 6}


def test_a_low_loss_that_stops_improving_at_a_large_constant_step_is_missing_decay() -> None:
    # Down to 0.45 (below a quarter of ln 10) by mid-run, then no better: SGD's effective
    # step lr / (1 − momentum) = 1 is 10× its typical one.
    loss = [0.44 + 0.7 * math.exp(-0.6 * i) + 0.02 * ((-1) ** i) for i in range(16)]
    val = [x + 0.15 for x in loss]
    sgd = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    report = diagnose(body(run(optimizer=sgd), {"loss": loss, "val_loss": val}))
    assert report.verdict == "problem" and top(report) == "missing_lr_decay"
    # The same curve at Adam's usual step: nothing says the step is what stops it.
    report = diagnose(body(run(), {"loss": loss, "val_loss": val}))
    decay = next((c for c in report.causes if c.id == "missing_lr_decay"), None)
    assert decay is None or decay.confidence < 0.5


def test_validation_rise_while_training_stands_still_at_a_large_step_is_missing_decay() -> None:
    # The same validation curve; the training loss fell to a noisy floor at 0.3 and stayed
    # there: the weights wander at Adam 2e-2 instead of memorising the training set.
    n = 20
    loss = [0.3 + 0.6 * math.exp(-0.8 * i) + 0.03 * ((-1) ** i) for i in range(n)]
    val = [0.6 + 0.02 * (i - 5) ** 2 / 5 for i in range(n)]
    spec = run(optimizer={"name": "adam", "learning_rate": 2e-2})
    report = diagnose(body(spec, {"loss": loss, "val_loss": val}))
    assert top(report) == "missing_lr_decay"
    assert report.causes[0].fix.patch["lr_schedule"]["name"] == "cosine"
    overfit = next((c for c in report.causes if c.id == "overfitting"), None)
    assert overfit is None or overfit.confidence < 0.5
    # The rule reads the training curve, not the rate alone: memorising at the same rate
    # (training still falling towards zero) is overfitting.
    falling = [1.2 * math.exp(-0.25 * i) for i in range(n)]
    report = diagnose(body(spec, {"loss": falling, "val_loss": val}))
    assert top(report) == "overfitting"


def test_batch_of_one_with_batchnorm_is_batch_size_too_small() -> None:
    model = cnn()
    model["layers"].insert(1, {"type": "batch_normalization"})
    history = {"loss": plateau(1.0, noise=0.15), "val_loss": plateau(1.1, noise=0.2)}
    report = diagnose(body(run(model=model, batch_size=1), history))
    assert top(report) == "batch_size_too_small"


def test_full_batch_is_batch_size_too_large() -> None:
    slow = {
        "loss": [LN10 - 0.02 * i for i in range(15)],
        "val_loss": [LN10 - 0.02 * i for i in range(15)],
    }
    report = diagnose(body(run(batch_size=3000, epochs=15), slow))
    assert top(report) == "batch_size_too_large"
    assert report.causes[0].fix.patch == {"batch_size": 32}


def test_21x21_first_kernel_on_28x28_is_kernel_size_mismatch() -> None:
    history = {"loss": plateau(1.3), "val_loss": plateau(1.35)}
    report = diagnose(body(run(model=cnn(first_kernel=21)), history))
    assert top(report) == "kernel_size_mismatch"
    fix = report.causes[0].fix
    assert fix.patch["model"]["layers"][0]["kernel_size"] == [3, 3]
    first = fix.changes[0]
    # The layer list names no layers: the path uses the name the architecture gave it.
    assert first.path.startswith("model.layers.") and first.path.endswith(".kernel_size")
    assert (first.from_, first.to) == (21, [3, 3])
    assert "kernel_size=(3, 3)" in fix.keras[0]


def test_softmax_with_from_logits_is_output_loss_mismatch() -> None:
    spec = run(loss={"name": "sparse_categorical_crossentropy", "from_logits": True})
    report = diagnose(body(spec, {"loss": plateau(1.6), "val_loss": plateau(1.6)}))
    assert top(report) == "output_loss_mismatch"
    assert report.causes[0].fix.patch["loss"] == {
        "name": "sparse_categorical_crossentropy",
        "from_logits": False,
    }


def test_linear_output_without_logits_is_output_loss_mismatch() -> None:
    spec = run(model=cnn(out_activation="linear"))
    report = diagnose(body(spec, stuck_curve()))
    assert top(report) == "output_loss_mismatch"


def test_spec_fault_on_a_run_that_trains_well_is_not_credible() -> None:
    report = diagnose(body(run(optimizer={"name": "adam", "learning_rate": 0.03}), healthy_curve()))
    assert report.verdict == "healthy"


def test_nan_history_alone_points_at_the_learning_rate() -> None:
    report = diagnose({"history": {"loss": [2.3, 3.1, 9.7, None, None]}})
    assert report.verdict == "problem"
    assert top(report) == "learning_rate_too_high"


def test_every_cause_has_evidence_and_a_fix_summary() -> None:
    spec = run(
        model=cnn(init={"name": "random_normal", "stddev": 1.0}, l2=0.5, hidden=2),
        batch_size=2,
        optimizer={"name": "adam", "learning_rate": 0.3},
    )
    report = diagnose(body(spec, stuck_curve(first=50.0)))
    assert len(report.causes) >= 3
    for cause in report.causes:
        assert cause.evidence and cause.fix.summary
    assert [c.confidence for c in report.causes] == sorted(
        (c.confidence for c in report.causes), reverse=True
    )


def test_noisy_labels_fix_is_the_label_audits_suspects_or_says_why_there_is_none() -> None:
    from dataclasses import replace

    from service.analysis.labels import with_audit
    from service.schemas.report import LabelAudit, LabelSuspect

    history = {"loss": plateau(1.6), "val_loss": plateau(0.7)}
    history |= {"accuracy": [0.45] * 12, "val_accuracy": [0.78] * 12}
    request = DiagnosisRequest.model_validate(body(run(), history))
    report = static_report(request, None)
    assert top(report) == "noisy_labels"
    # No audit: no change, and the reason (never label smoothing: it cannot lower the loss).
    fix = report.causes[0].fix
    assert fix.patch == {} and fix.unavailable and "no data sample to audit" in fix.unavailable

    def audited(suspects: list[LabelSuspect]) -> Report:
        audit = LabelAudit(
            method="cleanlab",
            folds=4,
            num_examples=500,
            out_of_sample_accuracy=0.6,
            noise_rate=0.4,
            flip_matrix=[[0.6, 0.4], [0.4, 0.6]],
            suspects=suspects,
        )
        ctx = replace(build_context(request, None), label_audit=audit)
        return with_audit(report, ctx)

    fix = (
        audited(
            [
                LabelSuspect(index=7, given=3, likely=5, confidence=0.6),
                LabelSuspect(index=2, given=1, likely=0, confidence=0.9),
            ]
        )
        .causes[0]
        .fix
    )
    assert fix.patch == {"data": {"drop_examples": [2, 7]}}
    assert [c.model_dump() for c in fix.changes] == [
        {"path": "data.sample.2.label", "from": 1, "to": 0},
        {"path": "data.sample.7.label", "from": 3, "to": 5},
    ]
    fix = audited([]).causes[0].fix
    assert fix.patch == {} and "flagged no example" in (fix.unavailable or "")


def test_capacity_fix_widens_narrow_layers_activates_a_linear_stack_and_adds_depth() -> None:
    model = {
        "input_shape": [28, 28, 1],
        "layers": [
            {"type": "conv2d", "name": "thin", "filters": 1, "kernel_size": 3},
            {"type": "average_pooling2d", "pool_size": 4},
            {"type": "flatten"},
            {"type": "dense", "name": "head", "units": 10, "activation": "softmax"},
        ],
    }
    history = {"loss": plateau(1.2), "val_loss": plateau(1.22)}
    report = diagnose(body(run(model=model), history))
    cause = next(c for c in report.causes if c.id == "insufficient_capacity")
    changes = {c.path: (c.from_, c.to) for c in cause.fix.changes}
    new = {"name": "hidden_dense", "units": 64, "activation": "relu", "before": "head"}
    assert changes == {
        "model.layers.thin.filters": (1, 20),  # 2 channels per class, 10 classes
        "model.layers.thin.activation": (None, "relu"),
        "model.layers.hidden_dense": (None, new),  # one conv deep: a hidden layer added
    }
    layers = cause.fix.patch["model"]["layers"]
    assert [layer["type"] for layer in layers][-2:] == ["dense", "dense"]
    assert layers[-2] == {
        "type": "dense",
        "name": "hidden_dense",
        "units": 64,
        "activation": "relu",
    }


def test_offset_inputs_are_standardized_pixels_rescaled() -> None:
    from service.analysis import fixes
    from service.schemas.run import RunSpec

    spec = RunSpec.model_validate(run())
    pixels = fixes.normalize_inputs(spec, (0.0, 255.0))
    assert pixels.patch == {"preprocessing": {"normalization": "rescale"}}
    assert pixels.keras == ["x_train, x_val = x_train / 255, x_val / 255"]
    # [50, 51]: dividing by 51 leaves everything near 1; only subtracting the mean centres it.
    offset = fixes.normalize_inputs(spec, (50.0, 51.0))
    assert offset.patch == {"preprocessing": {"normalization": "standardize"}}


def _adamw_with_exponential_decay(decay_rate: float) -> dict[str, Any]:
    """AdamW's get_config() with a Keras ExponentialDecay in `learning_rate`, as Keras writes it."""
    return {
        "name": "adamw",
        "learning_rate": {
            "module": "keras.optimizers.schedules",
            "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 1e-3, "decay_steps": 10, "decay_rate": decay_rate},
            "registered_name": None,
        },
        "weight_decay": 1e-4,
    }


def _stalls_after_one_epoch(n: int = 12) -> dict[str, list[float]]:
    loss = [2.07] + [2.047] * (n - 1)
    return {"loss": loss, "val_loss": [2.057] * n}


def test_a_schedule_that_takes_the_rate_to_nothing_early_is_a_learning_rate_too_low() -> None:
    spec = run(optimizer=_adamw_with_exponential_decay(0.01), epochs=12)
    spec.pop("lr_schedule")
    request = DiagnosisRequest.model_validate(body(spec, _stalls_after_one_epoch()))
    report = static_report(request, None)
    top = report.causes[0]
    assert report.verdict == "problem" and top.id == "learning_rate_too_low"
    assert any("by epoch 1 of 12" in e for e in top.evidence)
    # The fix is a constant rate: the schedule goes, in the stored form as in the sent one.
    assert top.fix.patch["optimizer"]["schedule"] is None
    assert isinstance(top.fix.patch["optimizer"]["learning_rate"], float)


def test_a_slow_decay_is_not_read_as_a_vanishing_rate() -> None:
    spec = run(optimizer=_adamw_with_exponential_decay(0.96), epochs=12)
    spec.pop("lr_schedule")
    request = DiagnosisRequest.model_validate(body(spec, _stalls_after_one_epoch()))
    ctx = build_context(request, None)
    assert causes._rate_vanished(ctx) is None


def test_a_small_mlp_on_a_few_tabular_features_is_not_short_of_capacity() -> None:
    def context(features: int, hidden: int, classes: int) -> Any:
        model = {
            "input_shape": [features],
            "layers": [
                {"type": "dense", "units": hidden, "activation": "relu"},
                {"type": "dense", "units": classes, "activation": "softmax"},
            ],
        }
        data = {"num_classes": classes, "num_examples": 150, "input_min": -2, "input_max": 2}
        spec = run(model=model, data=data)
        return build_context(DiagnosisRequest.model_validate(body(spec, stuck_curve())), None)

    def says_few(ctx: Any) -> bool:
        return any("parameters for" in e.text for e in causes.insufficient_capacity(ctx)[0])

    # 16·14 + 3·17 = 275 parameters: many linear classifiers' worth on 13 features.
    assert not says_few(context(13, 16, 3))
    # 12·65 + 10·13 = 910 on 64 features and 10 classes: under 100 per class, and under four
    # linear classifiers on the input (2,600).
    assert says_few(context(64, 12, 10))
