"""Property tests over the analysis core: whatever the schema accepts yields a report.

Histories of 1 to 100,000 epochs with values from subnormals to ±1e308, NaN/inf/null anywhere
and constant runs, with every optimizer class, Keras schedule and loss the schema accepts.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.analysis.curves import infer_classes
from service.analysis.report import static_report
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import Report
from service.schemas.run import Optimizer
from service.schemas.schedules import read_keras_schedule
from tests.strategies import histories, keras_schedules, optimizers, runs, series

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@PROPERTY
@given(history=histories(), run=runs())
def test_every_accepted_request_yields_a_report(
    history: dict[str, Any], run: dict[str, Any]
) -> None:
    request = DiagnosisRequest.model_validate({"run": run, "history": history})
    report = static_report(request, None)
    assert isinstance(report, Report) and report.summary


@PROPERTY
@given(loss=series())
def test_infer_classes_never_raises_and_names_c_only_at_ln_c(loss: list[Any]) -> None:
    values = [math.nan if v is None else v for v in loss]
    classes = infer_classes(values)
    if classes is not None:
        assert 2 <= classes <= 1000
        assert abs(values[-1] - math.log(classes)) < 0.05 * math.log(classes)


@PROPERTY
@given(schedule=keras_schedules(), steps=st.lists(st.integers(0, 10**7), min_size=1))
def test_every_keras_schedule_gives_a_finite_rate_at_every_step(
    schedule: dict[str, Any], steps: list[int]
) -> None:
    read = read_keras_schedule(schedule)
    assert all(math.isfinite(read.lr(step)) for step in steps)


@PROPERTY
@given(optimizer=optimizers())
def test_translating_a_keras_optimizer_never_yields_a_value_its_schema_refuses(
    optimizer: dict[str, Any],
) -> None:
    read = Optimizer.model_validate(optimizer)
    again = Optimizer.model_validate(read.model_dump(exclude_none=True))  # a stored request
    assert again.name == read.name and again.learning_rate == read.learning_rate
