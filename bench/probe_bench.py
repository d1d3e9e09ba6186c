"""Probe benchmarks: per-probe overhead, and time-to-verdict with and without successive halving.

    .venv/bin/python -m bench.probe_bench [--budget 120] [--skip-overhead]

The reference case is the seed article's two-conv CNN on a 2,048-image 32×32×3 sample (real
Fashion-MNIST images, resized, channels replicated) with the issue's injected fault: an
unscaled RandomNormal(stddev=1.0) initializer. Both modes run in one process, one after the
other, on the same data; the figures are wall-clock seconds on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.analysis.data import sample_stats
from service.analysis.report import static_report
from service.schemas.dataset import StoredDataset
from service.schemas.diagnosis import DiagnosisRequest, StoredDiagnosis
from service.schemas.model import TRANSLATED
from service.settings import Settings
from service.store.sqlite import SQLiteStore
from tests.fashion import npz_bytes, sample


def seed_cnn(init: Any) -> dict[str, Any]:
    conv = {"activation": "relu", "kernel_initializer": init, "kernel_size": 3}
    return {
        "input_shape": [32, 32, 3],
        "layers": [
            {"type": "conv2d", "filters": 32, **conv},
            {"type": "max_pooling2d", "pool_size": 2},
            {"type": "conv2d", "filters": 64, **conv},
            {"type": "max_pooling2d", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 128, "activation": "relu", "kernel_initializer": init},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    }


def reference_sample(n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    x, y = sample(n=n, size=28)
    x32 = np.zeros((n, 32, 32, 3), np.float32)
    x32[:, 2:30, 2:30, :] = x.astype(np.float32) / 255.0  # pad 28→32, replicate to 3 channels
    return x32, y


def reference_request(dataset_id: str, budget: float) -> dict[str, Any]:
    return {
        "run": {
            "model": seed_cnn({"name": "random_normal", "stddev": 1.0}),
            "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
            "lr_schedule": {"name": "constant"},
            "loss": "sparse_categorical_crossentropy",
            "batch_size": 32,
            "epochs": 20,
            "data": {"dataset_id": dataset_id, "num_classes": 10, "num_examples": 2048},
        },
        "history": {
            "loss": [48.0, 2.4, 2.31] + [2.303] * 17,
            "val_loss": [2.31] * 20,
            "accuracy": [0.1] * 20,
        },
        "probes": {"enabled": True, "budget_seconds": budget, "seeds": 2},
    }


def time_to_verdict(budget: float, halving: bool) -> tuple[float, dict[str, Any]]:
    from workers.probe_runner import run_diagnosis

    tmp = Path(tempfile.mkdtemp(prefix="lossdoctor-probe-bench-"))
    store = SQLiteStore(tmp / "store.sqlite3")
    x, y = reference_sample()
    now = datetime.now(UTC)
    dataset = StoredDataset(
        id="ds_ref",
        created_at=now,
        num_examples=len(x),
        input_shape=[32, 32, 3],
        num_classes=10,
        stats=sample_stats(x, y),
        tenant="local",
    )
    store.put_dataset(dataset, npz_bytes(x, y))
    request = DiagnosisRequest.model_validate(reference_request("ds_ref", budget))
    report = static_report(request, dataset)
    store.create_diagnosis(
        StoredDiagnosis(
            id="dg_ref",
            status="queued",
            created_at=now,
            updated_at=now,
            report=report,
            tenant="local",
        ),
        request.model_dump_json(exclude_none=True, context=TRANSLATED),
    )
    t0 = time.perf_counter()
    run_diagnosis(store, "dg_ref", Settings(data_dir=tmp), halving=halving)
    seconds = time.perf_counter() - t0
    doc = store.get_diagnosis("dg_ref")
    assert doc is not None and doc.status == "succeeded", doc
    return seconds, doc.model_dump(mode="json")


def overhead(repeats: int = 3) -> dict[str, float]:
    """Worker wall time per probe (train(), as the runner calls it) vs a plain model.fit."""
    import keras

    from service.schemas.run import RunSpec
    from workers.build import build_model, compile_model
    from workers.data import from_sample
    from workers.train import train

    x, y = reference_sample(1024)
    data = from_sample(x, y)
    run = RunSpec.model_validate(
        {
            "model": seed_cnn("he_normal"),
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
            "loss": "sparse_categorical_crossentropy",
            "batch_size": 32,
        }
    )
    per_epoch = len(data.x_train) // 32
    steps = 6 * per_epoch

    def plain() -> float:
        t0 = time.perf_counter()
        keras.utils.set_random_seed(0)
        model = build_model(run, 10, 0)
        compile_model(model, run)
        model.fit(
            data.x_train[: per_epoch * 32],
            data.y_train[: per_epoch * 32],
            batch_size=32,
            epochs=steps // per_epoch,
            verbose=0,
        )
        return time.perf_counter() - t0

    def probe() -> float:
        t0 = time.perf_counter()
        train(run, data, steps, 0, eval_every=max(1, steps // 20), keep_weights=True)
        return time.perf_counter() - t0

    plain(), probe()  # warm-up: graph tracing, thread pools
    p = statistics.median(probe() for _ in range(repeats))
    f = statistics.median(plain() for _ in range(repeats))
    return {"steps": steps, "probe_s": p, "plain_fit_s": f, "ratio": p / f}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=120)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import tensorflow  # noqa: F401  (a worker child pays this once, not per diagnosis)

    print(f"TensorFlow import: {time.perf_counter() - t0:.1f} s")
    if not args.skip_overhead:
        o = overhead()
        print(
            f"per-probe overhead: train() {o['probe_s']:.2f} s vs plain fit "
            f"{o['plain_fit_s']:.2f} s for {o['steps']} steps: ratio {o['ratio']:.2f} "
            "(target <= 1.25)"
        )
    rows = []
    for halving in (True, False):
        seconds, doc = time_to_verdict(args.budget, halving)
        top = doc["report"]["causes"][0]
        rows.append(
            (
                halving,
                seconds,
                top["id"],
                bool(top["probe"] and top["probe"]["confirmed"]),
                doc["report"]["probes"][0]["device"],
            )
        )
    print(f"{'mode':<24}{'seconds':>9}  {'top cause':<28}{'confirmed':>10}  device")
    for halving, seconds, top_id, confirmed, device in rows:
        mode = "successive halving" if halving else "every probe, full length"
        print(f"{mode:<24}{seconds:>9.1f}  {top_id:<28}{confirmed!s:>10}  {device}")
    print(f"speed-up: {rows[1][1] / rows[0][1]:.2f}x (target >= 2); time-to-verdict target <= 90 s")


if __name__ == "__main__":
    main()
