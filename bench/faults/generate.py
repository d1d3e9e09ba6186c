"""Generate the labelled fault benchmark: real Keras trainings, one injected fault each.

For every fault recipe the faulty run and its healthy twin (same data, architecture and seed,
fault removed) are trained; the faulty run is kept only when the fault measurably hurts (see
`hurt_check`). Healthy recipes are kept when they train well (see `health_check`). Each kept
run is written as the request body a user would send to the service, with the truth.

    python -m bench.faults.generate [--out bench/faults/data] [--seed 0] [--only CAUSE ...]
                                    [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import sys
import time
import traceback
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.faults import data_sources
from bench.faults.recipes import (
    ALL_RECIPES,
    CAUSES,
    FULL_BATCH,
    HEALTHY,
    Recipe,
    RunConfig,
)
from bench.tf_setup import small_tensorflow

DEFAULT_OUT = Path(__file__).parent / "data"
SAMPLE_SIZE = 512
# Rule thresholds, in units of ln C (the loss of a uniform guess over C classes).
HURT_ABS = 0.10  # a fault hurts if its final loss is this much worse than the twin's ...
HURT_MIN = 0.05  # ... or at least this much worse and
HURT_RATIO = 1.5  # this many times the twin's final loss.
OVERFIT_RISE = 0.05  # overfitting: the faulty val loss ends this far above its minimum
HEALTHY_MAX_LOSS = 0.25  # healthy: final training loss at most this
HEALTHY_MAX_RISE = 0.05  # healthy: final val loss at most this above its minimum
RULE = (
    f"fault kept if: any non-finite training loss, or final loss - twin's >= {HURT_ABS} ln C, "
    f"or (>= {HURT_MIN} ln C and >= {HURT_RATIO}x the twin's). Overfitting: final val loss - "
    f"twin's >= {HURT_ABS} ln C and the faulty val loss ends >= {OVERFIT_RISE} ln C above its "
    f"minimum. Healthy kept if finite, final loss <= {HEALTHY_MAX_LOSS} ln C and final val loss "
    f"<= min val loss + {HEALTHY_MAX_RISE} ln C."
)


@dataclass
class Fed:
    """The arrays given to `fit`, and what the request says about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    dataset: str


@dataclass
class Result:
    """One finished training."""

    request: dict[str, Any]
    sample: tuple[np.ndarray, np.ndarray]
    seconds: float

    @property
    def history(self) -> dict[str, list[float | None]]:
        return self.request["history"]

    def final(self, key: str) -> float | None:
        values = self.history.get(key) or [None]
        return values[-1]


# ---- data --------------------------------------------------------------------------------------
def _normalize(x: np.ndarray, cfg: RunConfig, raw_max: int, mean: float, std: float) -> np.ndarray:
    """Scale raw pixels as the recipe says; "none" keeps the uint8 pixels a user would load."""
    if cfg.normalization == "none":
        out = x
    elif cfg.normalization == "rescale":
        out = x.astype(np.float32) / np.float32(raw_max)
    elif cfg.normalization == "standardize":
        out = ((x.astype(np.float32) / raw_max - mean) / std).astype(np.float32)
    else:
        raise ValueError(f"unknown normalization {cfg.normalization!r}")
    if cfg.input_offset:
        out = out.astype(np.float32) + np.float32(cfg.input_offset)
    return out[..., None]  # channel dimension


def prepare(cfg: RunConfig, seed: int) -> Fed:
    split = data_sources.load(cfg.dataset, cfg.n_train, cfg.image, seed)
    scaled = split.x_train.astype(np.float32) / split.raw_max
    mean, std = float(scaled.mean()), float(scaled.std())  # training-set statistics only
    y_train = split.y_train
    if cfg.label_noise:
        y_train = data_sources.flip_labels(y_train, cfg.label_noise, split.num_classes, seed)
    return Fed(
        _normalize(split.x_train, cfg, split.raw_max, mean, std),
        y_train,
        _normalize(split.x_val, cfg, split.raw_max, mean, std),
        split.y_val,
        split.num_classes,
        split.name,
    )


def draw_sample(fed: Fed, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The upload a user would attach: SAMPLE_SIZE training examples, as fed, labels as used."""
    n = len(fed.x_train)
    idx = np.sort(np.random.default_rng(seed + 1).choice(n, min(SAMPLE_SIZE, n), replace=False))
    return fed.x_train[idx], fed.y_train[idx]


# ---- training ----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fit_inputs(cfg: RunConfig, fed: Fed, batch_size: int, seed: int) -> dict[str, Any]:
    if not cfg.augment:
        return {"x": fed.x_train, "y": fed.y_train, "batch_size": batch_size}
    from bench.faults.augment import ShiftFlipBatches

    return {"x": ShiftFlipBatches(fed.x_train, fed.y_train, batch_size, seed)}


def train(cfg: RunConfig, seed: int) -> Result:
    """Trains one config from a fixed seed and returns the request a user would send."""
    import keras

    from bench.faults import builders

    fed = prepare(cfg, seed)
    n = len(fed.x_train)
    batch_size = n if cfg.batch_size == FULL_BATCH else cfg.batch_size
    steps = math.ceil(n / batch_size)
    keras.utils.set_random_seed(seed)
    model = builders.build_model(cfg, fed.x_train.shape[1:], fed.num_classes)
    optimizer = builders.build_optimizer(cfg, steps)
    optimizer_config = optimizer.get_config()  # before fit: callbacks rewrite the rate later
    model.compile(optimizer=optimizer, loss=builders.build_loss(cfg), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(
        **_fit_inputs(cfg, fed, batch_size, seed),
        epochs=cfg.epochs,
        verbose=0,
        validation_data=(fed.x_val, fed.y_val),
        callbacks=builders.schedule_callbacks(cfg),
    )
    seconds = time.perf_counter() - start
    request = {
        "run": {
            **run_spec(cfg, model.to_json(), optimizer_config, steps, batch_size),
            "data": {
                "dataset_id": None,
                "num_classes": fed.num_classes,
                "num_examples": n,
                "input_min": float(fed.x_train.min()),
                "input_max": float(fed.x_train.max()),
            },
        },
        "history": _plain({k: [float(v) for v in vs] for k, vs in history.history.items()}),
        "probes": {"enabled": False},
    }
    keras.backend.clear_session()  # free the graph before the next run
    return Result(request, draw_sample(fed, seed), seconds)


def _augmentation_spec(cfg: RunConfig) -> dict[str, Any] | None:
    if not cfg.augment:
        return None
    from bench.faults.augment import SHIFT

    return {"width_shift_range": SHIFT, "height_shift_range": SHIFT, "horizontal_flip": True}


# ---- keep / drop rules -------------------------------------------------------------------------
def _finite(values: list[float | None] | None) -> bool:
    return bool(values) and all(v is not None for v in values or [])


def hurt_check(cause: str, faulty: Result, twin: Result, num_classes: int) -> str | None:
    """None when the fault measurably hurts against its twin; otherwise why it is dropped."""
    chance = math.log(num_classes)
    if not _finite(twin.history.get("loss")):
        return "twin not finite"
    if cause == "overfitting":
        val, twin_val = faulty.history.get("val_loss"), twin.history.get("val_loss")
        if not _finite(val) or not _finite(twin_val):
            return "val loss not finite"
        assert val is not None and twin_val is not None
        vals = [v for v in val if v is not None]  # _finite checked: none are missing
        twin_vals = [v for v in twin_val if v is not None]
        rise = (vals[-1] - min(vals)) / chance
        delta = (vals[-1] - twin_vals[-1]) / chance
        if delta < HURT_ABS:
            return f"val loss only {delta:+.3f} ln C vs twin"
        if rise < OVERFIT_RISE:
            return f"val loss not rising ({rise:.3f} ln C above min)"
        return None
    if not _finite(faulty.history.get("loss")):
        return None  # diverged: the clearest harm there is
    loss, twin_loss = faulty.final("loss"), twin.final("loss")
    assert loss is not None and twin_loss is not None
    delta = (loss - twin_loss) / chance
    if delta >= HURT_ABS or (delta >= HURT_MIN and loss >= HURT_RATIO * twin_loss):
        return None
    return f"loss only {delta:+.3f} ln C vs twin ({loss:.3f} vs {twin_loss:.3f})"


def health_check(result: Result, num_classes: int) -> str | None:
    """None when a healthy-labelled run really trained well; otherwise why it is dropped."""
    chance = math.log(num_classes)
    loss, val = result.history.get("loss"), result.history.get("val_loss")
    if not _finite(loss) or not _finite(val):
        return "not finite"
    assert loss is not None and val is not None
    if loss[-1] is not None and loss[-1] > HEALTHY_MAX_LOSS * chance:
        return f"final loss {loss[-1] / chance:.3f} ln C"
    vals = [v for v in val if v is not None]
    rise = (vals[-1] - min(vals)) / chance
    if rise > HEALTHY_MAX_RISE:
        return f"val loss rises {rise:.3f} ln C"
    return None


# ---- output ------------------------------------------------------------------------------------
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: same content, same bytes


def save_sample(x: np.ndarray, y: np.ndarray, folder: Path) -> str:
    """Writes an npz named by its content hash (identical samples are stored once)."""
    digest = hashlib.sha256()
    for array in (x, y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    name = f"{digest.hexdigest()[:16]}.npz"
    path = folder / name
    if not path.exists():
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for key, array in (("x", x), ("y", y)):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array))
                archive.writestr(
                    zipfile.ZipInfo(f"{key}.npy", _EPOCH),
                    buffer.getvalue(),
                    compress_type=zipfile.ZIP_DEFLATED,
                    compresslevel=9,
                )
    return name


def _losses(result: Result) -> dict[str, float | None]:
    return {"final_loss": result.final("loss"), "final_val_loss": result.final("val_loss")}


def write_cases(cases: list[dict[str, Any]], out: Path) -> None:
    with (
        (out / "cases.jsonl.gz").open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as handle,
    ):
        for case in cases:
            handle.write((json.dumps(case, separators=(",", ":")) + "\n").encode())


def _prune_samples(cases: list[dict[str, Any]], folder: Path) -> None:
    """Removes npz files no kept case refers to (left over from earlier generations)."""
    used = {case["sample"] for case in cases}
    for path in folder.glob("*.npz"):
        if path.name not in used:
            path.unlink()


# ---- driver ------------------------------------------------------------------------------------
def select(only: list[str] | None, quick: bool) -> list[Recipe]:
    recipes = [r for r in ALL_RECIPES if not only or r.cause in only]
    if not quick:
        return recipes
    # One variant per cause and two healthy runs, with a quarter of the epochs.
    chosen: list[Recipe] = []
    seen: Counter[str] = Counter()
    for recipe in recipes:
        if seen[recipe.cause] < (2 if recipe.cause == HEALTHY else 1):
            seen[recipe.cause] += 1
            chosen.append(_shorten(recipe))
    return chosen


def _shorten(recipe: Recipe) -> Recipe:
    base = recipe.base.with_(epochs=max(2, recipe.base.epochs // 4))
    fault = dict(recipe.fault)
    if "epochs" in fault:
        fault["epochs"] = max(2, fault["epochs"] // 4)
    return Recipe(recipe.cause, recipe.variant, base, fault)


def run_spec(
    cfg: RunConfig, keras_json: str, optimizer_config: dict[str, Any], steps: int, batch_size: int
) -> dict[str, Any]:
    """The run fields a user would send for this configuration (all but `data`)."""
    from bench.faults import builders  # imports Keras

    return {
        "model": {"keras_json": keras_json},
        "optimizer": _plain(optimizer_config),
        "lr_schedule": builders.schedule_spec(cfg, steps),
        "loss": (
            {"name": "sparse_categorical_crossentropy", "from_logits": True}
            if cfg.from_logits
            else "sparse_categorical_crossentropy"
        ),
        "batch_size": batch_size,
        "epochs": cfg.epochs,
        "preprocessing": {
            "normalization": cfg.normalization,
            "augmentation": _augmentation_spec(cfg),
        },
    }


def _setup_tensorflow() -> None:
    """Deterministic kernels; at most two threads (the machine is small and shared)."""
    small_tensorflow(deterministic=True)


def run_all(
    recipes: list[Recipe], seed: int, out: Path
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    samples = out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    cache: dict[RunConfig, Result] = {}

    def trained(cfg: RunConfig, label: str) -> Result:
        if cfg not in cache:
            cache[cfg] = train(cfg, seed)
            print(
                f"    trained {label:6s} in {cache[cfg].seconds:5.1f}s  "
                f"final loss {_fmt(cache[cfg].final('loss'))}  "
                f"val {_fmt(cache[cfg].final('val_loss'))}",
                flush=True,
            )
        return cache[cfg]

    cases: list[dict[str, Any]] = []
    dropped: dict[str, list[str]] = defaultdict(list)
    numbers: Counter[str] = Counter()
    for i, recipe in enumerate(recipes, 1):
        numbers[recipe.cause] += 1
        case_id = f"{recipe.cause}-{numbers[recipe.cause]:02d}"
        print(f"[{i}/{len(recipes)}] {case_id}: {recipe.variant}", flush=True)
        try:
            twin = trained(recipe.twin, "twin" if recipe.cause != HEALTHY else "run")
            run = twin if recipe.cause == HEALTHY else trained(recipe.faulty, "faulty")
        except Exception as error:  # one broken recipe must not lose a 30-minute generation
            traceback.print_exc()
            print(f"    DROPPED: error {error!r}", flush=True)
            dropped[recipe.cause].append(f"{case_id}: error {type(error).__name__}")
            continue
        classes = run.request["run"]["data"]["num_classes"]
        why = (
            health_check(run, classes)
            if recipe.cause == HEALTHY
            else hurt_check(recipe.cause, run, twin, classes)
        )
        if why is not None:
            print(f"    DROPPED: {why}", flush=True)
            dropped[recipe.cause].append(f"{case_id}: {why}")
            continue
        cases.append(
            {
                "case_id": case_id,
                "cause": recipe.cause,
                "variant": recipe.variant,
                "dataset": recipe.faulty.dataset,
                "request": run.request,
                "twin": _losses(twin),  # for a healthy run: the run itself
                "faulty": _losses(run),
                "sample": save_sample(*run.sample, samples),
                "train_seconds": round(run.seconds, 2),
            }
        )
    return cases, dropped


def _fmt(value: float | None) -> str:
    return "  nan" if value is None else f"{value:.3f}"


def print_table(
    cases: list[dict[str, Any]], dropped: dict[str, list[str]], causes: list[str]
) -> None:
    kept = Counter(case["cause"] for case in cases)
    print(f"\n{'cause':28s} {'kept':>4s} {'dropped':>7s}")
    for cause in causes:
        print(f"{cause:28s} {kept[cause]:4d} {len(dropped.get(cause, [])):7d}")
        for reason in dropped.get(cause, []):
            print(f"    dropped {reason}")
    total = sum(kept.values())
    share = kept[HEALTHY] / total if total else 0.0
    print(
        f"{'total':28s} {total:4d} {sum(len(v) for v in dropped.values()):7d}"
        f"   (healthy share {share:.0%})"
    )


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=[*CAUSES, HEALTHY], metavar="CAUSE")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one variant per cause + 2 healthy, a quarter of the epochs",
    )
    args = parser.parse_args(argv)

    _setup_tensorflow()
    recipes = select(args.only, args.quick)
    print(
        f"{len(recipes)} recipes, seed {args.seed}, writing to {args.out}\nrule: {RULE}\n",
        flush=True,
    )
    start = time.perf_counter()
    cases, dropped = run_all(recipes, args.seed, args.out)
    write_cases(cases, args.out)
    _prune_samples(cases, args.out / "samples")
    causes = [c for c in (*CAUSES, HEALTHY) if any(r.cause == c for r in recipes)]
    print_table(cases, dropped, causes)
    print(
        f"\ntotal time {time.perf_counter() - start:.0f}s; output "
        f"{_folder_size(args.out) / 1e6:.2f} MB in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
