"""Production store: Redis, shared by every API process and worker."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from service.errors import InvalidCursor, ServiceUnavailable
from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import StoredDiagnosis
from service.store.base import (
    ACTIVE,
    IDEMPOTENCY_TTL,
    Doc,
    decode_cursor,
    encode_cursor,
    is_active,
)

F = TypeVar("F", bound=Callable[..., Any])


def _index(tenant: str) -> str:
    return f"ld:diagnoses:{tenant}"


def _active(tenant: str) -> str:
    return f"ld:active:{tenant}"


def _available(method: F) -> F:
    """Turn "Redis does not answer" into ServiceUnavailable (503), whatever the call."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ServiceUnavailable(f"the job store (Redis) does not answer: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class RedisStore:
    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )

    @_available
    def ping(self) -> None:
        self.r.ping()

    @_available
    def create_diagnosis(self, diagnosis: StoredDiagnosis, request_json: str) -> None:
        tenant, diagnosis_id = diagnosis.tenant, diagnosis.id
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"ld:diag:{diagnosis_id}", diagnosis.model_dump_json())
        pipe.set(f"ld:req:{diagnosis_id}", request_json)
        # A sequence number, not a clock: page boundaries need unique, ordered scores.
        pipe.zadd(_index(tenant), {diagnosis_id: self.r.incr("ld:seq")})
        if diagnosis.status in ACTIVE:
            pipe.sadd(_active(tenant), diagnosis_id)
        pipe.execute()

    @_available
    def count_active(self, tenant: str) -> int:
        return int(self.r.scard(_active(tenant)))  # type: ignore[arg-type]

    @_available
    def interrupted_probe_diagnoses(self) -> list[str]:
        keys = self.r.scan_iter("ld:active:*")
        ids = [i.decode() for key in keys for i in self.r.smembers(key)]  # type: ignore[union-attr]
        docs = (self.get_diagnosis(i) for i in ids)
        return [d.id for d in docs if d is not None and d.status in ACTIVE and not d.live]

    @_available
    def get_diagnosis(self, diagnosis_id: str) -> StoredDiagnosis | None:
        raw = self.r.get(f"ld:diag:{diagnosis_id}")
        return StoredDiagnosis.model_validate_json(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def get_request(self, diagnosis_id: str) -> Doc | None:
        raw = self.r.get(f"ld:req:{diagnosis_id}")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def list_diagnoses(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[StoredDiagnosis], str | None]:
        high = "+inf"
        if cursor:
            try:
                seq, _ = decode_cursor(cursor)
            except ValueError as exc:
                raise InvalidCursor("the cursor is not one this service returned") from exc
            high = f"({int(seq)}"  # exclusive: scores are unique sequence numbers
        rows: list[tuple[bytes, float]] = self.r.zrevrangebyscore(  # type: ignore[assignment]
            _index(tenant), high, "-inf", start=0, num=limit + 1, withscores=True
        )
        more, rows = len(rows) > limit, rows[:limit]
        raws: list[bytes | None] = (
            self.r.mget(  # type: ignore[assignment]
                [f"ld:diag:{member.decode()}" for member, _ in rows]
            )
            if rows
            else []
        )
        docs = [StoredDiagnosis.model_validate_json(raw) for raw in raws if raw]
        last = rows[-1] if rows else None
        next_cursor = encode_cursor(int(last[1]), last[0].decode()) if more and last else None
        return docs, next_cursor

    @_available
    def update_request(self, diagnosis_id: str, request_json: str) -> None:
        self.r.set(f"ld:req:{diagnosis_id}", request_json, xx=True)

    @_available
    def update_diagnosis(self, diagnosis_id: str, changes: Doc) -> StoredDiagnosis | None:
        key = f"ld:diag:{diagnosis_id}"
        with self.r.pipeline() as pipe:
            while True:
                try:
                    # Optimistic lock: retry if a worker wrote the doc between read and write.
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None
                    doc = json.loads(raw) | changes  # type: ignore[arg-type]
                    updated = StoredDiagnosis.model_validate(doc)
                    pipe.multi()
                    pipe.set(key, json.dumps(doc))
                    if not is_active(doc):
                        pipe.srem(_active(updated.tenant), diagnosis_id)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue

    @_available
    def delete_diagnosis(self, diagnosis_id: str) -> bool:
        doc = self.get_diagnosis(diagnosis_id)
        if doc is None:
            return False
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(
            f"ld:diag:{diagnosis_id}", f"ld:req:{diagnosis_id}", f"ld:probes:{diagnosis_id}"
        )
        pipe.zrem(_index(doc.tenant), diagnosis_id)
        pipe.srem(_active(doc.tenant), diagnosis_id)
        deleted = pipe.execute()[0]
        return bool(deleted)

    @_available
    def claim_idempotency(self, scope: str, body_hash: str) -> tuple[str, str | None]:
        key = f"ld:idem:{scope}"
        if self.r.set(
            key, json.dumps({"hash": body_hash, "id": None}), nx=True, ex=IDEMPOTENCY_TTL
        ):
            return "new", None
        raw = self.r.get(key)
        if raw is None:
            return "new", None
        held = json.loads(raw)  # type: ignore[arg-type]
        return ("same" if held["hash"] == body_hash else "different"), held["id"]

    @_available
    def settle_idempotency(self, scope: str, resource_id: str | None) -> None:
        key = f"ld:idem:{scope}"
        if resource_id is None:
            self.r.delete(key)
            return
        raw = self.r.get(key)
        if raw is not None:
            held = json.loads(raw) | {"id": resource_id}  # type: ignore[arg-type]
            self.r.set(key, json.dumps(held), keepttl=True)

    @_available
    def add_probe_result(self, diagnosis_id: str, key: str, result: Doc) -> bool:
        return bool(self.r.hsetnx(f"ld:probes:{diagnosis_id}", key, json.dumps(result)))

    @_available
    def probe_results(self, diagnosis_id: str) -> dict[str, Doc]:
        raw = self.r.hgetall(f"ld:probes:{diagnosis_id}")
        return {k.decode(): json.loads(v) for k, v in raw.items()}  # type: ignore[union-attr]

    @_available
    def put_dataset(self, dataset: StoredDataset, blob: bytes) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"ld:dsblob:{dataset.id}", blob)
        pipe.set(f"ld:ds:{dataset.id}", dataset.model_dump_json())
        pipe.execute()

    @_available
    def get_dataset(self, dataset_id: str) -> StoredDataset | None:
        raw = self.r.get(f"ld:ds:{dataset_id}")
        return StoredDataset.model_validate_json(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def get_dataset_blob(self, dataset_id: str) -> bytes | None:
        return self.r.get(f"ld:dsblob:{dataset_id}")  # type: ignore[return-value]

    @_available
    def delete_dataset(self, dataset_id: str) -> bool:
        return bool(self.r.delete(f"ld:ds:{dataset_id}", f"ld:dsblob:{dataset_id}"))
