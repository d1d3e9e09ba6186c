"""`lossdoctor serve` (API; starts a local probe worker when no broker is set) and
`lossdoctor worker` (a Celery probe worker)."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from types import FrameType

from service.settings import Settings

# billiard reads REMAP_SIGTERM at import: SIGTERM then starts Celery's soft shutdown (running
# probes get LOSSDOCTOR_WORKER_SHUTDOWN_SECONDS, then are cancelled and their task requeued)
# instead of a warm shutdown that waits for a whole probe plan to end.
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}
WEBHOOK_QUEUE = "webhooks"  # = workers.celery_app.WEBHOOK_QUEUE, without creating the app here
PR_SET_PDEATHSIG = 1


def worker_command(settings: Settings, queues: str | None = None) -> list[str]:
    """The Celery command line of one probe worker: prefork, one child, TF loaded in the child.
    Every worker also takes the webhook queue."""
    queues = queues or settings.probe_queue
    if WEBHOOK_QUEUE not in queues.split(","):
        queues = f"{queues},{WEBHOOK_QUEUE}"
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={queues}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def _gpu_count() -> int:
    """GPUs this worker may use, without importing TensorFlow in a process that will fork."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    return out.stdout.count("GPU ")


def _worker(args: argparse.Namespace) -> int:
    settings = Settings()
    # A GPU worker also takes the "gpu" queue; an API with LOSSDOCTOR_PROBE_QUEUE=gpu then
    # sends probes to GPU workers only.
    gpu = _gpu_count() > 0 and settings.probe_queue != "gpu"
    queues = args.queues or (f"gpu,{settings.probe_queue}" if gpu else settings.probe_queue)
    os.execve(sys.executable, worker_command(settings, queues), os.environ | WORKER_ENV)
    return 0  # not reached


def _keys_create(args: argparse.Namespace) -> int:
    from service.auth import add_key

    settings = Settings()
    key = add_key(settings.keys_path, args.tenant)
    print(key)
    print(
        f"(stored as a SHA-256 hash in {settings.keys_path}; this is the only time the key "
        "is shown)",
        file=sys.stderr,
    )
    return 0


class _Stop(Exception):
    """SIGTERM or SIGINT reached `lossdoctor serve`."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    # uvicorn handles the signal first (graceful HTTP shutdown), then restores this handler and
    # raises the signal again: raising here unwinds into _serve's `finally`, which stops the
    # local worker. With the default handler the process would die there, orphaning it.
    raise _Stop(signal.Signals(signum).name)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.main import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    try:
        settings.check_exposure()
    except ValueError as exc:
        print(f"lossdoctor: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    local = None
    try:
        if not settings.broker_url and settings.local_worker:
            local = start_local_worker(settings)
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            # JSON logs: uvicorn's own handlers would print plain lines beside ours.
            log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        )
    except _Stop:
        pass
    finally:
        if local is not None:
            worker = local

            def hurry(_signum: int, _frame: FrameType | None) -> None:
                # A second signal while the worker winds down: no more grace.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.pid, signal.SIGKILL)

            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, hurry)
            stop_local_worker(local, settings.worker_shutdown_seconds)
    return 0


def start_local_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """The worker `serve` owns: its own process group (so it can be stopped whole), told to stop
    if `serve` dies without cleaning up, after requeueing what its last run left unfinished."""
    from service.queue import ProbeQueue
    from service.store import open_store

    if importlib.util.find_spec("tensorflow") is None:
        print(
            "lossdoctor: TensorFlow is not installed, so probes cannot run "
            "(pip install -e '.[worker]'); static diagnoses and webhooks work.",
            file=sys.stderr,
        )
    # The local queue is files that a killed worker may have taken but not finished; nothing
    # else runs this store's probes, so whatever is still queued or running was interrupted.
    store = open_store(settings)
    queue = ProbeQueue(settings)
    for diagnosis_id in store.interrupted_probe_diagnoses():
        store.update_diagnosis(diagnosis_id, {"status": "queued"})
        queue.enqueue(diagnosis_id)
        print(f"lossdoctor: requeued diagnosis {diagnosis_id}, left unfinished", file=sys.stderr)
    env = os.environ | WORKER_ENV | {"LOSSDOCTOR_DATA_DIR": str(settings.data_dir.resolve())}
    return subprocess.Popen(
        worker_command(settings),
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # a prctl call only: safe between fork and exec
    )


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM (its bounded shutdown) if `serve` is SIGKILLed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_local_worker(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (Celery's soft shutdown: `grace` seconds for the running probe, then it is
    cancelled and requeued), then SIGKILL for whatever of its process group is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace + 15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # a hung main process, or orphaned pool children
    proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lossdoctor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded store when no Redis is set)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="run a probe worker (Celery)")
    worker.add_argument(
        "--queues", default=None, help='default: the probe queue, plus "gpu" when a GPU is visible'
    )
    worker.set_defaults(func=_worker)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys", required=True)
    create = keys.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument("--tenant", required=True)
    create.set_defaults(func=_keys_create)
    # The client's commands (diagnose, status, report) live with the client package.
    from lossdoctor_client.cli import add_subcommands

    add_subcommands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
