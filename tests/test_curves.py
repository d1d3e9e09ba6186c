"""Curve symptoms, each on a curve built to show it (and not the others)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.analysis.curves import analyze, chance_loss, infer_classes
from service.schemas.history import History
from tests.runs import LN10, healthy_curve, stuck_curve


def symptoms(history: dict, classes: int | None = 10) -> set[str]:
    facts = analyze(History.model_validate(history), chance_loss(None, classes), classes)
    return {s.id for s in facts.symptoms}


def test_healthy_curve_shows_no_symptom() -> None:
    assert symptoms(healthy_curve()) == set()


def test_nan_loss_is_kept_as_evidence() -> None:
    found = analyze(History.model_validate({"loss": [2.3, 1.9, None, "NaN"]}), LN10, 10)
    assert found.non_finite_at == 3
    assert "non_finite_loss" in {s.id for s in found.symptoms}


def test_flat_loss_at_ln_c_is_stuck_at_chance() -> None:
    found = analyze(History.model_validate(stuck_curve()), LN10, 10)
    stuck = [s for s in found.symptoms if s.id == "stuck_at_chance"]
    assert stuck and stuck[0].epochs == (1, 20)
    assert "ln(10)" in stuck[0].detail


def test_first_loss_far_above_chance_is_high_initial_loss() -> None:
    assert "high_initial_loss" in symptoms(stuck_curve(first=14.0))


def test_loss_rising_from_its_minimum_is_divergence() -> None:
    loss = [2.0, 1.5, 1.2, 1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5]
    assert "divergence" in symptoms({"loss": loss})


def test_loss_growing_tenfold_is_explosion() -> None:
    assert "explosion" in symptoms({"loss": [2.3, 5.0, 40.0, 300.0]})


def test_sudden_jump_after_training_is_late_collapse() -> None:
    loss = [1.5, 0.9, 0.6, 0.45, 0.4, 0.38, 2.3, 2.3, 2.3]
    assert "late_collapse" in symptoms({"loss": loss})


def test_flat_high_loss_is_plateau() -> None:
    loss = [2.0, 1.6, 1.4, 1.3] + [1.25 + 0.001 * (i % 2) for i in range(16)]
    assert symptoms({"loss": loss}) == {"plateau"}


def test_steady_slow_fall_is_slow_decrease() -> None:
    loss = [2.3 - 0.01 * i for i in range(20)]
    assert "slow_decrease" in symptoms({"loss": loss})


def test_alternating_loss_is_oscillation_and_noisy_floor() -> None:
    loss = [2.0, 1.5, 1.2] + [1.0 + 0.25 * ((-1) ** i) for i in range(17)]
    found = symptoms({"loss": loss})
    assert {"oscillation", "noisy_floor"} <= found


def test_rising_val_loss_is_train_val_gap() -> None:
    n = 20
    loss = [1.2 * math.exp(-0.25 * i) for i in range(n)]
    val = [0.6 + 0.03 * (i - 5) ** 2 / 5 for i in range(n)]
    assert "train_val_gap" in symptoms({"loss": loss, "val_loss": val})


def test_hundred_thousand_points_are_summarised() -> None:
    rng = np.random.default_rng(0)
    loss = 0.2 + 2.0 * np.exp(-np.arange(100_000) / 8000) + rng.normal(0, 0.01, 100_000)
    found = analyze(History.model_validate({"loss": loss.tolist()}), LN10, 10)
    assert found.epochs == 100_000
    assert found.final_loss is not None and found.final_loss < 0.3


def test_short_history_of_one_epoch_does_not_fail() -> None:
    assert symptoms({"loss": [2.3]}) <= {"stuck_at_chance"}


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ([2.3026] * 5, 10),
        ([4.6052] * 4, 100),
        ([0.6931] * 3, 2),
        ([1.7] * 5, None),
        ([2.3, 2.0, 1.5], None),
        # A regression's MSE stalled high: exp() of it would overflow (it used to answer 500).
        ([5739302400.0, 5739194880.0, 5739077632.0], None),
        ([710.0] * 3, None),
        ([1e308] * 3, None),
    ],
)
def test_classes_are_inferred_only_from_a_loss_flat_at_ln_c(
    loss: list, expected: int | None
) -> None:
    assert infer_classes(loss) == expected


def test_first_step_loss_reveals_a_high_initial_loss_the_epoch_mean_hides() -> None:
    history = {"loss": [2.5, 1.2, 0.8, 0.6], "step_loss": [30.0, 9.0, 3.0, 2.4]}
    assert "high_initial_loss" in symptoms(history)
    assert "high_initial_loss" not in symptoms({"loss": [2.5, 1.2, 0.8, 0.6]})


def test_gradient_norm_growing_a_hundredfold_is_explosion() -> None:
    history = {"loss": [2.3, 2.2, 2.25, 2.3], "grad_norm": [1.0, 3.0, 150.0, None]}
    assert "explosion" in symptoms(history)
