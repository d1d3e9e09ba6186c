"""The job store: diagnoses, their requests, probe results and dataset samples."""

from __future__ import annotations

from service.settings import Settings
from service.store.base import Store


def open_store(settings: Settings) -> Store:
    """Redis when `store_url` is set (production), else SQLite under `data_dir` (embedded)."""
    if settings.store_url:
        from service.store.redis import RedisStore

        return RedisStore(settings.store_url)
    from service.store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "lossdoctor.sqlite3")


__all__ = ["Store", "open_store"]
