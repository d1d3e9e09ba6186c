"""Client subcommands of `lossdoctor`: `diagnose`, `status`, `report` (wired in service/cli.py).

    lossdoctor diagnose run.json [--data sample.npz] [--probes] [--wait] [--json] [--url URL]
    lossdoctor status ID [--json]
    lossdoctor report ID [--html out.html] [--json]

The URL defaults to $LOSSDOCTOR_URL or http://127.0.0.1:8000, the key to $LOSSDOCTOR_API_KEY.
Exit status: 0 answered, 1 the service answered an error (problem+json on stderr) or could not
be reached, 2 bad arguments or an unreadable run file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from lossdoctor_client.client import LossDoctor, LossDoctorError, default_url
from service.schemas.diagnosis import Diagnosis


def add_subcommands(sub: Any) -> None:
    """Add `diagnose`, `status` and `report` to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="default: $LOSSDOCTOR_URL or " + _DEFAULT)
    common.add_argument("--api-key", default=None, help="default: $LOSSDOCTOR_API_KEY")
    common.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    common.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout (s)")

    diagnose = sub.add_parser(
        "diagnose",
        parents=[common],
        help="diagnose a run: run.json holds a request body or {run, history}",
    )
    diagnose.add_argument("run_file", metavar="run.json")
    diagnose.add_argument("--data", default=None, help="upload this .npz (x, y) with the run")
    diagnose.add_argument("--probes", action="store_true", help="replay the run with probes")
    diagnose.add_argument("--budget", type=float, default=None, help="probe budget (s)")
    diagnose.add_argument("--wait", action="store_true", help="wait for the probes to finish")
    diagnose.set_defaults(func=_diagnose)

    status = sub.add_parser("status", parents=[common], help="a diagnosis' status and progress")
    status.add_argument("id")
    status.set_defaults(func=_status)

    report = sub.add_parser("report", parents=[common], help="print or save a diagnosis' report")
    report.add_argument("id")
    report.add_argument("--html", default=None, metavar="out.html", help="save the HTML page")
    report.set_defaults(func=_report)


_DEFAULT = "http://127.0.0.1:8000"


def _client(args: argparse.Namespace) -> LossDoctor:
    return LossDoctor(
        args.url or default_url(),
        args.api_key or os.environ.get("LOSSDOCTOR_API_KEY") or None,
        timeout=args.timeout,
    )


def _fail(exc: LossDoctorError) -> int:
    if exc.status:
        print(f"lossdoctor: {exc.status} {exc.title}: {exc.detail}", file=sys.stderr)
        for err in exc.problem.get("errors") or []:
            print(f"  {err.get('field') or 'body'}: {err.get('message')}", file=sys.stderr)
    else:
        print(f"lossdoctor: the service is unreachable: {exc.detail}", file=sys.stderr)
    return 1


def _diagnose(args: argparse.Namespace) -> int:
    try:
        doc = json.loads(Path(args.run_file).read_text())
    except (OSError, ValueError) as exc:
        print(f"lossdoctor: cannot read {args.run_file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or "history" not in doc:
        print(
            f"lossdoctor: {args.run_file} must hold a JSON object with a history "
            '({"run": {...}, "history": {"loss": [...]}})',
            file=sys.stderr,
        )
        return 2
    probes: dict[str, Any] = dict(doc.get("probes") or {})
    if args.probes:
        probes["enabled"] = True
    progress = None if args.json else _progress_printer(sys.stderr)
    try:
        with _client(args) as client:
            dataset_id = client.upload_npz(args.data).id if args.data else None
            diagnosis = client.diagnose(
                doc.get("run"),
                doc["history"],
                dataset_id=dataset_id,
                probes=probes,
                budget_seconds=args.budget,
                wait=args.wait,
                on_progress=progress if args.wait else None,
            )
    except LossDoctorError as exc:
        return _fail(exc)
    _print(diagnosis, args.json)
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            diagnosis = client.get(args.id)
    except LossDoctorError as exc:
        return _fail(exc)
    if args.json:
        print(diagnosis.model_dump_json(indent=2))
    else:
        p = diagnosis.progress
        line = f"{diagnosis.id}: {diagnosis.status}"
        if p.probes_total:
            line += f", probes {p.probes_done}/{p.probes_total}"
            if p.current_probe:
                line += f" (running {p.current_probe})"
        if diagnosis.error:
            line += f"; error: {diagnosis.error}"
        print(line)
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            diagnosis = client.get(args.id)
            page = client.report_html(args.id) if args.html else None
    except LossDoctorError as exc:
        return _fail(exc)
    if page is not None:
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"lossdoctor: wrote {args.html}", file=sys.stderr)
    _print(diagnosis, args.json)
    return 0


def _print(diagnosis: Diagnosis, as_json: bool) -> None:
    if as_json:
        print(diagnosis.model_dump_json(indent=2))
    else:
        print(render_text(diagnosis))


def _progress_printer(out: TextIO) -> Any:
    def show(d: Diagnosis) -> None:
        p = d.progress
        current = f" ({p.current_probe})" if p.current_probe else ""
        print(f"  {d.status}: probes {p.probes_done}/{p.probes_total}{current}", file=out)

    return show


def render_text(diagnosis: Diagnosis) -> str:
    """The readable summary: verdict, summary, causes (confidence, evidence, the fix's changes
    and Keras lines), symptoms, data checks, a probe table and notes."""
    lines = [f"diagnosis {diagnosis.id}: {diagnosis.status}"]
    if diagnosis.error:
        lines.append(f"error: {diagnosis.error}")
    report = diagnosis.report
    if report is None:
        return "\n".join(lines)
    lines += [f"verdict: {report.verdict}", f"summary: {report.summary}", ""]
    if report.symptoms:
        lines.append("symptoms:")
        for s in report.symptoms:
            span = (
                f"{s.epochs[0]}" if s.epochs[0] == s.epochs[1] else f"{s.epochs[0]}-{s.epochs[1]}"
            )
            lines.append(f"  - {s.id} (epochs {span}): {s.detail}")
        lines.append("")
    lines.append("causes:" if report.causes else "causes: none found")
    for i, cause in enumerate(report.causes, 1):
        lines.append(f"  {i}. {cause.id}  confidence {cause.confidence:.2f}")
        lines += [f"     - {e}" for e in cause.evidence]
        lines.append(f"     fix: {cause.fix.summary}")
        lines += [
            f"       {c.path}: {json.dumps(c.from_)} -> {json.dumps(c.to)}"
            for c in cause.fix.changes
        ]
        lines += [f"       {line}" for line in cause.fix.keras]
        if cause.fix.unavailable:
            lines.append(f"       (no concrete change: {cause.fix.unavailable})")
        if cause.probe is not None:
            pr = cause.probe
            verdict = "confirmed" if pr.confirmed else "not confirmed"
            lines.append(
                f"     probe {pr.name}: {_fmt(pr.baseline_loss)} -> {_fmt(pr.probe_loss)} "
                f"({verdict}, {pr.seeds} seeds)"
            )
    if report.data_checks:
        lines += ["", "data checks:"]
        lines += [f"  [{c.status}] {c.id}: {c.detail}" for c in report.data_checks]
    if report.probes:
        rows = [("probe", "status", "final loss", "spread", "seeds", "steps")]
        rows += [
            (p.name, p.status, _fmt(p.final_loss), _fmt(p.spread), str(p.seeds), str(p.steps))
            for p in report.probes
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["", "probes:"]
        for j, row in enumerate(rows):
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
    if report.notes:
        lines += ["", "notes:"]
        lines += [f"  - {n}" for n in report.notes]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
