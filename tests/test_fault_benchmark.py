"""Regression floors on real Keras runs, diagnosed in static mode through the API: one case per
cause (and healthy ones) of the committed fault benchmark, and the whole programs benchmark
(user-style scripts, each bug with its fixed twin). The full scores are `bench.score`."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.score import (
    DATA,
    SETS,
    diagnose,
    first_per_cause,
    history_only,
    load_cases,
    predicted,
    score,
)

FLOOR_TOP1 = 0.8  # the target for the whole benchmark is 0.90; this subset must not sink below
# Programs benchmark: measured 0.99 top-1 and 2% false alarms; the targets are 0.85 and 10%.
PROGRAMS_FLOOR_TOP1 = 0.85
PROGRAMS_MAX_FALSE_ALARMS = 0.10


def subset() -> list[dict[str, Any]]:
    """The first case of every cause, and the first three healthy runs (a fixed choice)."""
    return first_per_cause(load_cases(), 1, healthy=3)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def test_the_benchmark_holds_every_cause_and_healthy_runs() -> None:
    causes = {case["cause"] for case in load_cases()}
    assert len(causes) == 14  # the 13 causes of the contract, and healthy


def test_static_diagnosis_names_the_injected_cause_of_real_runs(client: TestClient) -> None:
    cases = subset()
    uploads: dict[str, str] = {}
    hits = []
    for case in cases:
        doc, _ = diagnose(client, case, "static", uploads, budget=60, data=DATA)
        hits.append(predicted(doc)[0] == case["cause"])
    missed = [c["case_id"] for c, hit in zip(cases, hits, strict=True) if not hit]
    assert sum(hits) / len(hits) >= FLOOR_TOP1, f"missed: {missed}"


def test_healthy_real_runs_raise_no_alarm(client: TestClient) -> None:
    healthy = [case for case in load_cases() if case["cause"] == "healthy"]
    alarms = [
        case["case_id"]
        for case in healthy
        if predicted(diagnose(client, case, "static", {}, 60, DATA)[0])[0] != "healthy"
    ]
    assert len(alarms) <= 0.1 * len(healthy), alarms


def test_history_only_requests_are_what_a_pytorch_user_could_send() -> None:
    case = load_cases()[0]
    slim = history_only(case["request"])
    assert set(slim) == {"run", "history"} and set(slim["run"]) <= {"optimizer"}
    assert set(slim["run"].get("optimizer", {})) <= {"name", "learning_rate"}


def test_user_style_programs_keep_their_floor(client: TestClient) -> None:
    data = SETS["programs"]
    uploads: dict[str, str] = {}
    rows = []
    for case in load_cases(data):
        doc, seconds = diagnose(client, case, "static", uploads, budget=60, data=data)
        rows.append({"truth": case["cause"], "pred": predicted(doc), "seconds": seconds})
    result = score(rows)
    assert result["cases"] >= 80  # at least 40 bugs, each with its fixed twin
    assert result["top1"] >= PROGRAMS_FLOOR_TOP1, result["confusion"]
    assert result["false_alarm_rate"] <= PROGRAMS_MAX_FALSE_ALARMS, result["confusion"]
