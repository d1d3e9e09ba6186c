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
    page_size_max: int = Field(default=100, ge=1)

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
