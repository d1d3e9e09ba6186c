"""Worked examples for the OpenAPI docs (and the README's curl commands)."""

from __future__ import annotations

from typing import Any

HISTORY_ONLY: dict[str, Any] = {"history": {"loss": [2.31, 2.30, 2.30, 2.30, 2.31, 2.30]}}

FULL: dict[str, Any] = {
    "run": {
        "model": {
            "input_shape": [32, 32, 3],
            "layers": [
                {
                    "type": "conv2d",
                    "filters": 32,
                    "kernel_size": 3,
                    "activation": "relu",
                    "kernel_initializer": {"name": "random_normal", "stddev": 1.0},
                },
                {"type": "max_pooling2d", "pool_size": 2},
                {
                    "type": "conv2d",
                    "filters": 64,
                    "kernel_size": 3,
                    "activation": "relu",
                    "kernel_initializer": {"name": "random_normal", "stddev": 1.0},
                },
                {"type": "max_pooling2d", "pool_size": 2},
                {"type": "flatten"},
                {
                    "type": "dense",
                    "units": 128,
                    "activation": "relu",
                    "kernel_initializer": {"name": "random_normal", "stddev": 1.0},
                },
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
        },
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        "lr_schedule": {"name": "constant"},
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 32,
        "epochs": 10,
        "preprocessing": {"normalization": "rescale"},
        "data": {"num_classes": 10, "num_examples": 50000, "input_min": 0, "input_max": 1},
    },
    "history": {
        "loss": [14.2, 2.31, 2.303, 2.303, 2.302, 2.303, 2.303, 2.302, 2.303, 2.303],
        "val_loss": [2.305, 2.303, 2.303, 2.303, 2.303, 2.303, 2.303, 2.303, 2.303, 2.303],
        "accuracy": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
    },
    "probes": {"enabled": False},
}

DIAGNOSIS_EXAMPLES: dict[str, Any] = {
    "history_only": {"summary": "Only a loss curve", "value": HISTORY_ONLY},
    "full_run": {"summary": "Spec + history: unscaled random-normal initialization", "value": FULL},
}
