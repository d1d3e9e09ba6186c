"""Thin tasks: load state by id, call plain code, store the result."""

from __future__ import annotations

from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from service.logging import request_id_var
from service.settings import get_settings
from service.store import open_store
from workers.celery_app import RUN_PROBES, app
from workers.observability import finished, observe_probes


@app.task(name=RUN_PROBES, bind=True)
def run_probes(self: Any, diagnosis_id: str) -> None:
    """Run a diagnosis' probe plan; safe to run twice (finished probes are not re-run)."""
    from workers.probe_runner import fail, run_diagnosis  # TensorFlow loads here, in the child

    # The id of the HTTP request that queued these probes (a message header), for the logs.
    token = request_id_var.set(self.request.get("request_id"))
    settings = get_settings()
    store = observe_probes(open_store(settings))
    try:
        run_diagnosis(store, diagnosis_id, settings)
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
