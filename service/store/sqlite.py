"""Embedded store: one SQLite file, shared safely by the API and a local worker process."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from service.errors import InvalidCursor
from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import StoredDiagnosis
from service.store.base import ACTIVE, IDEMPOTENCY_TTL, Doc, decode_cursor, encode_cursor, is_active

_SCHEMA = """
CREATE TABLE IF NOT EXISTS diagnoses (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, seq REAL NOT NULL, active INTEGER NOT NULL,
    doc TEXT NOT NULL, request TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS diagnoses_tenant_seq ON diagnoses (tenant, seq);
CREATE INDEX IF NOT EXISTS diagnoses_tenant_active ON diagnoses (tenant, active);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT PRIMARY KEY, body_hash TEXT NOT NULL, resource_id TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS probe_results (
    diagnosis_id TEXT NOT NULL, key TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (diagnosis_id, key));
CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, meta TEXT NOT NULL);
"""


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.blob_dir = path.parent / "datasets"
        self.blob_dir.mkdir(exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def ping(self) -> None:
        self._db().execute("SELECT 1")

    def create_diagnosis(self, diagnosis: StoredDiagnosis, request_json: str) -> None:
        self._db().execute(
            "INSERT INTO diagnoses (id, tenant, seq, active, doc, request) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                diagnosis.id,
                diagnosis.tenant,
                time.time(),
                diagnosis.status in ACTIVE,
                diagnosis.model_dump_json(),
                request_json,
            ),
        )

    def count_active(self, tenant: str) -> int:
        row = (
            self._db()
            .execute("SELECT COUNT(*) FROM diagnoses WHERE tenant = ? AND active = 1", (tenant,))
            .fetchone()
        )
        return int(row[0])

    def interrupted_probe_diagnoses(self) -> list[str]:
        rows = self._db().execute("SELECT doc FROM diagnoses WHERE active = 1").fetchall()
        docs = (StoredDiagnosis.model_validate_json(r[0]) for r in rows)
        return [d.id for d in docs if not d.live]

    def get_diagnosis(self, diagnosis_id: str) -> StoredDiagnosis | None:
        row = (
            self._db().execute("SELECT doc FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
        )
        return StoredDiagnosis.model_validate_json(row[0]) if row else None

    def get_request(self, diagnosis_id: str) -> Doc | None:
        row = (
            self._db()
            .execute("SELECT request FROM diagnoses WHERE id = ?", (diagnosis_id,))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def list_diagnoses(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[StoredDiagnosis], str | None]:
        # `where` is one of two fixed strings; every value goes in as a parameter.
        where, args = "tenant = ?", list[object]([tenant])
        if cursor:
            try:
                seq, after_id = decode_cursor(cursor)
            except ValueError as exc:
                raise InvalidCursor("the cursor is not one this service returned") from exc
            where, args = "tenant = ? AND (seq, id) < (?, ?)", [tenant, seq, after_id]
        rows = (
            self._db()
            .execute(
                f"SELECT id, seq, doc FROM diagnoses WHERE {where} "
                "ORDER BY seq DESC, id DESC LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
        return [StoredDiagnosis.model_validate_json(r[2]) for r in rows], next_cursor

    def update_request(self, diagnosis_id: str, request_json: str) -> None:
        self._db().execute(
            "UPDATE diagnoses SET request = ? WHERE id = ?", (request_json, diagnosis_id)
        )

    def update_diagnosis(self, diagnosis_id: str, changes: Doc) -> StoredDiagnosis | None:
        db = self._db()
        # BEGIN IMMEDIATE takes the write lock first, so a concurrent worker cannot interleave.
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT doc FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            doc = json.loads(row[0]) | changes
            db.execute(
                "UPDATE diagnoses SET doc = ?, active = ? WHERE id = ?",
                (json.dumps(doc), is_active(doc), diagnosis_id),
            )
            db.execute("COMMIT")
            return StoredDiagnosis.model_validate(doc)
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete_diagnosis(self, diagnosis_id: str) -> bool:
        db = self._db()
        db.execute("DELETE FROM probe_results WHERE diagnosis_id = ?", (diagnosis_id,))
        return db.execute("DELETE FROM diagnoses WHERE id = ?", (diagnosis_id,)).rowcount > 0

    def add_probe_result(self, diagnosis_id: str, key: str, result: Doc) -> bool:
        cur = self._db().execute(
            "INSERT OR IGNORE INTO probe_results (diagnosis_id, key, result) VALUES (?, ?, ?)",
            (diagnosis_id, key, json.dumps(result)),
        )
        return cur.rowcount > 0

    def probe_results(self, diagnosis_id: str) -> dict[str, Doc]:
        rows = (
            self._db()
            .execute(
                "SELECT key, result FROM probe_results WHERE diagnosis_id = ?", (diagnosis_id,)
            )
            .fetchall()
        )
        return {k: json.loads(r) for k, r in rows}

    def claim_idempotency(self, scope: str, body_hash: str) -> tuple[str, str | None]:
        db = self._db()
        db.execute("DELETE FROM idempotency WHERE created < ?", (time.time() - IDEMPOTENCY_TTL,))
        inserted = db.execute(
            "INSERT OR IGNORE INTO idempotency (scope, body_hash, created) VALUES (?, ?, ?)",
            (scope, body_hash, time.time()),
        ).rowcount
        if inserted:
            return "new", None
        row = db.execute(
            "SELECT body_hash, resource_id FROM idempotency WHERE scope = ?", (scope,)
        ).fetchone()
        if row is None:  # expired between the two statements
            return "new", None
        return ("same" if row[0] == body_hash else "different"), row[1]

    def settle_idempotency(self, scope: str, resource_id: str | None) -> None:
        if resource_id is None:
            self._db().execute("DELETE FROM idempotency WHERE scope = ?", (scope,))
        else:
            self._db().execute(
                "UPDATE idempotency SET resource_id = ? WHERE scope = ?", (resource_id, scope)
            )

    def put_dataset(self, dataset: StoredDataset, blob: bytes) -> None:
        target = self.blob_dir / f"{dataset.id}.npz"
        partial = target.with_suffix(".part")
        partial.write_bytes(blob)
        partial.replace(target)  # atomic: a reader never sees half a file
        self._db().execute(
            "INSERT INTO datasets (id, meta) VALUES (?, ?)", (dataset.id, dataset.model_dump_json())
        )

    def get_dataset(self, dataset_id: str) -> StoredDataset | None:
        row = self._db().execute("SELECT meta FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return StoredDataset.model_validate_json(row[0]) if row else None

    def get_dataset_blob(self, dataset_id: str) -> bytes | None:
        if self.get_dataset(dataset_id) is None:
            return None
        path = self.blob_dir / f"{dataset_id}.npz"
        return path.read_bytes() if path.exists() else None

    def delete_dataset(self, dataset_id: str) -> bool:
        (self.blob_dir / f"{dataset_id}.npz").unlink(missing_ok=True)
        return self._db().execute("DELETE FROM datasets WHERE id = ?", (dataset_id,)).rowcount > 0
