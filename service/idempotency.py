"""Idempotency-Key for POSTs: a retry with the same key and body returns the original resource."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from service.errors import Conflict, IdempotencyKeyReused
from service.store import Store


@dataclass
class Claim:
    """What a POST may do: `replay` an earlier resource, or create one and `settle` the key."""

    replay: str | None = None
    created: str | None = None


@contextmanager
def idempotent(
    store: Store, tenant: str, kind: str, key: str | None, body: bytes
) -> Iterator[Claim]:
    """Claim `key` for this body; on success record `claim.created`, on failure free the key."""
    claim = Claim()
    if key is None:
        yield claim
        return
    scope = f"{tenant}:{kind}:{hashlib.sha256(key.encode()).hexdigest()}"
    state, resource = store.claim_idempotency(scope, hashlib.sha256(body).hexdigest())
    if state == "different":
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with a different body")
    if state == "same":
        if resource is None:
            raise Conflict(f"a request with Idempotency-Key {key!r} is still being processed")
        claim.replay = resource
        yield claim
        return
    try:
        yield claim
    except BaseException:
        store.settle_idempotency(scope, None)
        raise
    store.settle_idempotency(scope, claim.created)
