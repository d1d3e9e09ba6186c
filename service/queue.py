"""Hand diagnoses to the probe workers (Celery), and take them back on cancel."""

from __future__ import annotations

import contextlib
import logging
from functools import cached_property
from typing import TYPE_CHECKING

from service.errors import ServiceUnavailable
from service.logging import current_request_id
from service.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class ProbeQueue:
    """Producer side of the Celery app; the task id is derived from the diagnosis id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def app(self) -> Celery:
        from workers.celery_app import make_app  # Celery config lives in one place; no TF here

        return make_app(self.settings)

    def enqueue(self, diagnosis_id: str, request_id: str | None = None) -> None:
        """`request_id` (default: the current request's) travels as a message header, so the
        worker's log lines carry the id of the HTTP request that queued the probes."""
        from workers.celery_app import RUN_PROBES  # the task's name belongs to the Celery app

        request_id = request_id or current_request_id()
        try:
            self.app.send_task(
                RUN_PROBES,
                args=[diagnosis_id],
                task_id=task_id(diagnosis_id),
                queue=self.settings.probe_queue,
                headers={"request_id": request_id} if request_id else None,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
            )
        except Exception as exc:  # kombu raises OperationalError and friends
            raise ServiceUnavailable(f"the probe queue does not answer: {exc}") from exc

    def notify(self, diagnosis_id: str) -> None:
        """Queue the completion webhook of a finished diagnosis (a worker delivers it, with
        retries that survive restarts). Best effort: the diagnosis itself is already stored."""
        from workers.celery_app import DELIVER_WEBHOOK

        try:
            self.app.send_task(DELIVER_WEBHOOK, args=[diagnosis_id], retry=True)
        except Exception:  # kombu raises OperationalError and friends
            log.exception("could not queue the webhook of %s", diagnosis_id)

    def revoke(self, diagnosis_id: str) -> None:
        # Best effort: the task also checks the diagnosis' status before and during probes.
        with contextlib.suppress(Exception):
            self.app.control.revoke(task_id(diagnosis_id))


def task_id(diagnosis_id: str) -> str:
    return f"probes-{diagnosis_id}"
