"""The model part of a run: a validated layer list, or Keras JSON translated into one."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from service.schemas.keras import read
from service.schemas.layer import Layer

# Validation/serialization context of a request as stored at POST: Keras JSON together with its
# translation, so that what reads it back (the probe worker) never translates it again.
TRANSLATED = {"translated": True}


class ModelSpec(BaseModel):
    """Either `keras_json` (Keras 3 `model.to_json()`) or `input_shape` + `layers`."""

    model_config = ConfigDict(extra="forbid")

    keras_json: str | dict[str, Any] | None = Field(
        default=None,
        description="Keras 3 `model.to_json()`, as a string or parsed. Read as plain JSON "
        "against an allowlist of layer classes; never deserialized by Keras.",
    )
    input_shape: list[Annotated[int, Field(ge=1, le=100_000)] | None] | None = Field(
        default=None,
        min_length=1,
        max_length=4,
        description="Without the batch dim; null for a size the model leaves open "
        "(Input((None, None, 3))).",
    )
    layers: list[Layer] | None = Field(default=None, min_length=1, max_length=500)
    _document: dict[str, Any] | None = PrivateAttr(default=None)  # keras_json, parsed once

    def keras_document(self) -> dict[str, Any] | None:
        """`keras_json` parsed (once per model, at validation when it was translated there);
        None without Keras JSON. Shared: whoever edits it copies what it changes."""
        if self._document is None and self.keras_json is not None:
            raw = self.keras_json
            self._document = json.loads(raw) if isinstance(raw, str) else raw
        return self._document

    @model_serializer(mode="wrap")
    def _as_sent(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # The layer list translated from Keras JSON is derived data: dump what the client sent,
        # unless the dump is the stored request (context TRANSLATED), which keeps both.
        data: dict[str, Any] = handler(self)
        if self.keras_json is not None and not _translated(info.context):
            data.pop("layers", None)
            data.pop("input_shape", None)
        return data

    @model_validator(mode="after")
    def _translate(self, info: ValidationInfo) -> ModelSpec:
        if self.keras_json is not None:
            if self.layers is not None and _translated(info.context):
                return self  # stored at POST with its translation: translated once
            if self.layers is not None:
                raise ValueError("give either keras_json or layers, not both")
            model = read(self.keras_json)
            self.input_shape, self.layers = model.input_shape, model.layers
            self._document = model.document
        elif self.layers is None:
            raise ValueError("give keras_json, or input_shape and layers")
        return self


def _translated(context: Any) -> bool:
    return isinstance(context, dict) and context.get("translated") is True
