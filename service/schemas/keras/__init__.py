"""Reading Keras 3 `model.to_json()` as plain JSON: security gate, graph ordering, layer readers."""

from service.schemas.keras.graph import translate

__all__ = ["translate"]
