"""`lossdoctor serve` (API; starts a local probe worker when no broker is set) and
`lossdoctor worker` (a Celery probe worker)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys

from service.settings import Settings


def worker_command(settings: Settings, queues: str | None = None) -> list[str]:
    """The Celery command line of one probe worker: prefork, one child, TF loaded in the child."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={queues or settings.probe_queue}",
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
    os.execv(sys.executable, worker_command(settings, queues))
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
    local = None
    if not settings.broker_url and settings.local_worker:
        if importlib.util.find_spec("tensorflow") is None:
            print(
                "lossdoctor: TensorFlow is not installed, so probes cannot run "
                "(pip install -e '.[worker]'); static diagnoses work.",
                file=sys.stderr,
            )
        else:
            env = dict(os.environ, LOSSDOCTOR_DATA_DIR=str(settings.data_dir.resolve()))
            local = subprocess.Popen(worker_command(settings), env=env)
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            # JSON logs: uvicorn's own handlers would print plain lines beside ours.
            log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        )
    finally:
        if local is not None:
            local.terminate()
            local.wait(timeout=30)
    return 0


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
