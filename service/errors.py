"""Domain errors, each with the HTTP status it means, and their RFC 9457 problem+json handlers.

The analysis core and the store raise these and never know about HTTP; `install` maps them in
one place.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

PROBLEM = "application/problem+json"


class LossDoctorError(Exception):
    """Base of every domain error; `status` is what the API answers."""

    status = 400
    title = "Bad request"

    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRunSpec(LossDoctorError):
    """The run or history is well-formed JSON but cannot be diagnosed (422)."""

    status = 422
    title = "Invalid run spec"


class PayloadTooLarge(LossDoctorError):
    """A body, history or dataset above its configured limit (413)."""

    status = 413
    title = "Payload too large"


class InvalidDataset(LossDoctorError):
    """An uploaded sample that cannot be read safely: not npz, pickled objects, bad shapes (422)."""

    status = 422
    title = "Invalid dataset"


class Unauthorized(LossDoctorError):
    """No API key, or one this service does not know (401)."""

    status = 401
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="lossdoctor"'}


class TooManyRequests(LossDoctorError):
    """The tenant already has its limit of queued or running diagnoses (429)."""

    status = 429
    title = "Too many requests"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "30"}


class NotFound(LossDoctorError):
    """No such resource (404)."""

    status = 404
    title = "Not found"


class Conflict(LossDoctorError):
    """The resource is in a state that forbids the request (409)."""

    status = 409
    title = "Conflict"


class ServiceUnavailable(LossDoctorError):
    """A backing service (store, broker) does not answer; nothing was accepted (503)."""

    status = 503
    title = "Service unavailable"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def _domain(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, LossDoctorError)
    return problem(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        # "body" is FastAPI's prefix, not part of the client's document.
        loc = [p for p in err.get("loc", ()) if p != "body"]
        out.append(
            {
                "field": ".".join(str(p) for p in loc),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
        )
    return out


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        where = errors[0].get("ctx", {}).get("error", "")
        return problem(400, "Malformed JSON", f"the body is not valid JSON: {where}".rstrip(": "))
    fields = _field_errors(errors)
    detail = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields[:5])
    return problem(422, "Validation failed", detail, errors=fields)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail))


async def _unexpected(_: Request, exc: Exception) -> Response:
    # Last resort: a bug must still answer problem+json, and must not leak internals.
    return problem(500, "Internal error", "the service failed on this request; it was logged")


_TITLES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    415: "Unsupported media type",
}


def install(app: FastAPI) -> None:
    app.add_exception_handler(LossDoctorError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
