"""API benchmark: POST /v1/diagnoses (static) against a bare endpoint that only parses the body.

Both endpoints are served by one uvicorn process and measured in the same run, alternating
rounds, so the ratio is robust to this machine's noise. Usage:

    .venv/bin/python -m bench.api_bench [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
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


def request_body(epochs: int = 200) -> dict[str, Any]:
    t = np.arange(epochs)
    loss = (0.3 + 2.0 * np.exp(-t / 30)).round(4).tolist()
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
            "loss": loss,
            "val_loss": [round(x + 0.05, 4) for x in loss],
            "accuracy": (0.9 - 0.8 * np.exp(-t / 30)).round(4).tolist(),
            "val_accuracy": (0.88 - 0.8 * np.exp(-t / 30)).round(4).tolist(),
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(url: str, body: bytes, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                t0 = time.perf_counter()
                r = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - t0)
                assert r.status_code in (200, 201), r.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _figures(latencies: list[float], seconds: float) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "rps": len(ms) / seconds,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)],
    }


def bench_http(requests: int, concurrency: int, rounds: int) -> dict[str, dict[str, float]]:
    port = _free_port()
    data = tempfile.mkdtemp(prefix="lossdoctor-bench-")
    env = dict(os.environ, LOSSDOCTOR_DATA_DIR=data)
    server = subprocess.Popen(
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
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/livez").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = json.dumps(request_body()).encode()
        totals: dict[str, list[float]] = {"diagnoses": [], "bare": []}
        seconds = {"diagnoses": 0.0, "bare": 0.0}
        paths = {"diagnoses": "/v1/diagnoses", "bare": "/bench/bare"}
        asyncio.run(_load(base + paths["bare"], body, 200, concurrency))  # warm-up
        asyncio.run(_load(base + paths["diagnoses"], body, 200, concurrency))
        for _ in range(rounds):
            for name, path in paths.items():
                t0 = time.perf_counter()
                totals[name] += asyncio.run(
                    _load(base + path, body, requests // rounds, concurrency)
                )
                seconds[name] += time.perf_counter() - t0
        return {name: _figures(totals[name], seconds[name]) for name in totals}
    finally:
        server.terminate()
        server.wait(timeout=10)


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
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    http = bench_http(args.requests, args.concurrency, args.rounds)
    long_ms = bench_long_history()
    ratio = http["diagnoses"]["rps"] / http["bare"]["rps"]
    print(f"{'endpoint':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, f in http.items():
        print(f"{name:<16}{f['rps']:>9.0f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}")
    print(f"ratio diagnoses/bare req/s: {ratio:.2f} (target >= 0.8)")
    print(f"100k-point history, parse + analysis: {long_ms:.0f} ms (target < 200 ms)")


if __name__ == "__main__":
    main()
