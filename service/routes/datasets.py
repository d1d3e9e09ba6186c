"""/v1/datasets: upload a data sample (.npz) whose statistics feed the diagnosis and probes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, UploadFile
from fastapi.responses import JSONResponse, Response

from service.analysis.data import load_sample, num_classes_of, sample_stats
from service.deps import SettingsDep, StoreDep, TenantDep
from service.errors import NotFound, PayloadTooLarge
from service.idempotency import idempotent
from service.routes.diagnoses import public
from service.store import Store

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def _owned(store: Store, tenant: str, dataset_id: str) -> dict[str, Any]:
    meta = store.get_dataset(dataset_id)
    if meta is None or meta.get("_tenant") != tenant:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return meta


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "Replay of an earlier Idempotency-Key."},
        401: {"description": "Missing or unknown API key.", **_PROBLEM},
        409: {"description": "The same Idempotency-Key is still being processed.", **_PROBLEM},
        413: {"description": "File, unpacked size or example count above its limit.", **_PROBLEM},
        422: {"description": "Not a pickle-free .npz with arrays x and y.", **_PROBLEM},
    },
)
def upload_dataset(
    file: Annotated[UploadFile, File(description="`np.savez(f, x=..., y=...)`")],
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Upload a sample: `curl -F file=@sample.npz http://127.0.0.1:8000/v1/datasets`.

    `x`: (N, H, W[, C]) inputs as fed to `model.fit`; `y`: (N,) integer labels or (N, C)
    one-hot. Loaded with `allow_pickle=False`."""
    blob = file.file.read(settings.max_dataset_bytes + 1)
    if len(blob) > settings.max_dataset_bytes:
        raise PayloadTooLarge(
            f"the file is larger than {settings.max_dataset_bytes} bytes "
            "(LOSSDOCTOR_MAX_DATASET_BYTES)"
        )
    with idempotent(store, tenant, "dataset", idempotency_key, blob) as claim:
        if claim.replay is not None:
            meta = _owned(store, tenant, claim.replay)
            return JSONResponse(
                public(meta),
                headers={"Idempotent-Replayed": "true", "Location": f"/v1/datasets/{meta['id']}"},
            )
        x, y = load_sample(blob, settings.max_dataset_examples, settings.max_dataset_unpacked_bytes)
        meta = {
            "id": "ds_" + secrets.token_hex(10),
            "created_at": datetime.now(UTC).isoformat(),
            "num_examples": len(x),
            "input_shape": [int(d) for d in x.shape[1:]],
            "num_classes": num_classes_of(y),
            "stats": sample_stats(x, y),
            "_tenant": tenant,
        }
        store.put_dataset(meta, blob)
        claim.created = meta["id"]
    return JSONResponse(
        public(meta), status_code=201, headers={"Location": f"/v1/datasets/{meta['id']}"}
    )


@router.get("/{dataset_id}", responses={404: {"description": "No such dataset.", **_PROBLEM}})
def read_dataset(dataset_id: str, tenant: TenantDep, store: StoreDep) -> JSONResponse:
    return JSONResponse(public(_owned(store, tenant, dataset_id)))


@router.delete(
    "/{dataset_id}",
    status_code=204,
    responses={404: {"description": "No such dataset.", **_PROBLEM}},
)
def delete_dataset(dataset_id: str, tenant: TenantDep, store: StoreDep) -> Response:
    _owned(store, tenant, dataset_id)
    store.delete_dataset(dataset_id)
    return Response(status_code=204)
