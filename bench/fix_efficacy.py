"""Do the fixes work? Retrain every faulty benchmark run with its top cause's fix applied.

For each faulty run of the fault benchmark (bench/faults/data) the static diagnosis is asked
for its top cause; that cause's `fix.patch` is applied to the run the user sent, and the
patched run is retrained with the worker's own trainer (workers.train) on the same training
data, seed and number of epochs. Recovery is (faulty − fixed) / (faulty − healthy twin) on the
final training loss (validation loss for overfitting): 1 means the fix closed the gap to the
run without the fault, 0 that it did nothing, below 0 that it made the run worse.

    .venv/bin/python -m bench.fix_efficacy                    # all 51 faulty runs (~30-40 min)
    .venv/bin/python -m bench.fix_efficacy --per-cause 1      # the first run of each cause

Faulty and twin losses are replayed with the same trainer (not taken from the generator's
`model.fit`), so that trainer differences do not count as fix effects. Writes
bench/out/fix_efficacy[-perN].json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.score import DATA, OUT, diagnose, first_per_cause, in_process, load_cases, remote

RECOVERED = 0.8  # the target: a fix closes at least this share of the gap
WORSE = -0.05  # a fix "made the run worse" below this recovery (seed noise is a few %)


@dataclass
class Trained:
    loss: float  # final training loss (inf when it went non-finite)
    val_loss: float


def recipe_for(case: dict[str, Any]) -> Any:
    from bench.faults.recipes import ALL_RECIPES

    for recipe in ALL_RECIPES:
        if recipe.cause == case["cause"] and recipe.variant == case["variant"]:
            return recipe
    raise LookupError(f"no recipe for {case['case_id']} ({case['variant']})")


def training_data(cfg: Any, seed: int) -> Any:
    """The arrays the generator fed to `fit` for this config, as the worker's ProbeData."""
    from bench.faults.generate import prepare
    from workers.data import ProbeData

    fed = prepare(cfg, seed)
    return ProbeData(
        x_train=fed.x_train.astype(np.float32),
        y_train=fed.y_train.astype(np.int32),
        x_val=fed.x_val.astype(np.float32),
        y_val=fed.y_val.astype(np.int32),
        num_classes=fed.num_classes,
        source="sample",
    )


def sample_rows(data: Any, seed: int) -> np.ndarray:
    """Training-set index of each row of the uploaded sample (as generate.draw_sample drew it)."""
    from bench.faults.generate import SAMPLE_SIZE

    n = len(data.x_train)
    return np.sort(np.random.default_rng(seed + 1).choice(n, min(SAMPLE_SIZE, n), replace=False))


def retrain(
    run_doc: dict[str, Any],
    data: Any,
    seed: int,
    normalize: str | None = None,
    upload_rows: np.ndarray | None = None,
) -> Trained:
    """Train `run_doc` as the worker would, `epochs` epochs of the data it was fed.

    The data is the user's as fed to fit; `normalize` is a normalization a fix asks for, which
    the user applies to what they feed (the run's own normalization already happened).
    """
    from service.schemas.run import RunSpec
    from workers.data import apply_preprocessing
    from workers.train import train

    run = RunSpec.model_validate(run_doc)
    if normalize is not None:
        data = apply_preprocessing(data, normalize)
    data = _without_dropped(
        run_doc, data, sample_rows(data, seed) if upload_rows is None else upload_rows
    )
    batch = min(run.batch_size or 32, len(data.x_train))
    per_epoch = max(1, len(data.x_train) // batch)  # the trainer drops a last partial batch
    result = train(
        run,
        data,
        steps=per_epoch * (run.epochs or 12),
        seed=seed,
        eval_every=per_epoch,
        preprocess=False,
    )
    last = result.curve[-1] if result.curve else None
    loss = math.inf if result.non_finite or last is None else float(last)
    return Trained(loss, math.inf if result.val_loss is None else float(result.val_loss))


def normalization(fix: dict[str, Any]) -> str | None:
    """The input normalization a fix asks the user to apply, if it changes it."""
    for change in fix.get("changes") or []:
        if change["path"] == "preprocessing.normalization":
            return str(change["to"])
    return None


def _without_dropped(run_doc: dict[str, Any], data: Any, upload_rows: np.ndarray) -> Any:
    """Drops the rows a label fix lists (the user deletes them from their data); they are rows
    of the upload, whose row i is training row `upload_rows[i]`."""
    from dataclasses import replace

    drop = (run_doc.get("data") or {}).get("drop_examples") or []
    if not drop:
        return data
    rows = upload_rows[np.asarray(drop, dtype=np.int64)]
    keep = np.setdiff1d(np.arange(len(data.x_train)), rows)
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


def recovery(faulty: float, fixed: float, twin: float) -> float:
    """(faulty − fixed) / (faulty − twin); NaN when the replay shows no gap.

    A faulty run that went non-finite has no loss to subtract: a fix that makes it finite
    scores twin / fixed (1 when it reaches the twin), one that does not scores 0."""
    if not math.isfinite(faulty):
        if not math.isfinite(fixed):
            return 0.0
        return 1.0 if fixed <= twin else twin / fixed
    if faulty - twin <= 0:
        return math.nan
    if not math.isfinite(fixed):
        return -math.inf
    return (faulty - fixed) / (faulty - twin)


def audited(
    client: Any,
    case: dict[str, Any],
    report: dict[str, Any],
    dataset_id: str,
    upload: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The report as a probe run has it after its first step: the worker's label audit of the
    upload folded in (re-ranked causes; a label fix that names the suspects). The upload is
    the case's sample, or `upload` (the whole training set, had the user sent it all)."""
    from service.analysis.data import load_sample
    from service.analysis.labels import with_audit
    from service.analysis.report import build_context
    from service.schemas.dataset import Dataset
    from service.schemas.diagnosis import DiagnosisRequest
    from service.schemas.report import Report
    from service.settings import Settings
    from workers.label_audit import audit_upload

    settings = Settings()
    sent = json.loads(json.dumps(case["request"]))
    sent["run"].setdefault("data", {})["dataset_id"] = dataset_id
    request = DiagnosisRequest.model_validate(sent)
    if request.run.loss and "crossentropy" not in request.run.loss.name:
        return report  # the audit judges class labels
    dataset = Dataset.model_validate(client.get(f"/v1/datasets/{dataset_id}").json())
    ctx = build_context(request, dataset)
    if upload is None:
        blob = (DATA / "samples" / case["sample"]).read_bytes()
        upload = load_sample(
            blob, settings.max_dataset_examples, settings.max_dataset_unpacked_bytes
        )
    x, y = upload
    found = audit_upload(x, y, ctx.num_classes, settings.probe_max_examples)
    static = Report.model_validate(report)
    folded = with_audit(static, replace(ctx, label_audit=found))
    return folded.model_dump(mode="json")


def measure(
    cases: list[dict[str, Any]],
    seed: int,
    audit: str | None = None,
    url: str | None = None,
    probes: float | None = None,
) -> list[dict[str, Any]]:
    """`audit`: None (static fixes), "sample" (the label audit of the uploaded sample folded
    in), "training" (the same audit, had the user uploaded the whole training set). `probes`:
    a probe budget in seconds; the service at `url` (which needs a worker) diagnoses with
    probes and the top cause's fix is the one they verified."""
    from bench.faults.generate import _setup_tensorflow
    from service.analysis import patch

    _setup_tensorflow()
    rows = []
    twins: dict[Any, Trained] = {}
    uploads: dict[str, str] = {}
    with remote(url) if url else in_process() as client:
        for i, case in enumerate(cases, 1):
            started = time.perf_counter()
            recipe = recipe_for(case)
            mode = "probes" if probes else "static"
            doc, _ = diagnose(client, case, mode, uploads, probes or 60, DATA)
            report = doc["report"]
            data = training_data(recipe.faulty, seed)
            upload_rows = None
            if audit and case["sample"]:
                whole = (data.x_train, data.y_train) if audit == "training" else None
                report = audited(client, case, report, uploads[case["sample"]], whole)
                upload_rows = np.arange(len(data.y_train)) if whole else None
            top = (
                report["causes"][0] if report["verdict"] == "problem" and report["causes"] else None
            )
            run = case["request"]["run"]
            faulty = retrain(run, data, seed)
            if recipe.twin not in twins:
                twin_run = _twin_run(case, recipe)
                twins[recipe.twin] = retrain(twin_run, training_data(recipe.twin, seed), seed)
            twin = twins[recipe.twin]
            fixed, fix_error = None, None
            if top is not None and top["fix"]["patch"]:
                try:
                    fixed = retrain(
                        patch.apply(run, top["fix"]["patch"]),
                        data,
                        seed,
                        normalization(top["fix"]),
                        upload_rows,
                    )
                except Exception as error:  # a fix that does not build is a result, not a crash
                    fix_error = f"{type(error).__name__}: {error}"[:300]
            key = "val_loss" if case["cause"] == "overfitting" else "loss"
            f, t = getattr(faulty, key), getattr(twin, key)
            x = getattr(fixed, key) if fixed else f
            rec = recovery(f, x, t)
            rows.append(
                {
                    "case": case["case_id"],
                    "cause": case["cause"],
                    "variant": case["variant"],
                    "top": top["id"] if top else None,
                    "fix": top["fix"]["summary"] if top else None,
                    "changes": top["fix"].get("changes") if top else None,
                    "unavailable": top["fix"].get("unavailable") if top else None,
                    "patched": bool(top and top["fix"]["patch"]),
                    "metric": key,
                    "faulty": f,
                    "fixed": x,
                    "twin": t,
                    "recovery": rec,
                    "fix_error": fix_error,
                    "verified": top["fix"].get("verified") if top else None,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(
                f"[{i}/{len(cases)}] {case['case_id']:32s} top={rows[-1]['top']!s:28s} "
                f"faulty {f:.3f} fixed {x:.3f} twin {t:.3f} recovery {rec:+.2f}"
                + (f"  ({fix_error})" if fix_error else ""),
                flush=True,
            )
    return rows


def _twin_run(case: dict[str, Any], recipe: Any) -> dict[str, Any]:
    """The request the healthy twin would send (the generator keeps only its losses)."""
    import keras

    from bench.faults import builders
    from bench.faults.generate import FULL_BATCH, prepare, run_spec

    cfg = recipe.twin
    keras.backend.clear_session()  # Keras numbers names per session: "sgd_1" is no optimizer
    fed = prepare(cfg, 0)
    n = len(fed.x_train)
    batch = n if cfg.batch_size == FULL_BATCH else cfg.batch_size
    steps = math.ceil(n / batch)
    model = builders.build_model(cfg, fed.x_train.shape[1:], fed.num_classes)
    optimizer = builders.build_optimizer(cfg, steps).get_config()
    run = {**case["request"]["run"], **run_spec(cfg, model.to_json(), optimizer, steps, batch)}
    keras.backend.clear_session()
    return run


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    valid = [r for r in rows if not math.isnan(r["recovery"])]
    per_cause: dict[str, list[float]] = defaultdict(list)
    for r in valid:
        per_cause[r["cause"]].append(r["recovery"])
    return {
        "runs": len(rows),
        "measured": len(valid),
        "no_gap": [r["case"] for r in rows if math.isnan(r["recovery"])],
        "recovered": sum(r["recovery"] >= RECOVERED for r in valid),
        "worse": [r["case"] for r in valid if r["recovery"] < WORSE],
        "no_fix": [r["case"] for r in rows if not r["patched"]],
        "median": statistics.median(r["recovery"] for r in valid) if valid else None,
        "per_cause": {
            cause: {
                "n": len(v),
                "recovered": sum(x >= RECOVERED for x in v),
                "median": statistics.median(v),
                "worse": sum(x < WORSE for x in v),
            }
            for cause, v in sorted(per_cause.items())
        },
    }


def markdown(s: dict[str, Any]) -> str:
    share = s["recovered"] / max(1, s["measured"])
    lines = [
        f"{s['recovered']} of {s['measured']} faulty runs recover ≥ {RECOVERED:.0%} of the gap "
        f"({share:.0%}); median recovery {s['median']:.2f}; made worse: {len(s['worse'])}; "
        f"no fix: {len(s['no_fix'])}.",
        "",
        "| cause | runs | recovered ≥ 80% | median recovery | made worse |",
        "|---|---|---|---|---|",
    ]
    for cause, c in s["per_cause"].items():
        lines.append(
            f"| {cause} | {c['n']} | {c['recovered']} | {c['median']:.2f} | {c['worse']} |"
        )
    return "\n".join(lines)


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.fix_efficacy")
    parser.add_argument("--per-cause", type=int, default=0, help="the first N runs of each cause")
    parser.add_argument("--only", nargs="+", metavar="CAUSE", help="only these causes")
    parser.add_argument("--seed", type=int, default=0, help="the seed the benchmark was made with")
    parser.add_argument("--url", help="a running service (default: the app in this process)")
    parser.add_argument(
        "--probes",
        type=float,
        metavar="SECONDS",
        help="diagnose with probes of this budget (needs --url: a service with a worker)",
    )
    parser.add_argument(
        "--audit",
        choices=("sample", "training"),
        help="fold in the worker's label audit (a probe run's first step) of the uploaded "
        "sample, or of the whole training set as if it had been uploaded",
    )
    args = parser.parse_args()
    cases = [c for c in load_cases() if c["cause"] != "healthy"]
    if args.only:
        cases = [c for c in cases if c["cause"] in args.only]
    if args.per_cause:
        cases = first_per_cause(cases, args.per_cause)
    if args.probes and not args.url:
        parser.error("--probes needs --url: the in-process app has no worker")
    rows = measure(cases, args.seed, args.audit, args.url, args.probes)
    summary = summarize(rows)
    OUT.mkdir(exist_ok=True)
    tag = (
        (f"-per{args.per_cause}" if args.per_cause else "")
        + (f"-audit-{args.audit}" if args.audit else "")
        + (f"-probes{args.probes:g}" if args.probes else "")
        + ("-only-" + "-".join(args.only) if args.only else "")
    )
    (OUT / f"fix_efficacy{tag}.json").write_text(
        json.dumps({"summary": summary, "rows": rows}, indent=1, default=str)
    )
    table = markdown(summary)
    (OUT / f"fix_efficacy{tag}.md").write_text(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
