"""Logging for the API and the workers: text (local) or one JSON object per line (containers),
with the request id of the HTTP request (or of the Celery task it queued) on every record.

`LOSSDOCTOR_LOG_FORMAT=json|text`. The request id lives in a contextvar: the API's middleware
sets it per request (from `X-Request-ID` or a new one), the probe task sets it from the Celery
message header `request_id` that `ProbeQueue.enqueue` writes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("lossdoctor_request_id", default=None)

_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_MARK = "_lossdoctor_handler"
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def current_request_id() -> str | None:
    return request_id_var.get()


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token (no log injection), else a new one."""
    if header and _VALID_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, request_id, extras, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _install_record_factory() -> None:
    """Stamp the current request id on every record when it is created (so any handler,
    pytest's caplog included, sees it, even if it formats the record later)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Idempotent. json: one JSON handler on the root logger; uvicorn's loggers propagate to
    it and its access log is replaced by `lossdoctor.access` (which knows the route template
    and the request id). text: a root handler only when nothing else configured one."""
    _install_record_factory()
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
    access = logging.getLogger("lossdoctor.access")
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        setattr(handler, _MARK, True)
        root.addHandler(handler)
        for name in ("uvicorn", "uvicorn.error", "celery"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        uvicorn_access = logging.getLogger("uvicorn.access")
        uvicorn_access.handlers.clear()
        uvicorn_access.propagate = False
        access.setLevel(logging.INFO)
        return
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_TEXT))
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    access.setLevel(logging.WARNING)  # text: uvicorn prints its own access lines
