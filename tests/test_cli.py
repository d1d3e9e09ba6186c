"""`lossdoctor diagnose | status | report` against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from tests.runs import run, stuck_curve
from tests.test_client import live_server  # noqa: F401  (fixture)


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"run": run(), "history": stuck_curve()}))
    return path


def test_diagnose_json_then_status_and_report(
    live_server: str,  # noqa: F811
    run_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagnose", str(run_file), "--json", "--url", live_server]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "succeeded" and doc["report"]["verdict"] == "problem"

    assert main(["status", doc["id"], "--url", live_server]) == 0
    assert capsys.readouterr().out.strip() == f"{doc['id']}: succeeded"

    page = tmp_path / "out.html"
    assert main(["report", doc["id"], "--html", str(page), "--url", live_server]) == 0
    out = capsys.readouterr().out
    assert "verdict: problem" in out
    assert page.read_text().startswith("<!doctype html>") and "<svg" in page.read_text()


def test_diagnose_readable_summary_with_uploaded_data(
    live_server: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOSSDOCTOR_URL", live_server)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "sample.npz", x=rng.random((64, 28, 28, 1)) * 255, y=np.arange(64) % 10)
    body = {
        "run": run(data={"num_classes": 10}, preprocessing={"normalization": "none"}),
        "history": stuck_curve(),
    }
    (tmp_path / "run.json").write_text(json.dumps(body))
    code = main(["diagnose", str(tmp_path / "run.json"), "--data", str(tmp_path / "sample.npz")])
    assert code == 0
    out = capsys.readouterr().out
    assert "verdict: problem" in out and "summary: " in out
    assert "causes:" in out and "confidence 0." in out
    assert "fix: " in out
    assert 'preprocessing.normalization: "none" -> "rescale"' in out  # the change, in its terms
    assert "data checks:" in out


def test_errors_exit_nonzero_with_the_problem_on_stderr(
    live_server: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["status", "dg_missing", "--url", live_server]) == 1
    assert "404 Not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"history": {"loss": []}}))
    assert main(["diagnose", str(bad), "--url", live_server]) == 1
    assert "history.loss" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["diagnose", str(bad), "--url", live_server]) == 2
    assert main(["diagnose", str(tmp_path / "none.json"), "--url", live_server]) == 2


def test_the_installed_entry_point(live_server: str, run_file: Path) -> None:  # noqa: F811
    env = dict(os.environ, LOSSDOCTOR_URL=live_server)
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "diagnose", str(run_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("diagnosis dg_") and "verdict: problem" in out
