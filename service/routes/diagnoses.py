"""/v1/diagnoses: submit a run and its history, read, list, cancel and delete diagnoses."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import JSONResponse

from service.analysis.architecture import Architecture
from service.analysis.report import build_context, report_of, static_report
from service.deps import DiagnosisDep, QueueDep, SettingsDep, StoreDep, TenantDep, owned
from service.errors import (
    Conflict,
    InvalidRunSpec,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
)
from service.examples import DIAGNOSIS_EXAMPLES
from service.idempotency import idempotent
from service.logging import current_request_id
from service.queue import ProbeQueue
from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import (
    Diagnosis,
    DiagnosisPage,
    DiagnosisRequest,
    HistoryAppend,
    Progress,
    StoredDiagnosis,
    public_json,
)
from service.schemas.history import History
from service.schemas.model import TRANSLATED
from service.settings import Settings
from service.store import Store
from service.webhooks import check_target

router = APIRouter(prefix="/v1/diagnoses", tags=["diagnoses"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def _now() -> datetime:
    return datetime.now(UTC)


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
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StoredDiagnosis:
    """Diagnose a run. Without probes the finished report comes back at once (201); with
    probes the static report comes back at once (202) and the probes fill it in.
    A retry with the same `Idempotency-Key` and body returns the original diagnosis (200)."""
    # Stored with the Keras JSON's translation (TRANSLATED), so the worker reads it back without
    # translating again. pydantic's own JSON writer: NaN is written as null, which the history
    # schema reads back as NaN.
    request_json = body.model_dump_json(exclude_none=True, context=TRANSLATED)
    with idempotent(store, tenant, "diagnosis", idempotency_key, request_json.encode()) as claim:
        if claim.replay is not None:
            diagnosis = owned(store.get_diagnosis(claim.replay), tenant, "diagnosis")
            response.status_code = 200
            response.headers["Location"] = f"/v1/diagnoses/{diagnosis.id}"
            response.headers["Idempotent-Replayed"] = "true"
            return diagnosis
        diagnosis = _create(body, request_json, tenant, store, settings, queue)
        claim.created = diagnosis.id
    if body.callback_url and diagnosis.status == "succeeded":
        queue.notify(diagnosis.id)
    response.status_code = 202 if diagnosis.status == "queued" else 201
    response.headers["Location"] = f"/v1/diagnoses/{diagnosis.id}"
    return diagnosis


def _create(
    body: DiagnosisRequest,
    request_json: str,
    tenant: str,
    store: Store,
    settings: Settings,
    queue: ProbeQueue,
) -> StoredDiagnosis:
    _check_points(body.history, settings)
    if body.callback_url:
        check_target(body.callback_url, settings)
    if body.live and store.count_active(tenant) >= settings.max_active_per_tenant:
        raise TooManyRequests(
            f"{settings.max_active_per_tenant} diagnoses are already open or "
            "running for this tenant (LOSSDOCTOR_MAX_ACTIVE_PER_TENANT)"
        )
    dataset = _referenced_dataset(body, tenant, store)
    ctx = build_context(body, dataset)  # the model is described once, here
    report = report_of(body, ctx, dataset)
    now = _now()
    diagnosis = StoredDiagnosis(
        id="dg_" + secrets.token_hex(10),
        status="running" if body.live else "succeeded",  # live: open for epochs until closed
        created_at=now,
        updated_at=now,
        progress=Progress(),
        report=report,
        error=None,
        request_id=current_request_id(),
        tenant=tenant,
        live=body.live,
    )
    if not body.probes.enabled:
        store.create_diagnosis(diagnosis, request_json)
        return diagnosis
    _check_probe_limits(body, ctx.arch, tenant, store, settings)
    diagnosis.status = "queued"
    store.create_diagnosis(diagnosis, request_json)
    try:
        queue.enqueue(diagnosis.id)
    except ServiceUnavailable:
        store.delete_diagnosis(diagnosis.id)  # nothing half-accepted
        raise
    return diagnosis


def _check_points(history: History, settings: Settings) -> None:
    points = history.total_points()
    if points > settings.max_history_points:
        raise PayloadTooLarge(
            f"the history has {points} points; the limit is {settings.max_history_points} "
            "(LOSSDOCTOR_MAX_HISTORY_POINTS)"
        )


def _check_probe_limits(
    body: DiagnosisRequest,
    arch: Architecture | None,
    tenant: str,
    store: Store,
    settings: Settings,
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


def _referenced_dataset(body: DiagnosisRequest, tenant: str, store: Store) -> StoredDataset | None:
    dataset_id = body.run.data.dataset_id if body.run.data else None
    if dataset_id is None:
        return None
    dataset = store.get_dataset(dataset_id)
    if dataset is None or dataset.tenant != tenant:
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
    diagnosis: DiagnosisDep,
    append: HistoryAppend,
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> StoredDiagnosis:
    """Feed a live diagnosis (created with `"live": true`) the epochs since the last call; the
    report is redone at once, so a NaN or a stall shows within one epoch. `close` ends it."""
    if not diagnosis.live or diagnosis.status != "running":
        raise Conflict(
            f"diagnosis {diagnosis.id!r} is not open for epochs (status "
            f'{diagnosis.status}; create it with "live": true)'
        )
    stored = store.get_request(diagnosis.id)
    assert stored is not None
    request = DiagnosisRequest.model_validate(stored, context=TRANSLATED)
    if append.history is not None:
        request = request.model_copy(update={"history": request.history.extended(append.history)})
        _check_points(request.history, settings)
    report = static_report(request, _referenced_dataset(request, tenant, store))
    store.update_request(
        diagnosis.id, request.model_dump_json(exclude_none=True, context=TRANSLATED)
    )
    updated = store.update_diagnosis(
        diagnosis.id,
        {
            "report": report.model_dump(mode="json"),
            "updated_at": _now().isoformat(),
            "status": "succeeded" if append.close else "running",
        },
    )
    if append.close and request.callback_url and updated:
        queue.notify(diagnosis.id)
    return updated or diagnosis


@router.get(
    "/{diagnosis_id}",
    response_model=Diagnosis,
    responses={404: {"description": "No such diagnosis.", **_PROBLEM}},
)
def read_diagnosis(diagnosis: DiagnosisDep) -> StoredDiagnosis:
    return diagnosis


@router.get("", response_model=DiagnosisPage)
def list_diagnoses(
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DiagnosisPage:
    """Your diagnoses, newest first. Pass `next_cursor` back as `cursor` for the next page."""
    items, next_cursor = store.list_diagnoses(tenant, min(limit, settings.page_size_max), cursor)
    return DiagnosisPage(items=list[Diagnosis](items), next_cursor=next_cursor)


@router.delete(
    "/{diagnosis_id}",
    status_code=204,
    response_model=None,
    responses={
        202: {"model": Diagnosis, "description": "Was queued or running: now canceled."},
        404: {"description": "No such diagnosis.", **_PROBLEM},
    },
)
def delete_diagnosis(diagnosis: DiagnosisDep, store: StoreDep, queue: QueueDep) -> Response:
    """Cancel a queued or running diagnosis (202); delete a finished one (204)."""
    if diagnosis.status in ("queued", "running"):
        canceled = store.update_diagnosis(
            diagnosis.id, {"status": "canceled", "updated_at": _now().isoformat()}
        )
        queue.revoke(diagnosis.id)
        return JSONResponse(public_json(canceled or diagnosis), status_code=202)
    store.delete_diagnosis(diagnosis.id)
    return Response(status_code=204)
