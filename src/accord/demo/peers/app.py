"""A peer's REST API: one collection of records (`/accounts` for billing, `/requesters`
for the service desk) with ETags, conditional writes, idempotency keys and batches, plus
the endpoints tests use from outside (`/_faults`, `/_log`, `/_reset`).

A request to the collection passes, in this order: the bearer token (401), the rate
limit (429), the faults drawn for it (a delay, then an injected 429 or 5xx), the
reading of its body (413, 422), a hang if one was drawn, and the store. Only the answer
to a write can be lost after its commit (`fail_after_commit_rate`)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from accord.demo.peers import parse
from accord.demo.peers.faults import Fate, FaultInjector, FaultSettings, TokenBucket
from accord.demo.peers.parse import BadRequest
from accord.demo.peers.store import Op, Operation, Outcome, PeerStore, error

Kind = Literal["billing", "service_desk"]
RESOURCES: dict[Kind, str] = {"billing": "accounts", "service_desk": "requesters"}
MAX_DRAINED_BYTES = 16 * 1024 * 1024  # read past the limit so the client gets its 413


@dataclass(frozen=True)
class PeerConfig:
    kind: Kind
    token: str | None = None  # None: no authentication
    rate_limit: float | None = None  # requests a second; None: unlimited
    allow_reset: bool = False  # whether POST /_reset may empty the store

    @property
    def resource(self) -> str:
        return RESOURCES[self.kind]


class Refusal(Exception):
    """An answer other than the store's: authentication, the rate limit, a fault."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error(code, message)
        self.headers = headers or {}


@dataclass
class Peer:
    """What a peer's endpoints share: held on `app.state.peer`."""

    store: PeerStore
    config: PeerConfig
    faults: FaultInjector
    bucket: TokenBucket | None


def _peer(request: Request) -> Peer:
    peer: Peer = request.app.state.peer
    return peer


async def authorize(request: Request) -> None:
    """Refuse (401) a request without the peer's bearer token, when it has one."""
    token = _peer(request).config.token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Refusal(
            401,
            "unauthorized",
            "this peer needs the header Authorization: Bearer <token>",
            {"WWW-Authenticate": "Bearer"},
        )


async def admit(request: Request) -> Fate:
    """Let a request to the collection through the rate limit and the faults in force,
    and return its fate: whether it is to hang once read, whether its answer is to be
    lost after the commit."""
    peer = _peer(request)
    if peer.bucket is not None and (wait := peer.bucket.take()) is not None:
        raise Refusal(
            429,
            "rate_limited",
            f"over the rate limit of {peer.bucket.rate:g} requests a second",
            {"Retry-After": str(wait)},
        )
    fate = peer.faults.draw()
    if fate.delay_s:
        await asyncio.sleep(fate.delay_s)
    settings = peer.faults.settings
    if fate.throttle:
        raise Refusal(
            429,
            "rate_limited",
            "throttled (an injected fault, throttle_rate)",
            {"Retry-After": str(settings.throttle_retry_after)},
        )
    if fate.error:
        raise Refusal(
            settings.error_status,
            "injected_error",
            f"an injected fault (error_rate): {settings.error_status}",
        )
    return fate


Admitted = Annotated[Fate, Depends(admit)]


async def _hang(fate: Fate) -> None:
    """Hold a request that has been read (`timeout_rate`), then let it go on: a write
    is still applied when its client has given up waiting, as on a slow server."""
    if fate.hang_s:
        await asyncio.sleep(fate.hang_s)


def create_app(store: PeerStore, config: PeerConfig) -> FastAPI:
    """The peer's application over `store`; the store is closed when the app shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title=f"Accord demo peer: {config.kind}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    bucket = TokenBucket(config.rate_limit) if config.rate_limit is not None else None
    app.state.peer = Peer(store, config, FaultInjector(), bucket)
    _register_errors(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "kind": config.kind, "resource": config.resource}

    app.include_router(_admin(config), dependencies=[Depends(authorize)])
    app.include_router(_collection(config), dependencies=[Depends(authorize)])
    return app


def _admin(config: PeerConfig) -> APIRouter:
    """The endpoints tests steer a peer with: faults, the log of writes, a reset."""
    router = APIRouter()

    @router.get("/_faults")
    async def get_faults(request: Request) -> dict[str, Any]:
        return _peer(request).faults.settings.model_dump()

    @router.put("/_faults")
    async def put_faults(request: Request) -> dict[str, Any]:
        document = parse.json_body(await _body(request))
        try:
            settings = FaultSettings.model_validate(document)
        except ValidationError as exc:
            raise BadRequest(_problems(exc.errors())) from None
        _peer(request).faults.configure(settings)
        return settings.model_dump()

    @router.delete("/_faults", status_code=204)
    async def clear_faults(request: Request) -> None:
        _peer(request).faults.clear()

    @router.get("/_log")
    async def change_log(
        request: Request,
        after_seq: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    ) -> list[dict[str, Any]]:
        entries = await run_in_threadpool(_peer(request).store.log, after_seq, limit)
        return [entry.as_dict() for entry in entries]

    if config.allow_reset:

        @router.post("/_reset", status_code=204)
        async def reset(request: Request) -> None:
            peer = _peer(request)
            await run_in_threadpool(peer.store.reset)
            peer.faults.clear()
            if peer.bucket is not None:
                peer.bucket.refill()

    return router


def _collection(config: PeerConfig) -> APIRouter:
    """The resource endpoints, each admitted (rate limit, faults) before it runs."""
    router = APIRouter()
    path = f"/{config.resource}"

    @router.get(path)
    async def list_records(
        request: Request,
        fate: Admitted,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        include_deleted: bool = False,
    ) -> dict[str, Any]:
        await _hang(fate)
        records = await run_in_threadpool(
            _peer(request).store.page, after, limit + 1, include_deleted=include_deleted
        )
        items = records[:limit]
        return {
            "items": [record.as_dict() for record in items],
            "next": items[-1].id if len(records) > limit else None,
        }

    @router.post(f"{path}:batch")
    async def batch(request: Request, fate: Admitted) -> Response:
        for header in ("Idempotency-Key", "If-Match", "If-None-Match"):
            if header in request.headers:
                raise BadRequest(
                    f"a batch takes no {header} header: give each operation its own "
                    "key, if_match or if_none_match"
                )
        operations = parse.batch(parse.json_body(await _body(request)))
        await _hang(fate)
        outcomes = await run_in_threadpool(_peer(request).store.apply, operations)
        if fate.fail_after_commit:
            return _lost_answer()
        results = [_result(op, outcome) for op, outcome in zip(operations, outcomes, strict=True)]
        return JSONResponse({"results": results})

    @router.get(path + "/{record_id:path}")
    async def get_record(record_id: str, request: Request, fate: Admitted) -> Response:
        parse.check_id(record_id)
        await _hang(fate)
        record = await run_in_threadpool(_peer(request).store.get, record_id)
        if record is None:
            body = error("not_found", f"there is no record {record_id!r}")
            return JSONResponse(body, status_code=404)
        if record.deleted:
            body = error(
                "gone",
                f"record {record_id!r} was deleted (version {record.version})",
                record=record.as_dict(),
            )
            return JSONResponse(body, status_code=410, headers={"ETag": record.etag})
        return JSONResponse(record.as_dict(), headers={"ETag": record.etag})

    @router.put(path + "/{record_id:path}")
    async def put_record(record_id: str, request: Request, fate: Admitted) -> Response:
        parse.check_id(record_id)
        fields = parse.put_fields(parse.json_body(await _body(request)))
        operation = _operation("put", record_id, request, fields)
        return await _write_one(_peer(request).store, operation, fate)

    @router.delete(path + "/{record_id:path}")
    async def delete_record(record_id: str, request: Request, fate: Admitted) -> Response:
        parse.check_id(record_id)
        operation = _operation("delete", record_id, request, None)
        return await _write_one(_peer(request).store, operation, fate)

    return router


def _operation(
    op: Op, record_id: str, request: Request, fields: dict[str, Any] | None
) -> Operation:
    """A single request's write, its preconditions and key read from its headers."""
    headers = request.headers
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    key = headers.get("idempotency-key")
    return Operation(
        op=op,
        id=record_id,
        fields=fields,
        if_match=None if if_match is None else parse.condition(if_match, "If-Match"),
        if_none_match=(
            None if if_none_match is None else parse.condition(if_none_match, "If-None-Match")
        ),
        key=None if key is None else parse.check_key(key),
    )


async def _write_one(store: PeerStore, operation: Operation, fate: Fate) -> Response:
    await _hang(fate)
    [outcome] = await run_in_threadpool(store.apply, [operation])
    if fate.fail_after_commit:
        return _lost_answer()
    headers: dict[str, str] = {}
    if outcome.etag is not None:
        headers["ETag"] = outcome.etag
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.status == 204:
        return Response(status_code=204, headers=headers)
    body = outcome.record if outcome.status < 300 else outcome.error
    return JSONResponse(body, status_code=outcome.status, headers=headers)


def _result(operation: Operation, outcome: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": operation.id,
        "status": outcome.status,
        "etag": outcome.etag,
        "replayed": outcome.replayed,
    }
    if outcome.status < 300:
        result["record"] = outcome.record
    else:
        result["error"] = outcome.error
    return result


def _lost_answer() -> Response:
    body = error(
        "injected_error",
        "an injected fault (fail_after_commit_rate): the write was committed, this answer lost",
    )
    return JSONResponse(body, status_code=500)


async def _body(request: Request) -> bytes:
    """The request's body, refused with 413 past 1 MiB. A body declared longer than 16 MiB
    is refused unread; one under that is read to its end first, so that a client still
    sending gets the answer rather than a broken connection."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DRAINED_BYTES:
        raise parse.too_large(int(declared))
    body = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= parse.MAX_BODY_BYTES:
            body += chunk
        elif size > MAX_DRAINED_BYTES:
            break
    if size > parse.MAX_BODY_BYTES:
        raise parse.too_large(size)
    return bytes(body)


def _register_errors(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def refused(_: Request, exc: Refusal) -> Response:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(BadRequest)
    async def unreadable(_: Request, exc: BadRequest) -> Response:
        return JSONResponse(error(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(error("invalid_request", _problems(exc.errors())), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )


def _problems(errors: Any) -> str:
    """Pydantic's errors as one line: `where: what; where: what`."""
    parts = []
    for problem in errors:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{where or 'the body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)
