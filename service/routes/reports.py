"""Views of a diagnosis beyond its JSON: `GET /v1/diagnoses/{id}/report.html` (one
self-contained page), `/plot.png` (the chart; needs the optional `plots` extra, matplotlib,
and answers 501 problem+json without it) and `/fixed-run` (the run with its fix applied, in
the form the user sent it). Rendering lives in service/render.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from service.analysis import patch
from service.deps import StoreDep, TenantDep, owned
from service.errors import FeatureNotInstalled, NoFixToApply, NotFound
from service.render.chart import chart_series
from service.render.page import render_report_html
from service.render.png import MissingPlotting, render_png
from service.schemas.diagnosis import public_json
from service.schemas.model import TRANSLATED
from service.schemas.run import RunSpec

router = APIRouter(prefix="/v1/diagnoses", tags=["reports"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def _load(store: Any, tenant: str, diagnosis_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tenant's diagnosis (another tenant's answers 404) and its stored request."""
    doc = public_json(
        owned(store.get_diagnosis(diagnosis_id), tenant, f"diagnosis {diagnosis_id!r}")
    )
    return doc, store.get_request(diagnosis_id) or {}


@router.get(
    "/{diagnosis_id}/report.html",
    response_class=HTMLResponse,
    responses={
        401: {"description": "Missing or unknown API key.", **_PROBLEM},
        404: {"description": "No such diagnosis.", **_PROBLEM},
    },
)
def report_page(diagnosis_id: str, tenant: TenantDep, store: StoreDep) -> HTMLResponse:
    """The report as one self-contained HTML page: curves (inline SVG), causes with their
    evidence and fix, symptoms, data checks, probes and notes."""
    doc, request = _load(store, tenant, diagnosis_id)
    return HTMLResponse(render_report_html(doc, request))


@router.get(
    "/{diagnosis_id}/plot.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The curves as PNG."},
        401: {"description": "Missing or unknown API key.", **_PROBLEM},
        404: {"description": "No such diagnosis.", **_PROBLEM},
        501: {"description": "matplotlib (the `plots` extra) is not installed.", **_PROBLEM},
    },
)
def plot_png(diagnosis_id: str, tenant: TenantDep, store: StoreDep) -> Response:
    """The report page's chart as PNG. Needs `pip install 'lossdoctor[plots]'` (matplotlib)."""
    doc, request = _load(store, tenant, diagnosis_id)
    try:
        return Response(render_png(chart_series(doc, request)), media_type="image/png")
    except MissingPlotting as exc:
        raise FeatureNotInstalled(str(exc)) from exc


@router.get(
    "/{diagnosis_id}/fixed-run",
    responses={
        200: {"description": "The run with the fix applied, and the fix."},
        401: {"description": "Missing or unknown API key.", **_PROBLEM},
        404: {"description": "No such diagnosis, or no such cause in it.", **_PROBLEM},
        409: {"description": "The diagnosis has no fix to apply.", **_PROBLEM},
    },
)
def fixed_run(
    diagnosis_id: str,
    tenant: TenantDep,
    store: StoreDep,
    cause: str | None = Query(
        default=None, description="Apply this cause's fix instead of the top cause's."
    ),
) -> dict[str, Any]:
    """The whole run with a fix applied: `run` is the request's run merged with `fix.patch`.
    A model sent as Keras JSON comes back as the same Keras JSON, edited (it loads with
    `keras.models.model_from_json`); a layer list comes back as the edited layer list."""
    doc, request = _load(store, tenant, diagnosis_id)
    report = doc.get("report")
    if report is None:
        raise NoFixToApply(f"diagnosis {diagnosis_id!r} is {doc.get('status')}: no report yet")
    causes = report.get("causes") or []
    if cause is not None:
        chosen = next((c for c in causes if c["id"] == cause), None)
        if chosen is None:
            raise NotFound(f"diagnosis {diagnosis_id!r} does not list cause {cause!r}")
    elif report.get("verdict") != "problem" or not causes:
        raise NoFixToApply(f"diagnosis {diagnosis_id!r} found no problem to fix")
    else:
        chosen = causes[0]
    fix = chosen["fix"]
    if not fix.get("patch"):
        raise NoFixToApply(
            f"the fix for {chosen['id']} has no concrete change: "
            + (fix.get("unavailable") or fix.get("summary", ""))
        )
    return {
        "diagnosis_id": diagnosis_id,
        "cause": chosen["id"],
        "fix": fix,
        "run": patch.apply(_as_sent(request.get("run") or {}), fix["patch"]),
    }


def _as_sent(stored_run: dict[str, Any]) -> dict[str, Any]:
    """The run as the user sent it: a stored Keras JSON run keeps its translation beside it
    (TRANSLATED), which a fixed run must not carry (the edited Keras JSON replaces both)."""
    run = RunSpec.model_validate(stored_run, context=TRANSLATED)
    return run.model_dump(mode="json", exclude_none=True)
