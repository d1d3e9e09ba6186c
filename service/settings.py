"""All configuration, from `LOSSDOCTOR_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOSSDOCTOR_", extra="ignore")

    environment: Literal["local", "production"] = "local"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Field(
        default=Path("lossdoctor-data"),
        description="Local store (SQLite), uploaded samples and the local broker's queue.",
    )
    store_url: str | None = Field(
        default=None,
        description="redis://… for the production job store; unset: SQLite in data_dir.",
    )
    broker_url: str | None = Field(
        default=None, description="redis://… for Celery; unset: a local filesystem transport."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_history_points: int = Field(default=100_000, ge=10)
    max_dataset_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_dataset_examples: int = Field(default=100_000, ge=1)
    max_dataset_unpacked_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    probe_budget_seconds_default: float = Field(default=120, gt=0)
    probe_budget_seconds_max: float = Field(default=1800, gt=0)
    probe_seeds: int = Field(default=2, ge=1, le=10)
    probe_max_examples: int = Field(default=4096, ge=64)
    param_budget: int = Field(default=20_000_000, ge=1000)
    probe_queue: str = Field(default="probes", description='"gpu" where GPU workers listen.')
    task_time_limit: float = Field(
        default=2400, gt=0, description="Hard limit for one diagnosis' probes (seconds)."
    )
    broker_visibility_timeout: float | None = Field(
        default=None, description="Redis redelivery delay; default: task_time_limit + 600."
    )
    local_worker: bool = Field(
        default=True, description="`lossdoctor serve` without a broker starts a local worker."
    )
    worker_shutdown_seconds: float = Field(
        default=30,
        ge=0,
        description="On SIGTERM a worker lets its running probes go on this long, then cancels "
        "them and hands their diagnosis back to the queue.",
    )
    worker_max_tasks_per_child: int = Field(
        default=1,
        ge=1,
        # 1: TensorFlow keeps ~6 MB of every fitted model for good (README, "Workers that run
        # for weeks"); a fresh child per diagnosis keeps memory flat, and is not slower.
        description="Diagnoses one worker child runs before a fresh one replaces it.",
    )
    worker_max_memory_mb: int = Field(
        default=1536,
        ge=256,
        description="A worker child above this resident memory is replaced after its diagnosis.",
    )
    webhook_attempts: int = Field(
        default=8, ge=1, description="Deliveries tried per webhook (backoff 2 s, 4 s, … 10 min)."
    )
    page_size_max: int = Field(default=100, ge=1)
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per log line (containers)."
    )
    log_level: str = Field(default="INFO", description="Root log level of API and workers.")
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Prometheus port of a probe worker's child process; unset: no server.",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='SHA-256 hex of each API key → tenant, as JSON: {"<sha256>": "team-a"}.',
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="JSON {sha256: tenant} written by `lossdoctor keys create`; "
        "default: <data_dir>/api_keys.json.",
    )
    webhook_secret: str | None = Field(
        default=None, description="Signs webhooks (Standard Webhooks; `whsec_<base64>` or text)."
    )
    webhook_allow_hosts: list[str] = Field(
        default_factory=list, description="Only these callback hosts, when set (JSON list)."
    )
    webhook_allow_private: bool = Field(
        default=False, description="Allow callbacks to private/loopback addresses (tests, LANs)."
    )
    max_active_per_tenant: int = Field(
        default=8, ge=1, description="Queued or running diagnoses per tenant; above: 429."
    )

    @property
    def keys_path(self) -> Path:
        return self.api_keys_file or self.data_dir / "api_keys.json"

    def has_keys(self) -> bool:
        path = self.keys_path
        return bool(self.api_keys) or (path.exists() and path.read_text().strip() not in ("", "{}"))

    def check_exposure(self) -> None:
        """Auth may be off only on loopback: refuse to serve elsewhere without keys."""
        if self.host not in ("127.0.0.1", "localhost", "::1") and not self.has_keys():
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: create one with "
                "`lossdoctor keys create --tenant NAME` or set LOSSDOCTOR_API_KEYS, "
                "or bind to 127.0.0.1"
            )

    @model_validator(mode="after")
    def _redis_in_production(self) -> Settings:
        if self.environment == "production" and not (self.store_url and self.broker_url):
            raise ValueError(
                "production needs LOSSDOCTOR_STORE_URL and LOSSDOCTOR_BROKER_URL (Redis); "
                "the embedded SQLite store and file broker are for local use"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
