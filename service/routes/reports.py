"""Human-readable reports: `GET /v1/diagnoses/{id}/report.html` (one self-contained page, the
curves drawn as inline SVG) and `GET /v1/diagnoses/{id}/plot.png` (the same chart as PNG; needs
the optional `plots` extra, matplotlib, and answers 501 problem+json without it).

Pure string building: no template engine, no TensorFlow. Every string that comes from a client
(layer names, metric keys, details quoting them) goes through `html.escape`.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from service.deps import StoreDep, TenantDep, owned
from service.errors import FeatureNotInstalled
from service.schemas.diagnosis import public_json

router = APIRouter(prefix="/v1/diagnoses", tags=["reports"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}

# Okabe–Ito: distinguishable for colour-blind readers; the run's own curves come first.
_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000"]


@dataclass
class Series:
    label: str
    values: list[float | None]
    dashed: bool = False


def _load(store: Any, tenant: str, diagnosis_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tenant's diagnosis (another tenant's answers 404) and its stored request."""
    doc = public_json(
        owned(store.get_diagnosis(diagnosis_id), tenant, f"diagnosis {diagnosis_id!r}")
    )
    return doc, store.get_request(diagnosis_id) or {}


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def chart_series(doc: dict[str, Any], request: dict[str, Any]) -> list[Series]:
    """loss and val_loss of the run, then each probe's curve (mean training loss per window)."""
    history = request.get("history") or {}
    out = [
        Series(key, [_finite(v) for v in history[key]])
        for key in ("loss", "val_loss")
        if isinstance(history.get(key), list) and history[key]
    ]
    report = doc.get("report") or {}
    for probe in report.get("probes") or []:
        curve = probe.get("curve") or []
        if curve:
            name = f"probe: {probe.get('name', '?')}"
            out.append(Series(name, [_finite(v) for v in curve], dashed=True))
    return out


def _ticks_linear(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick(t: float) -> str:
    if t == 0 or 1e-3 <= abs(t) < 1e5:
        return f"{t:.4g}"
    mantissa, exponent = f"{t:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{'' if mantissa == '1' else mantissa + '·'}10^{int(exponent)}"


def svg_chart(series: list[Series], width: int = 760, height: int = 360) -> str:
    """One inline SVG: x = epoch of the run (probe windows are stretched over the same span),
    y = loss, on a log axis when the finite values span more than one decade. Non-finite points
    break the line and are marked with a red × at the top edge."""
    left, right, top, bottom = 64, 16, 16, 44
    pw, ph = width - left - right, height - top - bottom
    finite = [v for s in series for v in s.values if v is not None]
    if not finite:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" role="img">'
            '<text x="10" y="30">no finite loss values to draw</text></svg>'
        )
    positive = [v for v in finite if v > 0]
    lo, hi = min(finite), max(finite)
    log = bool(positive) and lo > 0 and hi / lo > 10
    if log:
        ylo, yhi = math.log10(lo), math.log10(hi)
    else:
        ylo, yhi = min(0.0, lo), hi
    if yhi - ylo < 1e-12:
        ylo, yhi = ylo - 0.5, yhi + 0.5
    pad = (yhi - ylo) * 0.05
    ylo, yhi = ylo - (0 if not log and ylo == 0 else pad), yhi + pad
    epochs = max((len(s.values) for s in series if not s.dashed), default=0) or max(
        len(s.values) for s in series
    )
    xmax = max(epochs, 2)

    def sx(x: float) -> float:
        return left + (x - 1) / (xmax - 1) * pw

    def sy(v: float) -> float:
        t = math.log10(v) if log else v
        return top + (yhi - t) / (yhi - ylo) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="loss curves" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    # y grid and labels
    if log:
        yticks = [10.0**e for e in range(math.floor(ylo), math.ceil(yhi) + 1)]
        yticks = [t for t in yticks if ylo <= math.log10(t) <= yhi] or [10**ylo, 10**yhi]
    else:
        yticks = [t for t in _ticks_linear(ylo, yhi) if ylo <= t <= yhi]
    for t in yticks:
        y = sy(t)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(t)}</text>'
        )
    for t in _ticks_linear(1, xmax, min(8, xmax - 1)):
        if t == int(t) and 1 <= t <= xmax:
            x = sx(t)
            parts.append(
                f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{int(t)}</text>'
            )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">epoch</text>'
        f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
        f"loss{' (log scale)' if log else ''}</text>"
    )
    # curves
    for i, s in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        n = len(s.values)
        span = (xmax - 1) / (n - 1) if n > 1 else 0.0

        def xpos(j: int, span: float = span, dashed: bool = s.dashed) -> float:
            return sx(1 + j * span) if dashed else sx(j + 1)

        runs: list[list[str]] = [[]]
        for j, v in enumerate(s.values):
            if v is None or (log and v <= 0):
                if runs[-1]:
                    runs.append([])
                x = xpos(j)
                parts.append(
                    f'<text x="{x:.1f}" y="{top + 10}" fill="#c00" text-anchor="middle">×</text>'
                )
                continue
            runs[-1].append(f"{xpos(j):.1f},{sy(v):.1f}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for pts in runs:
            if len(pts) == 1:
                cx, cy = pts[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif pts:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} '
                    f'points="{" ".join(pts)}"/>'
                )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="border-top: 3px {"dashed" if s.dashed else "solid"} '
        f'{_COLOURS[i % len(_COLOURS)]}"></span>{html.escape(s.label)}</li>'
        for i, s in enumerate(series)
    )
    note = (
        '<p class="muted">Probe curves are the mean training loss per recording window of a '
        "short replay, stretched over the run's epochs. × marks a non-finite value.</p>"
        if any(s.dashed for s in series)
        else ""
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>{note}'


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.verdict { display: inline-block; padding: .15em .6em; border-radius: 4px; color: #fff; }
.problem { background: #b3261e; } .healthy { background: #2e7d32; }
.muted { color: #666; font-size: .9em; }
table { border-collapse: collapse; } td, th { padding: .25em .6em; border-bottom: 1px solid #ddd;
  text-align: left; vertical-align: top; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
.cause { border-left: 4px solid #0072B2; padding-left: .8em; margin: 1em 0; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1em; }
.swatch { display: inline-block; width: 24px; margin-right: .4em; vertical-align: middle; }
.ok { color: #2e7d32; } .warning { color: #a66300; } .fail { color: #b3261e; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = ".4g") -> str:
    return "—" if value is None else _e(format(value, fmt))


def render_report_html(doc: dict[str, Any], request: dict[str, Any]) -> str:
    report = doc.get("report") or {}
    verdict = str(report.get("verdict", doc.get("status", "")))
    out: list[str] = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>lossdoctor · {_e(doc['id'])}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>lossdoctor report <code>{_e(doc['id'])}</code></h1>",
        f'<p><span class="verdict {"healthy" if verdict == "healthy" else "problem"}">'
        f"{_e(verdict)}</span> {_e(report.get('summary', ''))}</p>",
        f'<p class="muted">status {_e(doc.get("status"))} · created {_e(doc.get("created_at"))}'
        f" · updated {_e(doc.get('updated_at'))}</p>",
    ]
    if doc.get("error"):
        out.append(f'<p class="fail">error: {_e(doc["error"])}</p>')
    out += ["<h2>Curves</h2>", svg_chart(chart_series(doc, request))]

    out.append("<h2>Causes</h2>")
    causes = report.get("causes") or []
    if not causes:
        out.append("<p>No cause found.</p>")
    for cause in causes:
        fix = cause.get("fix") or {}
        evidence = "".join(f"<li>{_e(e)}</li>" for e in cause.get("evidence") or [])
        out.append(
            f'<div class="cause"><h3>{_e(cause.get("id"))} '
            f'<span class="muted">confidence {_num(cause.get("confidence"), ".2f")}</span></h3>'
            f"<ul>{evidence}</ul>"
            f"<p><b>Fix:</b> {_e(fix.get('summary', ''))}</p>"
            f"<pre>{_e(json.dumps(fix.get('patch', {}), indent=2, sort_keys=True))}</pre>"
        )
        probe = cause.get("probe")
        if probe:
            out.append(
                f'<p class="muted">probe {_e(probe.get("name"))}: baseline '
                f"{_num(probe.get('baseline_loss'))} → {_num(probe.get('probe_loss'))} "
                f"(improvement {_num(probe.get('improvement'))}, spread "
                f"{_num(probe.get('spread'))}, {_e(probe.get('seeds'))} seeds, "
                f"{'confirmed' if probe.get('confirmed') else 'not confirmed'})</p>"
            )
        out.append("</div>")

    out.append("<h2>Symptoms</h2>")
    symptoms = report.get("symptoms") or []
    if symptoms:
        rows = "".join(
            f"<tr><td>{_e(s.get('id'))}</td><td>{_e(_epochs(s.get('epochs')))}</td>"
            f"<td>{_e(s.get('detail'))}</td></tr>"
            for s in symptoms
        )
        out.append(f"<table><tr><th>symptom</th><th>epochs</th><th>detail</th></tr>{rows}</table>")
    else:
        out.append("<p>None.</p>")

    checks = report.get("data_checks") or []
    if checks:
        rows = "".join(
            f'<tr><td>{_e(c.get("id"))}</td><td class="{_e(c.get("status"))}">'
            f"{_e(c.get('status'))}</td><td>{_e(c.get('detail'))}</td></tr>"
            for c in checks
        )
        out.append(
            "<h2>Data checks</h2><table><tr><th>check</th><th>status</th><th>detail</th></tr>"
            f"{rows}</table>"
        )

    probes = report.get("probes") or []
    if probes:
        rows = "".join(
            f"<tr><td>{_e(p.get('name'))}</td><td><code>"
            f"{_e(json.dumps(p.get('change', {}), sort_keys=True))}</code></td>"
            f"<td>{_e(p.get('status'))}</td><td>{_num(p.get('final_loss'))}</td>"
            f"<td>{_num(p.get('spread'))}</td><td>{_e(p.get('seeds'))}</td>"
            f"<td>{_e(p.get('detail') or '')}</td></tr>"
            for p in probes
        )
        out.append(
            "<h2>Probes</h2><table><tr><th>probe</th><th>change</th><th>status</th>"
            f"<th>final loss</th><th>spread</th><th>seeds</th><th>detail</th></tr>{rows}</table>"
        )

    notes = report.get("notes") or []
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    out.append(
        f'<p class="muted">JSON: <a href="/v1/diagnoses/{_e(doc["id"])}">'
        f"/v1/diagnoses/{_e(doc['id'])}</a></p></body></html>"
    )
    return "".join(out)


def _epochs(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]}–{value[1]}" if value[0] != value[1] else str(value[0])
    return str(value)


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
    return Response(render_png(chart_series(doc, request)), media_type="image/png")


def render_png(series: list[Series]) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise FeatureNotInstalled(
            "PNG plots need matplotlib: pip install 'lossdoctor[plots]'; "
            "the report page (report.html) draws the same chart as SVG without it"
        ) from exc
    fig = Figure(figsize=(7.6, 3.6), dpi=100)
    ax = fig.add_subplot()
    finite = [v for s in series for v in s.values if v is not None]
    epochs = max((len(s.values) for s in series if not s.dashed), default=0) or max(
        (len(s.values) for s in series), default=1
    )
    xmax = max(epochs, 2)
    for i, s in enumerate(series):
        n = len(s.values)
        span = (xmax - 1) / (n - 1) if n > 1 else 0.0
        xs = [1 + j * span if s.dashed else j + 1 for j in range(n)]
        ys = [math.nan if v is None else v for v in s.values]
        ax.plot(
            xs,
            ys,
            linestyle="--" if s.dashed else "-",
            color=_COLOURS[i % len(_COLOURS)],
            label=s.label,
        )
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
