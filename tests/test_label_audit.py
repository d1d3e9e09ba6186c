"""The label audit on real data: scikit-learn's digits with known flips, audited as the worker
does (K-fold out-of-sample MLP probabilities, then cleanlab)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from service.analysis.causes import label_noise_alarm
from service.schemas.report import LabelAudit

pytestmark = pytest.mark.tf
N = 300


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:N] / 16.0).astype(np.float32), y[:N].astype(np.int64)


def flipped(y: np.ndarray, rate: float) -> tuple[np.ndarray, set[int]]:
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[: round(rate * len(y))]
    noisy = y.copy()
    noisy[idx] = (y[idx] + rng.integers(1, 10, len(idx))) % 10
    return noisy, set(idx.tolist())


@pytest.fixture(scope="module")
def noisy_audit(digits: tuple[np.ndarray, np.ndarray]) -> tuple[LabelAudit, set[int]]:
    from workers.label_audit import audit

    x, y = digits
    noisy, flips = flipped(y, 0.4)
    return audit(x, noisy, 10), flips


def test_forty_percent_flips_raise_the_noisy_labels_alarm(
    noisy_audit: tuple[LabelAudit, set[int]],
) -> None:
    report, _ = noisy_audit
    assert label_noise_alarm(report)
    assert 0.25 <= report.noise_rate <= 0.6
    assert len(report.flip_matrix) == 10 and all(len(row) == 10 for row in report.flip_matrix)


def test_suspects_are_mostly_the_flipped_examples(
    noisy_audit: tuple[LabelAudit, set[int]],
) -> None:
    report, flips = noisy_audit
    hits = [s.index in flips for s in report.suspects]
    assert len(hits) >= 0.5 * len(flips)
    assert sum(hits) / len(hits) >= 0.7
    first = report.suspects[0]
    assert first.given != first.likely and 0 < first.confidence <= 1


def test_clean_digits_raise_no_alarm(digits: tuple[np.ndarray, np.ndarray]) -> None:
    from workers.label_audit import audit

    x, y = digits
    assert not label_noise_alarm(audit(x, y, 10))


def test_the_plans_audit_step_reports_the_audit_and_retrains_without_the_suspects(
    digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from service.analysis.probes import CLEAN_LABELS
    from service.analysis.report import build_context, static_report
    from service.schemas.diagnosis import DiagnosisRequest
    from service.settings import Settings
    from service.store import open_store
    from workers.data import from_sample
    from workers.probe_runner import Session, _audit_labels

    x, y = digits
    noisy, _ = flipped(y, 0.4)
    body = {
        "run": {
            "model": {
                "input_shape": [64],
                "layers": [
                    {"type": "dense", "units": 32, "activation": "relu"},
                    {"type": "dense", "units": 10, "activation": "softmax"},
                ],
            },
            "loss": "sparse_categorical_crossentropy",
            "data": {"dataset_id": "ds_digits", "num_classes": 10, "num_examples": N},
        },
        "history": {"loss": [2.3, 2.0, 1.9, 1.85, 1.84, 1.84]},
    }
    request = DiagnosisRequest.model_validate(body)
    settings = Settings(data_dir=tmp_path)
    static_ctx = build_context(request, None)
    session = Session(
        open_store(settings),
        "dg_test",
        settings,
        request,
        static_ctx,
        from_sample(x, noisy),
        seeds=1,
        budget=30.0,
        measured={},
        sample=(x, noisy),
    )
    ctx, report, planned = _audit_labels(session, static_ctx, static_report(request, None))
    assert report.label_audit is not None and ctx.label_audit is report.label_audit
    assert report.causes[0].id == "noisy_labels"
    probe = next(p for p in planned if p.name == CLEAN_LABELS)
    assert probe.tests == "noisy_labels"
    # The probe trains the label fix itself: the runner drops the rows its run lists.
    suspects = sorted(q.index for q in report.label_audit.suspects)
    assert probe.change == {"data": {"drop_examples": suspects}}
    clean = session.data_for(probe)
    assert len(clean.y_train) + len(clean.y_val) == N - len(suspects)
