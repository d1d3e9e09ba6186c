"""Static checks of the deployment files (no Docker engine is needed, none is used): the
compose file's services and their wiring, the Dockerfile's two targets, and the example env
file against the settings it configures."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import main as cli_main
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy/lossdoctor.env.example"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def stages(text: str) -> dict[str, list[str]]:
    """Dockerfile instructions per stage name (continuation lines joined)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(1) or ""
            out[current] = []
        elif current:
            out[current].append(line)
    return out


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[str]]:
    return stages((ROOT / "Dockerfile").read_text())


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def test_services_present(services: dict[str, Any]) -> None:
    assert {"redis", "api", "worker-gpu0", "worker-cpu", "flower"} <= set(services)
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["flower"]["profiles"] == ["flower"]
    assert "profiles" not in services["api"] and "profiles" not in services["worker-gpu0"]


def test_every_long_running_service_but_flower_has_a_healthcheck(
    services: dict[str, Any],
) -> None:
    for name in ("redis", "api", "worker-gpu0", "worker-cpu"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker-gpu0"]["healthcheck"]["test"])


def test_redis_is_durable_and_never_evicts(services: dict[str, Any], compose: Any) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]


def test_api_waits_for_a_healthy_redis_and_serves_8000(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["build"]["target"] == "api"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert any(str(p).endswith(":8000") for p in api["ports"])
    assert api["command"][:2] == ["lossdoctor", "serve"]
    # Its data dir (the API keys file) survives a restart.
    assert any(str(v).endswith(":/var/lib/lossdoctor") for v in api["volumes"])


def test_gpu_worker_reserves_gpu_0(services: dict[str, Any]) -> None:
    worker = services["worker-gpu0"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert worker["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["build"]["target"] == "worker"


def test_cpu_worker_sees_no_gpu_and_takes_the_shared_queue(services: dict[str, Any]) -> None:
    worker = services["worker-cpu"]
    assert worker["environment"]["CUDA_VISIBLE_DEVICES"] == "-1"
    assert worker["environment"]["LOSSDOCTOR_PROBE_QUEUE"] == "probes"
    assert worker["build"] == {
        "context": ".",
        "target": "worker",
        "args": {"WORKER_EXTRA": "worker"},
    }


def test_api_and_workers_share_the_env_file(services: dict[str, Any]) -> None:
    for name in ("api", "worker-gpu0", "worker-cpu"):
        paths = [e["path"] if isinstance(e, dict) else e for e in services[name]["env_file"]]
        assert "deploy/lossdoctor.env.example" in paths, name
        assert (ROOT / paths[0]).exists()


def test_worker_commands_are_the_cli_command(services: dict[str, Any]) -> None:
    """The same `lossdoctor worker` the README and the local setup use, and the CLI knows it."""
    for name in ("worker-gpu0", "worker-cpu"):
        assert services[name]["command"] == ["lossdoctor", "worker"], name
    with pytest.raises(SystemExit) as exc:
        cli_main(["worker", "--help"])
    assert exc.value.code == 0


def test_flower_watches_the_same_broker(services: dict[str, Any]) -> None:
    command = " ".join(services["flower"]["command"])
    broker = env_file_values(ENV_EXAMPLE)["LOSSDOCTOR_BROKER_URL"]
    assert f"--broker={broker}" in command and "flower" in command
    assert all(str(p).startswith("127.0.0.1:") for p in services["flower"]["ports"])


def test_dockerfile_has_both_targets_built_from_slim_python(
    dockerfile: dict[str, list[str]],
) -> None:
    assert {"api", "worker"} <= set(dockerfile)
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", text)


def test_final_stages_run_as_a_non_root_user(dockerfile: dict[str, list[str]]) -> None:
    for target in ("api", "worker"):
        users = [line.split()[1] for line in dockerfile[target] if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), target


def test_final_stages_copy_a_built_venv_and_install_nothing(
    dockerfile: dict[str, list[str]],
) -> None:
    for target in ("api", "worker"):
        lines = dockerfile[target]
        assert any(line.startswith("COPY --from=") for line in lines), target
        assert not any("pip install" in line or "apt-get" in line for line in lines), target


def test_api_image_has_no_tensorflow_and_worker_image_has_the_gpu_extra(
    dockerfile: dict[str, list[str]],
) -> None:
    api_build = " ".join(dockerfile["api-build"])
    assert "tensorflow" not in api_build and "[worker]" not in api_build
    assert "['dependencies']" in api_build  # the core dependencies only
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG WORKER_EXTRA=gpu" in text
    assert "tensorflow/tensorflow:2.21.0-gpu" in text  # the choice is explained


def test_healthchecks_and_commands_in_the_dockerfile(dockerfile: dict[str, list[str]]) -> None:
    def one(target: str, instruction: str) -> str:
        found = [line for line in dockerfile[target] if line.startswith(instruction + " ")]
        assert len(found) == 1, (target, instruction)
        return found[0]

    assert "/readyz" in one("api", "HEALTHCHECK") and "urllib" in one("api", "HEALTHCHECK")
    assert "inspect ping" in one("worker", "HEALTHCHECK")
    assert one("api", "CMD") == 'CMD ["lossdoctor", "serve", "--host", "0.0.0.0"]'
    assert one("worker", "CMD") == 'CMD ["lossdoctor", "worker"]'


def test_dockerignore_keeps_venv_data_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "data", "lossdoctor-data", ".git", "deploy"} <= patterns


def test_example_env_file_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("LOSSDOCTOR_")]:
        monkeypatch.delenv(key)
    values = env_file_values(ENV_EXAMPLE)
    fields = {f"LOSSDOCTOR_{name.upper()}" for name in Settings.model_fields}
    assert set(values) <= fields, set(values) - fields  # no typos: every variable is a setting
    from_file = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    for key, value in values.items():  # and as compose hands them over: the environment
        monkeypatch.setenv(key, value)
    for settings in (from_file, Settings()):
        assert settings.environment == "production"
        assert settings.store_url == settings.broker_url == "redis://redis:6379/0"
        assert settings.log_format == "json"
        assert settings.worker_metrics_port == 9100
        assert settings.probe_queue == "probes"


def test_compose_redis_url_is_the_env_files(services: dict[str, Any]) -> None:
    values = env_file_values(ENV_EXAMPLE)
    host = values["LOSSDOCTOR_BROKER_URL"].split("//")[1].split(":")[0]
    assert host in services
    assert shlex.split("lossdoctor worker") == services["worker-gpu0"]["command"]
