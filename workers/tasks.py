"""Thin tasks: load state by id, call plain code, store the result."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded

from service.queue import RUN_PROBES
from service.settings import get_settings
from service.store import open_store
from workers.celery_app import app


@app.task(name=RUN_PROBES)
def run_probes(diagnosis_id: str) -> None:
    """Run a diagnosis' probe plan; safe to run twice (finished probes are not re-run)."""
    from workers.probe_runner import fail, run_diagnosis  # TensorFlow loads here, in the child

    settings = get_settings()
    store = open_store(settings)
    try:
        run_diagnosis(store, diagnosis_id, settings)
    except SoftTimeLimitExceeded:
        fail(store, diagnosis_id, f"probes ran past the time limit ({settings.task_time_limit} s)")
