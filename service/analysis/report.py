"""The static diagnosis: curve symptoms + spec + data sample → a ranked, explained report."""

from __future__ import annotations

import math
from dataclasses import replace

from service.analysis import curves
from service.analysis.architecture import Architecture, ShapeUnknown, describe
from service.analysis.causes import rank, settle
from service.analysis.checks import data_checks
from service.analysis.evidence import REGRESSION_HIGH, REGRESSION_LOSSES, Context, Targets
from service.analysis.intake import intake_notes
from service.analysis.optimizers import read_lr
from service.errors import InvalidRunSpec
from service.schemas.dataset import Dataset
from service.schemas.diagnosis import DiagnosisRequest
from service.schemas.report import Cause, Report
from service.schemas.run import RunSpec

# A cause at or above this confidence is "credible": the verdict is then "problem".
# The verdict is also "problem" when the curve shows a severe symptom (NaN, stuck at chance…).
CREDIBLE = 0.5


def architecture(
    run: RunSpec, dataset: Dataset | None = None
) -> tuple[Architecture | None, str | None]:
    """The model's architecture, described once; None without a model, or when its shapes
    cannot be followed (then with the reason, which the report's notes give)."""
    if run.model is None or run.model.layers is None or run.model.input_shape is None:
        return None, None
    try:
        return describe(sized_input(run.model.input_shape, dataset), run.model.layers), None
    except ShapeUnknown as exc:
        return None, str(exc)  # the report's notes say which checks this turns off
    except ValueError as exc:
        raise InvalidRunSpec(f"run.model cannot be built: {exc}") from exc


def sized_input(shape: list[int | None], dataset: Dataset | None) -> list[int | None]:
    """An input size the model leaves open (None) taken from the uploaded sample's shape."""
    given = dataset.input_shape if dataset else None
    if None not in shape or given is None or len(given) != len(shape):
        return shape
    return [d if d is not None else int(g) for d, g in zip(shape, given, strict=True)]


def num_classes(run: RunSpec, dataset: Dataset | None, arch: Architecture | None) -> int | None:
    if run.data and run.data.num_classes:
        return run.data.num_classes
    if dataset and dataset.num_classes:
        return dataset.num_classes
    if arch is not None and arch.output_units > 1:
        return arch.output_units
    return None


def input_range(
    run: RunSpec, dataset: Dataset | None, arch: Architecture | None
) -> tuple[float, float] | None:
    """The range of what reaches the first layer: the sample's (or declared) range, rescaled."""
    lo = hi = None
    if dataset:
        ch = dataset.stats["channels"]
        mins = [v for v in ch["min"] if v is not None]
        maxs = [v for v in ch["max"] if v is not None]
        if mins and maxs:
            lo, hi = min(mins), max(maxs)
    elif run.data and run.data.input_min is not None and run.data.input_max is not None:
        lo, hi = run.data.input_min, run.data.input_max
    elif run.data and run.data.typical_range() is not None:
        lo, hi = run.data.typical_range() or (None, None)
    if lo is None or hi is None:
        return None
    if arch is not None and arch.rescaling_scale is not None:
        scale, offset = arch.rescaling_scale, arch.rescaling_offset or 0.0
        lo, hi = sorted((lo * scale + offset, hi * scale + offset))
    return float(lo), float(hi)


def build_context(request: DiagnosisRequest, dataset: Dataset | None) -> Context:
    """Everything the causes are weighed on; the model is described here, once."""
    run = request.run
    arch, shape_gap = architecture(run, dataset)
    regression = run.loss is not None and run.loss.name in REGRESSION_LOSSES
    # A flat regression loss says nothing about classes: only a cross-entropy sits at ln C.
    classes = num_classes(run, dataset, arch) or (
        None if regression else curves.infer_classes(request.history.loss)
    )
    chance = curves.chance_loss(run.loss.name if run.loss else None, classes)
    examples = (run.data.num_examples if run.data and run.data.num_examples else None) or (
        dataset.num_examples if dataset else None
    )
    found = targets(run, dataset)
    ctx = Context(
        run=run,
        curve=curves.analyze(request.history, chance, classes),
        arch=arch,
        lr=read_lr(run.optimizer, _mse_target_rms(run, found) if not classes else None),
        num_classes=classes,
        chance=chance,
        stats=dataset.stats if dataset else None,
        input_range=input_range(run, dataset, arch),
        num_examples=examples,
        lr_history=tuple(request.history.learning_rate or ()),
        targets=found,
        shape_gap=shape_gap,
    )
    if ctx.baseline is not None:  # a regression with known targets: read against Var(y)
        curve = curves.against_baseline(ctx.curve, request.history, ctx.baseline, REGRESSION_HIGH)
        ctx = replace(ctx, curve=curve)
    return ctx


def _mse_target_rms(run: RunSpec, found: Targets | None) -> float | None:
    """RMS of the regression targets under an MSE loss (what sizes its gradient), if known."""
    if run.loss is None or run.loss.name not in ("mean_squared_error", "mse") or found is None:
        return None
    if found.mean is None or found.std is None:
        return None
    return math.hypot(found.mean, found.std) or None


def targets(run: RunSpec, dataset: Dataset | None) -> Targets | None:
    """Regression targets' statistics: as the request states them, else from an uploaded y."""
    d = run.data
    if d is not None and any(
        v is not None for v in (d.target_min, d.target_max, d.target_mean, d.target_std)
    ):
        return Targets(d.target_min, d.target_max, d.target_mean, d.target_std)
    found = dataset.stats.get("targets") if dataset else None
    if not found:
        return None
    return Targets(found["min"], found["max"], found["mean"], found["std"])


def static_report(request: DiagnosisRequest, dataset: Dataset | None) -> Report:
    return report_of(request, build_context(request, dataset), dataset)


def report_of(request: DiagnosisRequest, ctx: Context, dataset: Dataset | None) -> Report:
    """The static report on a built context (which a caller may need for more checks)."""
    causes, oddities = settle(ctx, rank(ctx))
    credible = [c for c in causes if c.confidence >= CREDIBLE]
    return Report(
        # A severe symptom is a problem even when the inputs cannot say which cause it is.
        verdict="problem" if credible or ctx.severe else "healthy",
        summary=_summary(ctx, credible, causes),
        symptoms=ctx.curve.symptoms,
        causes=causes,
        data_checks=data_checks(ctx, dataset),
        notes=_notes(ctx, dataset) + oddities + intake_notes(request, ctx),
    )


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


def _declared_classes(ctx: Context, dataset: Dataset | None) -> bool:
    run = ctx.run
    return bool(
        (run.data and run.data.num_classes)
        or dataset
        or (ctx.arch is not None and ctx.arch.output_units > 1)
    )


def _notes(ctx: Context, dataset: Dataset | None) -> list[str]:
    notes = []
    if ctx.num_classes and not _declared_classes(ctx, dataset):
        notes.append(
            f"Number of classes inferred as {ctx.num_classes}: the loss sits flat at "
            f"ln {ctx.num_classes}. Give run.data.num_classes to be sure."
        )
    if ctx.chance is None and not ctx.regression:
        notes.append(
            "Number of classes or loss unknown: the loss is not compared with chance "
            "(give run.data.num_classes and run.loss)."
        )
    if ctx.arch is None and ctx.run.model is None:
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
    if ctx.tiny:
        notes.append(
            f"Only {ctx.num_examples} training examples: overfitting, label noise and too "
            "little capacity look alike on so few, and a validation split of a handful of "
            "examples moves by whole examples; label noise and over-regularization are not "
            "inferred from the train/validation gap."
        )
    if ctx.regression and ctx.baseline is None:
        notes.append(
            "Regression without target statistics: the loss is not compared with Var(y) "
            "(give run.data.target_min/target_max/target_mean/target_std)."
        )
    elif ctx.explained_level is not None:
        notes.append(
            f"Regression: the training loss ends at {ctx.explained_level:.2f}× the loss of "
            "predicting the mean of y (Var(y) for MSE)."
        )
    return notes
