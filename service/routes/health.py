"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The job store does not answer."}})
def readyz(store: StoreDep) -> dict[str, str]:
    store.ping()
    return {"status": "ready"}
