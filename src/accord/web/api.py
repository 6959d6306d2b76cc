"""The JSON API, version 1. Every route but sign-in needs an authenticated actor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from accord.golden import customers
from accord.govern import identity
from accord.store.engine import writing
from accord.web.auth import SESSION_COOKIE, ActorDep, ConnDep, end_session, workspace
from accord.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["api"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class Identity(BaseModel):
    kind: str
    name: str
    role: str


class CustomerSummary(BaseModel):
    golden_id: str
    display_name: str
    kind: str | None
    email: str | None
    phone: str | None
    city: str | None
    country: str | None
    member_count: int


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    total: int
    limit: int
    offset: int


class FieldLineage(BaseModel):
    value: Any
    system: str
    source_id: str
    source_record_id: int
    canonical_record_id: int
    mapping_version: str
    observed_at: str
    rule: str = Field(description="what picked this value: source_priority, most_recent, ...")
    candidates: int
    alternatives: list[dict[str, Any]]


class Member(BaseModel):
    system: str
    source_id: str
    version: int
    rule: str = Field(description="the match rule that linked this record")
    evidence: dict[str, Any]
    decided_at: datetime
    mapping_version: str
    data: dict[str, Any]


class Customer(BaseModel):
    golden_id: str
    status: str = Field(description="active, merged (see merged_into) or retired")
    merged_into: str | None
    display_name: str
    data: dict[str, Any]
    lineage: dict[str, FieldLineage]
    members: list[Member]
    created_at: datetime
    updated_at: datetime


class SourceRecord(BaseModel):
    system: str
    source_id: str
    golden: dict[str, Any] | None
    versions: list[dict[str, Any]]


@router.post("/session", response_model=Identity, tags=["session"])
def sign_in(
    credentials: Credentials,
    response: Response,
    ws: Annotated[Workspace, Depends(workspace)],
) -> Identity:
    """Sign in with a username and password; sets the session cookie."""
    with writing(ws.engine) as conn:
        actor, session = identity.sign_in(conn, credentials.username, credentials.password)
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
    actor: ActorDep,
    conn: ConnDep,
    q: Annotated[str | None, Query(max_length=200, description="text to look for")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CustomerPage:
    """Golden customers, optionally those whose name, email, phone, city or ids contain q."""
    page = customers.search(conn, actor, q, limit=limit, offset=offset)
    return CustomerPage(
        items=[_summary(item) for item in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/customers/{golden_id}", response_model=Customer)
def get_customer(golden_id: str, actor: ActorDep, conn: ConnDep) -> dict[str, Any]:
    """One golden customer with each value's lineage and its member records."""
    return customers.get(conn, actor, golden_id)


@router.get("/systems/{system}/records/{source_id}", response_model=SourceRecord)
def get_source_record(
    system: str, source_id: str, actor: ActorDep, conn: ConnDep
) -> dict[str, Any]:
    """A source record as the system sent it, every version, and its golden customer."""
    return customers.source_record(conn, actor, system, source_id)


def _summary(item: dict[str, Any]) -> CustomerSummary:
    data = item["data"]
    return CustomerSummary(
        golden_id=item["golden_id"],
        display_name=item["display_name"],
        kind=data.get("kind"),
        email=data.get("email"),
        phone=data.get("phone"),
        city=data.get("city"),
        country=data.get("country"),
        member_count=item["member_count"],
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
