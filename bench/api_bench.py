"""API benchmark: POST /v1/diagnoses (static) against a bare endpoint that only parses the body.

wrk (a native load generator: a Python one, sharing the cores, caps the bare endpoint first)
against one uvicorn process, 16 connections, a ~20 KB body: a real `model.to_json()` plus a
4 × 200-epoch history. The two endpoints are measured in alternating rounds, so the ratio is
robust to this machine's noise. `--baseline DIR` runs a second server from another checkout
of the repository (`git worktree add /tmp/base <rev>`) in the same alternating rounds, so a
change is measured before and after in one run. Usage:

    .venv/bin/python -m bench.api_bench [--seconds 8] [--rounds 4] [--connections 16]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PATHS = {"diagnoses": "/v1/diagnoses", "bare": "/bench/bare"}

# wrk's Lua hooks: POST the body file, and print one JSON line of figures when done.
_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99), bad))
end
"""


def ten_layer_keras_json() -> str:
    """The seed CNN fixture (a real `model.to_json()`) with a BatchNorm pair: 10 layers."""
    doc = json.loads((ROOT / "tests/fixtures/keras/seed_cnn.json").read_text())
    doc = json.loads(doc) if isinstance(doc, str) else doc
    layers = doc["config"]["layers"]
    conv = next(i for i, layer in enumerate(layers) if layer["class_name"] == "Conv2D")
    bn = {
        "module": "keras.layers",
        "class_name": "BatchNormalization",
        "registered_name": None,
        "config": {
            "name": "bn",
            "trainable": True,
            "axis": -1,
            "momentum": 0.99,
            "epsilon": 0.001,
            "center": True,
            "scale": True,
        },
    }
    layers.insert(conv + 1, bn)
    bn2: dict[str, Any] = copy.deepcopy(bn)
    bn2["config"]["name"] = "bn_2"
    layers.insert(conv + 4, bn2)
    return json.dumps(doc)


def _keras_floats(values: np.ndarray) -> list[float]:
    """As `History.history` holds them: float32 metrics, written with Python's full repr."""
    return [float(v) for v in values.astype(np.float32)]


def request_body(epochs: int = 200) -> dict[str, Any]:
    t = np.arange(epochs)
    loss = 0.3 + 2.0 * np.exp(-t / 30)
    return {
        "run": {
            "model": {"keras_json": ten_layer_keras_json()},
            "optimizer": {
                "name": "SGD",
                "learning_rate": 0.01,
                "momentum": 0.9,
                "nesterov": False,
                "weight_decay": None,
            },
            "lr_schedule": {"name": "constant"},
            "loss": "sparse_categorical_crossentropy",
            "batch_size": 32,
            "epochs": epochs,
            "preprocessing": {"normalization": "rescale"},
            "data": {"num_classes": 10, "num_examples": 50000, "input_min": 0, "input_max": 1},
        },
        "history": {
            "loss": _keras_floats(loss),
            "val_loss": _keras_floats(loss + 0.05),
            "accuracy": _keras_floats(0.9 - 0.8 * np.exp(-t / 30)),
            "val_accuracy": _keras_floats(0.88 - 0.8 * np.exp(-t / 30)),
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what a request costs the
    server, whatever else shares the machine's cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, seconds: float, connections: int, work: Path, pid: int) -> dict[str, float]:
    cpu = _cpu_seconds(pid)
    out = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",  # one thread keeps 16 connections busy and leaves the other core to uvicorn
            "--connections",
            str(connections),
            "--duration",
            f"{seconds:g}s",
            "--timeout",
            "30s",
            "--script",
            str(work / "post.lua"),
            url,
        ],
        env=dict(os.environ, BENCH_BODY=str(work / "body.json")),
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["cpu_seconds"] = _cpu_seconds(pid) - cpu
    if figures["errors"]:
        raise RuntimeError(f"{url}: {figures['errors']:g} failed requests\n{out.stdout}")
    return figures


Figures = dict[str, dict[str, float]]


def _serve(tree: Path, port: int, data: Path) -> subprocess.Popen[bytes]:
    """One uvicorn process serving `tree`'s app plus the bare endpoint."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=tree,
        env=dict(os.environ, LOSSDOCTOR_DATA_DIR=str(data), PYTHONPATH=str(tree)),
    )


def bench_http(
    seconds: float, connections: int, rounds: int, trees: dict[str, Path]
) -> dict[str, Figures]:
    """Figures per tree (a checkout of this repository) and endpoint; every round measures
    each tree's two endpoints in turn."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="lossdoctor-bench-"))
    (work / "post.lua").write_text(_SCRIPT)
    body = json.dumps(request_body()).encode()
    (work / "body.json").write_bytes(body)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for label, tree in trees.items():
            port = _free_port()
            servers[label] = (_serve(tree, port, work / f"data-{len(servers)}"), port)
        for server, port in servers.values():
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(base + "/livez").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            for path in PATHS.values():  # warm-up: imports, caches, the SQLite file
                _wrk(base + path, 2, connections, work, server.pid)
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(rounds):
            for label, (server, port) in servers.items():
                for name, path in PATHS.items():
                    url = f"http://127.0.0.1:{port}{path}"
                    figures = _wrk(url, seconds, connections, work, server.pid)
                    runs.setdefault((label, name), []).append(figures)
        return {
            label: {
                name: {
                    "body_kb": len(body) / 1000,
                    "rps": sum(r["requests"] for r in rs) / sum(r["seconds"] for r in rs),
                    "p50_ms": statistics.median(r["p50_us"] for r in rs) / 1000,
                    "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1000,
                    "cpu_ms": 1000
                    * sum(r["cpu_seconds"] for r in rs)
                    / sum(r["requests"] for r in rs),
                }
                for name in PATHS
                for rs in [runs[(label, name)]]
            }
            for label in trees
        }
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def bench_long_history(points: int = 100_000, repeats: int = 5) -> float:
    """Milliseconds to analyse a `points`-long history (median of `repeats`)."""
    from service.analysis.report import static_report
    from service.schemas.diagnosis import DiagnosisRequest

    rng = np.random.default_rng(0)
    t = np.arange(points)
    loss = (0.2 + 2.1 * np.exp(-t / 20000) + rng.normal(0, 0.02, points)).tolist()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        request = DiagnosisRequest.model_validate(
            {"history": {"loss": loss}, "run": {"data": {"num_classes": 10}}}
        )
        static_report(request, None)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8, help="length of one wrk round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per endpoint, alternating")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--baseline", type=Path, help="another checkout of this repository, measured alongside"
    )
    args = parser.parse_args()
    trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results = bench_http(args.seconds, args.connections, args.rounds, trees)
    long_ms = bench_long_history()
    for tree, http in results.items():
        print(f"{tree}: body {http['bare']['body_kb']:.1f} KB, {args.connections} connections, wrk")
        print(f"{'endpoint':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/req':>19}")
        for name, f in http.items():
            print(
                f"{name:<16}{f['rps']:>9.0f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}"
                f"{f['cpu_ms']:>19.2f}"
            )
        ratio = http["diagnoses"]["rps"] / http["bare"]["rps"]
        cost = http["bare"]["cpu_ms"] / http["diagnoses"]["cpu_ms"]
        print(f"ratio diagnoses/bare req/s: {ratio:.2f} (target >= 0.8)")
        print(f"ratio bare/diagnoses server CPU per request: {cost:.2f} (load-independent)")
    print(f"100k-point history, parse + analysis: {long_ms:.0f} ms (target < 200 ms)")


if __name__ == "__main__":
    main()
