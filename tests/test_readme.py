"""The README's commands are the ones CI and the examples really run."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci in readme_commands()
    assert "pytest" in ci


def test_readme_serve_command_installs_and_serves() -> None:
    assert any("pip install -e" in c and "lossdoctor serve" in c for c in readme_commands())


def test_readme_history_only_curl_example_works(client: TestClient) -> None:
    text = (ROOT / "README.md").read_text()
    body = re.search(r"-d '(\{\"history\".*?\})'", text)
    assert body is not None
    r = client.post(
        "/v1/diagnoses", content=body.group(1), headers={"content-type": "application/json"}
    )
    assert r.status_code == 201
    report = r.json()["report"]
    assert report["verdict"] == "problem"
    assert report["symptoms"][0]["id"] == "stuck_at_chance"


def test_every_setting_is_documented_in_the_readme() -> None:
    from service.settings import Settings

    text = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"LOSSDOCTOR_[A-Z_]+", text))
    # The table abbreviates pairs: `LOSSDOCTOR_HOST` / `_PORT` documents LOSSDOCTOR_PORT too
    # (the suffix replaces as many trailing words as it has).
    for first, second in re.findall(r"`(LOSSDOCTOR_[A-Z_]+)` / `(_[A-Z_]+)`", text):
        documented.add(first.rsplit("_", second.count("_"))[0] + second)
    missing = {f"LOSSDOCTOR_{name.upper()}" for name in Settings.model_fields} - documented
    assert not missing, sorted(missing)
