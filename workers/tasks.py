"""Thin tasks: load state by id, call plain code, store the result."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from service.errors import ServiceUnavailable
from service.logging import request_id_var
from service.schemas.diagnosis import public_json
from service.settings import Settings, get_settings
from service.store import Store, open_store
from service.webhooks import Delivery, backoff, completion_event, deliver
from workers.celery_app import DELIVER_WEBHOOK, RUN_PROBES, app
from workers.observability import finished, observe_probes

log = logging.getLogger(__name__)


@app.task(name=RUN_PROBES, bind=True)
def run_probes(self: Any, diagnosis_id: str) -> None:
    """Run a diagnosis' probe plan; safe to run twice (finished probes are not re-run)."""
    try:
        from workers.probe_runner import fail  # TensorFlow loads here, in the child
    except ImportError as exc:  # a worker without the [worker] extra only delivers webhooks
        open_store(get_settings()).update_diagnosis(
            diagnosis_id, {"status": "failed", "error": f"this worker cannot run probes: {exc}"}
        )
        return

    # The id of the HTTP request that queued these probes (a message header), for the logs.
    token = request_id_var.set(self.request.get("request_id"))
    settings = get_settings()
    store = observe_probes(open_store(settings))
    try:
        _run_through_store_outages(store, diagnosis_id, settings)
    except SoftTimeLimitExceeded:
        fail(
            store,
            diagnosis_id,
            f"probes ran past the time limit ({settings.task_time_limit} s)",
            settings,
        )
    finally:
        finished(store, diagnosis_id)
        request_id_var.reset(token)


def _run_through_store_outages(store: Store, diagnosis_id: str, settings: Settings) -> None:
    """Redis (store and broker) going away mid-run neither fails nor loses the diagnosis: wait
    for it, then run again, reusing every probe training already stored. The soft time limit
    still bounds the whole task, waits included."""
    from workers.probe_runner import run_diagnosis

    while True:
        try:
            run_diagnosis(store, diagnosis_id, settings)
            return
        except ServiceUnavailable as exc:
            log.warning("diagnosis %s: the store went away (%s); waiting for it", diagnosis_id, exc)
            while True:
                time.sleep(1)
                try:
                    store.ping()
                    break
                except ServiceUnavailable:
                    continue


@app.task(name=DELIVER_WEBHOOK, bind=True, max_retries=None)
def deliver_webhook(self: Any, diagnosis_id: str) -> None:
    """POST a finished diagnosis to its callback_url; a failed try is retried as a new message
    with a countdown, so the retries outlive a restart of the API or of this worker."""
    settings = get_settings()
    try:
        store = open_store(settings)
        doc = store.get_diagnosis(diagnosis_id)
        request = store.get_request(diagnosis_id) or {}
    except ServiceUnavailable as exc:
        outcome: Delivery = "retry"
        log.warning("webhook of %s: the store does not answer (%s)", diagnosis_id, exc)
    else:
        url = request.get("callback_url")
        if doc is None or not url:
            return  # deleted meanwhile, or nobody to tell
        outcome = deliver(url, completion_event(public_json(doc)), settings)
    if outcome == "retry" and self.request.retries + 1 < settings.webhook_attempts:
        raise self.retry(countdown=backoff(self.request.retries))
