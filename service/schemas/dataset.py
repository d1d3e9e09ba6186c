"""The dataset resource: an uploaded sample's shape and statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, Field


class Dataset(BaseModel):
    id: str
    created_at: datetime
    num_examples: int
    input_shape: list[int]
    num_classes: int | None = None  # None: y holds regression targets or multi-hot rows
    stats: dict[str, Any] = Field(description="Per-channel range and moments, label counts…")


class StoredDataset(Dataset):
    """A dataset as the store keeps it; `response_model=Dataset` leaves the owner out."""

    tenant: str = Field(validation_alias=AliasChoices("tenant", "_tenant"))
