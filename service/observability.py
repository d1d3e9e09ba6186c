"""Prometheus metrics of the API (`GET /metrics`) and the request-id / access-log middleware.

What the API measures itself:
- `lossdoctor_http_requests_total` and `lossdoctor_http_request_duration_seconds`, by method,
  route *template* (`/v1/diagnoses/{diagnosis_id}`, never the raw path: bounded cardinality;
  unmatched paths are `<unmatched>`) and status;
- `lossdoctor_diagnoses_created_total{status}`: diagnoses this process created, by the status
  they were created with (`succeeded`: static only, `queued`: probes). The job store has no
  cheap count by status (Redis keeps one JSON document per diagnosis), and the store protocol
  stays as it is, so the final outcomes are counted where they happen: in the worker
  (`lossdoctor_worker_diagnoses_total{status}`, see `workers/observability.py`).
- `lossdoctor_queue_depth{queue}`, read at scrape time: LLEN of the kombu list keys when the
  broker is Redis, the number of `*.{queue}.msg` files of the local filesystem transport else;
- `lossdoctor_workers`, Redis broker only: `inspect(timeout=0.5).ping()` replies, cached 10 s
  (a broadcast costs the timeout; the local `lossdoctor serve` has exactly one worker).

Probe durations by kind and device are measured in the worker process that trains them and
served by its own HTTP server (`LOSSDOCTOR_WORKER_METRICS_PORT`): the API never sees worker
memory, and aggregating from the store at scrape time would re-read every probe result.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logging import request_id_from, request_id_var
from service.settings import Settings

log = logging.getLogger("lossdoctor.observability")
access_log = logging.getLogger("lossdoctor.access")

REDIS_PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's default: one list per step, "q", "q\x06\x163"…
REDIS_PRIORITY_SEP = "\x06\x16"
WORKERS_TTL = 10.0


class ApiMetrics:
    """One registry per app (tests build many apps; no global state to collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lossdoctor_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lossdoctor_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.diagnoses = Counter(
            "lossdoctor_diagnoses_created",
            "Diagnoses created by this API process, by the status they were created with.",
            ["status"],
            registry=self.registry,
        )

    def bind(self, app: Any, settings: Settings) -> None:
        """Scrape-time gauges; `app.state.queue` is read lazily (it exists after startup)."""
        self.registry.register(_BrokerCollector(app, settings))


class _BrokerCollector:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._workers: tuple[float, int | None] = (-WORKERS_TTL, None)
        self._lock = threading.Lock()

    def _queues(self) -> list[str]:
        return sorted({self.settings.probe_queue, "gpu"})

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "lossdoctor_queue_depth", "Probe tasks waiting in the broker.", labels=["queue"]
        )
        try:
            for queue, n in self._depths():
                depth.add_metric([queue], n)
        except Exception as exc:  # a scrape must not fail because the broker hiccups
            log.warning("queue depth unavailable: %s", exc)
        yield depth
        workers = self._worker_count()
        if workers is not None:
            family = GaugeMetricFamily(
                "lossdoctor_workers", "Probe workers answering a ping (cached 10 s)."
            )
            family.add_metric([], workers)
            yield family

    def _depths(self) -> Iterable[tuple[str, int]]:
        if self.settings.broker_url:
            import redis

            client = redis.Redis.from_url(
                self.settings.broker_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            try:
                for queue in self._queues():
                    keys = [
                        queue if p == 0 else f"{queue}{REDIS_PRIORITY_SEP}{p}"
                        for p in REDIS_PRIORITY_STEPS
                    ]
                    pipe = client.pipeline(transaction=False)
                    for key in keys:
                        pipe.llen(key)
                    yield queue, sum(int(n) for n in pipe.execute())
            finally:
                client.close()
            return
        folder = (self.settings.data_dir / "queue").resolve()
        counts = dict.fromkeys(self._queues(), 0)
        if folder.is_dir():
            with os.scandir(folder) as entries:
                for entry in entries:
                    # kombu names a message "<ms>_<uuid>.<queue>.msg"
                    name = entry.name
                    if name.endswith(".msg") and entry.is_file():
                        queue = name.partition(".")[2].removesuffix(".msg")
                        if queue in counts:
                            counts[queue] += 1
        yield from counts.items()

    def _worker_count(self) -> int | None:
        if not self.settings.broker_url:
            return None  # local: `lossdoctor serve` runs one worker; no broadcast needed
        with self._lock:
            at, count = self._workers
            if time.monotonic() - at < WORKERS_TTL:
                return count
            try:
                queue = getattr(self.app.state, "queue", None)
                replies = queue.app.control.inspect(timeout=0.5).ping() if queue else None
                count = len(replies or {})
            except Exception as exc:
                log.warning("worker count unavailable: %s", exc)
                count = None
            self._workers = (time.monotonic(), count)
            return count


class RequestObservability:
    """ASGI middleware, outermost: request id (contextvar + `X-Request-ID` response header),
    request metrics by route template, one `lossdoctor.access` log line per request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", [])).get(b"x-request-id")
        request_id = request_id_from(header.decode("latin-1") if header else None)
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            labels = (method, template, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(elapsed)
            if method == "POST" and template == "/v1/diagnoses" and status in (201, 202):
                self.metrics.diagnoses.labels("succeeded" if status == 201 else "queued").inc()
            access_log.info(
                "%s %s %d",
                method,
                template,
                status,
                extra={
                    "method": method,
                    "route": template,
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of the API's metrics."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(app: Any, settings: Settings) -> ApiMetrics:
    """Metrics on `app.state.metrics`, the middleware (add it last: outermost), `/metrics`."""
    metrics = ApiMetrics()
    metrics.bind(app, settings)
    app.state.metrics = metrics
    app.add_middleware(RequestObservability, metrics=metrics)
    app.include_router(router)
    return metrics
