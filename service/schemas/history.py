"""Keras `History.history`: per-epoch series, where a non-finite value is evidence, not an error."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

_NON_FINITE = {
    "nan": math.nan,
    "infinity": math.inf,
    "inf": math.inf,
    "-infinity": -math.inf,
    "-inf": -math.inf,
    "+infinity": math.inf,
    "+inf": math.inf,
}


def _series(values: Any) -> list[float]:
    """Numbers as floats; null, "NaN", "Infinity" and bare NaN become non-finite floats."""
    if not isinstance(values, list):
        raise ValueError("must be a list of numbers")
    out: list[float] = []
    append = out.append
    for v in values:
        # bool is an int subclass; a True in a loss curve is a client bug, not a number.
        if type(v) is float or (type(v) is int):
            append(float(v))
        elif v is None:
            append(math.nan)
        elif isinstance(v, str) and v.strip().lower() in _NON_FINITE:
            append(_NON_FINITE[v.strip().lower()])
        else:
            raise ValueError(f"{v!r} is not a number, null, 'NaN' or 'Infinity'")
    return out


Series = Annotated[list[float], BeforeValidator(_series)]


def _is_vector_series(values: Any) -> bool:
    return isinstance(values, list) and any(isinstance(v, list) for v in values)


class History(BaseModel):
    """Per-epoch values keyed like Keras' `History.history`. Extra metric keys are kept."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Series] = Field(init=False)  # type: ignore[assignment]

    loss: Series = Field(min_length=1, examples=[[2.30, 2.29, 2.30]])
    val_loss: Series | None = None
    accuracy: Series | None = None
    val_accuracy: Series | None = None
    learning_rate: Series | None = None
    step_loss: Series | None = Field(default=None, description="Per-step training losses.")
    grad_norm: Series | None = Field(default=None, description="Global gradient norm per epoch.")
    # Keys whose epochs were vectors (a per-class metric such as F1Score(average=None)).
    _vector_keys: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _scalar_series_only(cls, data: Any, handler: ModelWrapValidatorHandler[History]) -> History:
        # A per-class metric logs one vector per epoch; the curve rules read scalars, so such a
        # series is set aside (and named in the report's notes) rather than sinking the body.
        vectors = []
        if isinstance(data, dict):
            vectors = [k for k, v in data.items() if k != "loss" and _is_vector_series(v)]
            data = {k: v for k, v in data.items() if k not in vectors}
        history = handler(data)
        history._vector_keys = vectors
        return history

    @property
    def vector_keys(self) -> list[str]:
        """Keys set aside because each epoch held a vector, not a number."""
        return list(self._vector_keys)

    def series(self, key: str) -> list[float] | None:
        """A series by Keras key, including extra metrics ("acc", "sparse_categorical_accuracy")."""
        value = getattr(self, key, None)
        if value is None and self.model_extra:
            value = self.model_extra.get(key)
        return value

    def extended(self, more: History) -> History:
        """This history with `more` epochs appended, key by key (new keys start there)."""
        mine = self.model_dump(exclude_none=True)
        for key, values in more.model_dump(exclude_none=True).items():
            mine[key] = [*mine.get(key, []), *values]
        return History.model_validate(mine)

    def total_points(self) -> int:
        fields = [getattr(self, name) for name in type(self).model_fields]
        extra = list((self.model_extra or {}).values())
        return sum(len(v) for v in fields + extra if isinstance(v, list))
