"""The README's "Five-minute tour": its ```python tour / ```sh tour blocks run against a live
server (```python tour-tf needs TensorFlow)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_client import live_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


def tour_blocks(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"^```{re.escape(kind)}\n(.*?)^```", text, re.S | re.M)


def run_python(blocks: list[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LOSSDOCTOR_URL", url)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__tour__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, block in enumerate(blocks):
            exec(compile(block, f"README.md tour block {i + 1}", "exec"), namespace)
    return out.getvalue()


def test_the_tour_has_python_and_cli_blocks() -> None:
    assert len(tour_blocks("python tour")) >= 2
    assert tour_blocks("sh tour") and tour_blocks("python tour-tf")


def test_python_tour(live_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    out = run_python(tour_blocks("python tour"), live_server, tmp_path, monkeypatch)
    assert "problem ['non_finite_loss'" in out
    assert "learning_rate_too_high" in out
    assert "404 Not found" in out
    assert "/report.html" in out


def test_cli_tour(live_server: str, tmp_path: Path) -> None:  # noqa: F811
    bin_dir = str(Path(sys.executable).parent)
    env = dict(
        os.environ, LOSSDOCTOR_URL=live_server, PATH=bin_dir + os.pathsep + os.environ["PATH"]
    )
    for block in tour_blocks("sh tour"):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert "verdict: problem" in done.stdout and ": succeeded" in done.stdout
    assert "<svg" in (tmp_path / "report.html").read_text()


@pytest.mark.tf
def test_keras_tour(live_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    pytest.importorskip("keras")
    out = run_python(tour_blocks("python tour-tf"), live_server, tmp_path, monkeypatch)
    assert "lossdoctor: problem:" in out  # the callback's final summary
    assert "Over 4 epochs" in out
