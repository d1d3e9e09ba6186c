"""Run the user-style Keras programs of bench/programs/scripts and keep their request bodies.

Each script is a complete training program, written the way users post them, with one bug.
A line that carries `# FIX: <code>` is replaced by <code> in its fixed twin (the answer a
reviewer would give); `# cause: <id>` names the bug's cause in the contract's vocabulary.
The runner executes both versions for real, reads the model, the arguments given to `fit` and
the History, and writes what a user would send (the client's `from_keras`) plus a sample of
the training data as fed. A buggy program is kept only when it measurably hurts its twin on
held-out data (accuracy, or R² for regressions); the twin is kept as a healthy case.

    python -m bench.programs.run [--only NAME ...] [--out bench/programs/data]
    python -m bench.programs.run --scripts bench/programs/heldout --out bench/programs/heldout_data
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.faults.generate import save_sample, write_cases
from bench.tf_setup import small_tensorflow

HERE = Path(__file__).parent
SCRIPTS = HERE / "scripts"
DEFAULT_OUT = HERE / "data"
SAMPLE_SIZE = 512
# A bug is kept when its program does this much worse than the fixed twin on held-out data.
HURT_ACCURACY = 0.05  # classification: accuracy points lost
HURT_R2 = 0.10  # regression: R² lost
# The fixed twin is a healthy case only if it really learned its task.
TWIN_MIN_ACCURACY = 0.7
TWIN_MIN_R2 = 0.3
RULE = (
    f"bug kept if: non-finite loss, or held-out accuracy >= {HURT_ACCURACY} below the fixed "
    f"twin's, or held-out R² >= {HURT_R2} below it; the fixed twin must reach held-out "
    f"accuracy >= {TWIN_MIN_ACCURACY} (R² >= {TWIN_MIN_R2})"
)
_FIX = re.compile(r"^(?P<indent>\s*)(?P<code>.*?)\s*# FIX: (?P<fix>.*)$")
_CAUSE = re.compile(r"^# cause: (\w+)", re.M)


@dataclass
class Program:
    name: str
    cause: str
    buggy: str
    fixed: str


def read_program(path: Path) -> Program:
    text = path.read_text()
    match = _CAUSE.search(text)
    if match is None:
        raise ValueError(f"{path.name} has no '# cause:' line")
    lines = []
    for line in text.splitlines():
        m = _FIX.match(line)
        lines.append(f"{m['indent']}{m['fix']}" if m else line)
    fixed = "\n".join(lines) + "\n"
    if fixed == text:
        raise ValueError(f"{path.name} has no '# FIX:' line")
    return Program(path.stem, match[1], text, fixed)


@dataclass
class Ran:
    request: dict[str, Any]
    sample: tuple[np.ndarray, np.ndarray] | None
    metric: str  # "accuracy" or "r2"
    score: float  # held-out accuracy or R² (-inf when the run broke down)
    finite: bool
    seconds: float


@contextmanager
def recording_fit() -> Iterator[dict[str, Any]]:
    """Patch keras.Model.fit to record its arguments and History (what the user trained)."""
    import keras

    seen: dict[str, Any] = {}
    original = keras.Model.fit

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        names = ("x", "y", "batch_size", "epochs")
        kwargs.update(dict(zip(names, args, strict=False)))
        history = original(self, **kwargs)
        seen.update(model=self, history=history, **kwargs)
        return history

    keras.Model.fit = fit  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        keras.Model.fit = original  # type: ignore[method-assign]


def _held_out(seen: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and validation arrays as `fit` split them."""
    x, y = np.asarray(seen["x"]), np.asarray(seen["y"])
    if seen.get("validation_data") is not None:
        xv, yv = seen["validation_data"][:2]
        return x, y, np.asarray(xv), np.asarray(yv)
    split = seen.get("validation_split") or 0.0
    if not split:
        raise ValueError("the program must hold data out (validation_data/validation_split)")
    cut = int(len(x) * (1 - split))  # Keras takes the last fraction, before shuffling
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _labels(y: np.ndarray) -> np.ndarray:
    return y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1)


def _is_regression(y: np.ndarray) -> bool:
    """Real-valued targets: one float column with many distinct values (labels have few)."""
    flat = y.reshape(len(y), -1)
    return y.dtype.kind == "f" and flat.shape[1] == 1 and len(np.unique(flat)) > 20


def held_out_score(model: Any, xv: np.ndarray, yv: np.ndarray) -> tuple[str, float]:
    pred = np.asarray(model.predict(xv, verbose=0), dtype=np.float64)
    if not np.all(np.isfinite(pred)):
        return ("r2" if _is_regression(yv) else "accuracy"), -math.inf
    if _is_regression(yv):
        truth = yv.reshape(-1).astype(np.float64)
        residual = float(np.mean((pred.reshape(-1) - truth) ** 2))
        return "r2", 1.0 - residual / float(np.var(truth))
    guess = (pred[:, 0] > 0.5).astype(int) if pred.shape[-1] == 1 else pred.argmax(-1)
    return "accuracy", float(np.mean(guess == _labels(yv)))


def run_source(source: str, name: str) -> Ran:
    import keras

    from lossdoctor_client import from_keras

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    with recording_fit() as seen:
        exec(compile(source, name, "exec"), {"__name__": "__main__"})
    seconds = time.perf_counter() - start
    model, history = seen["model"], seen["history"]
    x, y, xv, yv = _held_out(seen)
    metric, score = held_out_score(model, xv, yv)
    regression = _is_regression(y)
    body = from_keras(
        model,
        history,
        sample=(x, y),
        batch_size=seen.get("batch_size") or 32,
        epochs=seen.get("epochs") or 1,
    )
    body["probes"] = {"enabled": False}
    losses = body["history"].get("loss") or []
    finite = all(isinstance(v, float) and math.isfinite(v) for v in losses)
    sample = None
    if not regression:
        idx = np.sort(np.random.default_rng(1).permutation(len(x))[:SAMPLE_SIZE])
        sample = (np.asarray(x)[idx], _labels(np.asarray(y)[idx]).astype(np.int64))
    keras.backend.clear_session()
    return Ran(body, sample, metric, score, finite, seconds)


def _twin_learned(metric: str, score: float | None) -> bool:
    floor = TWIN_MIN_R2 if metric == "r2" else TWIN_MIN_ACCURACY
    return score is not None and score >= floor


def hurt(bug: Ran, twin: Ran) -> str | None:
    """None when the bug measurably hurts; otherwise why the pair is dropped."""
    if not twin.finite or not math.isfinite(twin.score):
        return "the fixed twin broke down"
    if not _twin_learned(twin.metric, twin.score):
        return f"the fixed twin did not learn (held-out {twin.metric} {twin.score:.3f})"
    if not bug.finite or not math.isfinite(bug.score):
        return None
    margin = HURT_R2 if bug.metric == "r2" else HURT_ACCURACY
    if twin.score - bug.score >= margin:
        return None
    return f"held-out {bug.metric} {bug.score:.3f} vs twin {twin.score:.3f}"


def _case(program: Program, cause: str, ran: Ran, twin: Ran, samples: Path) -> dict[str, Any]:
    return {
        "case_id": f"{program.name}-{'bug' if cause != 'healthy' else 'fixed'}",
        "cause": cause,
        "variant": program.name,
        "dataset": program.name.split("_")[1],
        "request": ran.request,
        "metric": ran.metric,
        "score": ran.score if math.isfinite(ran.score) else None,
        "twin_score": twin.score if math.isfinite(twin.score) else None,
        "sample": save_sample(*ran.sample, samples) if ran.sample else None,
        "train_seconds": round(ran.seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.programs.run")
    parser.add_argument("--scripts", type=Path, default=SCRIPTS, help="a folder of programs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)
    small_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    paths = sorted(args.scripts.glob("*.py"))
    if args.only:
        paths = [p for p in paths if any(o in p.stem for o in args.only)]
    samples = args.out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    print(f"{len(paths)} programs; rule: {RULE}", flush=True)
    cases: list[dict[str, Any]] = []
    dropped: list[str] = []
    start = time.perf_counter()
    for path in paths:
        program = read_program(path)
        try:
            bug = run_source(program.buggy, path.name)
            twin = run_source(program.fixed, path.name + " (fixed)")
        except Exception as error:  # a program that crashes is a bug report, not a run
            traceback.print_exc(limit=1)
            dropped.append(f"{program.name}: {type(error).__name__}")
            print(f"{program.name}: DROPPED ({type(error).__name__})", flush=True)
            continue
        why = hurt(bug, twin)
        print(
            f"{program.name:40s} {program.cause:26s} {bug.metric} bug {bug.score:7.3f} "
            f"fixed {twin.score:7.3f}  ({bug.seconds + twin.seconds:4.1f}s)"
            + (f"  DROPPED: {why}" if why else ""),
            flush=True,
        )
        if why:
            dropped.append(f"{program.name}: {why}")
            continue
        cases.append(_case(program, program.cause, bug, twin, samples))
        cases.append(_case(program, "healthy", twin, twin, samples))
    if args.only and (args.out / "cases.jsonl.gz").exists():
        from bench.score import load_cases

        redone = {c["variant"] for c in cases} | {d.split(":")[0] for d in dropped}
        kept = [
            c
            for c in load_cases(args.out)
            if c["variant"] not in redone and _twin_learned(c["metric"], c["twin_score"])
        ]
        cases = sorted(kept + cases, key=lambda c: c["case_id"])
    write_cases(cases, args.out)
    used = {c["sample"] for c in cases if c["sample"]}
    for npz in samples.glob("*.npz"):
        if npz.name not in used:
            npz.unlink()
    bugs = sum(c["cause"] != "healthy" for c in cases)
    print(f"\nkept {bugs} bugs + {len(cases) - bugs} fixed twins; dropped {len(dropped)}:")
    for line in dropped:
        print(f"  {line}")
    print(f"total {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
