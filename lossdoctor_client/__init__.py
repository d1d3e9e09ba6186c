"""Python client of the lossdoctor API: `LossDoctor` (sync), `AsyncLossDoctor`, `from_keras`,
and `LossDoctorCallback` (Keras; imported lazily so this package never needs TensorFlow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lossdoctor_client.client import (
    DEFAULT_URL,
    AsyncLossDoctor,
    Dataset,
    LossDoctor,
    LossDoctorError,
    LossDoctorUnavailable,
    apply_fix,
    default_url,
    from_keras,
    run_from_keras,
)

if TYPE_CHECKING:
    from lossdoctor_client.keras_callback import LossDoctorCallback

__all__ = [
    "DEFAULT_URL",
    "AsyncLossDoctor",
    "Dataset",
    "LossDoctor",
    "LossDoctorCallback",
    "LossDoctorError",
    "LossDoctorUnavailable",
    "apply_fix",
    "default_url",
    "from_keras",
    "run_from_keras",
]


def __getattr__(name: str) -> Any:
    if name == "LossDoctorCallback":  # imports Keras: only when asked for
        from lossdoctor_client.keras_callback import LossDoctorCallback

        return LossDoctorCallback
    raise AttributeError(f"module 'lossdoctor_client' has no attribute {name!r}")
