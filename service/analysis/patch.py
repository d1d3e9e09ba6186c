"""RFC 7396 JSON merge patch: how every fix and probe describes its change to a run."""

from __future__ import annotations

import copy
from typing import Any


def apply(target: Any, patch: Any) -> Any:
    """The document `target` with `patch` merged in (neither argument is modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply(out.get(key), value)
    return out


def apply_to_run(run: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`change` merged into a run stored with its Keras JSON's translation: a change that
    replaces the Keras JSON (a fix of its layers) drops the stored translation, so the edited
    JSON is what is read again, not the layers it replaced."""
    out = apply(run, change)
    model = change.get("model")
    if isinstance(model, dict) and "keras_json" in model and isinstance(out.get("model"), dict):
        out["model"].pop("layers", None)
        out["model"].pop("input_shape", None)
    return out


def merge(*patches: dict[str, Any]) -> dict[str, Any]:
    """One patch doing what the given patches do in order (later ones win on conflicts)."""
    out: dict[str, Any] = {}
    for patch in patches:
        out = _compose(out, patch)
    return out


def _compose(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(first)
    for key, value in second.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _compose(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
