"""Dependencies, named once so route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import LOCAL_TENANT, KeyRing
from service.errors import NotFound, Unauthorized
from service.queue import ProbeQueue
from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import StoredDiagnosis
from service.settings import Settings
from service.store import Store


# Plain attribute reads, so `async def`: FastAPI runs a sync dependency in its thread pool,
# a thread hop per dependency per request for no I/O at all. The store reads below stay sync.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _queue(request: Request) -> ProbeQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


async def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="An API key from `lossdoctor keys create`.")


async def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant; "local" when no keys are configured (loopback-only mode).
    (A key lookup is a dict read and at most one stat() of the keys file.)"""
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


class _Owned(Protocol):
    @property
    def tenant(self) -> str: ...


R = TypeVar("R", bound=_Owned)


def owned(record: R | None, tenant: str, what: str) -> R:
    """The tenant's record; another tenant's answers 404, exactly like a missing one."""
    if record is None or record.tenant != tenant:
        raise NotFound(f"{what} does not exist")
    return record


def _diagnosis(diagnosis_id: str, tenant: TenantDep, store: StoreDep) -> StoredDiagnosis:
    return owned(store.get_diagnosis(diagnosis_id), tenant, f"diagnosis {diagnosis_id!r}")


def _dataset(dataset_id: str, tenant: TenantDep, store: StoreDep) -> StoredDataset:
    return owned(store.get_dataset(dataset_id), tenant, f"dataset {dataset_id!r}")


# The `{diagnosis_id}` / `{dataset_id}` of the path, read and owned by the caller (else 404).
DiagnosisDep = Annotated[StoredDiagnosis, Depends(_diagnosis)]
DatasetDep = Annotated[StoredDataset, Depends(_dataset)]
