"""Worker-side logs and metrics.

Metrics live in the Celery *child* process (prefork, one child per worker): that is where the
probes train. `worker_process_init` starts prometheus_client's HTTP server there on
`LOSSDOCTOR_WORKER_METRICS_PORT` (unset: no server). A replaced child binds the port again;
if the old one still holds it, the new child logs a warning and serves no metrics.

- `lossdoctor_probe_seconds{kind, device}`: training seconds of each probe result the worker
  stored for the first time (a redelivered task's reused results are not counted twice);
  kind is the probe's name (`baseline`, `he_init`, …), device "CPU:0", "GPU:0"…
- `lossdoctor_worker_diagnoses_total{status}`: diagnoses this worker finished, by final status.

Logs: with `LOSSDOCTOR_LOG_FORMAT=json` Celery's own logging setup is replaced by the JSON
handler of `service.logging` (in the parent and the child); the task puts the request id from
its message header in the contextvar, so every probe log line carries it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging, worker_process_init
from prometheus_client import Counter, Histogram, start_http_server

from service.logging import configure_logging
from service.settings import get_settings
from service.store import Store

log = logging.getLogger(__name__)

PROBE_SECONDS = Histogram(
    "lossdoctor_probe_seconds",
    "Training seconds per probe result, by probe kind and device.",
    ["kind", "device"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640),
)
DIAGNOSES = Counter(
    "lossdoctor_worker_diagnoses",
    "Diagnoses whose probes this worker ran, by final status.",
    ["status"],
)


def observe_probes(store: Store) -> Store:
    """Count each probe result as the store accepts it (same store, one method wrapped)."""
    add = store.add_probe_result

    def add_probe_result(diagnosis_id: str, key: str, result: dict[str, Any]) -> bool:
        fresh = add(diagnosis_id, key, result)
        seconds = result.get("seconds")
        if fresh and isinstance(seconds, int | float):
            kind = key.split("|", 1)[0]
            PROBE_SECONDS.labels(kind, str(result.get("device") or "unknown")).observe(seconds)
        return fresh

    store.add_probe_result = add_probe_result  # type: ignore[method-assign]
    return store


def finished(store: Store, diagnosis_id: str) -> None:
    try:
        doc = store.get_diagnosis(diagnosis_id)
    except Exception:  # the store's own error is the one to report, not this count's
        return
    DIAGNOSES.labels(doc.status if doc else "deleted").inc()


@worker_process_init.connect
def _child_started(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if settings.worker_metrics_port is None:
        return
    try:
        start_http_server(settings.worker_metrics_port)
    except OSError as exc:
        log.warning("worker metrics: port %s: %s", settings.worker_metrics_port, exc)


def _celery_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


if get_settings().log_format == "json":
    # Connected before the worker sets up logging (include modules load first): Celery then
    # leaves logging to us. Text: Celery's own coloured format, as `lossdoctor serve` shows it.
    setup_logging.connect(_celery_logging, weak=False)
