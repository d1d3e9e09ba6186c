"""The report page (`report.html`) and `plot.png`: rendering, escaping, and a headless browser."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lossdoctor_client import LossDoctor
from service.examples import FULL
from service.render.chart import Series, chart_series, svg_chart
from service.render.page import render_report_html
from tests.runs import run, stuck_curve
from tests.test_client import live_server  # noqa: F401  (fixture)

PROBLEM = "application/problem+json"


def test_page_renders_svg_curves_causes_and_fix(client: TestClient) -> None:
    created = client.post("/v1/diagnoses", json=FULL).json()
    r = client.get(f"/v1/diagnoses/{created['id']}/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    assert "loss (log scale)" not in page  # 14.2 → 2.3: within one decade
    for cause in created["report"]["causes"]:
        assert cause["id"] in page
        assert f"confidence {cause['confidence']:.2f}" in page
    assert "he_normal" in page  # the fix patch
    assert "stuck_at_chance" in page and "input_range" in page  # symptoms, data checks
    assert "No data sample" in page  # notes


def test_page_of_an_exploding_run_uses_a_log_axis_and_marks_nan(client: TestClient) -> None:
    body = {
        "run": run(),
        "history": {"loss": [2.3, 40.0, 900.0, None], "val_loss": [2.3, 50, 1e3, 1e4]},
    }
    created = client.post("/v1/diagnoses", json=body).json()
    page = client.get(f"/v1/diagnoses/{created['id']}/report.html").text
    assert "loss (log scale)" in page
    assert "×</text>" in page  # the NaN epoch
    assert "val_loss" in page and "non_finite_loss" in page


def test_unknown_diagnosis_is_404_problem(client: TestClient) -> None:
    for path in ("report.html", "plot.png"):
        r = client.get(f"/v1/diagnoses/dg_nope/{path}")
        assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)


def test_every_user_string_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    doc: dict[str, Any] = {
        "id": "dg_1",
        "status": "succeeded",
        "created_at": "t",
        "updated_at": "t",
        "report": {
            "verdict": "problem",
            "summary": evil,
            "symptoms": [{"id": "plateau", "epochs": [1, 2], "detail": evil}],
            "causes": [
                {
                    "id": "overfitting",
                    "confidence": 0.5,
                    "evidence": [evil],
                    "fix": {"summary": evil, "patch": {"model": {"layers": [{"name": evil}]}}},
                    "probe": None,
                }
            ],
            "data_checks": [{"id": evil, "status": "warning", "detail": evil}],
            "probes": [
                {
                    "name": evil,
                    "change": {evil: 1},
                    "status": "failed",
                    "curve": [1.0, 0.5],
                    "detail": evil,
                }
            ],
            "notes": [evil],
        },
        "error": evil,
    }
    page = render_report_html(doc, {"history": {"loss": [1.0, 0.9]}})
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert f"probe: {evil}" not in page


def test_chart_scales() -> None:
    linear = svg_chart([Series("loss", [2.3, 2.0, 1.5])])
    assert "log scale" not in linear and "<polyline" in linear
    log = svg_chart(
        [Series("loss", [100.0, 3.0, 0.5]), Series("probe: lr", [50.0, 1.0], "confirmed")]
    )
    assert "log scale" in log and 'stroke-dasharray="6 4"' in log
    assert "no finite loss" in svg_chart([Series("loss", [None, None])])


def test_plot_png_is_501_problem_without_matplotlib(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    created = client.post("/v1/diagnoses", json=FULL).json()
    r = client.get(f"/v1/diagnoses/{created['id']}/plot.png")
    assert r.status_code == 501 and r.headers["content-type"].startswith(PROBLEM)
    assert "lossdoctor[plots]" in r.json()["detail"]


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib (extra 'plots') missing"
)
def test_plot_png_with_matplotlib(client: TestClient) -> None:
    created = client.post("/v1/diagnoses", json=FULL).json()
    r = client.get(f"/v1/diagnoses/{created['id']}/plot.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n") and len(r.content) > 5000


def png_summary(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct filtered bytes) of an 8-bit PNG, with the standard library.

    Filtered scanline bytes of a one-colour image come from a handful of values whatever the
    filter (the colour's bytes, zero, their halves): many distinct values mean many colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, len(set(raw))


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless browser check needs /usr/bin/chromium (apt-get install -y chromium)",
)
def test_headless_chromium_renders_the_page(live_server: str, tmp_path: Path) -> None:  # noqa: F811
    with LossDoctor(live_server) as ld:
        d = ld.diagnose(run(), stuck_curve())
    shot = tmp_path / "page.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,1600",
        f"{live_server}/v1/diagnoses/{d.id}/report.html",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert shot.exists(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    data = shot.read_bytes()
    width, height, distinct = png_summary(data)
    assert (width, height) == (1200, 1600)
    assert len(data) > 10_000, "a blank page compresses to almost nothing"
    assert distinct > 32, "the screenshot is one colour"


def test_png_summary_tells_a_blank_image() -> None:
    def png(w: int, h: int, rows: bytes) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(kind + body)
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))

    blank = png(4, 2, (b"\x00" + b"\xff\xff\xff" * 4) * 2)
    assert png_summary(blank) == (4, 2, 2)


def test_page_shows_the_change_list_and_keras_lines_with_the_patch_folded_away(
    client: TestClient,
) -> None:
    history = {"loss": [2.3 - 0.05 * i for i in range(12)], "val_loss": [2.2] * 12}
    body = {"run": run(optimizer={"name": "adam", "learning_rate": 0.5}), "history": history}
    created = client.post("/v1/diagnoses", json=body).json()
    fix = created["report"]["causes"][0]["fix"]
    page = client.get(f"/v1/diagnoses/{created['id']}/report.html").text
    change = fix["changes"][0]
    assert f"<td>{change['path']}</td><td>0.5</td><td>→</td><td>{change['to']:g}</td>" in page
    assert "keras.optimizers.Adam(learning_rate=" in page
    assert "<details><summary>JSON merge patch (RFC 7396)</summary>" in page


def test_chart_draws_run_baseline_and_confirmed_probes_prominently_the_rest_faded() -> None:
    doc: dict[str, Any] = {
        "id": "dg_1",
        "report": {
            "causes": [{"id": "x", "probe": {"name": "lr_x0.1", "confirmed": True}}],
            "probes": [
                {"name": name, "curve": [2.0, 1.5, 1.0]}
                for name in ("width_x2", "baseline", "lr_x0.1", "batch_x4", "rescale")
            ],
        },
    }
    series = chart_series(doc, {"history": {"loss": [2.3, 2.0], "val_loss": [2.2, 2.1]}})
    assert [(s.label, s.role) for s in series] == [
        ("loss", "run"),
        ("val_loss", "run"),
        ("probe: baseline", "baseline"),
        ("probe: lr_x0.1", "confirmed"),
        ("probe: width_x2", "other"),
        ("probe: batch_x4", "other"),
        ("probe: rescale", "other"),
    ]
    svg = svg_chart(series)
    assert svg.count('stroke-opacity="0.45"') == 3  # the three unconfirmed probes
    assert "3 other probes (not confirmed)" in svg and "probe: width_x2" not in svg
