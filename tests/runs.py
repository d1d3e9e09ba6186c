"""Builders for requests in tests: a small CNN spec and curves of known shapes."""

from __future__ import annotations

import math
from typing import Any

LN10 = math.log(10)


def cnn(**overrides: Any) -> dict[str, Any]:
    """The seed article's two-conv CNN on 28×28×1 inputs, as a layer list."""
    init = overrides.pop("init", "he_normal")
    l2 = overrides.pop("l2", 0.0)
    reg = {"l2": l2} if l2 else None
    first_kernel = overrides.pop("first_kernel", 3)
    hidden = overrides.pop("hidden", 128)
    filters = overrides.pop("filters", 32)
    out_act = overrides.pop("out_activation", "softmax")
    layers = [
        {
            "type": "conv2d",
            "filters": filters,
            "kernel_size": first_kernel,
            "activation": "relu",
            "kernel_initializer": init,
            "kernel_regularizer": reg,
        },
        {"type": "max_pooling2d", "pool_size": 2},
        {
            "type": "conv2d",
            "filters": 2 * filters,
            "kernel_size": 3,
            "activation": "relu",
            "kernel_initializer": init,
            "kernel_regularizer": reg,
        },
        {"type": "max_pooling2d", "pool_size": 2},
        {"type": "flatten"},
        {
            "type": "dense",
            "units": hidden,
            "activation": "relu",
            "kernel_initializer": init,
            "kernel_regularizer": reg,
        },
        {"type": "dense", "units": 10, "activation": out_act, "kernel_regularizer": reg},
    ]
    layers = [{k: v for k, v in layer.items() if v is not None} for layer in layers]
    assert not overrides, overrides
    return {"input_shape": [28, 28, 1], "layers": layers}


def run(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": cnn(),
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "lr_schedule": {"name": "constant"},
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 64,
        "epochs": 20,
        "preprocessing": {"normalization": "rescale"},
        "data": {"num_classes": 10, "num_examples": 3000, "input_min": 0, "input_max": 1},
    }
    spec.update(overrides)
    return spec


def healthy_curve(n: int = 20, floor: float = 0.15) -> dict[str, list[float]]:
    loss = [floor + (1.2 - floor) * math.exp(-0.35 * i) for i in range(n)]
    val = [x + 0.05 for x in loss]
    return {"loss": loss, "val_loss": val}


def stuck_curve(n: int = 20, first: float = LN10) -> dict[str, list[float]]:
    loss = [first] + [LN10 + 0.002 * ((-1) ** i) for i in range(n - 1)]
    return {"loss": loss, "val_loss": [LN10] * n, "accuracy": [0.1] * n}


def body(
    run_spec: dict[str, Any] | None = None, history: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"history": history or healthy_curve()}
    if run_spec is not None:
        out["run"] = run_spec
    return out
