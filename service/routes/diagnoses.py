"""/v1/diagnoses: submit a run and its history, read and delete diagnoses."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from service.analysis.report import static_report
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import InvalidRunSpec, NotFound, PayloadTooLarge, ServiceUnavailable
from service.examples import DIAGNOSIS_EXAMPLES
from service.schemas.diagnosis import Diagnosis, DiagnosisPage, DiagnosisRequest
from service.schemas.report import Report
from service.settings import Settings
from service.store import Store

router = APIRouter(prefix="/v1/diagnoses", tags=["diagnoses"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(doc), status_code=status, media_type="application/json", headers=headers
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


@router.post(
    "",
    status_code=201,
    response_model=Diagnosis,
    responses={
        202: {"model": Diagnosis, "description": "Accepted: probes will run; poll `Location`."},
        400: {"description": "Malformed JSON.", **_PROBLEM},
        413: {"description": "Body or history above its limit.", **_PROBLEM},
        422: {"description": "Invalid run spec or history.", **_PROBLEM},
    },
)
def create_diagnosis(
    body: Annotated[DiagnosisRequest, Body(openapi_examples=DIAGNOSIS_EXAMPLES)],
    store: StoreDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> Response:
    """Diagnose a run. Without probes the finished report comes back at once (201); with
    probes the static report comes back at once (202) and the probes fill it in."""
    points = body.history.total_points()
    if points > settings.max_history_points:
        raise PayloadTooLarge(
            f"the history has {points} points; the limit is {settings.max_history_points} "
            "(LOSSDOCTOR_MAX_HISTORY_POINTS)"
        )
    dataset = _referenced_dataset(body, store)
    report: Report = static_report(body, dataset)
    now = _now()
    diagnosis_id = "dg_" + secrets.token_hex(10)
    doc: dict[str, Any] = {
        "id": diagnosis_id,
        "status": "succeeded",
        "created_at": now,
        "updated_at": now,
        "progress": {"probes_done": 0, "probes_total": 0, "current_probe": None},
        "report": report.model_dump(mode="json"),
        "error": None,
    }
    headers = {"Location": f"/v1/diagnoses/{doc['id']}"}
    if not body.probes.enabled:
        store.create_diagnosis(doc, _stored_request(body))
        return _json(doc, 201, headers)
    _check_budget(body, settings)
    doc["status"] = "queued"
    store.create_diagnosis(doc, _stored_request(body))
    try:
        queue.enqueue(diagnosis_id)
    except ServiceUnavailable:
        store.delete_diagnosis(diagnosis_id)  # nothing half-accepted
        raise
    return _json(doc, 202, headers)


def _stored_request(body: DiagnosisRequest) -> str:
    # pydantic's own JSON writer: ~15× faster than dump + json.dumps; NaN is written as null,
    # which the history schema reads back as NaN.
    return body.model_dump_json(exclude_none=True)


def _check_budget(body: DiagnosisRequest, settings: Settings) -> None:
    budget = body.probes.budget_seconds or settings.probe_budget_seconds_default
    if budget > settings.probe_budget_seconds_max:
        raise InvalidRunSpec(
            f"probes.budget_seconds {budget:g} is above the ceiling "
            f"{settings.probe_budget_seconds_max:g} (LOSSDOCTOR_PROBE_BUDGET_SECONDS_MAX)",
            errors=[
                {
                    "field": "probes.budget_seconds",
                    "message": "above the ceiling",
                    "type": "less_than_equal",
                }
            ],
        )


def _referenced_dataset(body: DiagnosisRequest, store: Store) -> dict[str, Any] | None:
    dataset_id = body.run.data.dataset_id if body.run.data else None
    if dataset_id is None:
        return None
    dataset = store.get_dataset(dataset_id)
    if dataset is None:
        raise InvalidRunSpec(
            f"run.data.dataset_id: dataset {dataset_id!r} does not exist; "
            "upload it with POST /v1/datasets"
        )
    return dataset


@router.get(
    "/{diagnosis_id}",
    response_model=Diagnosis,
    responses={404: {"description": "No such diagnosis.", **_PROBLEM}},
)
def read_diagnosis(diagnosis_id: str, store: StoreDep) -> Response:
    doc = store.get_diagnosis(diagnosis_id)
    if doc is None:
        raise NotFound(f"diagnosis {diagnosis_id!r} does not exist")
    return _json(doc)


@router.get("", response_model=DiagnosisPage)
def list_diagnoses(
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
    items, next_cursor = store.list_diagnoses(min(limit, settings.page_size_max), cursor)
    return _json({"items": items, "next_cursor": next_cursor})


@router.delete(
    "/{diagnosis_id}",
    status_code=204,
    responses={
        202: {"model": Diagnosis, "description": "Was queued or running: now canceled."},
        404: {"description": "No such diagnosis.", **_PROBLEM},
    },
)
def delete_diagnosis(diagnosis_id: str, store: StoreDep, queue: QueueDep) -> Response:
    """Cancel a queued or running diagnosis (202); delete a finished one (204)."""
    doc = store.get_diagnosis(diagnosis_id)
    if doc is None:
        raise NotFound(f"diagnosis {diagnosis_id!r} does not exist")
    if doc["status"] in ("queued", "running"):
        doc = store.update_diagnosis(diagnosis_id, {"status": "canceled", "updated_at": _now()})
        queue.revoke(diagnosis_id)
        return _json(doc, 202)
    store.delete_diagnosis(diagnosis_id)
    return Response(status_code=204)
