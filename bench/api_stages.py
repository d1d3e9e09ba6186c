"""Where the CPU of one static `POST /v1/diagnoses` goes, measured in-process.

Two views on the api_bench body (a real `model.to_json()` plus a 4 × 200-epoch history):

- stages: each step of the route's work on fresh requests, thread CPU per request (best round);
- routes: the ASGI app driven directly, process CPU per request (best round), for the bare
  parse, then routes that add one part of `POST /v1/diagnoses` at a time: its parameters and
  response model around a ready record, the request's JSON for the store, the analysis, and
  the real route (typed record, SQLite insert).

Usage: .venv/bin/python -m bench.api_stages [--requests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from pydantic import TypeAdapter

from bench.api_bench import request_body
from service.analysis.report import build_context, report_of
from service.deps import QueueDep, SettingsDep, StoreDep, TenantDep
from service.schemas.diagnosis import Diagnosis, DiagnosisRequest, Progress, StoredDiagnosis
from service.schemas.model import TRANSLATED
from service.store.sqlite import SQLiteStore

BODY = json.dumps(request_body()).encode()


def _record(request: DiagnosisRequest) -> StoredDiagnosis:
    now = datetime.now(UTC)
    return StoredDiagnosis(
        id="dg_" + os.urandom(10).hex(),
        status="succeeded",
        created_at=now,
        updated_at=now,
        progress=Progress(),
        report=report_of(request, build_context(request, None), None),
        tenant="local",
    )


class _Clock:
    """Thread CPU per named step, summed over calls."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def __call__(self, step: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        out = work(*args, **kwargs)
        self.spent[step] = self.spent.get(step, 0.0) + time.thread_time() - t0
        return out


def stages(requests: int, rounds: int) -> dict[str, float]:
    """Microseconds of thread CPU per request for each step, best of `rounds`."""
    store = SQLiteStore(Path(tempfile.mkdtemp()) / "stages.db")
    public = TypeAdapter(Diagnosis)
    best: dict[str, float] = {}
    for _ in range(rounds):
        timed = _Clock()
        for _ in range(requests):
            doc = timed("json.loads of the body", json.loads, BODY)
            request = timed("validation (Keras JSON read)", DiagnosisRequest.model_validate, doc)
            stored = timed(
                "request JSON for the store",
                request.model_dump_json,
                exclude_none=True,
                context=TRANSLATED,
            )
            ctx = timed("context (describe, curves)", build_context, request, None)
            report = timed("causes, fixes, report", report_of, request, ctx, None)
            now = datetime.now(UTC)
            record = timed(
                "typed record",
                StoredDiagnosis,
                id="dg_" + os.urandom(10).hex(),
                status="succeeded",
                created_at=now,
                updated_at=now,
                progress=Progress(),
                report=report,
                tenant="local",
            )
            timed("SQLite insert", store.create_diagnosis, record, stored)
            timed(
                "response JSON",
                public.dump_json,
                timed("response JSON", public.validate_python, record),
            )
        for step, seconds in timed.spent.items():
            best[step] = min(best.get(step, float("inf")), seconds / requests * 1e6)
    return best


def _app() -> FastAPI:
    """bench/bare_app's app (the service plus the bare endpoint) on a scratch data directory,
    plus routes that each add one part of `POST /v1/diagnoses` to the bare parse."""
    os.environ["LOSSDOCTOR_DATA_DIR"] = tempfile.mkdtemp(prefix="lossdoctor-stages-")
    from bench.bare_app import app

    ready = _record(DiagnosisRequest.model_validate_json(BODY))

    @app.post("/bench/signature", status_code=201, response_model=Diagnosis)
    def signature(
        body: DiagnosisRequest,
        tenant: TenantDep,
        store: StoreDep,
        settings: SettingsDep,
        queue: QueueDep,
        response: Response,
    ) -> StoredDiagnosis:
        return ready

    @app.post("/bench/request-json", status_code=201, response_model=Diagnosis)
    def request_json(
        body: DiagnosisRequest,
        tenant: TenantDep,
        store: StoreDep,
        settings: SettingsDep,
        queue: QueueDep,
        response: Response,
    ) -> StoredDiagnosis:
        body.model_dump_json(exclude_none=True, context=TRANSLATED)
        return ready

    @app.post("/bench/analysis", status_code=201, response_model=Diagnosis)
    def analysis(
        body: DiagnosisRequest,
        tenant: TenantDep,
        store: StoreDep,
        settings: SettingsDep,
        queue: QueueDep,
        response: Response,
    ) -> StoredDiagnosis:
        body.model_dump_json(exclude_none=True, context=TRANSLATED)
        report_of(body, build_context(body, None), None)
        return ready

    return app


ROUTES = (
    "/bench/bare",
    "/bench/signature",
    "/bench/request-json",
    "/bench/analysis",
    "/v1/diagnoses",
)


async def _post(app: FastAPI, path: str) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # no disconnect while the app answers
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses[0] not in (200, 201):
        raise RuntimeError(f"{path} answered {statuses[0]}")


async def routes(requests: int, rounds: int) -> dict[str, float]:
    """Milliseconds of process CPU per request for each route, best of `rounds`."""
    app = _app()
    best: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        logging.disable(logging.CRITICAL)  # no access-log line per request
        for path in ROUTES:  # warm-up
            for _ in range(20):
                await _post(app, path)
        for _ in range(rounds):
            for path in ROUTES:
                t0 = time.process_time()
                for _ in range(requests):
                    await _post(app, path)
                spent = (time.process_time() - t0) / requests * 1000
                best[path] = min(best.get(path, float("inf")), spent)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("stage                               µs/request")
    for step, us in stages(args.requests, args.rounds).items():
        print(f"{step:<36}{us:>10.0f}")
    cpu = asyncio.run(routes(args.requests, args.rounds))
    bare = cpu["/bench/bare"]
    print("route                               ms/request   bare ÷ route")
    for path, ms in cpu.items():
        print(f"{path:<36}{ms:>10.2f}{bare / ms:>14.2f}")


if __name__ == "__main__":
    main()
