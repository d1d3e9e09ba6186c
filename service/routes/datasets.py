"""/v1/datasets: upload a data sample (.npz) whose statistics feed the diagnosis and probes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Response, UploadFile

from service.analysis.data import load_sample, num_classes_of, sample_stats
from service.deps import DatasetDep, SettingsDep, StoreDep, TenantDep, owned
from service.errors import PayloadTooLarge
from service.idempotency import idempotent
from service.schemas.dataset import Dataset, StoredDataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


@router.post(
    "",
    status_code=201,
    response_model=Dataset,
    responses={
        200: {"model": Dataset, "description": "Replay of an earlier Idempotency-Key."},
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
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StoredDataset:
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
            dataset = owned(store.get_dataset(claim.replay), tenant, "dataset")
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Location"] = f"/v1/datasets/{dataset.id}"
            return dataset
        x, y = load_sample(blob, settings.max_dataset_examples, settings.max_dataset_unpacked_bytes)
        dataset = StoredDataset(
            id="ds_" + secrets.token_hex(10),
            created_at=datetime.now(UTC),
            num_examples=len(x),
            input_shape=[int(d) for d in x.shape[1:]],
            num_classes=num_classes_of(y),
            stats=sample_stats(x, y),
            tenant=tenant,
        )
        store.put_dataset(dataset, blob)
        claim.created = dataset.id
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return dataset


@router.get(
    "/{dataset_id}",
    response_model=Dataset,
    responses={404: {"description": "No such dataset.", **_PROBLEM}},
)
def read_dataset(dataset: DatasetDep) -> StoredDataset:
    return dataset


@router.delete(
    "/{dataset_id}",
    status_code=204,
    responses={404: {"description": "No such dataset.", **_PROBLEM}},
)
def delete_dataset(dataset: DatasetDep, store: StoreDep) -> Response:
    store.delete_dataset(dataset.id)
    return Response(status_code=204)
