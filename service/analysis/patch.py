"""RFC 7396 JSON merge patch: how every fix and probe describes its change to a run."""

from __future__ import annotations

import copy
from typing import Any

from service.schemas.model import TRANSLATED
from service.schemas.run import RunSpec


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


def patched(run: RunSpec, change: dict[str, Any]) -> RunSpec:
    """`run` with the merge patch `change`, validated. A change to the model is a new model,
    read from what the patch leaves (an edited Keras JSON is translated, once); any other change
    keeps the run's model with its translation."""
    if "model" in change:
        return RunSpec.model_validate(apply(run.model_dump(mode="json", exclude_none=True), change))
    doc = run.model_dump(mode="json", exclude_none=True, context=TRANSLATED)
    return RunSpec.model_validate(apply(doc, change), context=TRANSLATED)


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
