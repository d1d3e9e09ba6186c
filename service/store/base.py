"""What every job store offers: typed diagnoses and datasets; requests, probe results and
partial updates as JSON-ready dicts. Ids are opaque strings."""

from __future__ import annotations

import base64
from typing import Any, Protocol

from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import StoredDiagnosis

Doc = dict[str, Any]
IDEMPOTENCY_TTL = 24 * 3600  # seconds an Idempotency-Key is remembered


class Store(Protocol):
    def ping(self) -> None:
        """Raise `ServiceUnavailable` when the backing service does not answer."""

    def create_diagnosis(self, diagnosis: StoredDiagnosis, request_json: str) -> None:
        """Store a new diagnosis and its request (as the JSON the worker will read back)."""

    def get_diagnosis(self, diagnosis_id: str) -> StoredDiagnosis | None: ...

    def get_request(self, diagnosis_id: str) -> Doc | None: ...

    def list_diagnoses(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[StoredDiagnosis], str | None]:
        """The tenant's diagnoses, newest first; `cursor` is what the previous page returned."""

    def count_active(self, tenant: str) -> int:
        """The tenant's queued or running diagnoses."""

    def interrupted_probe_diagnoses(self) -> list[str]:
        """Ids of probe diagnoses (not live runs) still queued or running, of every tenant."""

    def update_request(self, diagnosis_id: str, request_json: str) -> None:
        """Replace a diagnosis' stored request (a live run's history grows)."""

    def update_diagnosis(self, diagnosis_id: str, changes: Doc) -> StoredDiagnosis | None:
        """Set top-level fields of a diagnosis (JSON-ready values); None when it does not exist."""

    def delete_diagnosis(self, diagnosis_id: str) -> bool: ...

    def add_probe_result(self, diagnosis_id: str, key: str, result: Doc) -> bool:
        """Record a probe result once: a redelivered probe finds its key taken and gets False."""

    def probe_results(self, diagnosis_id: str) -> dict[str, Doc]: ...

    def claim_idempotency(self, scope: str, body_hash: str) -> tuple[str, str | None]:
        """Atomically claim an Idempotency-Key: ("new", None) for the first request; else
        ("same" | "different", resource id, or None while the first is still in flight)."""

    def settle_idempotency(self, scope: str, resource_id: str | None) -> None:
        """Record the resource a claimed key created, or forget the key (None) on failure."""

    def put_dataset(self, dataset: StoredDataset, blob: bytes) -> None: ...

    def get_dataset(self, dataset_id: str) -> StoredDataset | None: ...

    def get_dataset_blob(self, dataset_id: str) -> bytes | None: ...

    def delete_dataset(self, dataset_id: str) -> bool: ...


ACTIVE = ("queued", "running")  # statuses that count against a tenant's limit


def is_active(doc: Doc) -> bool:
    return doc.get("status") in ACTIVE


def encode_cursor(position: int | float, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{position}|{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of `encode_cursor`; a malformed cursor raises ValueError."""
    padded = cursor + "=" * (-len(cursor) % 4)
    position, _, item_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    if not item_id:
        raise ValueError("malformed cursor")
    return float(position), item_id
