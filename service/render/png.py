"""The report's chart as PNG, drawn with matplotlib (the optional `plots` extra)."""

from __future__ import annotations

import io
import math

from service.render.chart import Series, colours


class MissingPlotting(ImportError):
    """matplotlib is not installed."""


def render_png(series: list[Series]) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingPlotting(
            "PNG plots need matplotlib: pip install 'lossdoctor[plots]'; "
            "the report page (report.html) draws the same chart as SVG without it"
        ) from exc
    fig = Figure(figsize=(7.6, 3.6), dpi=100)
    ax = fig.add_subplot()
    finite = [v for s in series if s.role != "other" for v in s.values if v is not None]
    epochs = max((len(s.values) for s in series if not s.dashed), default=0) or max(
        (len(s.values) for s in series), default=1
    )
    xmax = max(epochs, 2)
    palette = colours(series)
    for i, s in enumerate(series):
        n = len(s.values)
        span = (xmax - 1) / (n - 1) if n > 1 else 0.0
        xs = [1 + j * span if s.dashed else j + 1 for j in range(n)]
        ys = [math.nan if v is None else v for v in s.values]
        ax.plot(
            xs,
            ys,
            linestyle="--" if s.dashed else "-",
            color=palette[i],
            linewidth=0.8 if s.role == "other" else 1.8,
            alpha=0.45 if s.role == "other" else 1.0,
            label=None if s.role == "other" else s.label,
        )
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
        ax.set_ylim(min(finite) / 1.2, max(finite) * 1.2)
    elif finite:  # faded probes outside the run's range are cut, as on the page
        pad = 0.05 * (max(finite) - min(finite) or 1.0)
        ax.set_ylim(min(0.0, min(finite)), max(finite) + pad)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
