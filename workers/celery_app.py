"""The Celery app: broker from the settings, JSON only, reliable delivery, one task module.

Process model: prefork with one child per worker (one worker per GPU). The parent never imports
TensorFlow (it only knows task names); the child imports it on its first task and keeps it,
so the ~5 s import is paid once per child, not per probe, and never crosses a fork.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from service.settings import Settings, get_settings

RUN_PROBES = "lossdoctor.run_probes"  # the one task; the API sends it by name


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """Redis when configured; else kombu's filesystem transport under the data directory."""
    if settings.broker_url:
        visibility = settings.broker_visibility_timeout or settings.task_time_limit + 600
        return settings.broker_url, {"visibility_timeout": visibility}
    folder = (settings.data_dir / "queue").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # kombu's exchange tables: runtime files, under the data directory (default: ./control).
    control = (settings.data_dir / "control").resolve()
    control.mkdir(exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(control),
    }


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker, options = broker_options(settings)
    app = Celery("lossdoctor", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results live in the job store, written by the task itself
        result_backend=settings.broker_url,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,  # ack after the probes ran: a killed worker's task is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1.0, settings.task_time_limit - 30),
        task_default_queue=settings.probe_queue,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
