"""A diagnosis as a few lines of text, for a terminal (the Keras callback prints it)."""

from __future__ import annotations

import json

from service.schemas.diagnosis import Diagnosis

MAX_CHANGES = 8  # changes printed; a model fix can list one per layer


def summary_text(diagnosis: Diagnosis) -> str:
    """Verdict and summary, the top cause, its fix: what changes (path: from → to) and the
    Keras lines that make the change."""
    report = diagnosis.report
    if report is None:
        return f"lossdoctor: diagnosis {diagnosis.id} is {diagnosis.status}"
    lines = [f"lossdoctor: {report.verdict}: {report.summary}"]
    if report.causes:
        top = report.causes[0]
        lines.append(f"  top cause: {top.id} (confidence {top.confidence:.2f})")
        lines.append(f"  fix: {top.fix.summary}")
        for change in top.fix.changes[:MAX_CHANGES]:
            before, after = json.dumps(change.from_), json.dumps(change.to)
            lines.append(f"    {change.path}: {before} → {after}")
        if len(top.fix.changes) > MAX_CHANGES:
            lines.append(f"    … {len(top.fix.changes) - MAX_CHANGES} more (see fixed_run)")
        lines += [f"    {line}" for line in top.fix.keras]
        if top.fix.verified:
            v = top.fix.verified
            lines.append(
                f"  verified: loss {v.baseline_loss} → {v.probe_loss} "
                f"({v.seeds} seeds, spread {v.spread})"
            )
        if top.fix.unavailable:
            lines.append(f"  no concrete change: {top.fix.unavailable}")
    return "\n".join(lines)
