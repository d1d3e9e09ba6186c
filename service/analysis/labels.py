"""Folding a label audit (run by the worker) into a report: the noisy_labels evidence, a data
check, and the audit itself, for the `clean_labels` probe and the fix to use."""

from __future__ import annotations

from service.analysis.causes import label_noise_alarm, rank
from service.analysis.evidence import Context
from service.analysis.report import CREDIBLE
from service.schemas.report import DataCheck, Report


def audit_check(ctx: Context) -> DataCheck | None:
    audit = ctx.label_audit
    if audit is None:
        return None
    return DataCheck(
        id="label_audit",
        status="fail" if label_noise_alarm(audit) else "ok",
        detail=(
            f"estimated {audit.noise_rate:.0%} wrong labels in {audit.num_examples} examples "
            f"({len(audit.suspects)} suspects; out-of-sample predictions agree with "
            f"{audit.out_of_sample_accuracy:.0%} of the given labels)"
        ),
    )


def with_audit(static: Report, ctx: Context) -> Report:
    """The static report re-ranked with the audit as evidence, the audit attached."""
    if ctx.label_audit is None:
        return static
    causes = rank(ctx)
    checks = [c for c in static.data_checks if c.id != "label_audit"]
    check = audit_check(ctx)
    if check is not None:
        checks.append(check)
    credible = any(c.confidence >= CREDIBLE for c in causes)
    return static.model_copy(
        update={
            "causes": causes,
            "data_checks": checks,
            "label_audit": ctx.label_audit,
            "verdict": "problem" if credible or static.verdict == "problem" else "healthy",
        }
    )
