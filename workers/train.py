"""Probe trainings: a fixed number of optimizer steps of a run, and an LR range test.

A probe is `model.fit` on a repeated tf.data stream with `steps_per_epoch=eval_every`, so one
Keras "epoch" is one recording window and the window's loss is Keras' own running mean
(regularization penalties included). The monitor callback is marked async-safe: Keras then runs
its per-batch polls on its callback thread and the training loop never waits for them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service.analysis.architecture import Architecture
from service.schemas.run import RunSpec
from workers.build import (
    SweepSchedule,
    adapt_normalization,
    architecture_of,
    build_model,
    compile_model,
    make_loss,
    make_optimizer,
    sweep_lrs,
)
from workers.data import ProbeData, apply_preprocessing

DEFAULT_BATCH_SIZE = 32
POLL_EVERY_BATCHES = 20
EVAL_CHUNK = 512
JIT_COMPILE = False  # XLA compiles for seconds; probes run for seconds (see the report)


def _grow_gpu_memory() -> None:
    """Let several probes (or workers) share a GPU instead of the first one taking it all."""
    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: the GPU is already initialised; its setting stands.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


_grow_gpu_memory()


@dataclass
class TrainResult:
    """One probe. `curve` holds one mean training loss per window (None once non-finite)."""

    curve: list[float | None]
    steps_done: int
    final_loss: float | None  # mean of the last two windows; None if the loss went non-finite
    val_loss: float | None
    val_accuracy: float | None
    non_finite: bool
    stopped: bool
    seconds: float
    device: str  # "CPU:0", "GPU:0", ...
    weights: list[np.ndarray] | None = None  # only with keep_weights=True


def train(
    run: RunSpec,
    data: ProbeData,
    steps: int,
    seed: int,
    *,
    eval_every: int,
    should_stop: Callable[[], bool] | None = None,
    param_budget: int = 20_000_000,
    initial_weights: list[np.ndarray] | None = None,
    start_step: int = 0,
    keep_weights: bool = False,
    preprocess: bool = True,
    schedule_epoch_steps: int | None = None,
    arch: Architecture | None = None,
) -> TrainResult:
    """Train `steps` optimizer steps of the run on `data`, recording every `eval_every` steps.

    `initial_weights` + `start_step` continue an earlier probe (successive halving): the
    schedule resumes at `start_step`; the optimizer's moments start afresh. `preprocess`
    applies `run.preprocessing.normalization` to the data (so a probe that changes it has an
    effect); pass False for data that is already preprocessed. `should_stop` is called from
    Keras' callback thread every ~20 batches and at every window end.
    `schedule_epoch_steps` overrides how many steps make one of the run's epochs, so a short
    probe can see the whole shape of the run's schedule. `arch`: the model's architecture
    when the caller described it already (one `describe()` per model, not per training).
    """
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps ({steps}) and eval_every ({eval_every}) must be positive")
    started = time.perf_counter()
    model, data, batch, arch = _prepared(run, data, seed, param_budget, preprocess, arch)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    extra = compile_model(
        model,
        run,
        steps_per_epoch=schedule_epoch_steps or user_steps_per_epoch(run, data),
        total_steps=start_step + steps,
        start_step=start_step,
        window_steps=eval_every,
        jit_compile=JIT_COMPILE,
        targets=data.targets,
        arch=arch,
    )
    monitor = _Monitor(should_stop)
    _fit_windows(model, make_dataset(data, batch, seed), steps, eval_every, [monitor, *extra])
    non_finite = monitor.non_finite
    curve = list(monitor.curve)
    if non_finite:  # the windows it did not reach are unknown, not missing
        curve += [None] * (math.ceil(steps / eval_every) - len(curve))
    from_logits = make_loss(run, _units(model), data.targets, arch)[1]
    val_loss, val_accuracy = (None, None) if non_finite else evaluate(model, data, from_logits)
    return TrainResult(
        curve=curve,
        steps_done=int(model.optimizer.iterations.numpy()),
        final_loss=None if non_finite else _tail_mean(monitor.curve),
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        non_finite=non_finite,
        stopped=monitor.stopped,
        seconds=time.perf_counter() - started,
        device=device_of(model),
        weights=model.get_weights() if keep_weights else None,
    )


def _prepared(
    run: RunSpec,
    data: ProbeData,
    seed: int,
    param_budget: int,
    preprocess: bool,
    arch: Architecture | None = None,
) -> tuple[keras.Model, ProbeData, int, Architecture]:
    """(seeded model, preprocessed data, batch size clamped to the training set, the model's
    architecture: described here unless the caller passed it)."""
    # A worker trains thousands of models: drop Keras' global state (layer-name counters,
    # the last probe's model and its traced functions) and collect their cycles now. This does
    # not stop TensorFlow 2.21's own growth of ~7 MB per fitted model (measured with a bare
    # Keras loop; tensorflow/tensorflow#61791): the worker child's recycling bounds that
    # (workers/celery_app.py).
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)  # dropout, augmentation and tf.data draw from it
    if preprocess:
        normalization = run.preprocessing.normalization if run.preprocessing else "unknown"
        data = apply_preprocessing(data, normalization)
    if arch is None:
        arch = architecture_of(run)
    model = build_model(run, data.num_classes, seed, param_budget, arch)
    adapt_normalization(model, data.x_train)
    batch = min(run.batch_size or DEFAULT_BATCH_SIZE, len(data.x_train))
    return model, data, batch, arch


def user_steps_per_epoch(run: RunSpec, data: ProbeData) -> int:
    """Optimizer steps in one epoch of the user's run: the schedule counts in these epochs."""
    examples = (run.data.num_examples if run.data else None) or len(data.x_train)
    return max(1, math.ceil(examples / (run.batch_size or DEFAULT_BATCH_SIZE)))


def make_dataset(data: ProbeData, batch: int, seed: int) -> tf.data.Dataset:
    """An endless, seeded reshuffle of the training split in equal batches (no retracing)."""
    dataset = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
    dataset = dataset.shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
    return dataset.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _fit_windows(
    model: keras.Model,
    dataset: tf.data.Dataset,
    steps: int,
    window: int,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """Full windows as fit() epochs, then a shorter last window if `window` does not divide."""
    full, rest = divmod(steps, window)
    if full:
        model.fit(
            dataset,
            steps_per_epoch=window,
            epochs=full,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )
    if rest and not model.stop_training:
        # Continue the same stream where the full windows left it, not from its start.
        tail = dataset.skip(full * window)
        model.fit(
            tail, steps_per_epoch=rest, epochs=1, callbacks=callbacks, verbose=0, shuffle=False
        )


class _Monitor(keras.callbacks.Callback):
    """Records each window's mean loss; stops on a non-finite loss or when asked to."""

    async_safe = True  # batch polls may run on Keras' callback thread, after the step

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.curve: list[float | None] = []
        self.non_finite = False
        self.stopped = False
        self._steps_seen = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % POLL_EVERY_BATCHES == 0:
            self._check((logs or {}).get("loss"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        done = int(self.model.optimizer.iterations.numpy())
        complete = done - self._steps_seen == self.params.get("steps")
        self._steps_seen = done
        if loss is None or not math.isfinite(loss):
            self.curve.append(None)
        elif complete:  # a window cut short by a stop request is not a comparable point
            self.curve.append(float(loss))
        self._check(loss)

    def _check(self, loss: float | None) -> None:
        if loss is not None and not math.isfinite(loss):
            self.non_finite = True  # a running mean stays non-finite once a batch was
        elif self.should_stop is not None and self.should_stop():
            self.stopped = True
        if self.non_finite or self.stopped:
            self.model.stop_training = True


def _tail_mean(curve: list[float | None]) -> float | None:
    tail = [v for v in curve[-2:] if v is not None]
    return float(np.mean(tail)) if tail else None


def _units(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def evaluate(
    model: keras.Model, data: ProbeData, from_logits: bool
) -> tuple[float | None, float | None]:
    """(loss incl. regularization, accuracy) on the held-out split; accuracy is per label for
    multi-hot rows and None for regression values.

    Eager calls in a few chunks: evaluate() would trace a test function, which costs more
    than the pass itself on a probe-sized validation set.
    """
    n = len(data.x_val)
    if n == 0:
        return None, None
    total_loss, correct = 0.0, 0.0
    binary = _units(model) == 1
    for start in range(0, n, EVAL_CHUNK):
        x = data.x_val[start : start + EVAL_CHUNK]
        y = data.y_val[start : start + EVAL_CHUNK]
        pred = model(x, training=False)
        loss = model.compute_loss(x=x, y=y, y_pred=pred, training=False)
        total_loss += float(loss) * len(x)
        if data.targets == "multi_hot":
            hits = (np.asarray(pred) > (0.0 if from_logits else 0.5)) == (y > 0.5)
            correct += float(np.mean(hits, axis=-1).sum())
        elif data.targets == "classes":
            correct += float(np.sum(_predicted(np.asarray(pred), binary, from_logits) == y))
    loss_value = total_loss / n
    accuracy = None if data.targets == "values" else correct / n
    return (loss_value if math.isfinite(loss_value) else None), accuracy


def _predicted(pred: np.ndarray, binary: bool, from_logits: bool) -> np.ndarray:
    """Class ids: argmax, or for a single unit a threshold (0 for logits, 0.5 for p)."""
    if not binary:
        return np.argmax(pred, axis=-1)
    return (pred.reshape(-1) > (0.0 if from_logits else 0.5)).astype(np.int64)


def device_of(model: keras.Model) -> str:
    """Where the weights live, as "CPU:0"/"GPU:0": Keras places the ops with them."""
    if not model.weights:
        return "CPU:0"
    name = str(model.weights[0].value.device)
    return ":".join(name.split(":")[-2:]) if "device:" in name else name or "CPU:0"


# ---------------------------------------------------------------- LR range test


def lr_range_test(
    run: RunSpec,
    data: ProbeData,
    steps: int = 200,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    seed: int = 0,
    *,
    param_budget: int = 20_000_000,
    preprocess: bool = True,
    smoothing: float = 0.9,
    arch: Architecture | None = None,
) -> dict[str, Any]:
    """Sweep the learning rate exponentially per step with the run's optimizer.

    Returns {"lrs", "losses" (bias-corrected moving average of the batch losses), "raw_losses",
    "suggested_lr", "min_loss_lr", "steepest_lr", "diverged", "seconds"}. suggested_lr is the
    "valley" point (two thirds of the way down the longest descending stretch of the smoothed
    curve), or min_loss_lr / 10 when the curve is too short for a valley.
    """
    started = time.perf_counter()
    model, data, batch, arch = _prepared(run, data, seed, param_budget, preprocess, arch)
    loss, _ = make_loss(run, _units(model), data.targets, arch)
    optimizer = make_optimizer(run, SweepSchedule(lr_min, lr_max, steps))
    model.compile(optimizer=optimizer, loss=loss, jit_compile=JIT_COMPILE)
    recorder = _SweepRecorder(smoothing)
    dataset = make_dataset(data, batch, seed)
    model.fit(
        dataset, steps_per_epoch=steps, epochs=1, callbacks=[recorder], verbose=0, shuffle=False
    )
    lrs = sweep_lrs(lr_min, lr_max, steps)[: len(recorder.smoothed)]
    return {
        "lrs": lrs,
        "losses": recorder.smoothed,
        "raw_losses": recorder.raw,
        **suggest_lr(lrs, recorder.smoothed),
        "diverged": recorder.diverged,
        "seconds": time.perf_counter() - started,
    }


class _SweepRecorder(keras.callbacks.Callback):
    """Per-batch losses from Keras' running mean; stops once the loss blows up.

    Not async-safe on purpose: the records must arrive in order, one per batch.
    """

    def __init__(self, smoothing: float, blow_up: float = 4.0) -> None:
        super().__init__()
        self.beta = smoothing
        self.blow_up = blow_up
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.diverged = False
        self._mean = 0.0
        self._average = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {}).get("loss", math.nan))
        k = len(self.raw)
        # logs["loss"] is the mean over this epoch's batches; undo it to get this batch's loss.
        loss = (k + 1) * mean - k * self._mean
        self._mean = mean
        if not math.isfinite(loss):
            self._stop()
            return
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (k + 1))
        self.raw.append(loss)
        self.smoothed.append(smoothed)
        if k > 0 and smoothed > self.blow_up * min(self.smoothed):
            self._stop()

    def _stop(self) -> None:
        self.diverged = True
        self.model.stop_training = True


def suggest_lr(lrs: list[float], losses: list[float]) -> dict[str, float | None]:
    """{"suggested_lr", "min_loss_lr", "steepest_lr"} from a smoothed LR sweep."""
    if len(losses) < 3:
        return {"suggested_lr": None, "min_loss_lr": None, "steepest_lr": None}
    best = int(np.argmin(losses))
    slopes = np.gradient(np.asarray(losses), np.log(np.asarray(lrs)))
    skip = min(best, len(losses) // 10)  # the first points still carry the smoothing's warm-up
    steepest = skip + int(np.argmin(slopes[skip : best + 1]))
    valley = _valley(losses)
    suggested = float(lrs[valley] if valley is not None else lrs[best] / 10)
    return {
        "suggested_lr": suggested,
        "min_loss_lr": float(lrs[best]),
        "steepest_lr": float(lrs[steepest]),
    }


def _valley(losses: list[float]) -> int | None:
    """fastai's valley: 2/3 of the way down the longest strictly decreasing subsequence."""
    n = len(losses)
    run_len = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run_len[i] < run_len[j] + 1:
                run_len[i] = run_len[j] + 1
        if run_len[end] < run_len[i]:
            end, start = i, max(0, i - run_len[i])
    if run_len[end] < 3:
        return None
    third = (end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))
