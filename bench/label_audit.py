"""Benchmark of the label audit: known label flips on real samples, audited as the worker does.

For each dataset and flip rate, a sample of real examples gets that share of its labels flipped
to another class (uniformly), and `workers.label_audit.audit` runs on it. Scored:

- recall of `noisy_labels`: the share of samples with ≥ 30% flips on which the core's decision
  (`service.analysis.causes.label_noise_alarm`) raises the alarm;
- suspect precision (and recall): how many listed suspects are flips the benchmark made;
- clean alarms: the share of unflipped samples on which the alarm is raised.

A sample is "informative" when its flip rate is below (C − 1)/C: at that rate (half the labels
of a binary task) the given label is independent of the true class, and no audit can tell a
flipped example from a kept one; such samples are shown but left out of the precision floor.

    python -m bench.label_audit [--seeds 2] [--first-seed 1]

Writes bench/out/label_audit.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.faults import data_sources
from bench.tf_setup import small_tensorflow

OUT = Path(__file__).parent / "out"
RATES = (0.0, 0.1, 0.3, 0.5)
SAMPLE = 512


def datasets(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Real samples as a user would upload them (already scaled, as fed to fit)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    rng = np.random.default_rng(seed)
    out: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    fashion = data_sources.load("fashion_mnist", SAMPLE, "full", seed)
    out["fashion-mnist"] = (
        fashion.x_train[:SAMPLE, ..., None] / 255.0,
        fashion.y_train[:SAMPLE],
        10,
    )
    digits = data_sources.load("digits", SAMPLE, "full", seed)
    out["digits"] = (digits.x_train[:SAMPLE, ..., None] / 16.0, digits.y_train[:SAMPLE], 10)
    for name, loader, classes in (
        ("breast_cancer", load_breast_cancer, 2),
        ("wine", load_wine, 3),
    ):
        x, y = loader(return_X_y=True)
        keep = rng.permutation(len(x))[:SAMPLE]
        out[name] = (x[keep], y[keep].astype(np.int64), classes)
    return out


def flip(y: np.ndarray, rate: float, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with `rate` of them moved to another class, and the flipped indices."""
    rng = np.random.default_rng(1000 + seed)
    flipped = np.sort(rng.permutation(len(y))[: round(rate * len(y))])
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, classes, len(flipped))) % classes
    return noisy, flipped


def run(seeds: int, first: int = 0) -> list[dict[str, Any]]:
    from service.analysis.causes import label_noise_alarm
    from workers.label_audit import audit

    rows = []
    for seed in range(first, first + seeds):
        for name, (x, y, classes) in datasets(seed).items():
            for rate in RATES:
                noisy, flipped = flip(y, rate, classes, seed)
                start = time.perf_counter()
                report = audit(x, noisy, classes, seed)
                suspects = {s.index for s in report.suspects}
                hits = len(suspects & set(flipped.tolist()))
                rows.append(
                    {
                        "dataset": name,
                        "seed": seed,
                        "flip_rate": rate,
                        "informative": rate < (classes - 1) / classes,
                        "examples": len(y),
                        "estimated_noise": report.noise_rate,
                        "alarm": label_noise_alarm(report),
                        "suspects": len(suspects),
                        "precision": hits / len(suspects) if suspects else None,
                        "recall": hits / len(flipped) if len(flipped) else None,
                        "oos_accuracy": report.out_of_sample_accuracy,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    noisy = [r for r in rows if r["flip_rate"] >= 0.3]
    clean = [r for r in rows if r["flip_rate"] == 0]
    precisions = [r["precision"] for r in noisy if r["precision"] is not None]
    informative = [r["precision"] for r in noisy if r["informative"] and r["precision"] is not None]
    recalls = [r["recall"] for r in noisy if r["recall"] is not None]
    return {
        "samples": len(rows),
        "recall_noisy_labels_at_30pct_plus": sum(r["alarm"] for r in noisy) / len(noisy),
        "suspect_precision_at_30pct_plus": statistics.fmean(precisions) if precisions else None,
        "suspect_recall_at_30pct_plus": statistics.fmean(recalls) if recalls else None,
        "lowest_informative_precision_at_30pct_plus": min(informative) if informative else None,
        "clean_alarm_rate": sum(r["alarm"] for r in clean) / len(clean),
        "seconds_per_audit": statistics.fmean(r["seconds"] for r in rows),
    }


def markdown(rows: list[dict[str, Any]], s: dict[str, Any]) -> str:
    lines = [
        "| dataset | flip rate | estimated noise | alarm | suspects | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = "–" if r["precision"] is None else f"{r['precision']:.2f}"
        rc = "–" if r["recall"] is None else f"{r['recall']:.2f}"
        lines.append(
            f"| {r['dataset']} (seed {r['seed']}) | {r['flip_rate']:.0%} | "
            f"{r['estimated_noise']:.2f} | {'yes' if r['alarm'] else 'no'} | {r['suspects']} | "
            f"{p}{'' if r['informative'] else ' (uninformative)'} | {rc} |"
        )
    lines += [
        "",
        f"noisy_labels recall at ≥ 30% flips: {s['recall_noisy_labels_at_30pct_plus']:.2f}; "
        f"suspect precision {s['suspect_precision_at_30pct_plus']:.2f}, "
        f"recall {s['suspect_recall_at_30pct_plus']:.2f}; lowest precision on an informative "
        f"sample {s['lowest_informative_precision_at_30pct_plus']:.2f}; "
        f"alarms on clean samples: {s['clean_alarm_rate']:.2f}; "
        f"{s['seconds_per_audit']:.1f} s per audit",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.label_audit")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0, help="other samples and flips")
    args = parser.parse_args()
    small_tensorflow()
    rows = run(args.seeds, args.first_seed)
    s = summary(rows)
    OUT.mkdir(exist_ok=True)
    (OUT / "label_audit.json").write_text(json.dumps({"summary": s, "rows": rows}, indent=1))
    table = markdown(rows, s)
    (OUT / "label_audit.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
