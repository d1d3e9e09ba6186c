"""/v1/diagnoses: submit a run and its history, read and delete diagnoses."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from service.analysis.report import static_report
from service.deps import SettingsDep, StoreDep
from service.errors import InvalidRunSpec, NotFound, PayloadTooLarge
from service.examples import DIAGNOSIS_EXAMPLES
from service.schemas.diagnosis import Diagnosis, DiagnosisPage, DiagnosisRequest
from service.schemas.report import Report
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
) -> Response:
    """Diagnose a run. Without probes the finished report comes back at once (201)."""
    points = body.history.total_points()
    if points > settings.max_history_points:
        raise PayloadTooLarge(
            f"the history has {points} points; the limit is {settings.max_history_points} "
            "(LOSSDOCTOR_MAX_HISTORY_POINTS)"
        )
    dataset = _referenced_dataset(body, store)
    report: Report = static_report(body, dataset)
    now = _now()
    doc = {
        "id": "dg_" + secrets.token_hex(10),
        "status": "succeeded",
        "created_at": now,
        "updated_at": now,
        "progress": {"probes_done": 0, "probes_total": 0, "current_probe": None},
        "report": report.model_dump(mode="json"),
        "error": None,
    }
    store.create_diagnosis(doc, body.model_dump(mode="json", exclude_none=True))
    return _json(doc, 201, {"Location": f"/v1/diagnoses/{doc['id']}"})


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
    responses={404: {"description": "No such diagnosis.", **_PROBLEM}},
)
def delete_diagnosis(diagnosis_id: str, store: StoreDep) -> Response:
    if not store.delete_diagnosis(diagnosis_id):
        raise NotFound(f"diagnosis {diagnosis_id!r} does not exist")
    return Response(status_code=204)
