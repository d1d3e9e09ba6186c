"""The loss chart: which curves a report draws, and how prominently, as inline SVG.

The user's loss and val_loss, the probes' replayed baseline and the probes that confirmed a
cause are drawn in full; every other probe is a thin, faded line under them.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Literal

# Okabe–Ito: distinguishable for colour-blind readers; the run's own curves come first.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000"]
BASELINE_COLOUR = "#444"
_STYLE = {
    "run": 'stroke-width="2.2"',
    "baseline": 'stroke-width="2" stroke-dasharray="6 4"',
    "confirmed": 'stroke-width="2" stroke-dasharray="6 4"',
    "other": 'stroke-width="1" stroke-dasharray="3 3" stroke-opacity="0.45"',
}
OTHER_COLOUR = "#9a9a9a"

Role = Literal["run", "baseline", "confirmed", "other"]


@dataclass
class Series:
    label: str
    values: list[float | None]
    role: Role = "run"

    @property
    def dashed(self) -> bool:
        """Probe curves (everything but the run's own) are drawn dashed, stretched over the
        run's epochs."""
        return self.role != "run"


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def chart_series(doc: dict[str, Any], request: dict[str, Any]) -> list[Series]:
    """loss and val_loss of the run, the probes' baseline, confirmed probes, then the rest."""
    history = request.get("history") or {}
    out = [
        Series(key, [_finite(v) for v in history[key]])
        for key in ("loss", "val_loss")
        if isinstance(history.get(key), list) and history[key]
    ]
    report = doc.get("report") or {}
    confirmed = {
        str((c.get("probe") or {}).get("name"))
        for c in report.get("causes") or []
        if (c.get("probe") or {}).get("confirmed")
    }
    probes: list[Series] = []
    for probe in report.get("probes") or []:
        curve = probe.get("curve") or []
        if curve:
            name = str(probe.get("name", "?"))
            role: Role = (
                "baseline" if name == "baseline" else "confirmed" if name in confirmed else "other"
            )
            probes.append(Series(f"probe: {name}", [_finite(v) for v in curve], role))
    order = {"baseline": 0, "confirmed": 1, "other": 2}
    return out + sorted(probes, key=lambda s: order[s.role])


def colours(series: list[Series]) -> list[str]:
    """One colour per series: the palette for the run and confirmed probes, greys for the rest."""
    out, i = [], 0
    for s in series:
        if s.role == "baseline":
            out.append(BASELINE_COLOUR)
        elif s.role == "other":
            out.append(OTHER_COLOUR)
        else:
            out.append(COLOURS[i % len(COLOURS)])
            i += 1
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
    # The axis fits the curves that matter; faded probes outside it are clipped.
    finite = [v for s in series if s.role != "other" for v in s.values if v is not None] or [
        v for s in series for v in s.values if v is not None
    ]
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
        f'<clipPath id="plot-area"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/>'
        "</clipPath>",
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
    # curves: faded probes first, so that the run, the baseline and confirmed probes lie on top
    palette = colours(series)
    drawn = sorted(range(len(series)), key=lambda i: series[i].role != "other")
    for i in drawn:
        s, colour = series[i], palette[i]
        n = len(s.values)
        span = (xmax - 1) / (n - 1) if n > 1 else 0.0

        def xpos(j: int, span: float = span, dashed: bool = s.dashed) -> float:
            return sx(1 + j * span) if dashed else sx(j + 1)

        runs: list[list[str]] = [[]]
        for j, v in enumerate(s.values):
            if v is None or (log and v <= 0):
                if runs[-1]:
                    runs.append([])
                if s.role != "other":
                    parts.append(
                        f'<text x="{xpos(j):.1f}" y="{top + 10}" fill="#c00" '
                        'text-anchor="middle">×</text>'
                    )
                continue
            runs[-1].append(f"{xpos(j):.1f},{sy(v):.1f}")
        style = _STYLE[s.role]
        for pts in runs:
            if len(pts) == 1:
                cx, cy = pts[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif pts:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" {style} clip-path="url(#plot-area)" '
                    f'points="{" ".join(pts)}"/>'
                )
    parts.append("</svg>")
    shown = [i for i, s in enumerate(series) if s.role != "other"]
    legend = "".join(
        f'<li><span class="swatch" style="border-top: 3px '
        f'{"dashed" if series[i].dashed else "solid"} {palette[i]}"></span>'
        f"{html.escape(series[i].label)}</li>"
        for i in shown
    )
    others = [s for s in series if s.role == "other"]
    if others:
        legend += (
            f'<li><span class="swatch" style="border-top: 1px dashed {OTHER_COLOUR}"></span>'
            f"{len(others)} other probe{'s' if len(others) > 1 else ''} (not confirmed)</li>"
        )
    note = (
        '<p class="muted">Probe curves are the mean training loss per recording window of a '
        "short replay, stretched over the run's epochs. × marks a non-finite value.</p>"
        if any(s.dashed for s in series)
        else ""
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>{note}'
