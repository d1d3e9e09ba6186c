"""The diagnosis resource and its request."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from service.schemas.history import History
from service.schemas.report import Report
from service.schemas.run import RunSpec

Status = Literal["queued", "running", "succeeded", "failed", "canceled"]


class ProbeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    budget_seconds: float | None = Field(default=None, gt=0)
    seeds: int | None = Field(default=None, ge=1, le=10)


class DiagnosisRequest(BaseModel):
    """A run and its loss history. Only `history.loss` is required."""

    model_config = ConfigDict(extra="forbid")

    run: RunSpec = Field(default_factory=RunSpec)
    history: History
    probes: ProbeOptions = Field(default_factory=ProbeOptions)
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POSTed a signed `diagnosis.succeeded` / `diagnosis.failed` event when done.",
    )
    live: bool = Field(
        default=False,
        description="Keep the diagnosis open (status running) for epochs appended with "
        "POST /v1/diagnoses/{id}/history while the run trains.",
    )

    @model_validator(mode="after")
    def _live_without_probes(self) -> DiagnosisRequest:
        if self.live and self.probes.enabled:
            raise ValueError("a live diagnosis cannot run probes; close it, then submit one")
        return self


class HistoryAppend(BaseModel):
    """Epochs to append to a live diagnosis; `close` ends it."""

    model_config = ConfigDict(extra="forbid")

    history: History | None = None
    close: bool = False


class Progress(BaseModel):
    probes_done: int = 0
    probes_total: int = 0
    current_probe: str | None = None


class Diagnosis(BaseModel):
    id: str
    status: Status
    created_at: datetime
    updated_at: datetime
    progress: Progress = Field(default_factory=Progress)
    report: Report | None = None
    error: str | None = None
    request_id: str | None = Field(
        default=None, description="X-Request-ID of the request that created it (in the logs)."
    )


class StoredDiagnosis(Diagnosis):
    """A diagnosis as the store keeps it: the public resource, plus who owns it and whether it
    is open for epochs. Routes answer with `response_model=Diagnosis`, which leaves these out."""

    # Stored before these were fields as "_tenant" / "_live": still read.
    tenant: str = Field(validation_alias=AliasChoices("tenant", "_tenant"))
    live: bool = Field(default=False, validation_alias=AliasChoices("live", "_live"))


_PUBLIC = TypeAdapter(Diagnosis)


def public_json(diagnosis: Diagnosis) -> dict[str, Any]:
    """The resource as clients see it (a webhook's payload): the public fields only."""
    doc: dict[str, Any] = _PUBLIC.dump_python(diagnosis, mode="json")
    return doc


class DiagnosisPage(BaseModel):
    items: list[Diagnosis]
    next_cursor: str | None = None
