"""The service app plus a bare endpoint that only parses the same body into the same model."""

from __future__ import annotations

from fastapi import Response

from service.main import create_app
from service.schemas.diagnosis import DiagnosisRequest

app = create_app()


@app.post("/bench/bare", status_code=200)
def bare(body: DiagnosisRequest) -> Response:
    return Response(b'{"ok": true}', media_type="application/json")
