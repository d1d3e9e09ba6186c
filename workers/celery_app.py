"""The Celery app: broker from the settings, JSON only, reliable delivery, one task module.

Process model: prefork with one child per worker (one worker per GPU). The parent never imports
TensorFlow (it only knows task names); the child imports it on its first task and keeps it,
so the ~5 s import is paid once per child, not per probe, and never crosses a fork. A child is
replaced after `worker_max_tasks_per_child` diagnoses or once above `worker_max_memory_mb`
(checked after each diagnosis): the safety net under the per-probe cleanup in workers/train.py,
and on a GPU host the only way to give device memory back — TensorFlow's allocator keeps what
it took until its process exits, and a replaced child exits.

Shutdown: `lossdoctor worker` runs Celery with REMAP_SIGTERM=SIGQUIT (service/cli.py), so
SIGTERM starts Celery's soft shutdown: running probes get `worker_shutdown_seconds`, then their
child is stopped (workers/shutdown.py bounds that) and the unacknowledged task goes back to the
broker (acks_late); finished probe trainings are stored per key, so the next worker reuses them
instead of training twice.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery

from service.settings import Settings, get_settings

RUN_PROBES = "lossdoctor.run_probes"  # the one task; the API sends it by name
DELIVER_WEBHOOK = "lossdoctor.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"  # every worker takes it, whatever its probe queue


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


class LossdoctorCelery(Celery):  # type: ignore[misc]  # Celery ships no type hints
    @cached_property
    def Worker(self) -> Any:
        """`celery worker` runs this class: Celery's, with a bounded cold shutdown."""
        return self.subclass_with_self("workers.shutdown:BoundedWorker")


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker, options = broker_options(settings)
    app = LossdoctorCelery("lossdoctor", broker=broker, include=["workers.tasks"])
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
        worker_soft_shutdown_timeout=settings.worker_shutdown_seconds,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024,  # Celery counts KiB
        task_routes={DELIVER_WEBHOOK: {"queue": WEBHOOK_QUEUE}},
    )
    return app


app = make_app()
