"""Match review: the queue of doubtful pairs, and one pair at a time, side by side with
the explanation as a waterfall chart; deciding it (the same customer, or not) or skipping
it leads straight to the next pair. Pairs skipped in a sitting travel in the address
(`skipped=3,9`), so a skipped pair does not come back until the steward starts again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from accord.errors import AccordError, InputRejected, NotFound
from accord.govern.permissions import Actor, Permission
from accord.model.customer import CUSTOMER_FIELDS
from accord.steward import service as steward
from accord.steward.waterfall import Waterfall, waterfall
from accord.store.engine import writing
from accord.web.auth import ConnDep, needs, workspace
from accord.web.pages.common import PAGE_SIZE, render
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, needs(Permission.MATCHES_READ)]
Decider = Annotated[Actor, needs(Permission.MATCHES_DECIDE)]
FIELD_ORDER = [f.name for f in CUSTOMER_FIELDS]
VERDICTS = {"same": "same", "different": "different", "skip": None}
MAX_PAGE = 100_000


@router.get("/reviews")
def review_queue(
    request: Request,
    actor: Reader,
    conn: ConnDep,
    page: str = "1",
    skipped: str = "",
    last: str = "",
) -> HTMLResponse:
    number = _whole(page, "page", 1, MAX_PAGE)
    passed = _skipped(skipped)
    queue = steward.queue(conn, actor, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    context = {
        "actor": actor,
        "queue": queue,
        "page": number,
        "page_size": PAGE_SIZE,
        "skipped": passed,
        "skipped_text": _skipped_text(passed),
        "last": _last_decision(conn, actor, last),
    }
    return render(request, "reviews.html", context)


@router.get("/reviews/next")
def next_pair(actor: Reader, conn: ConnDep, skipped: str = "", last: str = "") -> Response:
    """The first open pair not skipped in this sitting; the queue when none is left."""
    passed = _skipped(skipped)
    found = steward.next_open(conn, actor, passed)
    query = {"skipped": _skipped_text(passed), "last": last}
    query = {k: v for k, v in query.items() if v}
    target = "/reviews" if found is None else f"/reviews/{found}"
    return RedirectResponse(f"{target}?{urlencode(query)}" if query else target, status_code=303)


@router.get("/reviews/{review_id}")
def review_page(
    request: Request,
    review_id: str,
    actor: Reader,
    conn: ConnDep,
    ws: Annotated[Workspace, Depends(workspace)],
    skipped: str = "",
    last: str = "",
) -> HTMLResponse:
    item = steward.review(conn, actor, _review_id(review_id), ws.project)
    passed = _skipped(skipped)
    records = item["records"]
    context = {
        "actor": actor,
        "item": item,
        "fields": side_by_side(records[0]["data"] or {}, records[1]["data"] or {}),
        "chart": Chart.of(waterfall(item["explanation"])) if item["explanation"] else None,
        "skipped": passed,
        "skipped_text": _skipped_text(passed),
        "next_skipped": _skipped_text(passed | {item["id"]}),
        "last": _last_decision(conn, actor, last),
        "remaining": steward.open_count(conn, actor),
    }
    return render(request, "review.html", context)


@router.post("/reviews/{review_id}/decision")
def decide(
    request: Request,
    review_id: str,
    actor: Decider,
    ws: Annotated[Workspace, Depends(workspace)],
    decision: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=10_000)] = "",  # the service says what is too long
    skipped: Annotated[str, Form(max_length=8000)] = "",
) -> RedirectResponse:
    """Decide the pair (or skip it) and go on to the next one."""
    number = _review_id(review_id)
    passed = _skipped(skipped)
    if decision not in VERDICTS:
        raise InputRejected("choose Same customer, Not the same, or Skip")
    verdict = VERDICTS[decision]
    if verdict is None:
        passed.add(number)
    else:
        with writing(ws.engine) as conn:
            steward.decide(conn, actor, number, verdict, note.strip(), now_in=ws.project)
    query = {"skipped": _skipped_text(passed), "last": "" if verdict is None else str(number)}
    query = {k: v for k, v in query.items() if v}
    return RedirectResponse(
        "/reviews/next" + (f"?{urlencode(query)}" if query else ""), status_code=303
    )


# ---- what the templates show


@dataclass(frozen=True)
class FieldRow:
    name: str
    left: Any
    right: Any

    @property
    def state(self) -> str:
        """same, differs, or one-sided (only one record has a value)."""
        if self.left is None or self.right is None:
            return "one-sided"
        return "same" if self.left == self.right else "differs"


def side_by_side(left: dict[str, Any], right: dict[str, Any]) -> list[FieldRow]:
    """The fields either record has, in the canonical model's order, then any others."""
    names = [n for n in FIELD_ORDER if n in left or n in right]
    names += sorted((left.keys() | right.keys()) - set(FIELD_ORDER))
    return [FieldRow(n, left.get(n), right.get(n)) for n in names]


@dataclass(frozen=True)
class Bar:
    label: str
    detail: str
    note: str
    x: float
    width: float
    y: float
    tone: str  # up, down, none, prior, total
    value: float
    value_x: float
    end_x: float  # where the running total stands after the step


@dataclass(frozen=True)
class Chart:
    """A waterfall as SVG geometry: a row per step, bars from the running total."""

    bars: list[Bar]
    width: int
    height: int
    zero_x: float
    plot_left: int
    plot_right: int
    waterfall: Waterfall
    ticks: list[tuple[float, str]]

    ROW = 30
    LABEL_WIDTH = 190
    PLOT_WIDTH = 520
    VALUE_WIDTH = 70

    @classmethod
    def of(cls, fall: Waterfall) -> Chart:
        low, high = fall.extent
        span = (high - low) or 1.0
        left = cls.LABEL_WIDTH

        def x_of(value: float) -> float:
            return round(left + (value - low) / span * cls.PLOT_WIDTH, 1)

        bars = [cls._bar("prior", "", "", 0.0, fall.prior_weight, "prior", 0, x_of)]
        for i, step in enumerate(fall.steps, start=1):
            tone = "none" if step.counted == 0 else ("up" if step.counted > 0 else "down")
            detail = f"{step.level}: {step.left if step.left is not None else '—'} / "
            detail += f"{step.right if step.right is not None else '—'}"
            bar = cls._bar(step.label, detail, step.note, step.start, step.end, tone, i, x_of)
            bars.append(bar)
        bars.append(cls._bar("total", "", "", 0.0, fall.total, "total", len(bars), x_of))
        ticks = [(x_of(v), f"{v:+.0f}") for v in _ticks(low, high)]
        return cls(
            bars=bars,
            width=left + cls.PLOT_WIDTH + cls.VALUE_WIDTH,
            height=(len(bars) + 1) * cls.ROW + 10,
            zero_x=x_of(0.0),
            plot_left=left,
            plot_right=left + cls.PLOT_WIDTH,
            waterfall=fall,
            ticks=ticks,
        )

    @classmethod
    def _bar(
        cls,
        label: str,
        detail: str,
        note: str,
        start: float,
        end: float,
        tone: str,
        row: int,
        x_of: Any,
    ) -> Bar:
        a, b = sorted((x_of(start), x_of(end)))
        return Bar(
            label=label,
            detail=detail,
            note=note,
            x=a,
            width=max(round(b - a, 1), 1.0),
            y=row * cls.ROW + 8,
            tone=tone,
            value=round(end - start, 2),
            value_x=cls.LABEL_WIDTH + cls.PLOT_WIDTH + 8,
            end_x=x_of(end),
        )


def _ticks(low: float, high: float) -> list[float]:
    """Round grid values across the chart: every 5, 10 or 20 match weight units."""
    span = high - low
    step = 5 if span <= 40 else 10 if span <= 80 else 20
    first = int(low // step) * step + (step if low % step else 0)
    return [float(v) for v in range(first, int(high) + 1, step)]


# ---- reading the address


def _review_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= steward.MAX_ID:
        raise NotFound(f"no review {text!r}", hint="open the review queue for the ids")
    return int(text)


def _whole(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise InputRejected(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _skipped(text: str) -> set[int]:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) > steward.MAX_SKIPPED:
        raise InputRejected(f"at most {steward.MAX_SKIPPED} pairs can be skipped in one sitting")
    return {_whole(p.strip(), "a skipped review id", 1, steward.MAX_ID) for p in parts}


def _skipped_text(skipped: set[int]) -> str:
    return ",".join(str(i) for i in sorted(skipped))


def _last_decision(conn: Connection, actor: Actor, last: str) -> dict[str, Any] | None:
    """The pair decided just before, with where its records are now: what the page
    confirms after a decision. Nothing for an id that does not name a decided pair."""
    if not last.isdigit():
        return None
    try:
        item = steward.review(conn, actor, int(last))
    except AccordError:
        return None
    if item["decision"] is None:
        return None
    golden = [(r["golden"] or {}).get("golden_id") for r in item["records"]]
    together = golden[0] is not None and golden[0] == golden[1]
    return {"item": item, "golden": golden, "together": together}
