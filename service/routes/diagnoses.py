"""/v1/diagnoses: submit a run and its history, read, list, cancel and delete diagnoses."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from service.analysis.report import architecture, static_report
from service.deps import QueueDep, SettingsDep, StoreDep, TenantDep
from service.errors import (
    Conflict,
    InvalidRunSpec,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
)
from service.examples import DIAGNOSIS_EXAMPLES
from service.idempotency import idempotent
from service.logging import current_request_id
from service.queue import ProbeQueue
from service.schemas.diagnosis import (
    Diagnosis,
    DiagnosisPage,
    DiagnosisRequest,
    HistoryAppend,
)
from service.schemas.history import History
from service.settings import Settings
from service.store import Store
from service.webhooks import check_target

router = APIRouter(prefix="/v1/diagnoses", tags=["diagnoses"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(doc), status_code=status, media_type="application/json", headers=headers
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The resource as clients see it: internal fields (tenant, ...) start with "_"."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def owned(store: Store, tenant: str, diagnosis_id: str) -> dict[str, Any]:
    """The tenant's diagnosis; another tenant's answers 404, exactly like a missing one."""
    doc = store.get_diagnosis(diagnosis_id)
    if doc is None or doc.get("_tenant") != tenant:
        raise NotFound(f"diagnosis {diagnosis_id!r} does not exist")
    return doc


@router.post(
    "",
    status_code=201,
    response_model=Diagnosis,
    responses={
        200: {"model": Diagnosis, "description": "Replay of an earlier Idempotency-Key."},
        202: {"model": Diagnosis, "description": "Accepted: probes will run; poll `Location`."},
        400: {"description": "Malformed JSON.", **_PROBLEM},
        401: {"description": "Missing or unknown API key.", **_PROBLEM},
        409: {"description": "The same Idempotency-Key is still being processed.", **_PROBLEM},
        413: {"description": "Body or history above its limit.", **_PROBLEM},
        422: {"description": "Invalid run spec or history.", **_PROBLEM},
        429: {"description": "Too many queued or running diagnoses.", **_PROBLEM},
        503: {"description": "Job store or queue unavailable; nothing was accepted.", **_PROBLEM},
    },
)
def create_diagnosis(
    body: Annotated[DiagnosisRequest, Body(openapi_examples=DIAGNOSIS_EXAMPLES)],
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    queue: QueueDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Diagnose a run. Without probes the finished report comes back at once (201); with
    probes the static report comes back at once (202) and the probes fill it in.
    A retry with the same `Idempotency-Key` and body returns the original diagnosis (200)."""
    # pydantic's own JSON writer: ~15× faster than dump + json.dumps; NaN is written as null,
    # which the history schema reads back as NaN.
    request_json = body.model_dump_json(exclude_none=True)
    with idempotent(store, tenant, "diagnosis", idempotency_key, request_json.encode()) as claim:
        if claim.replay is not None:
            doc = owned(store, tenant, claim.replay)
            return _json(
                public(doc),
                200,
                {"Location": f"/v1/diagnoses/{doc['id']}", "Idempotent-Replayed": "true"},
            )
        doc = _create(body, request_json, tenant, store, settings, queue)
        claim.created = doc["id"]
    if body.callback_url and doc["status"] == "succeeded":
        queue.notify(doc["id"])
    status = 202 if doc["status"] == "queued" else 201
    return _json(public(doc), status, {"Location": f"/v1/diagnoses/{doc['id']}"})


def _create(
    body: DiagnosisRequest,
    request_json: str,
    tenant: str,
    store: Store,
    settings: Settings,
    queue: ProbeQueue,
) -> dict[str, Any]:
    _check_points(body.history, settings)
    if body.callback_url:
        check_target(body.callback_url, settings)
    if body.live and store.count_active(tenant) >= settings.max_active_per_tenant:
        raise TooManyRequests(
            f"{settings.max_active_per_tenant} diagnoses are already open or "
            "running for this tenant (LOSSDOCTOR_MAX_ACTIVE_PER_TENANT)"
        )
    report = static_report(body, _referenced_dataset(body, tenant, store))
    now = _now()
    doc: dict[str, Any] = {
        "id": "dg_" + secrets.token_hex(10),
        "status": "succeeded",
        "created_at": now,
        "updated_at": now,
        "progress": {"probes_done": 0, "probes_total": 0, "current_probe": None},
        "report": report.model_dump(mode="json"),
        "error": None,
        "request_id": current_request_id(),
        "_tenant": tenant,
    }
    if body.live:
        doc["status"] = "running"  # open for epochs until closed
        doc["_live"] = True
    if not body.probes.enabled:
        store.create_diagnosis(doc, request_json)
        return doc
    _check_probe_limits(body, tenant, store, settings)
    doc["status"] = "queued"
    store.create_diagnosis(doc, request_json)
    try:
        queue.enqueue(doc["id"])
    except ServiceUnavailable:
        store.delete_diagnosis(doc["id"])  # nothing half-accepted
        raise
    return doc


def _check_points(history: History, settings: Settings) -> None:
    points = history.total_points()
    if points > settings.max_history_points:
        raise PayloadTooLarge(
            f"the history has {points} points; the limit is {settings.max_history_points} "
            "(LOSSDOCTOR_MAX_HISTORY_POINTS)"
        )


def _check_probe_limits(
    body: DiagnosisRequest, tenant: str, store: Store, settings: Settings
) -> None:
    """Refuse before anything is queued: budget ceiling, model size, concurrent diagnoses."""
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
    if body.run.model is None:
        raise InvalidRunSpec("probes need run.model (Keras JSON or a layer list)")
    arch = architecture(body.run)
    if arch is not None and arch.total_params > settings.param_budget:
        raise InvalidRunSpec(
            f"the model has {arch.total_params:,} parameters; probes train at most "
            f"{settings.param_budget:,} (LOSSDOCTOR_PARAM_BUDGET)"
        )
    active = store.count_active(tenant)
    if active >= settings.max_active_per_tenant:
        raise TooManyRequests(
            f"{active} diagnoses with probes are queued or running for this tenant; the limit "
            f"is {settings.max_active_per_tenant} (LOSSDOCTOR_MAX_ACTIVE_PER_TENANT)"
        )


def _referenced_dataset(body: DiagnosisRequest, tenant: str, store: Store) -> dict[str, Any] | None:
    dataset_id = body.run.data.dataset_id if body.run.data else None
    if dataset_id is None:
        return None
    dataset = store.get_dataset(dataset_id)
    if dataset is None or dataset.get("_tenant") != tenant:
        raise InvalidRunSpec(
            f"run.data.dataset_id: dataset {dataset_id!r} does not exist; "
            "upload it with POST /v1/datasets"
        )
    return dataset


@router.post(
    "/{diagnosis_id}/history",
    response_model=Diagnosis,
    responses={
        404: {"description": "No such diagnosis.", **_PROBLEM},
        409: {"description": "Not a live diagnosis, or already closed.", **_PROBLEM},
        413: {"description": "The history grew above its limit.", **_PROBLEM},
    },
)
def append_history(
    diagnosis_id: str,
    append: HistoryAppend,
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> Response:
    """Feed a live diagnosis (created with `"live": true`) the epochs since the last call; the
    report is redone at once, so a NaN or a stall shows within one epoch. `close` ends it."""
    doc = owned(store, tenant, diagnosis_id)
    if not doc.get("_live") or doc["status"] != "running":
        raise Conflict(
            f"diagnosis {diagnosis_id!r} is not open for epochs (status "
            f'{doc["status"]}; create it with "live": true)'
        )
    stored = store.get_request(diagnosis_id)
    assert stored is not None
    request = DiagnosisRequest.model_validate(stored)
    if append.history is not None:
        request = request.model_copy(update={"history": request.history.extended(append.history)})
        _check_points(request.history, settings)
    report = static_report(request, _referenced_dataset(request, tenant, store))
    store.update_request(diagnosis_id, request.model_dump_json(exclude_none=True))
    updated = store.update_diagnosis(
        diagnosis_id,
        {
            "report": report.model_dump(mode="json"),
            "updated_at": _now(),
            "status": "succeeded" if append.close else "running",
        },
    )
    if append.close and request.callback_url and updated:
        queue.notify(diagnosis_id)
    return _json(public(updated or doc))


@router.get(
    "/{diagnosis_id}",
    response_model=Diagnosis,
    responses={404: {"description": "No such diagnosis.", **_PROBLEM}},
)
def read_diagnosis(diagnosis_id: str, tenant: TenantDep, store: StoreDep) -> Response:
    return _json(public(owned(store, tenant, diagnosis_id)))


@router.get("", response_model=DiagnosisPage)
def list_diagnoses(
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Your diagnoses, newest first. Pass `next_cursor` back as `cursor` for the next page."""
    items, next_cursor = store.list_diagnoses(tenant, min(limit, settings.page_size_max), cursor)
    return _json({"items": [public(d) for d in items], "next_cursor": next_cursor})


@router.delete(
    "/{diagnosis_id}",
    status_code=204,
    responses={
        202: {"model": Diagnosis, "description": "Was queued or running: now canceled."},
        404: {"description": "No such diagnosis.", **_PROBLEM},
    },
)
def delete_diagnosis(
    diagnosis_id: str, tenant: TenantDep, store: StoreDep, queue: QueueDep
) -> Response:
    """Cancel a queued or running diagnosis (202); delete a finished one (204)."""
    doc = owned(store, tenant, diagnosis_id)
    if doc["status"] in ("queued", "running"):
        canceled = store.update_diagnosis(
            diagnosis_id, {"status": "canceled", "updated_at": _now()}
        )
        queue.revoke(diagnosis_id)
        return _json(public(canceled or doc), 202)
    store.delete_diagnosis(diagnosis_id)
    return Response(status_code=204)
