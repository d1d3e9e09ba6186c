"""Sync and async clients of the lossdoctor v1 API, and `from_keras` to describe a Keras run.

Reports are the service's own pydantic models (`service.schemas`), so a client and the server
agree on the contract by construction; importing them never imports TensorFlow.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from service.schemas.diagnosis import Diagnosis
from service.schemas.report import Fix, Report
from service.schemas.run import OPTIMIZERS

__all__ = [
    "DEFAULT_URL",
    "AsyncLossDoctor",
    "Dataset",
    "Diagnosis",
    "LossDoctor",
    "LossDoctorError",
    "LossDoctorUnavailable",
    "Report",
    "apply_fix",
    "default_url",
    "from_keras",
    "run_from_keras",
]

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"succeeded", "failed", "canceled"})

ProgressCallback = Callable[[Diagnosis], Any]


def default_url() -> str:
    """`LOSSDOCTOR_URL` from the environment, else http://127.0.0.1:8000."""
    return os.environ.get("LOSSDOCTOR_URL") or DEFAULT_URL


class LossDoctorError(Exception):
    """An error answer of the API (RFC 9457 problem+json): `status`, `title`, `detail`, and the
    whole problem document in `problem` (validation errors carry `problem["errors"]`)."""

    def __init__(
        self, status: int, title: str, detail: str, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.problem = problem or {"status": status, "title": title, "detail": detail}


class LossDoctorUnavailable(LossDoctorError):
    """The service could not be reached (connection refused, DNS, timeout); `status` is 0."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Service unreachable", detail)


class Dataset(BaseModel):
    """An uploaded data sample: its id (for `run.data.dataset_id`) and statistics."""

    model_config = ConfigDict(extra="allow")

    id: str
    created_at: str | None = None
    num_examples: int
    input_shape: list[int]
    num_classes: int
    stats: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# Request building, shared by both clients.


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays become Python numbers and lists, NaN becomes
    null and ±inf "Infinity"/"-Infinity" (the history schema reads all three back)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "tolist") and not isinstance(value, int | float):
        return jsonable(value.tolist())  # numpy array or scalar
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    return value


def history_dict(history: Any) -> dict[str, Any]:
    """A Keras `History` (its `.history`) or a mapping of series, as JSON-ready lists."""
    raw = getattr(history, "history", history)
    if not isinstance(raw, Mapping):
        raise TypeError("history must be a Keras History or a mapping like {'loss': [...]}")
    return {str(k): jsonable(list(v)) for k, v in raw.items()}


def diagnosis_body(
    run: Mapping[str, Any] | None,
    history: Any,
    dataset_id: str | None,
    probes: bool | Mapping[str, Any],
    budget_seconds: float | None,
) -> dict[str, Any]:
    if history is None:
        raise TypeError("diagnose() needs history, e.g. {'loss': [2.30, 2.29, 2.30]}")
    body: dict[str, Any] = {"history": history_dict(history)}
    run_doc: dict[str, Any] = jsonable(dict(run)) if run else {}
    if dataset_id is not None:
        run_doc["data"] = {**(run_doc.get("data") or {}), "dataset_id": dataset_id}
    if run_doc:
        body["run"] = run_doc
    options: dict[str, Any] = (
        dict(probes) if isinstance(probes, Mapping) else {"enabled": bool(probes)}
    )
    if budget_seconds is not None:
        options["budget_seconds"] = budget_seconds
    if options.get("enabled") or len(options) > 1:
        body["probes"] = options
    return body


def npz_bytes(x: Any, y: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.asarray(x), y=np.asarray(y))
    return buf.getvalue()


def _npz_payload(data: bytes | str | os.PathLike[str]) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = {"title": response.reason_phrase or "Error", "detail": response.text[:500]}
    raise LossDoctorError(
        int(doc.get("status") or response.status_code),
        str(doc.get("title") or "Error"),
        str(doc.get("detail") or ""),
        doc,
    )


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"accept": "application/json, application/problem+json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _progress_key(d: Diagnosis) -> tuple[Any, ...]:
    p = d.progress
    return (d.status, p.probes_done, p.probes_total, p.current_probe)


# ---------------------------------------------------------------------------------------------
# Clients.


class LossDoctor:
    """Blocking client.

    >>> ld = LossDoctor("http://127.0.0.1:8000")
    >>> ld.diagnose(history={"loss": [2.303, 2.302, 2.303]}).report.verdict
    'problem'
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> LossDoctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise LossDoctorUnavailable(f"{self.url}: {exc or type(exc).__name__}") from exc
        raise_for_problem(response)
        return response

    def upload_dataset(self, x: Any, y: Any) -> Dataset:
        """Upload a data sample (arrays as fed to `model.fit`); returns its id and stats."""
        return self.upload_npz(npz_bytes(x, y))

    def upload_npz(self, data: bytes | str | os.PathLike[str]) -> Dataset:
        """Upload an `.npz` (arrays `x` and `y`) given as bytes or a path."""
        files = {"file": ("sample.npz", _npz_payload(data), "application/octet-stream")}
        return Dataset.model_validate(self._request("POST", "/v1/datasets", files=files).json())

    def diagnose(
        self,
        run: Mapping[str, Any] | None = None,
        history: Any = None,
        dataset_id: str | None = None,
        probes: bool | Mapping[str, Any] = False,
        budget_seconds: float | None = None,
        wait: bool = False,
        on_progress: ProgressCallback | None = None,
        *,
        poll: float = 1.0,
        wait_timeout: float = 3600.0,
    ) -> Diagnosis:
        """Submit a run and its history. Without probes the report is final at once; with
        `wait=True` this polls until the probes finish (calling `on_progress` on each change)."""
        body = diagnosis_body(run, history, dataset_id, probes, budget_seconds)
        diagnosis = Diagnosis.model_validate(
            self._request("POST", "/v1/diagnoses", content=json.dumps(body), headers=_JSON).json()
        )
        if on_progress is not None:
            on_progress(diagnosis)
        if wait and diagnosis.status not in TERMINAL:
            return self.wait(diagnosis.id, poll, wait_timeout, on_progress, _seen=diagnosis)
        return diagnosis

    def get(self, diagnosis_id: str) -> Diagnosis:
        return Diagnosis.model_validate(self._request("GET", _path(diagnosis_id)).json())

    def wait(
        self,
        diagnosis_id: str,
        poll: float = 1.0,
        timeout: float = 3600.0,
        on_progress: ProgressCallback | None = None,
        *,
        _seen: Diagnosis | None = None,
    ) -> Diagnosis:
        """Poll until the diagnosis is succeeded, failed or canceled; `TimeoutError` after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = _progress_key(_seen) if _seen is not None else None
        while True:
            diagnosis = self.get(diagnosis_id)
            if on_progress is not None and _progress_key(diagnosis) != last:
                on_progress(diagnosis)
            last = _progress_key(diagnosis)
            if diagnosis.status in TERMINAL:
                return diagnosis
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"diagnosis {diagnosis_id} is still {diagnosis.status} after {timeout:g} s"
                )
            time.sleep(min(poll, left))

    def delete(self, diagnosis_id: str) -> Diagnosis | None:
        """Cancel a queued or running diagnosis (returns it, canceled) or delete a finished one
        (returns None)."""
        response = self._request("DELETE", _path(diagnosis_id))
        return Diagnosis.model_validate(response.json()) if response.status_code == 202 else None

    def report_html(self, diagnosis_id: str) -> str:
        """The server-rendered report page."""
        return self._request("GET", _path(diagnosis_id) + "/report.html").text

    def fixed_run(self, diagnosis_id: str, cause: str | None = None) -> dict[str, Any]:
        """The run with the top cause's fix (or `cause`'s) applied, as the server builds it:
        {"diagnosis_id", "cause", "fix", "run"}. A Keras JSON model comes back as the same
        Keras JSON, edited: `keras.models.model_from_json(out["run"]["model"]["keras_json"])`."""
        params = {"cause": cause} if cause else None
        return self._request("GET", _path(diagnosis_id) + "/fixed-run", params=params).json()


class AsyncLossDoctor:
    """The same API as `LossDoctor`, with coroutines (`async with AsyncLossDoctor(url) as ld`)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncLossDoctor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise LossDoctorUnavailable(f"{self.url}: {exc or type(exc).__name__}") from exc
        raise_for_problem(response)
        return response

    async def upload_dataset(self, x: Any, y: Any) -> Dataset:
        return await self.upload_npz(npz_bytes(x, y))

    async def upload_npz(self, data: bytes | str | os.PathLike[str]) -> Dataset:
        files = {"file": ("sample.npz", _npz_payload(data), "application/octet-stream")}
        response = await self._request("POST", "/v1/datasets", files=files)
        return Dataset.model_validate(response.json())

    async def diagnose(
        self,
        run: Mapping[str, Any] | None = None,
        history: Any = None,
        dataset_id: str | None = None,
        probes: bool | Mapping[str, Any] = False,
        budget_seconds: float | None = None,
        wait: bool = False,
        on_progress: Callable[[Diagnosis], Any] | None = None,
        *,
        poll: float = 1.0,
        wait_timeout: float = 3600.0,
    ) -> Diagnosis:
        """`on_progress` may be a plain function or a coroutine function."""
        body = diagnosis_body(run, history, dataset_id, probes, budget_seconds)
        response = await self._request(
            "POST", "/v1/diagnoses", content=json.dumps(body), headers=_JSON
        )
        diagnosis = Diagnosis.model_validate(response.json())
        if on_progress is not None:
            await _maybe_await(on_progress(diagnosis))
        if wait and diagnosis.status not in TERMINAL:
            return await self.wait(diagnosis.id, poll, wait_timeout, on_progress, _seen=diagnosis)
        return diagnosis

    async def get(self, diagnosis_id: str) -> Diagnosis:
        return Diagnosis.model_validate((await self._request("GET", _path(diagnosis_id))).json())

    async def wait(
        self,
        diagnosis_id: str,
        poll: float = 1.0,
        timeout: float = 3600.0,
        on_progress: Callable[[Diagnosis], Any] | None = None,
        *,
        _seen: Diagnosis | None = None,
    ) -> Diagnosis:
        deadline = time.monotonic() + timeout
        last = _progress_key(_seen) if _seen is not None else None
        while True:
            diagnosis = await self.get(diagnosis_id)
            if on_progress is not None and _progress_key(diagnosis) != last:
                await _maybe_await(on_progress(diagnosis))
            last = _progress_key(diagnosis)
            if diagnosis.status in TERMINAL:
                return diagnosis
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"diagnosis {diagnosis_id} is still {diagnosis.status} after {timeout:g} s"
                )
            await asyncio.sleep(min(poll, left))

    async def delete(self, diagnosis_id: str) -> Diagnosis | None:
        response = await self._request("DELETE", _path(diagnosis_id))
        return Diagnosis.model_validate(response.json()) if response.status_code == 202 else None

    async def report_html(self, diagnosis_id: str) -> str:
        return (await self._request("GET", _path(diagnosis_id) + "/report.html")).text

    async def fixed_run(self, diagnosis_id: str, cause: str | None = None) -> dict[str, Any]:
        params = {"cause": cause} if cause else None
        path = _path(diagnosis_id) + "/fixed-run"
        return (await self._request("GET", path, params=params)).json()


_JSON = {"content-type": "application/json"}


def apply_fix(run: Mapping[str, Any], fix: Fix | Mapping[str, Any]) -> dict[str, Any]:
    """`run` (a run spec dict, as sent) with `fix.patch` merged in (RFC 7396), offline.

    The same merge the server's `fixed-run` does; `run` itself is not modified."""
    from service.analysis.patch import apply

    patch = fix.patch if isinstance(fix, Fix) else fix.get("patch") or {}
    return apply(dict(run), patch)  # type: ignore[no-any-return]


def _path(diagnosis_id: str) -> str:
    from urllib.parse import quote

    return "/v1/diagnoses/" + quote(diagnosis_id, safe="")


async def _maybe_await(value: Any) -> None:
    if isinstance(value, Awaitable):
        await value


# ---------------------------------------------------------------------------------------------
# Keras.


def run_from_keras(
    model: Any,
    optimizer: Any = None,
    sample: tuple[Any, Any] | None = None,
    **run_fields: Any,
) -> dict[str, Any]:
    """The `run` of a Keras model: `model.to_json()`, the compiled optimizer's `get_config()`
    (or `optimizer`: an optimizer object or a config dict), the loss when compile got a name or
    a Keras loss, data facts from `sample=(x, y)` (range and classes as fed to `fit`), and any
    other run field as a keyword (`batch_size=64, epochs=20, preprocessing={...}`)."""
    run: dict[str, Any] = {"model": {"keras_json": model.to_json()}}
    opt = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    if opt is not None:
        run["optimizer"] = _optimizer_config(opt)
    loss = _loss_spec(getattr(model, "loss", None))
    if loss is not None:
        run["loss"] = loss
    if sample is not None:
        run["data"] = _data_facts(*sample)
    for key, value in run_fields.items():
        if key == "data" and isinstance(value, Mapping):
            run["data"] = {**run.get("data", {}), **value}
        elif value is not None:
            run[key] = value
    return jsonable(run)  # type: ignore[no-any-return]


def from_keras(
    model: Any,
    history: Any,
    optimizer: Any = None,
    sample: tuple[Any, Any] | None = None,
    **run_fields: Any,
) -> dict[str, Any]:
    """`{"run": ..., "history": ...}` of a Keras model and its `History` (or history dict):
    `client.diagnose(**from_keras(model, model.fit(...), batch_size=64, epochs=10))`."""
    return {
        "run": run_from_keras(model, optimizer, sample, **run_fields),
        "history": history_dict(history),
    }


def _optimizer_config(opt: Any) -> dict[str, Any]:
    if isinstance(opt, Mapping):
        return jsonable(dict(opt))  # type: ignore[no-any-return]
    if isinstance(opt, str):
        return {"name": opt}
    config: dict[str, Any] = dict(opt.get_config())
    # The instance name may be user-chosen ("my_sgd"); a Keras class says which optimizer it is.
    if type(opt).__name__.lower() in OPTIMIZERS:
        config["name"] = type(opt).__name__.lower()
    lr = config.get("learning_rate")
    if lr is not None and not isinstance(lr, Mapping):
        # Keras keeps it as float32 (0.1 → 0.10000000149): 7 significant digits are exact.
        config["learning_rate"] = float(f"{float(lr):.7g}")
    return {k: v for k, v in jsonable(config).items() if v is not None}


def _loss_spec(loss: Any) -> Any:
    if loss is None:
        return None
    if isinstance(loss, str):
        return loss
    get_config = getattr(loss, "get_config", None)
    if get_config is None:
        name = getattr(loss, "__name__", None)  # a plain loss function
        return name if isinstance(name, str) else None
    config = get_config()
    spec: dict[str, Any] = {"name": config.get("name") or type(loss).__name__}
    if config.get("from_logits"):
        spec["from_logits"] = True
    if config.get("label_smoothing"):
        spec["label_smoothing"] = float(config["label_smoothing"])
    return spec


def _data_facts(x: Any, y: Any) -> dict[str, Any]:
    import numpy as np

    xa, ya = np.asarray(x), np.asarray(y)
    facts: dict[str, Any] = {"num_examples": len(xa)}
    if xa.size:
        facts["input_min"] = float(np.nanmin(xa))
        facts["input_max"] = float(np.nanmax(xa))
    labels = ya.argmax(axis=-1) if ya.ndim > 1 and ya.shape[-1] > 1 else ya.reshape(-1)
    if labels.size and np.issubdtype(labels.dtype, np.integer):
        facts["num_classes"] = max(2, int(labels.max()) + 1)
    elif labels.size and np.issubdtype(labels.dtype, np.floating):
        # Real-valued targets: the diagnosis judges a regression's loss against Var(y).
        t = labels.astype(np.float64)
        t = t[np.isfinite(t)]
        if t.size and len(np.unique(t)) > 20:  # a few distinct values are class labels
            facts.update(
                target_min=float(t.min()),
                target_max=float(t.max()),
                target_mean=float(t.mean()),
                target_std=float(t.std()),
            )
    return facts
