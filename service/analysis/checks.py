"""Data checks: what the uploaded sample says about inputs and labels."""

from __future__ import annotations

from typing import Literal

from service.analysis.evidence import Context
from service.schemas.dataset import Dataset
from service.schemas.report import DataCheck


def data_checks(ctx: Context, dataset: Dataset | None) -> list[DataCheck]:
    out: list[DataCheck] = []
    if ctx.input_range is not None:
        lo, hi = ctx.input_range
        m = max(abs(lo), abs(hi))
        status: Literal["ok", "warning", "fail"] = (
            "ok" if m <= 3 else "warning" if m <= 10 else "fail"
        )
        out.append(
            DataCheck(
                id="input_range",
                status=status,
                detail=f"inputs reach the first layer in [{lo:g}, {hi:g}]",
            )
        )
    if dataset is None:
        return out
    stats = dataset.stats
    bad = stats["nan_count"] + stats["inf_count"]
    out.append(
        DataCheck(
            id="non_finite_inputs",
            status="fail" if bad else "ok",
            detail=f"{stats['nan_count']} NaN and {stats['inf_count']} Inf values",
        )
    )
    stds = stats["channels"]["std"]
    flat = [i for i, s in enumerate(stds) if s == 0]
    out.append(
        DataCheck(
            id="constant_channels",
            status="warning" if flat else "ok",
            detail=f"channels {flat} are constant" if flat else f"all {len(stds)} channels vary",
        )
    )
    counts = {int(k): v for k, v in stats["class_counts"].items()}
    # Regression targets and multi-hot rows have no classes to count: no class checks then.
    if counts:
        ratio = max(counts.values()) / min(counts.values())
        classes = ctx.num_classes or len(counts)
        missing = classes - len(counts)
        out.append(
            DataCheck(
                id="class_balance",
                status="warning" if ratio > 10 or missing > 0 else "ok",
                detail=f"{len(counts)} of {classes} classes present; "
                f"largest/smallest = {ratio:.1f}",
            )
        )
    if ctx.arch is not None and counts:
        top = max(counts)
        units = ctx.arch.output_units
        ok = units == 1 or top < units
        out.append(
            DataCheck(
                id="labels_vs_outputs",
                status="ok" if ok else "fail",
                detail=f"labels go up to {top}; the output has {units} units",
            )
        )
    if ctx.arch is not None:
        shape = list(ctx.arch.input_shape)
        given = dataset.input_shape
        out.append(
            DataCheck(
                id="input_shape",
                status="ok" if given == shape else "fail",
                detail=f"sample examples are {given}; the model takes {shape}",
            )
        )
    n = dataset.num_examples
    conflicting = stats["conflicting_duplicates"]
    out.append(
        DataCheck(
            id="conflicting_duplicates",
            status="fail" if conflicting else "ok",
            detail=f"{stats['duplicate_count']} repeated inputs in {n} examples; {conflicting} of "
            "them carry more than one label",
        )
    )
    return out
