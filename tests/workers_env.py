"""Real processes for integration tests: a Redis database and Celery probe workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

# A developer may point the tests at a Redis of their own (another port) to run suites side by side.
REDIS = os.environ.get("LOSSDOCTOR_TEST_REDIS", "redis://127.0.0.1:6379")


def redis_url(db: int) -> str:
    return f"{REDIS}/{db}"


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def worker_env(data_dir: Path, db: int, queue: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LOSSDOCTOR_DATA_DIR": str(data_dir),
            "LOSSDOCTOR_STORE_URL": redis_url(db),
            "LOSSDOCTOR_BROKER_URL": redis_url(db),
            "LOSSDOCTOR_PROBE_QUEUE": queue,
            "LOSSDOCTOR_TASK_TIME_LIMIT": "240",
            # Short redelivery for tests; production keeps it above the hard time limit.
            "LOSSDOCTOR_BROKER_VISIBILITY_TIMEOUT": "300",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update(extra)
    return env


@contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`lossdoctor worker`, really started; stopped (and its children) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # gone already when a test stopped it itself
            proc.wait(timeout=20)
        except ProcessLookupError:
            proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def pool_children(worker_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]
