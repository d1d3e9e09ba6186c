"""TensorFlow set up the way every benchmark here trains: small and shared machine."""

from __future__ import annotations

import contextlib
import os


def small_tensorflow(deterministic: bool = False) -> None:
    """At most two threads (the machine is small and shared); deterministic kernels on request.

    Thread counts can only be set before TensorFlow's first op: when a benchmark runs inside a
    process that already trained (the test suite), it keeps that process' settings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # "cannot be modified after initialization"
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
