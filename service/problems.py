"""RFC 9457 problem+json answers: one handler per domain error, plus the framework's own errors.

The only place that knows which HTTP status each `service.errors` class means.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from service import errors

PROBLEM = "application/problem+json"

Handler = Callable[[Request, Exception], Awaitable[Response]]

# error class → (status, title, headers)
STATUS: dict[type[errors.LossDoctorError], tuple[int, str, dict[str, str] | None]] = {
    errors.InvalidRunSpec: (422, "Invalid run spec", None),
    errors.InvalidCursor: (422, "Invalid cursor", None),
    errors.IdempotencyKeyReused: (422, "Idempotency-Key reused", None),
    errors.InvalidCallbackUrl: (422, "Invalid callback URL", None),
    errors.InvalidDataset: (422, "Invalid dataset", None),
    errors.PayloadTooLarge: (413, "Payload too large", None),
    errors.Unauthorized: (401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="lossdoctor"'}),
    errors.TooManyRequests: (429, "Too many requests", {"Retry-After": "30"}),
    errors.NotFound: (404, "Not found", None),
    errors.Conflict: (409, "Conflict", None),
    errors.NoFixToApply: (409, "No fix to apply", None),
    errors.FeatureNotInstalled: (501, "Not implemented", None),
    errors.ServiceUnavailable: (503, "Service unavailable", None),
}


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _domain(status: int, title: str, headers: dict[str, str] | None) -> Handler:
    async def handler(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.LossDoctorError)
        return problem(status, title, exc.detail, headers, **exc.extra)

    return handler


def _field_errors(found: Any) -> list[dict[str, Any]]:
    out = []
    for err in found:
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
    found = exc.errors()
    if any(e.get("type") == "json_invalid" for e in found):
        where = found[0].get("ctx", {}).get("error", "")
        return problem(400, "Malformed JSON", f"the body is not valid JSON: {where}".rstrip(": "))
    fields = _field_errors(found)
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
    for cls, (status, title, headers) in STATUS.items():
        app.add_exception_handler(cls, _domain(status, title, headers))
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
