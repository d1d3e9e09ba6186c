"""Score the diagnosis on the fault benchmark (bench/faults/data) or the programs benchmark.

    .venv/bin/python -m bench.score                  # static mode, in-process service
    .venv/bin/python -m bench.score --set programs   # user-style programs (bench/programs)
    .venv/bin/python -m bench.score --set heldout    # programs never read while tuning rules
    .venv/bin/python -m bench.score --url http://127.0.0.1:8000 --modes probes --per-cause 1

Prints and writes (bench/out/score.json, bench/out/score.md): top-1 and top-3 accuracy,
per-cause recall and precision, the confusion matrix, the false-alarm rate on healthy runs,
the history-only accuracy, and time per case.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "faults" / "data"
PROGRAMS = Path(__file__).parent / "programs"
SETS = {"faults": DATA, "programs": PROGRAMS / "data", "heldout": PROGRAMS / "heldout_data"}
OUT = Path(__file__).parent / "out"
# Causes a loss curve alone (with the optimizer's name and rate) can show.
CURVE_VISIBLE = {
    "learning_rate_too_high",
    "learning_rate_too_low",
    "missing_lr_decay",
    "overfitting",
    "noisy_labels",
    "healthy",
}


SERVER_ERROR = "server_error"  # the prediction scored for a 500 answer

# FastAPI's TestClient or an httpx.Client: both speak httpx's interface.
Client = Any


def load_cases(data: Path = DATA) -> list[dict[str, Any]]:
    with gzip.open(data / "cases.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


@contextmanager
def in_process() -> Iterator[Client]:
    from fastapi.testclient import TestClient

    from service.main import create_app
    from service.settings import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    # A 500 is scored as a miss ("server_error"), as a remote service would answer it.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@contextmanager
def remote(url: str) -> Iterator[Client]:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def first_per_cause(
    cases: list[dict[str, Any]], n: int, healthy: int | None = None
) -> list[dict[str, Any]]:
    """The first `n` cases of each cause (`healthy` of the healthy runs): a fixed subset."""
    seen: Counter[str] = Counter()
    out = []
    for case in cases:
        seen[case["cause"]] += 1
        if seen[case["cause"]] <= (healthy if healthy and case["cause"] == "healthy" else n):
            out.append(case)
    return out


def history_only(request: dict[str, Any]) -> dict[str, Any]:
    """What a PyTorch or JAX user could send: the history, optimizer name and learning rate."""
    opt = request["run"].get("optimizer") or {}
    run = (
        {"optimizer": {"name": opt["name"], "learning_rate": opt["learning_rate"]}}
        if opt.get("name") and isinstance(opt.get("learning_rate"), int | float)
        else {}
    )
    return {"run": run, "history": request["history"]}


def diagnose(
    client: Client,
    case: dict[str, Any],
    mode: str,
    uploads: dict[str, str],
    budget: float,
    data: Path,
) -> tuple[dict[str, Any], float]:
    request = json.loads(json.dumps(case["request"]))
    t0 = time.perf_counter()
    if mode == "history":
        request = history_only(request)
    else:
        sample = case["sample"]
        if sample is None:  # regression programs: the upload takes class labels only
            sample = ""
        elif sample not in uploads:
            blob = (data / "samples" / sample).read_bytes()
            r = client.post("/v1/datasets", files={"file": (sample, blob)})
            assert r.status_code == 201, r.text
            uploads[sample] = r.json()["id"]
        if sample:
            request["run"].setdefault("data", {})["dataset_id"] = uploads[sample]
        request["probes"] = {"enabled": mode == "probes", "budget_seconds": budget}
    r = client.post("/v1/diagnoses", json=request)
    if r.status_code >= 500:
        failed = {"verdict": "problem", "causes": [{"id": SERVER_ERROR, "probe": None}]}
        return {"status": "failed", "report": failed}, time.perf_counter() - t0
    assert r.status_code in (201, 202), r.text
    doc = r.json()
    while doc["status"] in ("queued", "running"):
        time.sleep(1)
        doc = client.get(f"/v1/diagnoses/{doc['id']}").json()
    return doc, time.perf_counter() - t0


def predicted(doc: dict[str, Any]) -> list[str]:
    report = doc["report"]
    if report["verdict"] == "healthy" or not report["causes"]:
        return ["healthy", *[c["id"] for c in report["causes"]]]
    return [c["id"] for c in report["causes"]]


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    labels = sorted({r["truth"] for r in rows} | {r["pred"][0] for r in rows})
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        confusion[r["truth"]][r["pred"][0]] += 1
    per_cause = {}
    for label in labels:
        tp = confusion[label][label]
        truth_n = sum(confusion[label].values())
        pred_n = sum(confusion[t][label] for t in confusion)
        per_cause[label] = {
            "n": truth_n,
            "recall": tp / truth_n if truth_n else None,
            "precision": tp / pred_n if pred_n else None,
        }
    healthy = [r for r in rows if r["truth"] == "healthy"]
    faulty = [r for r in rows if r["truth"] != "healthy"]
    confirmed = [r for r in faulty if r.get("confirmed")]
    audited = [r for r in rows if "label_alarm" in r]
    noisy = [r for r in audited if r["truth"] == "noisy_labels"]
    return {
        "cases": len(rows),
        "top1": sum(r["pred"][0] == r["truth"] for r in rows) / len(rows),
        "top3": sum(r["truth"] in r["pred"][:3] for r in rows) / len(rows),
        "faulty_top1": sum(r["pred"][0] == r["truth"] for r in faulty) / max(1, len(faulty)),
        "false_alarm_rate": sum(r["pred"][0] != "healthy" for r in healthy) / max(1, len(healthy)),
        "probe_confirms_top": len(confirmed) / max(1, len(faulty)),
        "seconds_per_case": statistics.mean(r["seconds"] for r in rows),
        "per_cause": per_cause,
        "confusion": {t: dict(c) for t, c in confusion.items()},
        # With probes and a sample: the label audit's alarms, and the clean_labels probe's
        # confirmations on the runs whose labels are noisy (and alarms on the others).
        "label_audits": len(audited),
        "label_alarms_noisy": sum(r["label_alarm"] for r in noisy),
        "label_alarms_other": sum(r["label_alarm"] for r in audited if r not in noisy),
        "noisy_audited": len(noisy),
        "clean_labels_confirmed": sum(
            bool(r["clean_labels"] and r["clean_labels"]["confirmed"]) for r in noisy
        ),
    }


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| mode | cases | top-1 | top-3 | faulty top-1 | false alarms (healthy) | "
        "probe confirms top cause | s/case |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, s in results.items():
        lines.append(
            f"| {mode} | {s['cases']} | {s['top1']:.2f} | {s['top3']:.2f} | "
            f"{s['faulty_top1']:.2f} | {s['false_alarm_rate']:.2f} | "
            + (f"{s['probe_confirms_top']:.2f}" if mode == "probes" else "–")
            + f" | {s['seconds_per_case']:.2f} |"
        )
    first = next(iter(results.values()))
    lines += [
        "",
        "| cause (" + next(iter(results)) + ") | n | recall | precision |",
        "|---|---|---|---|",
    ]
    for label, c in first["per_cause"].items():
        rec = "–" if c["recall"] is None else f"{c['recall']:.2f}"
        pre = "–" if c["precision"] is None else f"{c['precision']:.2f}"
        lines.append(f"| {label} | {c['n']} | {rec} | {pre} |")
    return "\n".join(lines)


def label_evidence(report: dict[str, Any]) -> dict[str, Any]:
    """With probes: did the label audit alarm, and did the clean_labels probe (retraining
    without the suspects) confirm noisy_labels beyond seed noise?"""
    checks = {c["id"]: c["status"] for c in report.get("data_checks", [])}
    if "label_audit" not in checks:
        return {}
    probe = next(
        (c["probe"] for c in report["causes"] if c["id"] == "noisy_labels" and c["probe"]), None
    )
    return {
        "label_alarm": checks["label_audit"] == "fail",
        "clean_labels": probe,
    }


def run_mode(
    client: Client, cases: list[dict[str, Any]], mode: str, budget: float, data: Path
) -> list[dict[str, Any]]:
    uploads: dict[str, str] = {}
    rows = []
    for case in cases:
        if mode == "history" and case["cause"] not in CURVE_VISIBLE:
            continue
        doc, seconds = diagnose(client, case, mode, uploads, budget, data)
        pred = predicted(doc)
        top = doc["report"]["causes"][0] if doc["report"]["causes"] else None
        rows.append(
            {
                "case": case["case_id"],
                "truth": case["cause"],
                "pred": pred,
                "seconds": seconds,
                **label_evidence(doc["report"]),
                "confirmed": bool(
                    top
                    and top["id"] == case["cause"]
                    and top["probe"]
                    and top["probe"]["confirmed"]
                ),
            }
        )
    return rows


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="a running service; default: the app in this process")
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--set", choices=sorted(SETS), default="faults", help="which benchmark")
    parser.add_argument("--data", type=Path, help="a case folder (default: the set's)")
    parser.add_argument(
        "--healthy",
        type=int,
        default=0,
        help="with --per-cause: how many healthy runs (default: the same N)",
    )
    parser.add_argument(
        "--per-cause",
        type=int,
        default=0,
        help="only the first N cases of each cause (a fixed subset)",
    )
    parser.add_argument(
        "--modes", default="static,history", help="comma-separated: static, history, probes"
    )
    parser.add_argument("--causes", help="comma-separated: only the cases of these causes")
    args = parser.parse_args()
    args.data = args.data or SETS[args.set]
    cases = load_cases(args.data)
    if args.causes:
        cases = [c for c in cases if c["cause"] in args.causes.split(",")]
    if args.per_cause:
        cases = first_per_cause(cases, args.per_cause, args.healthy or None)
    modes = args.modes.split(",")
    results, all_rows = {}, {}
    with remote(args.url) if args.url else in_process() as client:
        for mode in modes:
            rows = run_mode(client, cases, mode, args.budget, args.data)
            results[mode], all_rows[mode] = score(rows), rows
    OUT.mkdir(exist_ok=True)
    tag = (
        ("" if args.set == "faults" else f"{args.set}-")
        + "-".join(modes)
        + (f"-per{args.per_cause}" if args.per_cause else "")
        + (f"-{args.causes.replace(',', '-')}" if args.causes else "")
    )
    (OUT / f"score-{tag}.json").write_text(
        json.dumps({"results": results, "rows": all_rows}, indent=1)
    )
    table = markdown(results)
    (OUT / f"score-{tag}.md").write_text(table + "\n")
    print(table)
    for mode, s in results.items():
        if s["label_audits"]:
            print(
                f"\n{mode}: label audit alarmed on {s['label_alarms_noisy']} of "
                f"{s['noisy_audited']} noisy-label runs ({s['label_alarms_other']} of the "
                f"{s['label_audits'] - s['noisy_audited']} others); clean_labels confirmed "
                f"noisy_labels on {s['clean_labels_confirmed']} of {s['noisy_audited']}"
            )
        print(f"\n{mode} confusion (truth → predicted):")
        for truth, row in sorted(s["confusion"].items()):
            print(f"  {truth:<28} {dict(sorted(row.items(), key=lambda kv: -kv[1]))}")


if __name__ == "__main__":
    main()
