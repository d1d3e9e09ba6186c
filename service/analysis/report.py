"""The static diagnosis: curve symptoms + spec + data sample → a ranked, explained report."""

from __future__ import annotations

from typing import Any

from service.analysis import curves, fixes
from service.analysis.architecture import Architecture, describe
from service.analysis.causes import rank
from service.analysis.checks import data_checks
from service.analysis.evidence import Context
from service.analysis.optimizers import read_lr
from service.errors import InvalidRunSpec
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import Cause, Report
from service.schemas.run import RunSpec

# A cause at or above this confidence is "credible": the verdict is then "problem".
# The verdict is also "problem" when the curve shows a severe symptom (NaN, stuck at chance…).
CREDIBLE = 0.5


def architecture(run: RunSpec) -> Architecture | None:
    if run.model is None or run.model.layers is None or run.model.input_shape is None:
        return None
    try:
        return describe(run.model.input_shape, run.model.layers)
    except ValueError as exc:
        raise InvalidRunSpec(f"run.model cannot be built: {exc}") from exc


def num_classes(
    run: RunSpec, dataset: dict[str, Any] | None, arch: Architecture | None
) -> int | None:
    if run.data and run.data.num_classes:
        return run.data.num_classes
    if dataset:
        return int(dataset["num_classes"])
    if arch is not None and arch.output_units > 1:
        return arch.output_units
    return None


def input_range(
    run: RunSpec, dataset: dict[str, Any] | None, arch: Architecture | None
) -> tuple[float, float] | None:
    """The range of what reaches the first layer: the sample's (or declared) range, rescaled."""
    lo = hi = None
    if dataset:
        ch = dataset["stats"]["channels"]
        mins = [v for v in ch["min"] if v is not None]
        maxs = [v for v in ch["max"] if v is not None]
        if mins and maxs:
            lo, hi = min(mins), max(maxs)
    elif run.data and run.data.input_min is not None and run.data.input_max is not None:
        lo, hi = run.data.input_min, run.data.input_max
    if lo is None or hi is None:
        return None
    if arch is not None and arch.rescaling_scale is not None:
        scale, offset = arch.rescaling_scale, arch.rescaling_offset or 0.0
        lo, hi = sorted((lo * scale + offset, hi * scale + offset))
    return float(lo), float(hi)


def build_context(request: DiagnosisRequest, dataset: dict[str, Any] | None) -> Context:
    run = request.run
    arch = architecture(run)
    classes = num_classes(run, dataset, arch) or curves.infer_classes(request.history.loss)
    chance = curves.chance_loss(run.loss.name if run.loss else None, classes)
    examples = (run.data.num_examples if run.data and run.data.num_examples else None) or (
        dataset["num_examples"] if dataset else None
    )
    return Context(
        run=run,
        curve=curves.analyze(request.history, chance, classes),
        arch=arch,
        lr=read_lr(run.optimizer),
        num_classes=classes,
        chance=chance,
        stats=dataset["stats"] if dataset else None,
        input_range=input_range(run, dataset, arch),
        num_examples=examples,
        lr_history=tuple(request.history.learning_rate or ()),
    )


def static_report(request: DiagnosisRequest, dataset: dict[str, Any] | None) -> Report:
    ctx = build_context(request, dataset)
    causes = rank(ctx)
    credible = [c for c in causes if c.confidence >= CREDIBLE]
    report = Report(
        # A severe symptom is a problem even when the inputs cannot say which cause it is.
        verdict="problem" if credible or ctx.severe else "healthy",
        summary=_summary(ctx, credible, causes),
        symptoms=ctx.curve.symptoms,
        causes=causes,
        data_checks=data_checks(ctx, dataset),
        notes=_notes(ctx, dataset),
    )
    return with_label_fix(report)


def with_label_fix(report: Report) -> Report:
    """The noisy-labels cause's fix becomes the label audit's suspects, when it has any."""
    audit = getattr(report, "label_audit", None)  # filled by the label audit, when it ran
    if audit is None:
        return report
    suspects = [
        s.model_dump() if hasattr(s, "model_dump") else dict(s)
        for s in (getattr(audit, "suspects", None) or [])
    ]
    for cause in report.causes:
        if cause.id == "noisy_labels":
            cause.fix = (
                fixes.drop_suspect_labels(suspects)
                if suspects
                else fixes.no_label_fix(
                    "the label audit of the sample flagged no example: the noise it shows "
                    "is spread too thin to name examples (a larger sample may)"
                )
            )
    return report


def _summary(ctx: Context, credible: list[Cause], causes: list[Cause]) -> str:
    c = ctx.curve
    parts = []
    if c.first_loss is not None and c.final_loss is not None:
        scale = f" ({c.final_loss / ctx.chance:.2f}× the chance loss ln C)" if ctx.chance else ""
        parts.append(
            f"Over {c.epochs} epochs the training loss went from {c.first_loss:.3g} to "
            f"{c.final_loss:.3g}{scale}."
        )
    elif c.non_finite_at:
        parts.append(f"The loss was non-finite from epoch {c.non_finite_at}.")
    if c.symptoms:
        parts.append("The curve shows " + "; ".join(s.detail for s in c.symptoms[:3]) + ".")
    if credible:
        top = credible[0]
        parts.append(
            f"Most likely cause: {top.id.replace('_', ' ')} (confidence "
            f"{top.confidence:.2f}) — {top.evidence[0] if top.evidence else ''}. "
            f"Fix: {top.fix.summary}."
        )
        others = [f"{x.id.replace('_', ' ')} ({x.confidence:.2f})" for x in credible[1:3]]
        if others:
            parts.append("Also credible: " + ", ".join(others) + ".")
    elif ctx.severe:
        parts.append(
            "The run is in trouble, but what was sent cannot tell its cause apart"
            + (
                f"; candidates: {', '.join(x.id.replace('_', ' ') for x in causes[:3])}"
                if causes
                else ""
            )
            + ". Send the model, optimizer and a data sample, "
            "or enable probes."
        )
    else:
        parts.append("No cause is credible: this looks like a healthy run.")
        if causes:
            parts.append(
                f"Weakest doubt: {causes[0].id.replace('_', ' ')} ({causes[0].confidence:.2f})."
            )
    return " ".join(parts)


def _declared_classes(ctx: Context, dataset: dict[str, Any] | None) -> bool:
    run = ctx.run
    return bool(
        (run.data and run.data.num_classes)
        or dataset
        or (ctx.arch is not None and ctx.arch.output_units > 1)
    )


def _notes(ctx: Context, dataset: dict[str, Any] | None) -> list[str]:
    notes = []
    if ctx.num_classes and not _declared_classes(ctx, dataset):
        notes.append(
            f"Number of classes inferred as {ctx.num_classes}: the loss sits flat at "
            f"ln {ctx.num_classes}. Give run.data.num_classes to be sure."
        )
    if ctx.chance is None:
        notes.append(
            "Number of classes or loss unknown: the loss is not compared with chance "
            "(give run.data.num_classes and run.loss)."
        )
    if ctx.arch is None:
        notes.append(
            "No model: initialization, capacity, kernel sizes and output/loss are not "
            "checked (give run.model)."
        )
    if ctx.lr is None:
        notes.append("No optimizer: learning-rate ranges are not checked (give run.optimizer).")
    if ctx.input_range is None:
        notes.append(
            "Input range unknown: upload a sample (POST /v1/datasets) or give "
            "run.data.input_min/input_max."
        )
    if ctx.curve.val_gap is None:
        notes.append("No val_loss: overfitting cannot be seen.")
    if dataset is None and ctx.stats is None:
        notes.append("No data sample: label and duplicate checks were skipped.")
    if ctx.curve.epochs < 3:
        notes.append(f"Only {ctx.curve.epochs} epoch(s): curve symptoms need at least 3.")
    return notes
