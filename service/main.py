"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors
from service.limits import BodySizeLimit
from service.queue import ProbeQueue
from service.routes import datasets, diagnoses, health
from service.settings import Settings, get_settings
from service.store import open_store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.store = open_store(settings)
        app.state.queue = ProbeQueue(settings)
        yield

    app = FastAPI(
        title="lossdoctor",
        version="1.0.0",
        summary="Why is my CNN's training loss still high? Send the run and its history.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(diagnoses.router)
    app.include_router(datasets.router)
    app.include_router(health.router)
    return app
