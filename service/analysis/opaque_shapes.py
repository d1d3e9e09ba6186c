"""Output shapes of Keras layers kept opaque, from their shape settings (channels_last).

An opaque layer is not modelled (no parameters, no initialization), but where its output shape
follows from a few settings — a channels_first convolution's filters and strides, its
Cropping's margins, a Resizing's height and width — computing it keeps the shapes of the rest
of the model known. (The channels_last ConvND, PoolingND, CroppingND and Embedding layers are
read and modelled in full: see architecture.py.)
Rules follow Keras 3; a class without a rule (or a setting they do not cover) gives None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Shape = tuple[int, ...]
Config = dict[str, Any]


def opaque_shape(cls: str, config: Config, shape: Shape) -> Shape | None:
    """The output shape of an opaque `cls` layer fed `shape` (batchless), or None."""
    rule = _RULES.get(cls)
    if rule is None:
        return None
    # channels_first: the same rule on the channels_last view, moved back afterwards.
    first = config.get("data_format") == "channels_first"
    view = (*shape[1:], shape[0]) if first else shape
    try:
        out = rule(config, view)
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None  # settings outside what the rule reads: the shape stays unknown
    if first and len(out) > 1:
        out = (out[-1], *out[:-1])
    return out if all(d >= 1 for d in out) else None


def _ints(value: Any, rank: int, default: int) -> list[int]:
    if value is None:
        return [default] * rank
    if isinstance(value, int):
        return [value] * rank
    values = [int(v) for v in value]
    return values * rank if len(values) == 1 else values


def _window(rank: int, weighted: bool) -> Callable[[Config, Shape], Shape]:
    """ConvND / PoolingND: spatial dims by padding, strides and dilation; channels last."""

    def rule(c: Config, shape: Shape) -> Shape:
        spatial, channels = shape[:-1], shape[-1]
        if len(spatial) != rank:
            raise ValueError(f"needs rank {rank + 1}")
        key = "kernel_size" if weighted else "pool_size"
        window = _ints(c.get(key), rank, 2)
        strides = _ints(c.get("strides"), rank, 1 if weighted else 0)
        strides = [s or w for s, w in zip(strides, window, strict=True)]
        dilation = _ints(c.get("dilation_rate"), rank, 1)
        padding = c.get("padding") or "valid"
        dims = []
        for n, k, s, d in zip(spatial, window, strides, dilation, strict=True):
            effective = (k - 1) * d + 1
            if padding in ("same", "causal"):
                dims.append(math.ceil(n / s))
            else:
                dims.append((n - effective) // s + 1)
        return (*dims, int(c["filters"]) if weighted else channels)

    return rule


def _transpose(rank: int) -> Callable[[Config, Shape], Shape]:
    """ConvNDTranspose without output_padding: n·s for 'same', (n−1)·s + k for 'valid'."""

    def rule(c: Config, shape: Shape) -> Shape:
        if c.get("output_padding") is not None or len(shape) != rank + 1:
            raise ValueError("output_padding is not modelled")
        window = _ints(c.get("kernel_size"), rank, 1)
        strides = _ints(c.get("strides"), rank, 1)
        dilation = _ints(c.get("dilation_rate"), rank, 1)
        same = c.get("padding") == "same"
        dims = [
            n * s if same else (n - 1) * s + (k - 1) * d + 1
            for n, k, s, d in zip(shape[:-1], window, strides, dilation, strict=True)
        ]
        return (*dims, int(c["filters"]))

    return rule


def _global_pool(rank: int) -> Callable[[Config, Shape], Shape]:
    def rule(c: Config, shape: Shape) -> Shape:
        if len(shape) != rank + 1:
            raise ValueError(f"needs rank {rank + 1}")
        return (*([1] * rank), shape[-1]) if c.get("keepdims") else (shape[-1],)

    return rule


def _cropping(rank: int) -> Callable[[Config, Shape], Shape]:
    def rule(c: Config, shape: Shape) -> Shape:
        crop = c.get("cropping")
        if rank == 1:
            pairs = [_ints(crop, 2, 1)]
        else:
            items = crop if isinstance(crop, list) else [crop] * rank
            pairs = [_ints(p, 2, 0) for p in items]
        dims = [n - a - b for n, (a, b) in zip(shape[:-1], pairs, strict=True)]
        return (*dims, shape[-1])

    return rule


def _resize(c: Config, shape: Shape) -> Shape:
    return (int(c["height"]), int(c["width"]), shape[-1])


def _upsample(c: Config, shape: Shape) -> Shape:
    size = _ints(c.get("size"), len(shape) - 1, 2)
    return (*(n * s for n, s in zip(shape[:-1], size, strict=True)), shape[-1])


def _embedding(c: Config, shape: Shape) -> Shape:
    return (*shape, int(c["output_dim"]))


_RULES: dict[str, Callable[[Config, Shape], Shape]] = {
    # 2-D classes reach here only as opaque nodes, i.e. with data_format="channels_first".
    "Conv2D": _window(2, weighted=True),
    "SeparableConv2D": _window(2, weighted=True),
    "MaxPooling2D": _window(2, weighted=False),
    "AveragePooling2D": _window(2, weighted=False),
    "GlobalMaxPooling2D": _global_pool(2),
    "GlobalAveragePooling2D": _global_pool(2),
    "Conv1D": _window(1, weighted=True),
    "Conv3D": _window(3, weighted=True),
    "SeparableConv1D": _window(1, weighted=True),
    "MaxPooling1D": _window(1, weighted=False),
    "AveragePooling1D": _window(1, weighted=False),
    "MaxPooling3D": _window(3, weighted=False),
    "AveragePooling3D": _window(3, weighted=False),
    "Conv1DTranspose": _transpose(1),
    "Conv2DTranspose": _transpose(2),
    "Conv3DTranspose": _transpose(3),
    "GlobalMaxPooling1D": _global_pool(1),
    "GlobalAveragePooling1D": _global_pool(1),
    "GlobalMaxPooling3D": _global_pool(3),
    "GlobalAveragePooling3D": _global_pool(3),
    "Cropping1D": _cropping(1),
    "Cropping2D": _cropping(2),
    "Cropping3D": _cropping(3),
    "Resizing": _resize,
    "CenterCrop": _resize,
    "RandomCrop": _resize,
    "UpSampling1D": _upsample,
    "UpSampling2D": _upsample,
    "UpSampling3D": _upsample,
    "Embedding": _embedding,
}
