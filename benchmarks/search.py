"""Benchmark: customer search over a million golden customers.

    .venv/bin/python benchmarks/search.py [--customers 1000000]
    .venv/bin/python benchmarks/search.py --postgres postgresql+psycopg://127.0.0.1:5432/test

Writes `--customers` golden customers straight into a fresh store migrated up to the
revision before the search index (0016), in bulk: names, emails, phones, cities and
postcodes drawn from the demo generator's per-country vocabularies (seeded Faker pools),
one to three member records each from the demo's four systems (crosswalk rows), some
customers merged or retired. Then:

- the write path without and with the index: 20,000 golden records inserted, then their
  search text rewritten, in batches of 1,000 as a resolve writes them (rolled back);
- the index built by migration 0017 over the stored customers (timed);
- the same write path again, now keeping the index in step;
- a fixed, seeded mix of searches through `golden.customers.search` (the service the
  page and the API call, a connection from the pool per search): full names, family
  names, names typed keystroke by keystroke, emails, phones, golden ids, member record
  ids, names with one typo, filters alone (system, country, status) and with text. Each
  kind's p50/p95/p99 and max, after a warm-up round.

Writes benchmarks/results/search-<backend>-<customers>.json. `--reuse` searches a store
built before (SQLite: the file in `--data`; PostgreSQL: the schema `accord_search`).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent.parent))

from benchmarks.pipeline import fresh_schema, machine

from accord.demo import _vocab as vocab
from accord.demo.generator import _pools
from accord.golden import customers
from accord.golden.content import search_text
from accord.govern.permissions import Actor, Role
from accord.store import golden as golden_store
from accord.store import search as search_store
from accord.store.dialect import insert_rows
from accord.store.engine import make_engine, writing
from accord.store.golden import golden_id_text
from accord.store.migrate import alembic_config, upgrade
from accord.store.tables import counter, crosswalk, golden_record

RESULTS = Path(__file__).parent / "results"
SYSTEMS = ("crm", "erp", "billing", "service")
SCHEMA = "accord_search"
BATCH = 10_000
ACTOR = Actor("user", "bench", Role.VIEWER)
WRITE_PATH_ROWS = 20_000
WRITE_PATH_BATCH = 1_000  # golden records a resolve writes at a time


# ---------------------------------------------------------------- the customers


@dataclass
class Customer:
    golden_id: str
    data: dict[str, Any]
    name: str
    members: list[str]
    status: str


@dataclass
class Sample:
    """Customers kept aside while generating, for the searches to look for."""

    every: int
    customers: list[Customer] = field(default_factory=list)


def people(count: int, seed: int, first_number: int = 1) -> Iterator[Customer]:
    """`count` golden customers, the same for the same seed: persons (85%) and
    organizations, in the demo company's markets."""
    rng = random.Random(seed)  # noqa: S311  (benchmark data, not secrets)
    pools = _pools(seed)
    weights = list(vocab.COUNTRY_WEIGHTS)
    for number in range(first_number, first_number + count):
        pool = rng.choices(pools, weights)[0]
        data: dict[str, Any] = {"country": pool.country}
        family = rng.choice(pool.family)
        if rng.random() < 0.85:
            given = rng.choice(pool.male if rng.random() < 0.5 else pool.female)
            data |= {"kind": "person", "given_name": given, "family_name": family}
            local = f"{pool.slugs[given]}.{pool.slugs[family]}"
        else:
            form = rng.choice(pool.legal_forms)[0]
            data |= {"kind": "organization", "organization_name": family, "legal_form": form}
            local = f"info.{pool.slugs[family]}"
        if rng.random() < 0.3:
            local += str(rng.randrange(1, 99))
        postcode, city = rng.choice(pool.places)
        data |= {
            "email": f"{local}@{rng.choice(pool.mail_domains)}",
            "phone": f"+{pool.calling_code}{rng.randrange(10**8, 10**9)}",
            "city": city,
            "postcode": postcode,
        }
        systems = sorted(rng.sample(SYSTEMS, rng.choice((1, 1, 2, 2, 2, 3))))
        members = [f"{s}/{s.upper()}-{rng.randrange(10**7):07d}" for s in systems]
        draw = rng.random()
        status = "merged" if draw < 0.03 else "retired" if draw < 0.04 else "active"
        name = _display_name(data)
        yield Customer(golden_id_text(number), data, name, members, status)


def _display_name(data: dict[str, Any]) -> str:
    if data["kind"] == "organization":
        return f"{data['organization_name']} {data['legal_form']}"
    return f"{data['given_name']} {data['family_name']}"


def golden_rows(batch: list[Customer], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "golden_id": c.golden_id,
            "entity_type": "customer",
            "status": c.status,
            "merged_into": "C0000001" if c.status == "merged" else None,
            "display_name": c.name,
            "search_text": search_text(c.name, c.data, c.members),
            "data": c.data,
            "lineage": {},
            "member_count": len(c.members) if c.status == "active" else 0,
            "fingerprint": "0" * 64,
            "created_at": now,
            "updated_at": now,
        }
        for c in batch
    ]


def crosswalk_rows(batch: list[Customer], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "system": key.split("/", 1)[0],
            "source_id": key.split("/", 1)[1],
            "golden_id": c.golden_id,
            "rule": "bench",
            "score": None,
            "evidence": {},
            "decided_by": "bench",
            "decided_at": now,
            "previous_golden_id": None,
        }
        for c in batch
        if c.status == "active"
        for key in c.members
    ]


def fill(engine: Engine, count: int, seed: int, sample: Sample) -> float:
    """Write `count` customers in bulk; keep every `sample.every`-th aside. Seconds."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    batch: list[Customer] = []
    seen_sources: set[str] = set()

    def flush() -> None:
        with writing(engine) as conn:
            insert_rows(conn, golden_record, golden_rows(batch, now))
            rows = [r for r in crosswalk_rows(batch, now) if _first(seen_sources, r)]
            insert_rows(conn, crosswalk, rows)
        batch.clear()

    for index, customer in enumerate(people(count, seed)):
        batch.append(customer)
        if index % sample.every == 0:
            sample.customers.append(customer)
        if len(batch) == BATCH:
            flush()
            print(f"\r  {index + 1:,} customers", end="", flush=True)
    if batch:
        flush()
    with writing(engine) as conn:
        conn.execute(counter.update().where(counter.c.name == "golden_id").values(value=count))
    print()
    return time.perf_counter() - started


def _first(seen: set[str], row: dict[str, Any]) -> bool:
    key = f"{row['system']}/{row['source_id']}"
    if key in seen:
        return False
    seen.add(key)
    return True


def write_path(engine: Engine, count: int, seed: int, *, indexed: bool) -> dict[str, float]:
    """Milliseconds per 1,000 golden records to insert `WRITE_PATH_ROWS` more, then to
    rewrite them with another search text, through `store.golden` as a resolve writes
    them, a batch of 1,000 at a time, then again with the same search text (as most of
    a resolve's rewrites), in one transaction rolled back. Not `indexed`:
    with the search index's upkeep (`store.search.index_new`, `reindex`) left out, as
    before migration 0017."""
    if not indexed:
        with _without_index_upkeep():
            return write_path(engine, count, seed, indexed=True)
    now = datetime.now(UTC)
    extra = list(people(WRITE_PATH_ROWS, seed + 1, first_number=count + 1))
    fields = ("golden_id", "entity_type", "display_name", "search_text", "data", "lineage")
    fields += ("member_count", "fingerprint")
    rows = [{k: r[k] for k in fields} for r in golden_rows(extra, now)]
    changed = [r | {"search_text": r["search_text"] + " changed"} for r in rows]
    with writing(engine) as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), WRITE_PATH_BATCH):
            golden_store.insert_golden(conn, rows[start : start + WRITE_PATH_BATCH])
        inserted = time.perf_counter()
        for start in range(0, len(changed), WRITE_PATH_BATCH):
            golden_store.update_golden(conn, changed[start : start + WRITE_PATH_BATCH])
        updated = time.perf_counter()
        for start in range(0, len(changed), WRITE_PATH_BATCH):
            golden_store.update_golden(conn, changed[start : start + WRITE_PATH_BATCH])
        rewritten = time.perf_counter()
        conn.rollback()
    per_thousand = len(rows) / 1000
    return {
        "insert_ms_per_1000": round((inserted - started) * 1000 / per_thousand, 1),
        "update_ms_per_1000": round((updated - inserted) * 1000 / per_thousand, 1),
        "update_same_text_ms_per_1000": round((rewritten - updated) * 1000 / per_thousand, 1),
    }


@contextmanager
def _without_index_upkeep() -> Iterator[None]:
    kept = search_store.index_new, search_store.reindex
    search_store.index_new = search_store.reindex = lambda conn, rows: None
    try:
        yield
    finally:
        search_store.index_new, search_store.reindex = kept


# ---------------------------------------------------------------- the searches


@dataclass(frozen=True)
class Search:
    kind: str
    text: str = ""
    system: str | None = None
    country: str | None = None
    status: str = "active"
    meant: str | None = None  # for a typo: the name it was meant to find


def one_typo(word: str, rng: random.Random) -> str:
    """`word` with one letter swapped with its neighbour, dropped or replaced."""
    at = rng.randrange(1, len(word) - 1)
    edit = rng.choice(("swap", "drop", "replace"))
    if edit == "swap":
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if edit == "drop":
        return word[:at] + word[at + 1 :]
    letter = rng.choice([c for c in "aeiourstnl" if c != word[at]])
    return word[:at] + letter + word[at + 1 :]


def searches(sample: Sample, seed: int, per_kind: int) -> list[Search]:
    """The fixed mix: `per_kind` searches of each kind (prefixes: every keystroke of
    `per_kind // 10` names), from the sampled customers."""
    rng = random.Random(seed + 7)  # noqa: S311
    chosen = rng.sample(sample.customers, min(per_kind, len(sample.customers)))
    people_ = [c for c in chosen if c.data["kind"] == "person"]
    mix: list[Search] = []
    for c in chosen:
        mix.append(Search("full name", c.name))
        mix.append(Search("email", c.data["email"]))
        mix.append(Search("phone", c.data["phone"]))
        mix.append(Search("golden id", c.golden_id))
        mix.append(Search("member id", c.members[0].split("/", 1)[1]))
    for c in people_:
        mix.append(Search("family name", c.data["family_name"]))
        if len(c.data["family_name"]) >= 5:
            typo = one_typo(c.data["family_name"], rng)
            mix.append(Search("one typo", typo, meant=c.data["family_name"]))
    for c in people_[: max(1, per_kind // 10)]:
        typed = c.name
        mix.extend(Search("keystrokes", typed[:n]) for n in range(1, len(typed) + 1))
    for c in chosen[: max(1, per_kind // 4)]:
        country = c.data["country"]
        system = c.members[0].split("/", 1)[0]
        mix.append(Search("country filter", country=country))
        mix.append(Search("system filter", system=system))
        mix.append(Search("status filter", status=rng.choice(("merged", "retired"))))
        family = c.data.get("family_name") or c.data["organization_name"]
        mix.append(Search("text and filters", family, system=system, country=country))
    return mix


def run_searches(engine: Engine, mix: list[Search]) -> tuple[dict[str, list[float]], float]:
    """Milliseconds per search, by kind; and the share of typo searches whose first
    page holds a customer of the name meant."""
    timings: dict[str, list[float]] = defaultdict(list)
    meant = found = 0
    for search in mix:
        started = time.perf_counter()
        with engine.connect() as conn:
            page = customers.search(
                conn,
                ACTOR,
                search.text,
                system=search.system,
                country=search.country,
                status=search.status,
            )
        timings[search.kind].append((time.perf_counter() - started) * 1000)
        if search.meant:
            meant += 1
            found += any(search.meant in item["display_name"] for item in page.items)
    return timings, found / max(1, meant)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(p: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 1)) - 1))]

    return {
        "searches": len(ordered),
        "p50_ms": round(rank(0.50), 2),
        "p95_ms": round(rank(0.95), 2),
        "p99_ms": round(rank(0.99), 2),
        "max_ms": round(ordered[-1], 2),
    }


# ---------------------------------------------------------------- the run


def store_before_index(args: argparse.Namespace, data: Path) -> Engine:
    if args.postgres:
        engine = make_engine(fresh_schema(args.postgres, SCHEMA))
    else:
        path = data / f"search-{args.customers}.sqlite3"
        path.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
    command.upgrade(alembic_config(engine), "0016")
    return engine


def reused_store(args: argparse.Namespace, data: Path) -> Engine:
    if args.postgres:
        sep = "&" if "?" in args.postgres else "?"
        return make_engine(f"{args.postgres}{sep}options=-csearch_path%3D{SCHEMA}")
    return make_engine(f"sqlite:///{data / f'search-{args.customers}.sqlite3'}")


def timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def build(engine: Engine, args: argparse.Namespace, sample: Sample) -> dict[str, Any]:
    """Fill the store, time the write path before and after the index and the index's
    build: the figures."""
    result: dict[str, Any] = {}
    print(f"writing {args.customers:,} customers")
    result["fill_seconds"] = round(fill(engine, args.customers, args.seed, sample), 1)
    if args.postgres:  # as autovacuum would have by now: the planner needs the figures
        with writing(engine) as conn:
            conn.execute(text("ANALYZE golden_record"))
            conn.execute(text("ANALYZE crosswalk"))
    result["write_path_without_index"] = write_path(
        engine, args.customers, args.seed, indexed=False
    )
    print("write path without the index:", result["write_path_without_index"])
    result["index_build_seconds"] = round(timed(lambda: upgrade(engine)), 1)
    print("index built (migration 0017), seconds:", result["index_build_seconds"])
    result["write_path_with_index"] = write_path(engine, args.customers, args.seed, indexed=True)
    print("write path with the index:", result["write_path_with_index"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--postgres", help="a PostgreSQL URL; SQLite otherwise")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "accord-search")
    parser.add_argument("--reuse", action="store_true", help="search a store built before")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if args.postgres else "sqlite"
    sample = Sample(every=max(1, args.customers // 5000))
    out = RESULTS / f"search-{backend}-{args.customers}.json"
    result: dict[str, Any] = {"benchmark": "search", "backend": backend}
    result["customers"] = args.customers
    if args.reuse:  # the build's figures stay those of the run that built the store
        if out.exists():
            built = json.loads(out.read_text())
            result |= {k: v for k, v in built.items() if k.startswith(("fill", "index", "write"))}
            result["built_at_commit"] = built.get("commit")
        engine = reused_store(args, args.data)
        sample.customers = [
            c for i, c in enumerate(people(args.customers, args.seed)) if i % sample.every == 0
        ]
    else:
        engine = store_before_index(args, args.data)
        result |= build(engine, args, sample)
    mix = searches(sample, args.seed, args.per_kind)
    print(f"{len(mix):,} searches: warm-up")
    run_searches(engine, mix)
    print("measuring")
    timings, typos_found = run_searches(engine, mix)
    result["searches"] = {kind: percentiles(values) for kind, values in timings.items()}
    result["one_typo_meant_name_on_first_page"] = round(typos_found, 3)
    result["all_searches"] = percentiles([v for values in timings.values() for v in values])
    result["machine"] = machine()
    result["load_average"] = list(_load_average())
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result["date"] = datetime.now(UTC).date().isoformat()
    engine.dispose()
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["searches"], indent=2))
    print(f"wrote {out}")


def _load_average() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


if __name__ == "__main__":
    main()
