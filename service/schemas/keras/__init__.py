"""Reading Keras 3 `model.to_json()` as plain JSON: security gate, graph ordering, layer readers."""

from service.schemas.keras.graph import Translation, read, translate

__all__ = ["Translation", "read", "translate"]
