"""Does retraining without the label audit's suspects confirm `noisy_labels` beyond seed noise,
and only when the labels are noisy? A control for the `clean_labels` probe.

For every noisy-label program of bench/programs and its fixed (clean-label) twin: audit the
committed sample as the worker does, then train the run as sent on the whole sample and on the
sample without the suspects (`workers.train`, the probes' trainer, same steps and seeds), and
apply the probes' bar: the gain must exceed max(2 × seed spread, 0.1 · ln C).

    python -m bench.label_probe [--steps 80] [--seeds 2]

Writes bench/out/label_probe.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bench.score import SETS, load_cases
from bench.tf_setup import small_tensorflow

OUT = Path(__file__).parent / "out"


def control(case: dict[str, Any], steps: int, seeds: int) -> dict[str, Any]:
    from service.analysis.causes import label_noise_alarm
    from service.analysis.data import load_sample
    from service.analysis.report import build_context
    from service.schemas.diagnosis import DiagnosisRequest
    from workers.data import from_sample
    from workers.label_audit import audit
    from workers.train import train

    request = DiagnosisRequest.model_validate(case["request"])
    blob = (SETS["programs"] / "samples" / case["sample"]).read_bytes()
    x, y = load_sample(blob, 100_000, 1 << 30)
    ctx = build_context(request, None)
    assert ctx.chance is not None
    report = audit(x, y, ctx.num_classes)
    dropped = np.array([s.index for s in report.suspects], dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(y)), dropped)
    losses: dict[str, list[float]] = {}
    for name, data in (
        ("baseline", from_sample(x, y)),
        ("clean_labels", from_sample(x[keep], y[keep])),
    ):
        finals = [
            train(
                request.run, data, steps, seed, eval_every=max(1, steps // 5), arch=ctx.arch
            ).final_loss
            for seed in range(seeds)
        ]
        losses[name] = [v for v in finals if v is not None]
    base, clean = statistics.fmean(losses["baseline"]), statistics.fmean(losses["clean_labels"])
    spread = max(max(v) - min(v) for v in losses.values())
    bar = max(2 * spread, 0.1 * ctx.chance)
    return {
        "case": case["case_id"],
        "labels": "noisy" if case["cause"] == "noisy_labels" else "clean",
        "alarm": label_noise_alarm(report),
        "estimated_noise": report.noise_rate,
        "dropped": len(dropped),
        "baseline_loss": round(base, 4),
        "clean_labels_loss": round(clean, 4),
        "gain": round(base - clean, 4),
        "bar": round(bar, 4),
        "confirms": base - clean > bar,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.label_probe")
    parser.add_argument("--steps", type=int, default=80)  # the longest probe of a 30 s budget
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    small_tensorflow()
    noisy = {c["variant"] for c in load_cases(SETS["programs"]) if c["cause"] == "noisy_labels"}
    rows = []
    for case in load_cases(SETS["programs"]):
        if case["variant"] in noisy:
            rows.append(control(case, args.steps, args.seeds))
            print(json.dumps(rows[-1]), flush=True)
    for labels in ("noisy", "clean"):
        mine = [r for r in rows if r["labels"] == labels]
        print(
            f"{labels} labels: alarm on {sum(r['alarm'] for r in mine)} of {len(mine)}; "
            f"retraining without the suspects clears the bar on "
            f"{sum(r['confirms'] for r in mine)} of {len(mine)}"
        )
    OUT.mkdir(exist_ok=True)
    (OUT / "label_probe.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
