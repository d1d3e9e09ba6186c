"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import observability, problems
from service.auth import KeyRing
from service.limits import BodySizeLimit
from service.logging import configure_logging
from service.queue import ProbeQueue
from service.routes import datasets, diagnoses, health, reports
from service.settings import Settings, get_settings
from service.store import open_store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format, settings.log_level)  # after uvicorn's own
        settings.check_exposure()  # no keys off loopback: refuse to start
        app.state.settings = settings
        app.state.store = open_store(settings)
        app.state.queue = ProbeQueue(settings)
        app.state.keys = KeyRing(settings.api_keys, settings.keys_path)
        yield

    app = FastAPI(
        title="lossdoctor",
        version="1.0.0",
        summary="Why is my CNN's training loss still high? Send the run and its history.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    observability.install(app, settings)  # outermost: request id, metrics, access log
    app.include_router(diagnoses.router)
    app.include_router(datasets.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    return app
