"""/v1/datasets: upload a data sample (.npz) whose statistics feed the diagnosis and probes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import JSONResponse, Response

from service.analysis.data import load_sample, sample_stats
from service.deps import SettingsDep, StoreDep
from service.errors import NotFound, PayloadTooLarge

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


@router.post(
    "",
    status_code=201,
    responses={
        413: {"description": "File or example count above its limit.", **_PROBLEM},
        422: {"description": "Not a pickle-free .npz with arrays x and y.", **_PROBLEM},
    },
)
def upload_dataset(
    file: Annotated[UploadFile, File(description="`np.savez(f, x=..., y=...)`")],
    store: StoreDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Upload a sample: `curl -F file=@sample.npz http://127.0.0.1:8000/v1/datasets`."""
    blob = file.file.read(settings.max_dataset_bytes + 1)
    if len(blob) > settings.max_dataset_bytes:
        raise PayloadTooLarge(
            f"the file is larger than {settings.max_dataset_bytes} bytes "
            "(LOSSDOCTOR_MAX_DATASET_BYTES)"
        )
    x, y = load_sample(blob, settings.max_dataset_examples, settings.max_dataset_unpacked_bytes)
    meta: dict[str, Any] = {
        "id": "ds_" + secrets.token_hex(10),
        "created_at": datetime.now(UTC).isoformat(),
        "num_examples": len(x),
        "input_shape": [int(d) for d in x.shape[1:]],
        "num_classes": int(y.max()) + 1,
        "stats": sample_stats(x, y),
    }
    store.put_dataset(meta, blob)
    return JSONResponse(meta, status_code=201, headers={"Location": f"/v1/datasets/{meta['id']}"})


@router.get("/{dataset_id}", responses={404: {"description": "No such dataset.", **_PROBLEM}})
def read_dataset(dataset_id: str, store: StoreDep) -> JSONResponse:
    meta = store.get_dataset(dataset_id)
    if meta is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return JSONResponse(meta)


@router.delete(
    "/{dataset_id}",
    status_code=204,
    responses={404: {"description": "No such dataset.", **_PROBLEM}},
)
def delete_dataset(dataset_id: str, store: StoreDep) -> Response:
    if not store.delete_dataset(dataset_id):
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return Response(status_code=204)
