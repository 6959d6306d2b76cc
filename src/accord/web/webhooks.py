"""`POST /api/v1/systems/{system}/webhook`: signed single changes from a system.

Authenticated by the delivery's signature (`accord.intake.webhooks`), not by an API key
or a session; the route only hands the service the raw body and the headers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from accord.intake import push, webhooks
from accord.runtime.admission import Admission
from accord.web.api import read_body
from accord.web.auth import workspace
from accord.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=ERROR_RESPONSES)


@router.post(
    "/systems/{system}/webhook",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "parameters": [
            {
                "name": webhooks.TIMESTAMP_HEADER,
                "in": "header",
                "required": True,
                "description": "when the delivery was signed, in unix seconds",
                "schema": {"type": "string"},
            },
            {
                "name": webhooks.SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": 'v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">',
                "schema": {"type": "string"},
            },
        ],
    },
)
async def receive_webhook(system: str, request: Request, response: Response) -> dict[str, Any]:
    """One record (a JSON object) or a batch (`{"records": [...]}`) from `system`,
    signed: `Accord-Timestamp` (unix seconds) and `Accord-Signature: v1=<hex
    HMAC-SHA256 of "<timestamp>.<raw body>">`. Stored before the answer, as a push is;
    the same delivery again is answered `duplicate: true` and stores nothing. 401 with
    the reason when the signature does not hold; 404 when the system has no webhook;
    503 with Retry-After while more records wait to be matched than the bound."""
    ws = workspace(request)
    webhooks.settings(ws.project, system)  # 404 before reading a body nobody expects
    admission: Admission = request.app.state.admission
    await run_in_threadpool(admission.check_backlog, ws.engine)  # 503 past the bound
    body = await read_body(request, push.MAX_BODY_BYTES)
    answer = await run_in_threadpool(
        webhooks.receive,
        ws.engine,
        ws.project,
        system,
        body,
        timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
        signature=request.headers.get(webhooks.SIGNATURE_HEADER),
        content_encoding=request.headers.get("content-encoding"),
    )
    if answer.duplicate:
        response.headers["Idempotent-Replayed"] = "true"
    return answer.as_dict()
