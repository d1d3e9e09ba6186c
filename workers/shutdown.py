"""A worker's stop, bounded: the pool child dies when told to, or is killed.

Celery's cold shutdown (SIGTERM, remapped to SIGQUIT by `lossdoctor worker`) waits
`worker_soft_shutdown_timeout`, then sends SIGQUIT to the pool child and joins it without a
timeout. billiard's SIGQUIT handler in the child raises SystemExit from wherever the child's
main thread is, and in a TensorFlow training loop that is often inside a weakref callback or
a `__del__`, where Python prints "Exception ignored" and carries on: 3 of 30 and 13 of 40
signals during a probe training in two runs of `python -m bench.quit_signal`. The child then
trains on to the end of its diagnosis while the main process waits for it, so the stop took
as long as the probe plan.

Two bounds, neither an exception that can be swallowed:
- in the child, SIGQUIT ends the process with `os._exit` (its task is unacknowledged and
  goes back to the broker; every finished probe training is already stored);
- in the main process, once the grace is over, a pool child still alive `KILL_AFTER`
  seconds later (stuck in one long native call) gets SIGKILL, and so does any child the pool
  forks after that (a child recycled just before the stop is replaced while the pool closes,
  and the replacement waits for work that never comes while Celery joins it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from billiard.process import current_process
from celery.apps.worker import Worker
from celery.signals import task_prerun

KILL_AFTER = 5.0  # seconds a cancelled pool child has to exit before SIGKILL
EXIT_ON_QUIT = 128 + signal.SIGQUIT  # the status a shell reports for "killed by SIGQUIT"


def _exit_now(_signum: int, _frame: FrameType | None) -> None:
    os._exit(EXIT_ON_QUIT)


@task_prerun.connect
def _quit_means_exit(**_: Any) -> None:
    """Runs in the pool child before each task; billiard installs its own SIGQUIT handler
    after the child's init hooks, so this is the first place ours can replace it. (Not in a
    worker without a pool, where SIGQUIT is Celery's own shutdown signal.)"""
    in_pool_child = current_process().name != "MainProcess"
    if in_pool_child and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGQUIT, _exit_now)


def pool_children(parent: int) -> list[int]:
    """Live child processes of `parent` (the prefork pool), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and fields[0] != "Z":  # state, ppid
                found.append(int(stat.parent.name))
    return found


def kill_pool_children(parent: int) -> None:
    for pid in pool_children(parent):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _reap_pool_after(deadline: float, parent: int) -> None:
    """From `deadline` seconds on, until this (main) process exits: no pool child lives."""
    time.sleep(deadline)
    while True:
        kill_pool_children(parent)
        time.sleep(0.5)


class BoundedWorker(Worker):  # type: ignore[misc]  # Celery ships no type hints
    """`celery worker` whose cold shutdown kills a pool child that outlives its cancel."""

    def wait_for_soft_shutdown(self) -> None:
        super().wait_for_soft_shutdown()  # the grace for running probes
        # Celery cancels the running task (SIGQUIT to the child) and joins the pool next.
        threading.Thread(
            target=_reap_pool_after, args=(KILL_AFTER, os.getpid()), daemon=True
        ).start()
