"""Keras objects from a RunConfig: the model, the optimizer, the loss and the LR schedule.

Models are built the way users write them (Sequential stacks, one functional residual net), so
that `model.to_json()` in the benchmark looks like what real clients send.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from bench.faults.recipes import RunConfig


def _initializer(cfg: RunConfig) -> Any:
    """Kernel initializer: Keras' default (glorot_uniform) unless the recipe overrides it."""
    if cfg.init is None:
        return "glorot_uniform"
    if cfg.init == "zeros":
        return keras.initializers.Zeros()
    kind, _, stddev = cfg.init.partition(":")
    if kind != "normal":
        raise ValueError(f"unknown init {cfg.init!r}")
    return keras.initializers.RandomNormal(stddev=float(stddev))


def _weights(cfg: RunConfig) -> dict[str, Any]:
    """Keyword arguments shared by every Conv2D / Dense layer."""
    return {
        "kernel_initializer": _initializer(cfg),
        "kernel_regularizer": keras.regularizers.L2(cfg.l2) if cfg.l2 else None,
    }


def _conv(cfg: RunConfig, filters: int, first: bool = False, **kwargs: Any) -> layers.Conv2D:
    if first:
        kwargs.update(
            kernel_size=cfg.first_kernel, strides=cfg.first_stride, padding=cfg.first_padding
        )
    else:
        kwargs.setdefault("kernel_size", 3)
        kwargs.setdefault("padding", "same")
    kwargs.setdefault("activation", cfg.activation)
    return layers.Conv2D(filters, **kwargs, **_weights(cfg))


def _head(cfg: RunConfig, num_classes: int) -> layers.Dense:
    return layers.Dense(num_classes, activation=cfg.output, **_weights(cfg))


def _dropout(cfg: RunConfig) -> list[layers.Layer]:
    return [layers.Dropout(cfg.dropout)] if cfg.dropout else []


def _pool_if_room(pool: Callable[..., layers.Layer]) -> Callable[[tuple[Any, ...]], list[Any]]:
    """A 2x2 pooling layer, skipped where the feature map is already smaller than 4x4."""
    return lambda shape: [pool(pool_size=2)] if min(shape[1], shape[2]) >= 4 else []


def _sequential(input_shape: tuple[int, int, int], parts: list[Any]) -> keras.Model:
    """A Sequential model from layers, or callables that give layers for the current shape."""
    stack: list[layers.Layer] = []
    shape: tuple[Any, ...] = (None, *input_shape)
    for part in parts:
        for layer in [part] if isinstance(part, layers.Layer) else part(shape):
            shape = layer.compute_output_shape(shape)
            stack.append(layer)
    return keras.Sequential([keras.Input(input_shape), *stack])


def small_cnn(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """conv -> max-pool -> conv -> max-pool -> dense -> softmax: the everyday tutorial CNN."""
    dense_tail: list[Any] = [
        layers.Dense(cfg.dense_units, activation=cfg.activation, **_weights(cfg))
    ]
    if cfg.dense_batchnorm:  # dense -> BN -> activation, as BatchNorm is usually placed
        dense_tail = [
            layers.Dense(cfg.dense_units, **_weights(cfg)),
            layers.BatchNormalization(),
            layers.Activation(cfg.activation),
        ]
    return _sequential(
        input_shape,
        [
            _conv(cfg, cfg.width, first=True),
            _pool_if_room(layers.MaxPooling2D),
            *_dropout(cfg),
            _conv(cfg, 2 * cfg.width),
            _pool_if_room(layers.MaxPooling2D),
            *_dropout(cfg),
            layers.Flatten(),
            *dense_tail,
            *_dropout(cfg),
            _head(cfg, num_classes),
        ],
    )


def bn_cnn(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """conv-BN-ReLU blocks with max, average and global-average pooling."""

    def block(filters: int, first: bool = False) -> list[layers.Layer]:
        return [
            _conv(cfg, filters, first=first, activation=None, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation(cfg.activation),
        ]

    return _sequential(
        input_shape,
        [
            *block(cfg.width, first=True),
            _pool_if_room(layers.MaxPooling2D),
            *block(2 * cfg.width),
            _pool_if_room(layers.AveragePooling2D),
            *block(4 * cfg.width),
            layers.GlobalAveragePooling2D(),
            *_dropout(cfg),
            _head(cfg, num_classes),
        ],
    )


def deep_cnn(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Six convs (two per stage), average pooling between stages, global max pooling."""
    w = cfg.width
    return _sequential(
        input_shape,
        [
            _conv(cfg, w, first=True),
            _conv(cfg, w),
            _pool_if_room(layers.AveragePooling2D),
            _conv(cfg, 2 * w),
            _conv(cfg, 2 * w),
            _pool_if_room(layers.AveragePooling2D),
            _conv(cfg, 4 * w),
            _conv(cfg, 4 * w),
            layers.GlobalMaxPooling2D(),
            *_dropout(cfg),
            layers.Dense(cfg.dense_units, activation=cfg.activation, **_weights(cfg)),
            _head(cfg, num_classes),
        ],
    )


def residual(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """A functional net with two identity-shortcut residual blocks (Add)."""

    def block(x: Any, filters: int) -> Any:
        y = _conv(cfg, filters, activation=None, use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation(cfg.activation)(y)
        y = _conv(cfg, filters, activation=None, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        return layers.Activation(cfg.activation)(layers.Add()([x, y]))

    inputs = keras.Input(input_shape)
    x = _conv(cfg, cfg.width, first=True)(inputs)
    x = block(x, cfg.width)
    x = layers.MaxPooling2D()(x)
    x = _conv(cfg, 2 * cfg.width)(x)
    x = block(x, 2 * cfg.width)
    x = layers.GlobalAveragePooling2D()(x)
    for layer in _dropout(cfg):
        x = layer(x)
    return keras.Model(inputs, _head(cfg, num_classes)(x), name="residual")


def tiny_linear(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Almost a linear classifier: one linear 3x3 filter, 4x4 average pooling, softmax."""
    return _sequential(
        input_shape,
        [
            _conv(cfg, 1, first=True, activation="linear"),
            layers.AveragePooling2D(4),
            layers.Flatten(),
            _head(cfg, num_classes),
        ],
    )


ARCHITECTURES: dict[str, Callable[[RunConfig, tuple[int, int, int], int], keras.Model]] = {
    "small_cnn": small_cnn,
    "bn_cnn": bn_cnn,
    "deep_cnn": deep_cnn,
    "residual": residual,
    "tiny_linear": tiny_linear,
}


def build_model(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    return ARCHITECTURES[cfg.arch](cfg, input_shape, num_classes)


def build_optimizer(cfg: RunConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer; an "exponential" schedule is a Keras schedule object inside it."""
    lr: Any = cfg.lr
    if cfg.schedule == "exponential":
        # decay by 0.8 per epoch, expressed in optimizer steps as Keras counts them
        lr = keras.optimizers.schedules.ExponentialDecay(cfg.lr, steps_per_epoch, 0.8)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum)
    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
        "nadam": keras.optimizers.Nadam,
        "adamax": keras.optimizers.Adamax,
    }
    return classes[cfg.optimizer](lr)


def build_loss(cfg: RunConfig) -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=cfg.from_logits)


def epoch_lr(cfg: RunConfig, epoch: int) -> float:
    """Learning rate of a 0-based epoch for the schedules applied by a callback."""
    if cfg.schedule == "step_decay":
        return cfg.lr * 0.5 ** (epoch // cfg.decay_every)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    return cfg.lr


class LrLogger(keras.callbacks.Callback):
    """Writes the optimizer's current learning rate into the epoch logs (hence the History).

    Keras' LearningRateScheduler does this for callback schedules; a schedule object inside the
    optimizer has nothing that records it.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


def schedule_callbacks(cfg: RunConfig) -> list[keras.callbacks.Callback]:
    if cfg.schedule in ("step_decay", "cosine"):
        return [keras.callbacks.LearningRateScheduler(lambda epoch: epoch_lr(cfg, epoch))]
    if cfg.schedule == "exponential":
        return [LrLogger()]
    return []


def schedule_spec(cfg: RunConfig, steps_per_epoch: int) -> dict[str, Any]:
    """`run.lr_schedule` of the request, in the service's vocabulary."""
    if cfg.schedule == "step_decay":
        return {
            "name": "step_decay",
            "initial_lr": cfg.lr,
            "drop": 0.5,
            "epochs_drop": cfg.decay_every,
        }
    if cfg.schedule == "cosine":
        return {
            "name": "cosine",
            "initial_lr": cfg.lr,
            "decay_steps": cfg.epochs * steps_per_epoch,
            "alpha": 0.0,
        }
    if cfg.schedule == "exponential":
        return {
            "name": "exponential",
            "initial_lr": cfg.lr,
            "decay_steps": steps_per_epoch,
            "decay_rate": 0.8,
        }
    return {"name": "constant"}
