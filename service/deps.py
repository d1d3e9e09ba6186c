"""Dependencies, named once so route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.queue import ProbeQueue
from service.settings import Settings
from service.store import Store


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _queue(request: Request) -> ProbeQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
QueueDep = Annotated[ProbeQueue, Depends(_queue)]
