"""Soak: many probe diagnoses through one real worker, its memory and its fairness recorded.

    .venv/bin/python -m bench.soak --redis redis://127.0.0.1:6379/12 \
        [--sequential 200] [--burst 50] [--budget 2] [--plan small] [--minutes M] [--out F]

Against a real Redis (store and broker; the database given is flushed) and one real
`lossdoctor worker` (prefork, one child), through the API in this process:

1. `--sequential` probe diagnoses one after another, each of a small CNN on 256 real
   Fashion-MNIST images (14×14) with an unscaled initializer, one seed, `--budget` seconds.
   Per diagnosis: the child that ran it (the pool child whose CPU time grew most meanwhile;
   a change of pid is a recycled child), that child's peak resident memory during it (the
   kernel's high-water mark, reset when the diagnosis starts), wall time, final status.
2. `--burst` diagnoses submitted at once, alternating between two tenants, one worker:
   per tenant the time from submission to result and the order results came back in.

`--minutes` caps the sequential part (on a shared machine): no diagnosis is started after
that, the burst still runs, and the summary says how many ran.

Targets (issue 14): peak RSS flat after warm-up (≤ 20 % growth from diagnosis 20 to the
last, under 2 GB), no diagnosis failed or stuck, time per diagnosis not growing, no tenant
starved. The summary says whether each held.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient

from service.auth import hash_key
from service.main import create_app
from service.settings import Settings
from tests.fashion import npz_bytes, sample
from tests.workers_env import celery_worker, pool_children

TENANTS = ("team-a", "team-b")
STUCK_HISTORY = {
    "loss": [60.1, 2.35, 2.31, 2.303, 2.303, 2.302, 2.303, 2.303],
    "accuracy": [0.1] * 8,
}
DONE = ("succeeded", "failed", "canceled")


def small_run(dataset_id: str, plan: str = "full") -> dict[str, Any]:
    """The soak's run. "full": every probe family (~28 trainings per diagnosis); "small": the
    same run without its optimizer, so the analysis has no learning rate to question and the
    plan skips the LR probes and the LR sweep (~12 trainings)."""
    init = {"name": "random_normal", "stddev": 1.0}
    conv = {"activation": "relu", "kernel_size": 3, "kernel_initializer": init}
    run: dict[str, Any] = {
        "model": {
            "input_shape": [14, 14, 1],
            "layers": [
                {"type": "conv2d", "filters": 8, **conv},
                {"type": "max_pooling2d", "pool_size": 2},
                {"type": "conv2d", "filters": 16, **conv},
                {"type": "flatten"},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
        },
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 32,
        "epochs": 8,
        "preprocessing": {"normalization": "none"},
        "data": {"dataset_id": dataset_id, "num_classes": 10, "num_examples": 256},
    }
    if plan == "small":
        del run["optimizer"]
    return run


@dataclass
class Sequential:
    index: int
    status: str
    seconds: float
    rss_peak_mb: float
    child_pid: int | None


@dataclass
class Soak:
    sequential: list[Sequential] = field(default_factory=list)
    burst: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def peak_rss_mb(pid: int) -> float:
    """The process' resident high-water mark (VmHWM), in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak_rss(pid: int) -> None:
    """Start the high-water mark again from the current RSS (Linux ≥ 4.0, own processes)."""
    with suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_ticks(pid: int) -> int:
    """User + system CPU time the process has used, in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


@dataclass
class ChildWatch:
    """The pool children seen while one diagnosis ran: which one ran it, and its peak.

    Right after a recycled child's last diagnosis the old child is still alive (exiting)
    while its replacement starts the next one, so "the child with the highest RSS" can be
    the wrong one. The child that ran the diagnosis is the one that used the most CPU
    during it (TensorFlow's training); an exiting or idle child uses next to none.
    """

    cpu_at_start: dict[int, int] = field(default_factory=dict)
    cpu_last: dict[int, int] = field(default_factory=dict)
    peak_mb: dict[int, float] = field(default_factory=dict)

    def start(self, children: list[int]) -> None:
        for pid in children:
            reset_peak_rss(pid)
            self.cpu_at_start[pid] = cpu_ticks(pid)

    def poll(self, children: list[int]) -> None:
        for pid in children:
            ticks, peak = cpu_ticks(pid), peak_rss_mb(pid)
            if ticks:  # a child that exited between pgrep and here keeps its last reading
                self.cpu_last[pid] = ticks
                self.peak_mb[pid] = max(peak, self.peak_mb.get(pid, 0.0))

    def ran_it(self) -> tuple[int | None, float]:
        """(pid, peak MB) of the child that ran the diagnosis; (None, 0) if none was seen."""
        if not self.cpu_last:
            return None, 0.0
        pid = max(self.cpu_last, key=lambda p: self.cpu_last[p] - self.cpu_at_start.get(p, 0))
        return pid, self.peak_mb[pid]


def run_soak(
    redis_url: str,
    data_dir: Path,
    sequential: int,
    burst: int,
    budget: float,
    max_memory_mb: int | None = None,
    timeout: float = 900,
    minutes: float | None = None,
    plan: str = "full",
) -> Soak:
    redis.Redis.from_url(redis_url).flushdb()
    queue = f"soak-{uuid.uuid4().hex[:8]}"
    keys = {t: f"soak-key-{t}-{uuid.uuid4().hex}" for t in TENANTS}
    env = dict(
        os.environ,
        LOSSDOCTOR_DATA_DIR=str(data_dir),
        LOSSDOCTOR_STORE_URL=redis_url,
        LOSSDOCTOR_BROKER_URL=redis_url,
        LOSSDOCTOR_PROBE_QUEUE=queue,
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    if max_memory_mb is not None:
        env["LOSSDOCTOR_WORKER_MAX_MEMORY_MB"] = str(max_memory_mb)
    settings = Settings(
        data_dir=data_dir,
        store_url=redis_url,
        broker_url=redis_url,
        probe_queue=queue,
        api_keys={hash_key(k): t for t, k in keys.items()},
        max_active_per_tenant=max(8, burst),
    )
    soak = Soak(
        settings={
            "budget_seconds": budget,
            "plan": plan,
            "worker_max_memory_mb": max_memory_mb or Settings().worker_max_memory_mb,
            "worker_max_tasks_per_child": Settings().worker_max_tasks_per_child,
        }
    )
    headers = {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
    x, y = sample(n=256)
    files = {"file": ("s.npz", npz_bytes(x / 255.0, y))}
    with (
        celery_worker(env, data_dir / "worker.log") as proc,
        TestClient(create_app(settings)) as api,
    ):
        datasets = {
            t: api.post("/v1/datasets", files=files, headers=headers[t]).json()["id"]
            for t in TENANTS
        }

        def submit(tenant: str) -> str:
            body = {
                "run": small_run(datasets[tenant], plan),
                "history": STUCK_HISTORY,
                "probes": {"enabled": True, "budget_seconds": budget, "seeds": 1},
            }
            r = api.post("/v1/diagnoses", json=body, headers=headers[tenant])
            if r.status_code != 202:
                raise RuntimeError(f"submit: {r.status_code} {r.text}")
            return str(r.json()["id"])

        def get(tenant: str, diagnosis_id: str) -> dict[str, Any]:
            doc: dict[str, Any] = api.get(
                f"/v1/diagnoses/{diagnosis_id}", headers=headers[tenant]
            ).json()
            return doc

        stop_at = time.monotonic() + 60 * minutes if minutes else None
        for i in range(sequential):
            if stop_at is not None and time.monotonic() > stop_at:
                break
            watch = ChildWatch()
            watch.start(pool_children(proc.pid))
            started = time.monotonic()
            diagnosis_id = submit(TENANTS[0])
            status = "stuck"
            while time.monotonic() - started < timeout:
                watch.poll(pool_children(proc.pid))
                status = get(TENANTS[0], diagnosis_id)["status"]
                if status in DONE:
                    break
                time.sleep(0.25)
            watch.poll(pool_children(proc.pid))  # a child that is recycled now is still there
            child, peak = watch.ran_it()
            soak.sequential.append(
                Sequential(i, status, round(time.monotonic() - started, 2), round(peak, 1), child)
            )
            print(json.dumps(asdict(soak.sequential[-1])), flush=True)

        submitted = [(TENANTS[i % 2], submit(TENANTS[i % 2])) for i in range(burst)]
        deadline = time.monotonic() + timeout * max(1, burst)
        pending = {diagnosis_id: tenant for tenant, diagnosis_id in submitted}
        while pending and time.monotonic() < deadline:
            for diagnosis_id, tenant in list(pending.items()):
                if get(tenant, diagnosis_id)["status"] in DONE:
                    del pending[diagnosis_id]
            time.sleep(1)
        for tenant, diagnosis_id in submitted:
            doc = get(tenant, diagnosis_id)
            soak.burst.append(
                {
                    "tenant": tenant,
                    "id": diagnosis_id,
                    "status": doc["status"] if doc["status"] in DONE else "stuck",
                    "created_at": doc["created_at"],
                    "finished_at": doc["updated_at"],
                }
            )
    return soak


def summary(soak: Soak) -> dict[str, Any]:
    """The figures the README quotes, and whether each target held."""
    out: dict[str, Any] = {"settings": soak.settings}
    seq = soak.sequential
    if seq:
        peaks = [s.rss_peak_mb for s in seq]
        warm = min(19, len(seq) - 1)  # diagnosis 20 (1-based), or the first when fewer ran
        tail = peaks[-min(5, len(peaks)) :]
        quarter = max(1, len(seq) // 4)
        first_t = statistics.median(s.seconds for s in seq[warm : warm + quarter])
        last_t = statistics.median(s.seconds for s in seq[-quarter:])
        out["sequential"] = {
            "diagnoses": len(seq),
            "failed_or_stuck": sum(s.status != "succeeded" for s in seq),
            "rss_peak_mb_first": peaks[0],
            "rss_peak_mb_at_warm": peaks[warm],
            "rss_peak_mb_last5_max": max(tail),
            "rss_peak_mb_max": max(peaks),
            "rss_growth_after_warmup": round(max(tail) / peaks[warm] - 1, 3),
            "children_used": len({s.child_pid for s in seq if s.child_pid}),
            "seconds_median_after_warmup": round(first_t, 2),
            "seconds_median_last_quarter": round(last_t, 2),
        }
        figures = out["sequential"]
        out["targets"] = {
            "rss_flat_within_20pct_and_under_2gb": figures["rss_growth_after_warmup"] <= 0.2
            and figures["rss_peak_mb_max"] < 2048,
            "none_failed_or_stuck": figures["failed_or_stuck"] == 0,
            "time_not_growing": last_t <= 1.2 * first_t,
        }
    if soak.burst:
        per: dict[str, Any] = {}
        order = sorted(soak.burst, key=lambda b: b["finished_at"])
        for tenant in TENANTS:
            mine = [b for b in soak.burst if b["tenant"] == tenant]
            waits = [_seconds(b["finished_at"]) - _seconds(b["created_at"]) for b in mine]
            positions = [i for i, b in enumerate(order) if b["tenant"] == tenant]
            per[tenant] = {
                "diagnoses": len(mine),
                "failed_or_stuck": sum(b["status"] != "succeeded" for b in mine),
                "wait_s_median": round(statistics.median(waits), 1),
                "wait_s_max": round(max(waits), 1),
                "in_first_half_of_results": sum(p < len(order) / 2 for p in positions),
            }
        out["burst"] = per
        targets = out.setdefault("targets", {})
        targets["burst_none_failed_or_stuck"] = not any(t["failed_or_stuck"] for t in per.values())
        # Starved: a tenant with none of the first half of the results.
        targets["no_tenant_starved"] = all(t["in_first_half_of_results"] > 0 for t in per.values())
    return out


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, help="a Redis database this run may flush")
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--max-memory-mb", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None, help="cap on the sequential part")
    parser.add_argument("--plan", choices=("full", "small"), default="full")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or Path(f"/tmp/lossdoctor-soak-{uuid.uuid4().hex[:8]}")
    data.mkdir(parents=True, exist_ok=True)
    soak = run_soak(
        args.redis,
        data,
        args.sequential,
        args.burst,
        args.budget,
        args.max_memory_mb,
        minutes=args.minutes,
        plan=args.plan,
    )
    result = {"summary": summary(soak), **asdict(soak)}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
