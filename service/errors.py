"""Domain errors: what went wrong, in the service's words, with no web framework attached.

The analysis core, the store and the queue raise these; `service/problems.py` maps each one to
its HTTP answer (the status a server returns is named in each docstring). `detail` is one
sentence for the client; `extra` carries machine-readable members (e.g. `errors`).
"""

from __future__ import annotations

from typing import Any


class LossDoctorError(Exception):
    """Base of every domain error."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRunSpec(LossDoctorError):
    """The run or history is well-formed JSON but cannot be diagnosed. HTTP 422."""


class InvalidCursor(LossDoctorError):
    """A page cursor this service did not hand out. HTTP 422."""


class IdempotencyKeyReused(LossDoctorError):
    """An Idempotency-Key sent again with a different body. HTTP 422."""


class InvalidCallbackUrl(LossDoctorError):
    """A callback_url that is not http(s), not allowed, or points into a private network.
    HTTP 422."""


class InvalidDataset(LossDoctorError):
    """An uploaded sample that cannot be read safely: not npz, pickled objects, bad shapes.
    HTTP 422."""


class PayloadTooLarge(LossDoctorError):
    """A body, history or dataset above its configured limit. HTTP 413."""


class Unauthorized(LossDoctorError):
    """No API key, or one this service does not know. HTTP 401."""


class TooManyRequests(LossDoctorError):
    """The tenant already has its limit of queued or running diagnoses. HTTP 429."""


class NotFound(LossDoctorError):
    """No such resource, or another tenant's. HTTP 404."""


class Conflict(LossDoctorError):
    """The resource is in a state that forbids the request. HTTP 409."""


class NoFixToApply(LossDoctorError):
    """A diagnosis with no concrete fix to apply: no report yet, no problem, or a fix that
    names no change. HTTP 409."""


class FeatureNotInstalled(LossDoctorError):
    """A feature whose optional dependency is not installed. HTTP 501."""


class ServiceUnavailable(LossDoctorError):
    """A backing service (store, broker) does not answer; nothing was accepted. HTTP 503."""
