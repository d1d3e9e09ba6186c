"""Production store: Redis, shared by every API process and worker."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from service.errors import InvalidRunSpec, ServiceUnavailable
from service.store.base import Doc, decode_cursor, encode_cursor

F = TypeVar("F", bound=Callable[..., Any])
_INDEX = "ld:diagnoses"


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
    def create_diagnosis(self, doc: Doc, request_json: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"ld:diag:{doc['id']}", json.dumps(doc))
        pipe.set(f"ld:req:{doc['id']}", request_json)
        # A sequence number, not a clock: page boundaries need unique, ordered scores.
        pipe.zadd(_INDEX, {doc["id"]: self.r.incr("ld:seq")})
        pipe.execute()

    @_available
    def get_diagnosis(self, diagnosis_id: str) -> Doc | None:
        raw = self.r.get(f"ld:diag:{diagnosis_id}")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def get_request(self, diagnosis_id: str) -> Doc | None:
        raw = self.r.get(f"ld:req:{diagnosis_id}")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def list_diagnoses(self, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        high = "+inf"
        if cursor:
            try:
                seq, _ = decode_cursor(cursor)
            except ValueError as exc:
                raise InvalidRunSpec("the cursor is not one this service returned") from exc
            high = f"({int(seq)}"  # exclusive: scores are unique sequence numbers
        rows: list[tuple[bytes, float]] = self.r.zrevrangebyscore(  # type: ignore[assignment]
            _INDEX, high, "-inf", start=0, num=limit + 1, withscores=True
        )
        more, rows = len(rows) > limit, rows[:limit]
        raws: list[bytes | None] = (
            self.r.mget(  # type: ignore[assignment]
                [f"ld:diag:{member.decode()}" for member, _ in rows]
            )
            if rows
            else []
        )
        docs = [json.loads(raw) for raw in raws if raw]
        last = rows[-1] if rows else None
        next_cursor = encode_cursor(int(last[1]), last[0].decode()) if more and last else None
        return docs, next_cursor

    @_available
    def update_diagnosis(self, diagnosis_id: str, changes: Doc) -> Doc | None:
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
                    pipe.multi()
                    pipe.set(key, json.dumps(doc))
                    pipe.execute()
                    return doc  # type: ignore[no-any-return]
                except redis.WatchError:
                    continue

    @_available
    def delete_diagnosis(self, diagnosis_id: str) -> bool:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(
            f"ld:diag:{diagnosis_id}", f"ld:req:{diagnosis_id}", f"ld:probes:{diagnosis_id}"
        )
        pipe.zrem(_INDEX, diagnosis_id)
        deleted, _ = pipe.execute()
        return bool(deleted)

    @_available
    def add_probe_result(self, diagnosis_id: str, key: str, result: Doc) -> bool:
        return bool(self.r.hsetnx(f"ld:probes:{diagnosis_id}", key, json.dumps(result)))

    @_available
    def probe_results(self, diagnosis_id: str) -> dict[str, Doc]:
        raw = self.r.hgetall(f"ld:probes:{diagnosis_id}")
        return {k.decode(): json.loads(v) for k, v in raw.items()}  # type: ignore[union-attr]

    @_available
    def put_dataset(self, meta: Doc, blob: bytes) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"ld:dsblob:{meta['id']}", blob)
        pipe.set(f"ld:ds:{meta['id']}", json.dumps(meta))
        pipe.execute()

    @_available
    def get_dataset(self, dataset_id: str) -> Doc | None:
        raw = self.r.get(f"ld:ds:{dataset_id}")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    @_available
    def get_dataset_blob(self, dataset_id: str) -> bytes | None:
        return self.r.get(f"ld:dsblob:{dataset_id}")  # type: ignore[return-value]

    @_available
    def delete_dataset(self, dataset_id: str) -> bool:
        return bool(self.r.delete(f"ld:ds:{dataset_id}", f"ld:dsblob:{dataset_id}"))
