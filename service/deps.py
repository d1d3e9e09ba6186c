"""Dependencies, named once so route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import LOCAL_TENANT, KeyRing
from service.errors import Unauthorized
from service.queue import ProbeQueue
from service.settings import Settings
from service.store import Store


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _queue(request: Request) -> ProbeQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="An API key from `lossdoctor keys create`.")


def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant; "local" when no keys are configured (loopback-only mode)."""
    keys: KeyRing = request.app.state.keys
    if not keys.enabled:
        return LOCAL_TENANT
    if credentials is None:
        raise Unauthorized("send an API key: Authorization: Bearer <key>")
    tenant = keys.tenant_for(credentials.credentials)
    if tenant is None:
        raise Unauthorized("this API key is not known")
    return tenant


SettingsDep = Annotated[Settings, Depends(_settings)]
TenantDep = Annotated[str, Depends(_tenant)]
StoreDep = Annotated[Store, Depends(_store)]
QueueDep = Annotated[ProbeQueue, Depends(_queue)]
