"""The report as one self-contained HTML page: verdict, curves (inline SVG), causes with
their evidence and fix (change list and Keras lines; the JSON patch behind a disclosure),
symptoms, data checks, probes and notes.

Pure string building: no template engine. Every string that comes from a client (layer
names, metric keys, details quoting them) goes through `html.escape`.
"""

from __future__ import annotations

import html
import json
from typing import Any

from service.render.chart import chart_series, svg_chart

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
.changes td:first-child { font-family: ui-monospace, monospace; }
details summary { cursor: pointer; color: #555; }
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
            f"<ul>{evidence}</ul>" + fix_html(fix)
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


def fix_html(fix: dict[str, Any]) -> str:
    """A fix as a reader applies it: what changes (from → to), the Keras lines, and the RFC 7396
    patch folded away for platforms that apply patches."""
    out = [f"<p><b>Fix:</b> {_e(fix.get('summary', ''))}</p>"]
    if fix.get("unavailable"):
        out.append(f'<p class="muted">No concrete change: {_e(fix["unavailable"])}</p>')
    changes = fix.get("changes") or []
    if changes:
        rows = "".join(
            f"<tr><td>{_e(c.get('path'))}</td><td>{_e(_short(c.get('from')))}</td>"
            f"<td>→</td><td>{_e(_short(c.get('to')))}</td></tr>"
            for c in changes[:40]
        )
        more = f'<p class="muted">… and {len(changes) - 40} more</p>' if len(changes) > 40 else ""
        out.append(f'<table class="changes">{rows}</table>{more}')
    effect = fix.get("verified")
    if effect:
        out.append(
            f"<p><b>Verified:</b> trained as one patch, the loss went from "
            f"{_num(effect.get('baseline_loss'))} to {_num(effect.get('probe_loss'))} "
            f"({_e(effect.get('seeds'))} seeds, spread {_num(effect.get('spread'))})</p>"
        )
    if fix.get("keras"):
        out.append("<pre><code>" + _e("\n".join(fix["keras"])) + "</code></pre>")
    if fix.get("patch"):
        out.append(
            "<details><summary>JSON merge patch (RFC 7396)</summary><pre>"
            f"{_e(json.dumps(fix['patch'], indent=2, sort_keys=True)[:20000])}</pre></details>"
        )
    return "".join(out)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "…"
