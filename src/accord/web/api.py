"""The JSON API, version 1. Every route but sign-in needs an authenticated actor."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from accord.golden import customers
from accord.govern import identity
from accord.govern.permissions import Actor, Permission
from accord.intake import push
from accord.linked import service as linked
from accord.runtime.admission import Admission
from accord.steward import service as steward
from accord.store.engine import writing
from accord.web.auth import SESSION_COOKIE, ActorDep, ConnDep, end_session, needs, workspace
from accord.web.errors import ERROR_RESPONSES
from accord.web.params import RequestBody, RowId
from accord.web.sign_in import mfa_roles, throttled
from accord.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["api"], responses=ERROR_RESPONSES)
Item = TypeVar("Item", bound=BaseModel)


class Credentials(RequestBody):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="for a user with a second factor: the six digits their authenticator "
        "app shows, or one of their recovery codes",
    )


class Identity(BaseModel):
    kind: str
    name: str
    role: str


class CustomerSummary(BaseModel):
    golden_id: str
    display_name: str
    status: str = Field(description="active, merged (into merged_into) or retired")
    merged_into: str | None = None
    kind: str | None
    email: str | None
    phone: str | None
    city: str | None
    country: str | None
    member_count: int
    near: bool = Field(
        default=False,
        description="a near match (a typo or so away), listed after every exact hit",
    )


class Page(BaseModel, Generic[Item]):
    """A page of a longer list: `total` items in all, these from `offset` on."""

    items: list[Item]
    total: int
    limit: int
    offset: int


class CustomerPage(Page[CustomerSummary]):
    """A page of a customer search. The count stops at 1,000 (or at the page's end, if
    further): with `more`, `total` customers match at least."""

    more: bool = False


class FieldLineage(BaseModel):
    value: Any
    system: str = Field(description="the system the value came from; @steward when pinned")
    source_id: str = Field(description="its record; for a pinned value, who pinned it")
    source_record_id: int | None = Field(description="None for a pinned value")
    canonical_record_id: int | None = Field(description="None for a pinned value")
    mapping_version: str | None = Field(description="None for a pinned value")
    observed_at: str
    rule: str = Field(
        description="what picked this value: source_priority, most_recent, most_complete, "
        "most_frequent, steward_override, agreed, only_value, stable_order"
    )
    candidates: int
    alternatives: list[dict[str, Any]]
    hlc: str | None = Field(None, description="the winner's clock stamp (not source_priority)")
    clock_clamped: bool | None = Field(
        None, description="the source's change time was ahead of the allowed clock skew"
    )
    by: str | None = Field(None, description="who pinned the value (steward_override)")
    at: str | None = Field(None, description="when it was pinned")
    reason: str | None = Field(None, description="why it was pinned")


class Member(BaseModel):
    system: str
    source_id: str
    version: int
    rule: str = Field(description="the match rule that linked this record")
    evidence: dict[str, Any]
    decided_at: datetime
    mapping_version: str
    data: dict[str, Any]


class Relationship(BaseModel):
    type: str = Field(description="contact_of or subsidiary_of")
    direction: str = Field(
        description="outgoing (this customer is the contact or subsidiary) or incoming"
    )
    golden_id: str = Field(description="the other customer")
    display_name: str
    evidence: list[dict[str, str]] = Field(description="the source records and fields")


class Customer(BaseModel):
    golden_id: str
    status: str = Field(description="active, merged (see merged_into) or retired")
    merged_into: str | None
    display_name: str
    data: dict[str, Any]
    lineage: dict[str, FieldLineage]
    members: list[Member]
    relationships: list[Relationship]
    created_at: datetime
    updated_at: datetime


class SourceRecord(BaseModel):
    system: str
    source_id: str
    golden: dict[str, Any] | None
    versions: list[dict[str, Any]]


@router.post(
    "/session",
    response_model=Identity,
    tags=["session"],
    responses={
        401: {"description": "wrong credentials, or a `code` is needed (see `message`)"},
        429: {"description": "too many failed attempts lately; see Retry-After"},
    },
)
def sign_in(
    credentials: Credentials,
    request: Request,
    response: Response,
    ws: Annotated[Workspace, Depends(workspace)],
) -> Identity:
    """Sign in with a username and password, and the `code` of a user with a second
    factor; sets the session cookie. Failed attempts are throttled per username and
    per client."""
    with throttled(request, credentials.username):
        actor, session = identity.sign_in(
            ws.engine,
            credentials.username,
            credentials.password,
            code=credentials.code,
            mfa_roles=mfa_roles(ws),
        )
    set_session_cookie(response, session.token, secure=ws.settings.secure_cookies)
    return Identity(kind=actor.kind, name=actor.name, role=actor.role)


@router.get("/session", response_model=Identity, tags=["session"])
def whoami(actor: ActorDep) -> Identity:
    """Who the credentials presented belong to."""
    return Identity(kind=actor.kind, name=actor.name, role=actor.role)


@router.delete("/session", status_code=204, tags=["session"])
def sign_out(
    request: Request, actor: ActorDep, ws: Annotated[Workspace, Depends(workspace)]
) -> Response:
    """End the current session."""
    response = Response(status_code=204)
    end_session(request, response, ws, actor)
    return response


@router.get("/customers", response_model=CustomerPage)
def list_customers(
    actor: Annotated[Actor, needs(Permission.CUSTOMERS_READ)],
    conn: ConnDep,
    q: Annotated[str | None, Query(max_length=200, description="text to look for")] = None,
    system: Annotated[
        str | None, Query(max_length=64, description="only customers with a record from it")
    ] = None,
    country: Annotated[
        str | None, Query(max_length=2, description="only customers in it (ISO 3166 alpha-2)")
    ] = None,
    status: Annotated[
        Literal["active", "merged", "retired"], Query(description="customers in this state")
    ] = "active",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CustomerPage:
    """Golden customers whose name, email, phone, city, postcode, tax id or record ids
    contain q, in name order, then, when those are few, near matches (a typo or so
    away), best first; or whose golden id q is. Filtered by system, country and status."""
    page = customers.search(
        conn,
        actor,
        q,
        system=system,
        country=country,
        status=status,
        limit=limit,
        offset=offset,
    )
    return CustomerPage(
        items=[_summary(item) for item in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        more=page.more,
    )


@router.get("/customers/{golden_id}", response_model=Customer)
def get_customer(
    golden_id: str, actor: Annotated[Actor, needs(Permission.CUSTOMERS_READ)], conn: ConnDep
) -> dict[str, Any]:
    """One golden customer with each value's lineage and its member records."""
    return customers.get(conn, actor, golden_id)


@router.get("/systems/{system}/records/{source_id}", response_model=SourceRecord)
def get_source_record(
    system: str,
    source_id: str,
    actor: Annotated[Actor, needs(Permission.RECORDS_READ)],
    conn: ConnDep,
) -> dict[str, Any]:
    """A source record as the system sent it, every version, and its golden customer."""
    return customers.source_record(conn, actor, system, source_id)


class LinkedRecord(BaseModel):
    system: str = Field(description="the system that sent it")
    kind: str = Field(description="order, invoice, payment, ticket, contract, ...")
    source_id: str = Field(description="its id in that system")
    customer_system: str
    customer_source_id: str = Field(description="its customer's record, in customer_system")
    occurred_at: str | None = Field(description="when it happened (UTC)")
    amount: str | None = Field(description="a decimal, as text")
    currency: str | None = Field(description="ISO 4217")
    status: str | None
    title: str | None
    issues: list[dict[str, Any]] = Field(description="values flagged, not fixed")
    payload: dict[str, Any] = Field(description="the record as read")
    mapping_version: str
    load_id: int = Field(description="the load that stored it last")
    first_seen_at: str
    updated_at: str


class CustomerLinked(BaseModel):
    golden_id: str
    status: str = Field(description="active; merged (see merged_into) and retired have none")
    merged_into: str | None
    display_name: str
    kinds: dict[str, int] = Field(description="how many linked records of each kind")
    items: list[LinkedRecord] = Field(description="newest first")
    total: int
    limit: int
    offset: int


class Orphan(LinkedRecord):
    reason: Literal["unresolved", "customer_quarantined", "no_customer_record"] = Field(
        description="unresolved: the customer record is stored, not matched yet; "
        "customer_quarantined: it waits in quarantine; no_customer_record: it never came, "
        "or the reference is wrong"
    )
    hint: str


OrphanPage = Page[Orphan]


@router.get("/customers/{golden_id}/linked", response_model=CustomerLinked, tags=["linked"])
def get_customer_linked(
    golden_id: str,
    actor: Annotated[Actor, needs(Permission.CUSTOMERS_READ)],
    conn: ConnDep,
    kind: Annotated[str | None, Query(max_length=32, description="only this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """The golden customer's orders, invoices, tickets and contracts, from every member
    record, newest first; how many of each kind."""
    found = linked.of_customer(conn, actor, golden_id, kind=kind, limit=limit, offset=offset)
    page = found.pop("page")
    return found | asdict(page)


@router.get("/linked/orphans", response_model=OrphanPage, tags=["linked"])
def list_orphans(
    actor: Annotated[Actor, needs(Permission.RECORDS_READ)],
    conn: ConnDep,
    system: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Linked records no golden customer holds the customer record of, oldest first,
    with the reason; a system key sees only its own system's."""
    page = linked.orphans(conn, actor, system=system, kind=kind, limit=limit, offset=offset)
    return asdict(page)


class PushedRecord(BaseModel):
    record: str = Field(description="where in the batch: records[0], records[1], ...")
    source_id: str | None = Field(None, description="the record's id in the system")
    status: Literal["accepted", "duplicate", "rejected"] = Field(
        description="accepted: stored as a new version; duplicate: the same content as "
        "the version stored (or an earlier record of the batch); rejected: quarantined"
    )
    version: int | None = Field(None, description="the version stored, when accepted")
    reasons: list[dict[str, Any]] | None = Field(None, description="why it was rejected")
    flags: list[dict[str, Any]] | None = Field(None, description="values flagged, not fixed")


class PushOut(BaseModel):
    load_id: int
    counts: dict[str, int] = Field(description="records accepted, duplicate and rejected")
    records: list[PushedRecord]
    replayed: bool = Field(
        description="the answer kept from an earlier request with this Idempotency-Key"
    )


@router.post(
    "/systems/{system}/records",
    response_model=PushOut,
    response_model_exclude_none=True,
    tags=["intake"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["records"],
                        "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                    }
                }
            },
        }
    },
)
async def push_records(
    system: str,
    request: Request,
    actor: Annotated[Actor, needs(Permission.RECORDS_WRITE)],
    idempotency_key: Annotated[str | None, Header(max_length=push.MAX_KEY_CHARS)] = None,
) -> Response:
    """A batch of records from `system`, sent with its own API key: stored before the
    answer, which says per record whether it was accepted, a duplicate or rejected (and
    why). Gzip is accepted (Content-Encoding: gzip). A retry with the same
    Idempotency-Key and body gets the same answer and stores nothing. Over the key's rate
    limit the answer is 429, and while more records wait to be matched than the bound,
    503, both with Retry-After and nothing stored."""
    admission: Admission = request.app.state.admission
    admission.check_rate(actor.label)
    await run_in_threadpool(admission.check_backlog, workspace(request).engine)
    body = await read_body(request, push.MAX_BODY_BYTES)
    answer = await run_in_threadpool(
        push.push,
        workspace(request).engine,
        workspace(request).project,
        system,
        body,
        content_encoding=request.headers.get("content-encoding"),
        idempotency_key=idempotency_key,
        actor=actor,
    )
    # written as it is, without validating it against PushOut field by field (the model
    # documents it; a batch's answer is hundreds of records, and it holds no nulls)
    return Response(
        orjson.dumps(answer.as_dict() | {"replayed": answer.replayed}),
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if answer.replayed else None,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        push.check_body_size(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        push.check_body_size(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class RecordRef(BaseModel):
    system: str = Field(min_length=1, max_length=64)
    source_id: str = Field(min_length=1, max_length=256)


class ReviewSummary(BaseModel):
    id: int
    left: RecordRef
    right: RecordRef
    probability: float = Field(description="the match probability the model gave the pair")
    match_weight: float | None
    reason: str = Field(description="uncertain, or contradicting <column>, or a steward hold")
    status: str = Field(description="open, decided or withdrawn")
    first_seen_at: datetime
    updated_at: datetime


ReviewPage = Page[ReviewSummary]


class Review(ReviewSummary):
    explanation: dict[str, Any] = Field(
        description="each comparison's values, level and match weight; the prior; the total"
    )
    records: list[dict[str, Any]]
    decision: dict[str, Any] | None


class DecisionIn(RequestBody):
    decision: Literal["same", "different"]
    note: str = Field("", max_length=2000)


class DecisionOut(BaseModel):
    left: list[str]
    right: list[str]
    decision: str
    note: str
    takes_effect: str = "at the next resolve"


class SplitIn(RequestBody):
    records: list[RecordRef] = Field(min_length=1, max_length=1000)
    note: str = Field("", max_length=2000)


class SplitOut(BaseModel):
    golden_id: str
    split_out: list[list[str]]
    decisions: int
    takes_effect: str = "at the next resolve"


@router.get("/reviews", response_model=ReviewPage, tags=["stewardship"])
def list_reviews(
    actor: Annotated[Actor, needs(Permission.MATCHES_READ)],
    conn: ConnDep,
    status: Annotated[Literal["open", "decided", "withdrawn"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Pairs waiting for a steward, most likely matches first."""
    return asdict(steward.queue(conn, actor, status=status, limit=limit, offset=offset))


@router.get("/reviews/{review_id}", response_model=Review, tags=["stewardship"])
def get_review(
    review_id: RowId,
    actor: Annotated[Actor, needs(Permission.MATCHES_READ)],
    conn: ConnDep,
    ws: Annotated[Workspace, Depends(workspace)],
) -> dict[str, Any]:
    """One pair: both records, their customers, the explanation, any decision."""
    return steward.review(conn, actor, review_id, ws.project)


class PairExplanation(BaseModel):
    left: RecordRef
    right: RecordRef
    golden_ids: list[str | None] = Field(description="each record's customer")
    decision: dict[str, Any] | None = Field(description="a steward's decision, if any")
    explanation: dict[str, Any] = Field(
        description="each comparison's values, level, m, u and match weight; the prior; "
        "the total and the probability (the data of a waterfall chart)"
    )


@router.get("/match/explain", response_model=PairExplanation, tags=["stewardship"])
def explain_pair(
    actor: Annotated[Actor, needs(Permission.MATCHES_READ)],
    conn: ConnDep,
    ws: Annotated[Workspace, Depends(workspace)],
    left_system: Annotated[str, Query(min_length=1, max_length=64)],
    left_id: Annotated[str, Query(min_length=1, max_length=256)],
    right_system: Annotated[str, Query(min_length=1, max_length=64)],
    right_id: Annotated[str, Query(min_length=1, max_length=256)],
) -> dict[str, Any]:
    """Why the model thinks any two records are, or are not, one customer."""
    return steward.explain_pair(
        conn, actor, ws.project, (left_system, left_id), (right_system, right_id)
    )


@router.post("/reviews/{review_id}/decision", response_model=DecisionOut, tags=["stewardship"])
def decide_review(
    review_id: RowId,
    body: DecisionIn,
    actor: Annotated[Actor, needs(Permission.MATCHES_DECIDE)],
    ws: Annotated[Workspace, Depends(workspace)],
) -> dict[str, Any]:
    """Decide a pair: the same customer, or different customers. Every later resolve
    honours the decision."""
    with writing(ws.engine) as conn:
        return steward.decide(conn, actor, review_id, body.decision, body.note)


@router.post("/customers/{golden_id}/split", response_model=SplitOut, tags=["stewardship"])
def split_customer(
    golden_id: str,
    body: SplitIn,
    actor: Annotated[Actor, needs(Permission.MATCHES_DECIDE)],
    ws: Annotated[Workspace, Depends(workspace)],
) -> dict[str, Any]:
    """Split member records out of a customer; they are never merged back with the rest."""
    keys = [(ref.system, ref.source_id) for ref in body.records]
    with writing(ws.engine) as conn:
        return steward.split(conn, actor, golden_id, keys, body.note)


def _summary(item: dict[str, Any]) -> CustomerSummary:
    data = item["data"]
    return CustomerSummary(
        golden_id=item["golden_id"],
        display_name=item["display_name"],
        status=item["status"],
        merged_into=item["merged_into"],
        kind=data.get("kind"),
        email=data.get("email"),
        phone=data.get("phone"),
        city=data.get("city"),
        country=data.get("country"),
        member_count=item["member_count"],
        near=item["near"],
    )


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=int(identity.SESSION_ABSOLUTE.total_seconds()),
    )
