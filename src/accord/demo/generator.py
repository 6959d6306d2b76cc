"""The deterministic synthetic "demo company": four source systems full of customers.

`generate(out_dir, seed=..., customers=...)` writes what a mid-sized company's CRM, ERP,
billing and service desk would export about the same real-world customers, together with
the answer key (which rows are the same party) that a matcher is evaluated against:

    crm.csv                    CRM accounts, contacts and leads (comma CSV)
    erp_customers.csv          ERP customer master, SAP style (semicolon CSV)
    erp_orders.csv             ERP orders per customer (semicolon CSV)
    billing_accounts.jsonl.gz  billing accounts (gzip JSON lines)
    billing_invoices.jsonl.gz  invoices per billing account (gzip JSON lines)
    service_requesters.csv     service desk requesters, persons only (comma CSV)
    service_tickets.csv        tickets per requester (comma CSV)
    truth.csv                  system,source_id,party_id,kind for every party row
    truth_relationships.csv    from_party_id,to_party_id,relationship
    manifest.json              seed, customers, generator version, rows per file

Records of one party differ between systems the way real ones do: typos, nicknames,
swapped name order, missing values, old addresses, phone and email spellings, legal-form
and VAT spellings. True non-duplicates that look alike are there on purpose: households,
namesakes in the same city, shared company mailboxes, parent and subsidiary companies.
A few rows are malformed on purpose (an empty CRM Id, impossible birth dates).

It streams: one household or one company (with its contacts) at a time, rows written as
they are made, in small batches (party rows pass through a fixed-size shuffle buffer per
file, so that the duplicates of one party are not neighbours in the file). Memory does
not grow with the number of customers. Name, street and place pools are drawn once from
seeded Faker instances; everything else comes from one `random.Random(seed)`, so the same
seed and customer count give byte-identical files. (What was added later draws from
streams of its own, seeded by the seed and the row, so that the main stream, and every
value drawn from it, stays as it was: the parent's VAT id in the ERP.)

This is synthetic test data: `random` is used on purpose, never for anything secret.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
import random
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Final, TypeVar

import phonenumbers
from faker import Faker

from accord.demo import _vocab as vocab

__all__ = ["GENERATOR_VERSION", "GenerationSummary", "generate"]

_T = TypeVar("_T")

GENERATOR_VERSION: Final = "accord-demo-generator/1"

# The day the export was taken. Every date in the data lies before it.
_AS_OF: Final = date(2025, 6, 30).toordinal()
_DAY_1940: Final = date(1940, 1, 1).toordinal()
_DAY_2005: Final = date(2005, 12, 31).toordinal()
_ADULT_DAYS: Final = 18 * 365 + 5
_PROGRESS_EVERY: Final = 1000
_SHUFFLE_BUFFER: Final = 512
_WRITE_BATCH: Final = 256

# File names and headers (the rest of Accord and its mappings are written against these).
CRM_FILE: Final = "crm.csv"
ERP_CUSTOMERS_FILE: Final = "erp_customers.csv"
ERP_ORDERS_FILE: Final = "erp_orders.csv"
BILLING_ACCOUNTS_FILE: Final = "billing_accounts.jsonl.gz"
BILLING_INVOICES_FILE: Final = "billing_invoices.jsonl.gz"
SERVICE_REQUESTERS_FILE: Final = "service_requesters.csv"
SERVICE_TICKETS_FILE: Final = "service_tickets.csv"
TRUTH_FILE: Final = "truth.csv"
TRUTH_RELATIONSHIPS_FILE: Final = "truth_relationships.csv"
MANIFEST_FILE: Final = "manifest.json"

CRM_COLUMNS: Final = (
    "Id", "RecordType", "FirstName", "LastName", "AccountName", "AccountId", "Email",
    "Phone", "Street", "PostalCode", "City", "Country", "Status", "BirthDate", "VatNumber",
    "LastModified", "ParentId",
)  # fmt: skip
# KTOKD is SAP's account group: PERS for a person, FIRM for an organization.
# ZZ_PARENT_STCEG is a field of the company's own (SAP's ZZ prefix): the VAT id of a
# customer's group parent.
ERP_CUSTOMER_COLUMNS: Final = (
    "KUNNR", "KTOKD", "NAME1", "NAME2", "STRAS", "PSTLZ", "ORT01", "LAND1", "TELF1",
    "SMTP_ADDR", "STCEG", "GEBDAT", "ERDAT", "ZZ_PARENT_STCEG",
)  # fmt: skip
ERP_ORDER_COLUMNS: Final = ("VBELN", "KUNNR", "ERDAT", "NETWR", "WAERK")
SERVICE_REQUESTER_COLUMNS: Final = (
    "requester_id", "name", "email", "phone", "organization", "created_at",
)  # fmt: skip
SERVICE_TICKET_COLUMNS: Final = (
    "ticket_id", "requester_id", "opened_at", "subject", "priority", "status",
)  # fmt: skip
TRUTH_COLUMNS: Final = ("system", "source_id", "party_id", "kind")
TRUTH_RELATIONSHIP_COLUMNS: Final = ("from_party_id", "to_party_id", "relationship")

# Lifecycle of a top-level customer (consumer or organization), cumulative weights.
_LEAD, _PROSPECT, _CUSTOMER, _FORMER = 0, 1, 2, 3
_LIFECYCLE_CUM: Final = (0.10, 0.20, 0.90, 1.0)
_CRM_STATUS: Final = ("Lead", "Prospect", "Customer", "Former Customer")
# Chance to be an ERP customer / to have a billing account, by lifecycle.
_IN_ERP: Final = (0.0, 0.05, 0.92, 0.75)
_IN_BILLING: Final = (0.10, 0.50, 0.93, 0.85)
_BILLING_STATUS: Final = ("trial", "trial", "active", "cancelled")

_P_ORGANIZATION_UNIT: Final = 0.30  # a top-level customer is a company (else a household)
_P_HOUSEHOLD: Final = 0.065  # a consumer unit is a 2-4 person household (~15% of consumers)
_HOUSEHOLD_SIZE_CUM: Final = (0.60, 0.85, 1.0)  # 2, 3, 4 members
_CONTACTS_CUM: Final = (0.55, 0.85, 1.0)  # 1, 2, 3 contact persons per organization
_P_SUBSIDIARY: Final = 0.10
_P_PARENT_VAT_IN_ERP: Final = 0.7  # a subsidiary's ERP row names its parent's VAT id
_P_NAMESAKE: Final = 0.03  # same full name and city as a recent, different consumer
_P_MOVED: Final = 0.15  # has an old address some older systems still carry

_P_IN_CRM: Final = 0.93
_P_IN_SERVICE: Final = 0.62
_P_DUP_CRM: Final = 0.08
_P_DUP_ERP: Final = 0.05
_P_DUP_BILLING: Final = 0.05
_P_DUP_SERVICE: Final = 0.20

# Phone spellings.
_E164, _INTL, _NATIONAL, _IDD, _TRUNK = 0, 1, 2, 3, 4
_CRM_PHONE_STYLES: Final = (_E164, _INTL, _INTL, _NATIONAL, _NATIONAL, _IDD, _TRUNK, _INTL)
_ERP_PHONE_STYLES: Final = (_NATIONAL, _NATIONAL, _NATIONAL, _INTL, _IDD, _IDD, _TRUNK)
_BILLING_PHONE_STYLES: Final = (_E164, _E164, _E164, _E164, _INTL)
_SERVICE_PHONE_STYLES: Final = (_E164, _INTL)

# ID scrambling: ids are a bijection of a running number, so that the duplicates of one
# party do not get neighbouring ids. The multiplier is coprime to every modulus used.
_ID_MULTIPLIER: Final = 7_777_777_777


_JSON = json.JSONEncoder(ensure_ascii=False)


class _DayTable:
    """Pre-formatted recent days (most dates in the data), times of day and seconds."""

    def __init__(self, first: int, last: int) -> None:
        days = [date.fromordinal(o) for o in range(first, last + 1)]
        self.iso = tuple(d.isoformat() for d in days)
        self.german = tuple(f"{d.day:02d}.{d.month:02d}.{d.year}" for d in days)
        self.minutes = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
        self.seconds = tuple(f"{s:02d}" for s in range(60))


_RECENT_FIRST: Final = date(2005, 1, 1).toordinal()
_RECENT_DAYS: Final = _DayTable(_RECENT_FIRST, _AS_OF)


def _scramble(n: int, modulus: int, offset: int) -> int:
    """The n-th id: a bijection of [0, modulus) while n is below it, distinct after."""
    if n >= modulus:
        return modulus + n  # beyond the id space: longer ids, still unique
    return (n * _ID_MULTIPLIER + offset) % modulus


@dataclass(frozen=True)
class GenerationSummary:
    customers: int  # real parties generated (persons + organizations)
    files: dict[str, int]  # file name (relative to out dir) -> data rows written
    truth_rows: int


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    customers: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Write the demo company's source files and answer key into `out_dir`.

    progress(n) is called with the number of customers generated since the last call,
    every ~1000 customers (and once at the end for the rest).
    """
    if customers < 0:
        raise ValueError(f"customers must be 0 or more, not {customers}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = _pools(seed)
    rng = random.Random(seed)  # noqa: S311 - synthetic test data, not security
    with _Outputs(out_dir, rng) as outputs:
        generator = _Generator(rng, pools, outputs, seed)
        generator.run(customers, progress)
    files = outputs.row_counts()
    truth_rows = files[TRUTH_FILE]
    manifest = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "customers": customers,
        "as_of": date.fromordinal(_AS_OF).isoformat(),
        "files": files,
        "truth_rows": truth_rows,
    }
    (out_dir / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return GenerationSummary(customers=customers, files=files, truth_rows=truth_rows)


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class _CountryPool:
    country: str
    language: str
    calling_code: str
    male: tuple[str, ...]
    female: tuple[str, ...]
    family: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[tuple[str, str], ...]  # (postcode, city)
    mail_domains: tuple[str, ...]
    fixed_ranges: tuple[_PhoneRange, ...]
    mobile_ranges: tuple[_PhoneRange, ...]
    fixed_plan: _NumberPlan
    mobile_plan: _NumberPlan
    legal_cum: tuple[float, ...]
    legal_forms: tuple[tuple[str, tuple[str, ...]], ...]
    slugs: dict[str, str]  # pool name -> its email form, worked out once

    def slug(self, name: str) -> str:
        return self.slugs.get(name) or _slug(name) or "x"


@dataclass(frozen=True)
class _NumberPlan:
    """The country's own phonenumbers metadata for one number type, compiled once.

    `valid(nsn)` holds when the national significant number matches the country's general
    description and the type's description (possible lengths and pattern), which makes
    it a valid number for the country per `phonenumbers.is_valid_number_for_region`;
    it costs two regex matches instead of phonenumbers' walk through every number type.
    """

    general: re.Pattern[str]
    general_lengths: tuple[int, ...]
    pattern: re.Pattern[str]
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, country: str, mobile: bool) -> _NumberPlan:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(country)
        if metadata is None:  # pragma: no cover - every country we use has metadata
            raise ValueError(f"no phone metadata for {country}")
        general = metadata.general_desc
        desc = metadata.mobile if mobile else metadata.fixed_line
        if general is None or desc is None:  # pragma: no cover
            raise ValueError(f"no phone number description for {country}")
        return cls(
            re.compile(general.national_number_pattern or "(?!)"),
            tuple(general.possible_length),
            re.compile(desc.national_number_pattern or "(?!)"),
            tuple(desc.possible_length),
        )

    def valid(self, nsn: str) -> bool:
        n = len(nsn)
        if self.general_lengths and n not in self.general_lengths:
            return False
        if self.lengths and n not in self.lengths:
            return False
        return bool(self.general.fullmatch(nsn) and self.pattern.fullmatch(nsn))


@dataclass(frozen=True)
class _PhoneRange:
    """Numbers `prefix` + random digits, `length` digits in all (national significant).

    `groups` is how phonenumbers groups such numbers in international format, as
    (digits, separator) pairs after the country code, when every sampled number of the
    range formats the same way; then numbers are formatted without phonenumbers.
    """

    prefix: str
    length: int
    groups: tuple[tuple[int, str], ...] | None


_GROUP_RE: Final = re.compile(r"(\d+)(\D*)")


def _phone_ranges(country: str, plan: _NumberPlan, *, mobile: bool) -> tuple[_PhoneRange, ...]:
    entries = list(vocab.PHONE_PREFIXES[country]["mobile" if mobile else "fixed"])
    kind = (
        phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    example = phonenumbers.example_number_for_type(country, kind)
    if example is not None:
        nsn = str(example.national_number)
        # The example number with its trailing digits varied.
        entries.append((nsn[: max(1, len(nsn) - 6)], len(nsn)))
    code = phonenumbers.country_code_for_region(country)
    sampler = random.Random(f"accord-demo-phones:{country}:{mobile}")  # noqa: S311
    ranges = []
    for prefix, length in entries:
        shapes: set[tuple[tuple[int, str], ...]] = set()
        found = 0
        for _ in range(200):
            nsn = prefix + "".join(
                sampler.choice("0123456789") for _ in range(length - len(prefix))
            )
            if not plan.valid(nsn):
                continue
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            national = text.split(" ", 1)[1]
            shapes.add(tuple((len(d), sep) for d, sep in _GROUP_RE.findall(national)))
            found += 1
            if found == 25:
                break
        if found:
            ranges.append(_PhoneRange(prefix, length, shapes.pop() if len(shapes) == 1 else None))
    return tuple(ranges)


_GIVEN_POOL = 400
_FAMILY_POOL = 1500
_STREET_POOL = 700
_PLACE_POOL = 600
_DOMAIN_POOL = 40

# Nickname lookup per language: formal given name -> nicknames.
_NICKNAMES: Final[dict[str, dict[str, tuple[str, ...]]]] = {}
for _lang, _gender, _formal, _nicks in vocab.NICKNAMES:
    _NICKNAMES.setdefault(_lang, {})[_formal] = _nicks


@lru_cache(maxsize=2)
def _pools(seed: int) -> tuple[_CountryPool, ...]:
    """Name, street and place pools per country, drawn once from seeded Faker."""
    pools = []
    for country in vocab.COUNTRIES:
        fake = Faker(vocab.LOCALES[country])
        fake.seed_instance(f"accord-demo:{seed}:{country}")
        language = vocab.LANGUAGE[country]
        male = [fake.first_name_male() for _ in range(_GIVEN_POOL)]
        female = [fake.first_name_female() for _ in range(_GIVEN_POOL)]
        for lang, gender, formal, _nicks in vocab.NICKNAMES:
            if lang == language:
                (male if gender == "M" else female).extend([formal] * 3)
        family = [fake.last_name() for _ in range(_FAMILY_POOL)]
        streets = [fake.street_name() for _ in range(_STREET_POOL)]
        places = [(fake.postcode(), fake.city()) for _ in range(_PLACE_POOL)]
        domains = [fake.free_email_domain() for _ in range(_DOMAIN_POOL)]
        domains.extend(vocab.GLOBAL_MAIL_DOMAINS)
        fixed_plan = _NumberPlan.of(country, mobile=False)
        mobile_plan = _NumberPlan.of(country, mobile=True)
        weights = [w for w, _, _ in vocab.LEGAL_FORMS[country]]
        total = sum(weights)
        pools.append(
            _CountryPool(
                country=country,
                language=language,
                calling_code=str(phonenumbers.country_code_for_region(country)),
                male=tuple(male),
                female=tuple(female),
                family=tuple(family),
                streets=tuple(streets),
                places=tuple(places),
                mail_domains=tuple(domains),
                fixed_ranges=_phone_ranges(country, fixed_plan, mobile=False),
                mobile_ranges=_phone_ranges(country, mobile_plan, mobile=True),
                fixed_plan=fixed_plan,
                mobile_plan=mobile_plan,
                legal_cum=tuple(c / total for c in itertools.accumulate(weights)),
                legal_forms=tuple(
                    (form, spellings) for _, form, spellings in vocab.LEGAL_FORMS[country]
                ),
                slugs={name: _slug(name) for name in (*male, *female, *family)},
            )
        )
    return tuple(pools)


# --------------------------------------------------------------------------- outputs


class _Table:
    """One output file: CSV, or gzip JSON lines (rows given as dumped JSON text).

    CSV rows come out exactly as `csv.writer` (QUOTE_MINIMAL) would write them, but rows
    without anything to quote (nearly all) are joined directly, which is several times
    faster. Text is written in batches. A table with an `rng` passes its rows through a
    reservoir of _SHUFFLE_BUFFER rows, so rows leave in a locally shuffled order.
    """

    def __init__(
        self,
        path: Path,
        header: Sequence[str] | None,
        *,
        delimiter: str = ",",
        lineterminator: str = "\n",
        gzipped: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.rows = 0
        self._rng = rng
        self._delimiter = delimiter
        self._terminator = lineterminator
        self._reservoir: list[str] = []
        self._lines: list[str] = []
        self._scratch = io.StringIO()
        self._scratch_csv = csv.writer(
            self._scratch, delimiter=delimiter, lineterminator=lineterminator
        )
        self._raw = path.open("wb")
        self._gzip: gzip.GzipFile | None = None
        self._stream: io.BufferedIOBase = self._raw
        if gzipped:
            # No file name and mtime 0 in the gzip header: identical bytes on every run.
            self._gzip = gzip.GzipFile(
                filename="", mode="wb", fileobj=self._raw, compresslevel=3, mtime=0
            )
            self._stream = self._gzip
        if header is not None:
            self._lines.append(self._csv_line(list(header)))

    def _csv_line(self, row: list[str]) -> str:
        d = self._delimiter
        line = d.join(row)
        if (
            line.count(d) == len(row) - 1
            and '"' not in line
            and "\n" not in line
            and "\r" not in line
        ):
            return line + self._terminator
        scratch = self._scratch
        scratch.seek(0)
        scratch.truncate()
        self._scratch_csv.writerow(row)
        return scratch.getvalue()

    def add(self, row: list[str]) -> None:
        """Queue one CSV row."""
        self._push(self._csv_line(row))

    def add_json(self, line: str) -> None:
        """Queue one JSON line (without its line break)."""
        self._push(line + "\n")

    def _push(self, text: str) -> None:
        self.rows += 1
        rng = self._rng
        if rng is not None:
            reservoir = self._reservoir
            if len(reservoir) < _SHUFFLE_BUFFER:
                reservoir.append(text)
                return
            i = int(rng.random() * _SHUFFLE_BUFFER)
            text, reservoir[i] = reservoir[i], text
        lines = self._lines
        lines.append(text)
        if len(lines) >= _WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._stream.write("".join(self._lines).encode("utf-8"))
            self._lines.clear()

    def close(self) -> None:
        if self._rng is not None:
            self._rng.shuffle(self._reservoir)
        self._lines.extend(self._reservoir)
        self._reservoir.clear()
        self._flush()
        if self._gzip is not None:
            self._gzip.close()
        self._raw.close()


class _Outputs:
    def __init__(self, out_dir: Path, rng: random.Random) -> None:
        self._out_dir = out_dir
        self._rng = rng
        self._tables: dict[str, _Table] = {}

    def __enter__(self) -> _Outputs:
        d, rng = self._out_dir, self._rng
        try:
            self.crm = self._open(CRM_FILE, _Table(d / CRM_FILE, CRM_COLUMNS, rng=rng))
            self.erp = self._open(
                ERP_CUSTOMERS_FILE,
                _Table(
                    d / ERP_CUSTOMERS_FILE,
                    ERP_CUSTOMER_COLUMNS,
                    delimiter=";",
                    lineterminator="\r\n",
                    rng=rng,
                ),
            )
            self.erp_orders = self._open(
                ERP_ORDERS_FILE,
                _Table(
                    d / ERP_ORDERS_FILE, ERP_ORDER_COLUMNS, delimiter=";", lineterminator="\r\n"
                ),
            )
            self.billing = self._open(
                BILLING_ACCOUNTS_FILE,
                _Table(d / BILLING_ACCOUNTS_FILE, None, gzipped=True, rng=rng),
            )
            self.invoices = self._open(
                BILLING_INVOICES_FILE, _Table(d / BILLING_INVOICES_FILE, None, gzipped=True)
            )
            self.service = self._open(
                SERVICE_REQUESTERS_FILE,
                _Table(d / SERVICE_REQUESTERS_FILE, SERVICE_REQUESTER_COLUMNS, rng=rng),
            )
            self.tickets = self._open(
                SERVICE_TICKETS_FILE,
                _Table(d / SERVICE_TICKETS_FILE, SERVICE_TICKET_COLUMNS),
            )
            self.truth = self._open(TRUTH_FILE, _Table(d / TRUTH_FILE, TRUTH_COLUMNS))
            self.relationships = self._open(
                TRUTH_RELATIONSHIPS_FILE,
                _Table(d / TRUTH_RELATIONSHIPS_FILE, TRUTH_RELATIONSHIP_COLUMNS),
            )
        except BaseException:
            self._close_all()
            raise
        return self

    def _open(self, name: str, table: _Table) -> _Table:
        self._tables[name] = table
        return table

    def __exit__(self, *exc: object) -> None:
        self._close_all()

    def _close_all(self) -> None:
        # Close every table even if one fails; the first failure propagates.
        with contextlib.ExitStack() as stack:
            for table in reversed(self._tables.values()):
                stack.callback(table.close)

    def row_counts(self) -> dict[str, int]:
        return {name: table.rows for name, table in self._tables.items()}


# --------------------------------------------------------------------------- parties


class _Phone:
    __slots__ = ("_intl", "calling_code", "country", "groups", "nsn")

    def __init__(
        self,
        country: str,
        calling_code: str,
        nsn: str,
        groups: tuple[tuple[int, str], ...] | None,
    ) -> None:
        self.country = country
        self.calling_code = calling_code
        self.nsn = nsn
        self.groups = groups
        self._intl: str | None = None

    def intl(self) -> str:
        """International format, as phonenumbers.format_number(..., INTERNATIONAL) gives it."""
        if self._intl is None:
            if self.groups is not None:
                parts = [f"+{self.calling_code} "]
                nsn, i = self.nsn, 0
                for size, separator in self.groups:
                    parts.append(nsn[i : i + size])
                    parts.append(separator)
                    i += size
                self._intl = "".join(parts)
            else:
                number = phonenumbers.PhoneNumber(
                    country_code=int(self.calling_code), national_number=int(self.nsn)
                )
                self._intl = phonenumbers.format_number(
                    number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
                )
        return self._intl

    def spell(self, style: int) -> str:
        """The number as some system stores it; every spelling parses back to it."""
        if style == _E164:
            return f"+{self.calling_code}{self.nsn}"
        intl = self.intl()
        if style == _INTL:
            return intl
        rest = intl.split(" ", 1)[1]
        if self.country == "US":
            # "+1 201-555-0123" -> "(201) 555-0123"; no trunk or 00 spellings in the US.
            if style == _NATIONAL:
                area, local = rest.split("-", 1)
                return f"({area}) {local}"
            return intl
        if style == _NATIONAL:
            return f"0{rest}"
        if style == _IDD:
            return f"00{intl[1:]}"
        return f"+{self.calling_code} (0){rest}"


class _Address:
    __slots__ = ("city", "country", "line", "postcode")

    def __init__(self, line: str, postcode: str, city: str, country: str) -> None:
        self.line = line
        self.postcode = postcode
        self.city = city
        self.country = country


class _Org:
    __slots__ = (
        "address", "base", "billing_mailbox", "contacts", "crm_account_id", "domain",
        "industry", "legal_form", "legal_spellings", "lifecycle", "mail_pattern", "old_address",
        "parent", "party_id", "phone", "pool", "shared_mailbox", "vat",
    )  # fmt: skip

    def __init__(self, party_id: str, pool: _CountryPool) -> None:
        self.party_id = party_id
        self.pool = pool
        self.base = ""
        self.industry = ""
        self.legal_form = ""
        self.legal_spellings: tuple[str, ...] = ()
        self.address: _Address
        self.old_address: _Address | None = None
        self.phone: _Phone | None = None
        self.domain = ""
        self.shared_mailbox: str | None = None
        self.billing_mailbox: str | None = None
        self.mail_pattern = 0
        self.vat: tuple[str, ...] = ()  # VAT id in parts: ("DE", "123456789")
        self.lifecycle = _CUSTOMER
        self.crm_account_id = ""
        self.contacts: list[_Person] = []
        self.parent: _Org | None = None  # the group company this one is a subsidiary of

    def name(self) -> str:
        return f"{self.base} {self.industry}".rstrip()


class _Person:
    __slots__ = (
        "address", "birth", "email", "email2", "family", "family_email", "gender", "given",
        "landline", "lifecycle", "mobile", "old_address", "org", "party_id", "pool",
        "work_email",
    )  # fmt: skip

    def __init__(self, party_id: str, pool: _CountryPool) -> None:
        self.party_id = party_id
        self.pool = pool
        self.gender = "M"
        self.given = ""
        self.family = ""
        self.birth = 0  # date ordinal
        self.address: _Address | None = None
        self.old_address: _Address | None = None
        self.landline: _Phone | None = None
        self.mobile: _Phone | None = None
        self.email: str | None = None
        self.email2: str | None = None
        self.family_email: str | None = None
        self.work_email: str | None = None
        self.org: _Org | None = None
        self.lifecycle = _CUSTOMER


# --------------------------------------------------------------------------- text noise


def _slug(text: str) -> str:
    """Lower-case ASCII letters and digits only: for email local parts and domains."""
    return "".join(c for c in text.translate(vocab.TRANSLITERATION).lower() if c.isalnum())


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


# --------------------------------------------------------------------------- generator


class _Generator:
    def __init__(
        self, rng: random.Random, pools: tuple[_CountryPool, ...], out: _Outputs, seed: int
    ) -> None:
        self.rand = rng.random
        self.seed = seed
        self.pools = pools
        self.out = out
        total = sum(vocab.COUNTRY_WEIGHTS)
        self.country_cum = tuple(c / total for c in itertools.accumulate(vocab.COUNTRY_WEIGHTS))
        self.recent_consumers: deque[_Person] = deque(maxlen=64)
        self.parties = 0
        self.n_crm = 0
        self.n_erp = 0
        self.n_billing = 0
        self.n_requester = 0
        self.n_order = 0
        self.n_invoice = 0
        self.n_ticket = 0

    # ---- small helpers

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[int(self.rand() * len(seq))]

    def between(self, low: int, high: int) -> int:
        """A whole number in [low, high]."""
        return low + int(self.rand() * (high - low + 1))

    def digits(self, n: int) -> str:
        return f"{int(self.rand() * 10**n):0{n}d}"

    def from_cum(self, cum: Sequence[float]) -> int:
        return bisect_right(cum, self.rand())

    def new_party_id(self) -> str:
        self.parties += 1
        return f"P{self.parties:07d}"

    def pool_for_new_customer(self) -> _CountryPool:
        return self.pools[self.from_cum(self.country_cum)]

    # ---- dates

    def iso_date(self, ordinal: int) -> str:
        if ordinal >= _RECENT_FIRST:
            return _RECENT_DAYS.iso[ordinal - _RECENT_FIRST]
        return date.fromordinal(ordinal).isoformat()

    def de_date(self, ordinal: int) -> str:
        if ordinal >= _RECENT_FIRST:
            return _RECENT_DAYS.german[ordinal - _RECENT_FIRST]
        d = date.fromordinal(ordinal)
        return f"{d.day:02d}.{d.month:02d}.{d.year}"

    def timestamp(self, ordinal: int, suffix: str = "Z") -> str:
        """ISO 8601 date and time of day, to the second."""
        minute = int(self.rand() * 1440)
        second = int(self.rand() * 60)
        return (
            f"{self.iso_date(ordinal)}T{_RECENT_DAYS.minutes[minute]}:"
            f"{_RECENT_DAYS.seconds[second]}{suffix}"
        )

    def day_between(self, first: int, last: int) -> int:
        return first + int(self.rand() * (last - first + 1))

    # ---- typos and spellings

    def typo(self, text: str) -> str:
        """One keyboard slip: swap, drop, duplicate or substitute a character."""
        n = len(text)
        if n < 3:
            return text
        i = 1 + int(self.rand() * (n - 1)) if self.rand() < 0.85 else 0
        op = self.rand()
        if op < 0.3 and i < n - 1 and text[i] != text[i + 1]:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        if op < 0.55:
            return text[:i] + text[i + 1 :]
        if op < 0.72:
            return text[:i] + text[i] + text[i:]
        c = text[i]
        neighbours = vocab.KEYBOARD_NEIGHBOURS.get(c.lower())
        if not neighbours:
            return text[:i] + text[i + 1 :]
        s = self.pick(neighbours)
        return text[:i] + (s.upper() if c.isupper() else s) + text[i + 1 :]

    def noisy(self, text: str, p: float) -> str:
        """Mostly unchanged; with chance p one typo, sometimes two."""
        if text and self.rand() < p:
            text = self.typo(text)
            if self.rand() < 0.15:
                text = self.typo(text)
        return text

    def given_spelling(self, person: _Person, p_nick: float, p_typo: float) -> str:
        given = person.given
        if p_nick and self.rand() < p_nick:
            nicks = _NICKNAMES.get(person.pool.language, {}).get(given)
            if nicks:
                return self.pick(nicks)
        return self.noisy(given, p_typo)

    def email_typo(self, email: str) -> str:
        """A slip in the local part (a typo in the domain would not reach anyone)."""
        local, domain = email.split("@", 1)
        return f"{self.typo(local)}@{domain}"

    def email_spelling(self, email: str | None, p_mess: float) -> str:
        """Case and whitespace noise: ' John.Smith@Example.com '."""
        if not email:
            return ""
        if self.rand() >= p_mess:
            return email
        local, domain = email.split("@", 1)
        x = self.rand()
        if x < 0.35:
            return ".".join(_title(w) for w in local.split(".")) + "@" + domain
        if x < 0.55:
            return f" {email} " if self.rand() < 0.5 else f"{email} "
        if x < 0.7:
            return email.upper()
        if x < 0.85:
            return f"{local}@{domain[:1].upper()}{domain[1:]}"
        return f" {'.'.join(_title(w) for w in local.split('.'))}@{_title(domain)} "

    def street_spelling(self, line: str, language: str, p_abbrev: float, p_typo: float) -> str:
        if self.rand() < p_abbrev:
            for long, short in vocab.STREET_ABBREVIATIONS[language]:
                if long in line:
                    line = line.replace(long, short, 1)
                    break
                # The short form only as a whole word: "High St" but not "Stone Road".
                if (
                    f"{short} " in line
                    or line.endswith(short)
                    or (short.endswith(" ") and short in line)
                ):
                    line = line.replace(short, long, 1)
                    break
        return self.noisy(line, p_typo)

    def postcode_spelling(self, postcode: str, country: str, p: float) -> str:
        if self.rand() >= p:
            return postcode
        if country in ("NL", "GB"):
            return postcode.replace(" ", "") if " " in postcode else postcode.lower()
        if postcode.startswith("0"):
            return postcode[1:]  # a spreadsheet ate the leading zero
        return postcode

    def vat_spelling(
        self, vat: tuple[str, ...], p_plain: float, rand: Callable[[], float] | None = None
    ) -> str:
        """VAT ids as typed: 'DE123456789', 'DE 123 456 789', 'de123456789'. `rand`: a
        stream of its own to draw from (the main one by default)."""
        rand = rand or self.rand
        if not vat:
            return ""
        if not vat[0]:  # a US employer id: "12-3456789", sometimes without the dash
            return vat[1] if rand() < 0.7 else vat[1].replace("-", "")
        compact = "".join(vat)
        if rand() < p_plain:
            return compact
        x = rand()
        if x < 0.5:
            return " ".join(vat)
        if x < 0.75:
            return compact.lower()
        if x < 0.9:
            return compact[2:] if compact[:2].isalpha() else compact  # prefix left off
        return vat[0] + " " + "".join(vat[1:])

    # ---- phones, emails, addresses

    def new_phone(self, pool: _CountryPool, mobile: bool) -> _Phone:
        ranges = pool.mobile_ranges if mobile else pool.fixed_ranges
        plan = pool.mobile_plan if mobile else pool.fixed_plan
        for _ in range(50):
            phone_range = self.pick(ranges)
            nsn = phone_range.prefix + self.digits(phone_range.length - len(phone_range.prefix))
            if plan.valid(nsn):
                return _Phone(pool.country, pool.calling_code, nsn, phone_range.groups)
        kind = (
            phonenumbers.PhoneNumberType.MOBILE
            if mobile
            else phonenumbers.PhoneNumberType.FIXED_LINE
        )
        example = phonenumbers.example_number_for_type(pool.country, kind)
        if example is None:  # pragma: no cover - every country we use has examples
            raise RuntimeError(f"no valid {kind} phone number for {pool.country}")
        return _Phone(pool.country, pool.calling_code, str(example.national_number), None)

    def private_email(self, pool: _CountryPool, given: str, family: str, birth: int) -> str:
        g, f = pool.slug(given), pool.slug(family)
        x = self.rand()
        if x < 0.12:
            local = f"{g}.{f}"
        elif x < 0.2:
            local = f"{g[0]}.{f}"
        elif x < 0.28:
            local = f"{g}{f[0]}.{f}"
        elif x < 0.35:
            local = f"{f}.{g}"
        elif x < 0.55:
            local = f"{g}.{f}{date.fromordinal(birth).year % 100:02d}"
        elif x < 0.75:
            local = f"{g}{f}{self.between(1, 999)}"
        elif x < 0.9:
            local = f"{g}_{f}{self.between(10, 99)}"
        else:
            local = f"{f}{g[0]}{self.between(100, 9999)}"
        return f"{local}@{self.pick(pool.mail_domains)}"

    def work_email(self, org: _Org, given: str, family: str) -> str:
        g, f = org.pool.slug(given), org.pool.slug(family)
        pattern = org.mail_pattern
        if pattern == 0:
            local = f"{g}.{f}"
        elif pattern == 1:
            local = f"{g[0]}.{f}"
        elif pattern == 2:
            local = f"{g[0]}{f}"
        else:
            local = f"{f}"
        return f"{local}@{org.domain}"

    def new_address(self, pool: _CountryPool, place: tuple[str, str] | None = None) -> _Address:
        street = self.pick(pool.streets)
        country = pool.country
        if country in ("US",):
            number = str(self.between(100, 9899))
        elif country == "GB":
            number = str(self.between(1, 240))
        else:
            number = str(self.between(1, 140))
            if self.rand() < 0.07:
                number += self.pick("ab" if country != "NL" else "ABC")
        if country in ("DE", "AT", "NL"):
            line = f"{street} {number}"
        elif country == "FR":
            line = f"{number}, {street}" if self.rand() < 0.3 else f"{number} {street}"
        else:
            line = f"{number} {street}"
        postcode, city = place or self.pick(pool.places)
        return _Address(line, postcode, city, country)

    def vat_for(self, country: str) -> tuple[str, ...]:
        """A VAT id with a valid check digit, split into the parts people space apart."""
        if country == "DE":
            body = str(self.between(1, 9)) + self.digits(7)
            check = 5
            for ch in body:
                check = (((check or 10) * 2) % 11 + int(ch)) % 10
            digits = body + str((1 - ((check or 10) * 2) % 11) % 10)
            return ("DE", digits[:3], digits[3:6], digits[6:])
        if country == "AT":
            body = self.digits(7)
            digits = body + str((6 - _luhn_checksum(body)) % 10)
            return ("ATU", digits[:4], digits[4:])
        if country == "GB":
            body = str(self.between(1, 9)) + self.digits(6)
            total = sum(w * int(c) for w, c in zip((8, 7, 6, 5, 4, 3, 2), body, strict=True))
            digits = body + f"{-total % 97:02d}"
            return ("GB", digits[:3], digits[3:7], digits[7:])
        if country == "FR":
            body = str(self.between(1, 9)) + self.digits(7)
            siren = body + str(-_luhn_checksum(body + "0") % 10)
            key = int(siren + "12") % 97
            return ("FR", f"{key:02d}", siren[:3], siren[3:6], siren[6:])
        if country == "NL":
            while True:
                body = str(self.between(1, 9)) + self.digits(7)
                total = sum((9 - i) * int(c) for i, c in enumerate(body))
                check = total % 11
                if check < 10:
                    digits = body + str(check)
                    return ("NL", digits, f"B{self.between(1, 3):02d}")
        # US: no VAT; an EIN is recorded as the tax id.
        return ("", f"{self.between(10, 98)}-{self.digits(7)}")

    # ---- main loop

    def run(self, customers: int, progress: Callable[[int], None] | None) -> None:
        done = 0
        since_report = 0
        while done < customers:
            budget = customers - done
            if self.rand() < _P_ORGANIZATION_UNIT:
                made = self.organization_unit(budget)
            else:
                made = self.consumer_unit(budget)
            done += made
            since_report += made
            if progress is not None and since_report >= _PROGRESS_EVERY:
                progress(since_report)
                since_report = 0
        if progress is not None and since_report:
            progress(since_report)

    def lifecycle(self) -> int:
        return self.from_cum(_LIFECYCLE_CUM)

    # ---- consumers and households

    def consumer_unit(self, budget: int) -> int:
        if self.rand() < _P_HOUSEHOLD and budget >= 2:
            size = min(2 + self.from_cum(_HOUSEHOLD_SIZE_CUM), budget)
            members = self.household(size)
        else:
            members = [self.single_consumer()]
        for person in members:
            self.emit_consumer(person)
        return len(members)

    def new_person(self, pool: _CountryPool, gender: str | None = None) -> _Person:
        person = _Person(self.new_party_id(), pool)
        person.gender = gender or ("M" if self.rand() < 0.5 else "F")
        person.given = self.pick(pool.male if person.gender == "M" else pool.female)
        person.family = self.pick(pool.family)
        person.birth = self.day_between(_DAY_1940, _DAY_2005)
        return person

    def single_consumer(self) -> _Person:
        recent = self.recent_consumers
        if recent and self.rand() < _P_NAMESAKE:
            # A different person with the same full name living in the same city.
            twin = self.pick(recent)
            person = self.new_person(twin.pool, twin.gender)
            person.given, person.family = twin.given, twin.family
            while abs(person.birth - twin.birth) < 400:
                person.birth = self.day_between(_DAY_1940, _DAY_2005)
            place = (twin.address.postcode, twin.address.city) if twin.address else None
            person.address = self.new_address(twin.pool, place)
        else:
            person = self.new_person(self.pool_for_new_customer())
            person.address = self.new_address(person.pool)
        pool = person.pool
        if self.rand() < _P_MOVED:
            person.old_address = self.new_address(pool)
        if self.rand() < 0.35:
            person.landline = self.new_phone(pool, mobile=False)
        if self.rand() < 0.8 or person.landline is None:
            person.mobile = self.new_phone(pool, mobile=True)
        self.personal_emails(person)
        person.lifecycle = self.lifecycle()
        recent.append(person)
        return person

    def personal_emails(self, person: _Person) -> None:
        pool = person.pool
        if self.rand() < 0.92:
            person.email = self.private_email(pool, person.given, person.family, person.birth)
            if self.rand() < 0.2:
                person.email2 = self.private_email(pool, person.given, person.family, person.birth)

    def household(self, size: int) -> list[_Person]:
        """2-4 people sharing family name, address and landline; different everything else."""
        pool = self.pool_for_new_customer()
        head = self.new_person(pool)
        address = self.new_address(pool)
        old = self.new_address(pool) if self.rand() < _P_MOVED else None
        landline = self.new_phone(pool, mobile=False)
        family_email = None
        if self.rand() < 0.35:
            local = self.pick(vocab.FAMILY_MAIL_PATTERNS[pool.language]).format(
                f=pool.slug(head.family)
            )
            family_email = f"{local}@{self.pick(pool.mail_domains)}"
        members = [head]
        partner = self.new_person(pool, "F" if head.gender == "M" else "M")
        while partner.given == head.given:
            partner.given = self.pick(pool.male if partner.gender == "M" else pool.female)
        partner.birth = min(head.birth + self.between(-2500, 2500), _AS_OF - _ADULT_DAYS)
        members.append(partner)
        older = min(head.birth, partner.birth)
        given_names = {head.given, partner.given}
        while len(members) < size:
            child = self.new_person(pool)
            child.birth = min(
                older + self.between(20 * 365, 38 * 365),
                _AS_OF - _ADULT_DAYS - self.between(0, 2000),
            )
            while child.given in given_names:
                child.given = self.pick(pool.male if child.gender == "M" else pool.female)
            given_names.add(child.given)
            members.append(child)
        births = set()
        for member in members:
            while member.birth in births:
                member.birth -= 1
            births.add(member.birth)
            member.family = head.family
            member.address = address
            member.old_address = old
            member.landline = landline
            member.family_email = family_email
            if self.rand() < 0.75:
                member.mobile = self.new_phone(pool, mobile=True)
            if self.rand() < 0.7 or family_email is None:
                self.personal_emails(member)
            member.lifecycle = self.lifecycle()
        return members

    def emit_consumer(self, person: _Person) -> None:
        stage = person.lifecycle
        in_crm = self.rand() < (0.99 if stage == _LEAD else _P_IN_CRM)
        in_erp = self.rand() < _IN_ERP[stage]
        in_billing = self.rand() < _IN_BILLING[stage]
        in_service = self.rand() < _P_IN_SERVICE
        if not (in_crm or in_erp or in_billing or in_service):
            in_crm = True
        if in_crm:
            for dup in range(self.copies(_P_DUP_CRM)):
                self.crm_person(person, dup > 0)
        if in_erp:
            for dup in range(self.copies(_P_DUP_ERP)):
                self.erp_person(person, dup > 0)
        if in_billing:
            for dup in range(self.copies(_P_DUP_BILLING)):
                self.billing_consumer(person, dup > 0)
        if in_service:
            for dup in range(self.copies(_P_DUP_SERVICE)):
                self.service_person(person, dup > 0)

    def copies(self, p_dup: float) -> int:
        """How many rows a system holds for one party: 1, sometimes 2, rarely 3."""
        if self.rand() >= p_dup:
            return 1
        return 3 if self.rand() < 0.1 else 2

    # ---- organizations

    def organization_unit(self, budget: int) -> int:
        pool = self.pool_for_new_customer()
        has_subsidiary = budget >= 2 and self.rand() < _P_SUBSIDIARY
        # A parent is mostly named a holding: "Müller Holding GmbH", "Müller Logistik GmbH".
        org = self.new_org(pool, holding=has_subsidiary and self.rand() < 0.7)
        made = 1
        subsidiary: _Org | None = None
        if has_subsidiary:
            subsidiary = self.new_org(pool, parent=org)
            made += 1
        for company in (org, subsidiary):
            if company is None:
                continue
            wanted = 1 + self.from_cum(_CONTACTS_CUM)
            if company is subsidiary:
                wanted = self.between(0, 2)
            for _ in range(min(wanted, budget - made)):
                company.contacts.append(self.new_contact(company))
                made += 1
        self.emit_org(org)
        if subsidiary is not None:
            self.out.relationships.add([subsidiary.party_id, org.party_id, "subsidiary_of"])
            self.emit_org(subsidiary)
        return made

    def new_org(
        self, pool: _CountryPool, parent: _Org | None = None, *, holding: bool = False
    ) -> _Org:
        org = _Org(self.new_party_id(), pool)
        language = pool.language
        if parent is not None:
            org.parent = parent
            org.base = parent.base
            org.industry = parent.industry
            while org.industry == parent.industry:
                org.industry = self.pick(vocab.INDUSTRY_WORDS[language])
        elif holding:
            org.base = self.pick(pool.family)
            org.industry = vocab.HOLDING_WORDS[language]
        else:
            x = self.rand()
            if x < 0.45:
                org.base = self.pick(pool.family)
            elif x < 0.6:
                org.base = self.pick(pool.family) + self.pick(vocab.FAMILY_FIRM_SUFFIXES[language])
            elif x < 0.7:
                org.base = f"{self.pick(pool.family)} & {self.pick(pool.family)}"
            else:
                org.base = self.pick(vocab.BRAND_PREFIXES[language]) + self.pick(
                    vocab.BRAND_SUFFIXES[language]
                )
            org.industry = self.pick(vocab.INDUSTRY_WORDS[language]) if self.rand() < 0.8 else ""
        form = pool.legal_forms[self.from_cum(pool.legal_cum)]
        if parent is not None:
            form = next(f for f in pool.legal_forms if f[0] == parent.legal_form)
        org.legal_form, org.legal_spellings = form
        same_site = parent is not None and self.rand() < 0.6
        org.address = parent.address if parent is not None and same_site else self.new_address(pool)
        if self.rand() < 0.08:
            org.old_address = self.new_address(pool)
        if parent is not None and parent.phone is not None and self.rand() < 0.3:
            org.phone = parent.phone  # one switchboard for the group
        elif self.rand() < 0.95:
            org.phone = self.new_phone(pool, mobile=False)
        if parent is not None and self.rand() < 0.5:
            org.domain = parent.domain
        else:
            slug = _slug(org.base.split(" & ")[0]) or "firma"
            if org.industry and self.rand() < 0.5:
                slug = f"{slug}-{_slug(org.industry)}"
            org.domain = f"{slug}.{self.pick(vocab.TOP_LEVEL_DOMAINS[pool.country])}"
        if self.rand() < 0.75:
            org.shared_mailbox = f"{self.pick(vocab.SHARED_MAILBOXES[language])}@{org.domain}"
        if self.rand() < 0.6:
            org.billing_mailbox = f"{self.pick(vocab.BILLING_MAILBOXES[language])}@{org.domain}"
        org.mail_pattern = self.from_cum((0.55, 0.75, 0.92, 1.0))
        org.vat = self.vat_for(pool.country)
        org.lifecycle = parent.lifecycle if parent is not None else self.lifecycle()
        return org

    def new_contact(self, org: _Org) -> _Person:
        pool = org.pool
        person = self.new_person(pool)
        person.org = org
        person.work_email = self.work_email(org, person.given, person.family)
        if self.rand() < 0.6:
            person.mobile = self.new_phone(pool, mobile=True)
        if self.rand() < 0.3:
            person.email = self.private_email(pool, person.given, person.family, person.birth)
        person.lifecycle = org.lifecycle
        return person

    def emit_org(self, org: _Org) -> None:
        stage = org.lifecycle
        in_crm = self.rand() < 0.95
        in_erp = self.rand() < _IN_ERP[stage]
        in_billing = self.rand() < _IN_BILLING[stage]
        if not (in_crm or in_erp or in_billing):
            in_crm = True
        if in_crm:
            for dup in range(self.copies(_P_DUP_CRM)):
                self.crm_account(org, dup > 0)
        if in_erp:
            for dup in range(self.copies(_P_DUP_ERP)):
                self.erp_org(org, dup > 0)
        if in_billing:
            for dup in range(self.copies(_P_DUP_BILLING)):
                self.billing_business(org, dup > 0)
        for contact in org.contacts:
            self.out.relationships.add([contact.party_id, org.party_id, "contact_of"])
            in_crm = self.rand() < (0.92 if org.crm_account_id else 0.3)
            in_service = self.rand() < _P_IN_SERVICE
            if not (in_crm or in_service):
                in_crm = True
            if in_crm:
                for dup in range(self.copies(_P_DUP_CRM)):
                    self.crm_person(contact, dup > 0)
            if in_service:
                for dup in range(self.copies(_P_DUP_SERVICE)):
                    self.service_person(contact, dup > 0)

    def org_name_spelling(self, org: _Org, p_variant: float, p_typo: float) -> str:
        spellings = org.legal_spellings
        legal = spellings[0] if self.rand() >= p_variant else self.pick(spellings[1:])
        return self.noisy(org.name(), p_typo) + legal

    # ---- truth

    def truth(self, system: str, source_id: str, party_id: str, kind: str) -> None:
        self.out.truth.add([system, source_id, party_id, kind])

    # ---- CRM

    def crm_id(self, prefix: str) -> str:
        self.n_crm += 1
        return f"{prefix}A{_scramble(self.n_crm, 10**8, 1_234_567):08d}"

    def crm_country(self, country: str) -> str:
        return country if self.rand() < 0.15 else vocab.COUNTRY_NAMES[country]

    def crm_person(self, person: _Person, dup: bool) -> None:
        stage = person.lifecycle
        org = person.org
        lead = org is None and (
            stage == _LEAD
            or (stage == _PROSPECT and self.rand() < 0.5)
            or (dup and self.rand() < 0.35)  # a lead that was never converted
        )
        record_id = self.crm_id("00Q" if lead else "003")
        status = _CRM_STATUS[stage]
        if lead:
            status = "Lead" if stage != _PROSPECT else "Prospect"
        elif self.rand() < 0.04:
            status = _CRM_STATUS[max(stage - 1, 0)]  # not updated since
        if dup:
            given = self.given_spelling(person, 0.3, 0.15)
            family = self.noisy(person.family, 0.12)
        else:
            given = self.given_spelling(person, 0.08, 0.04)
            family = self.noisy(person.family, 0.03)
        if self.rand() < 0.02:
            given, family = given.upper(), family.upper()
        account_id = org.crm_account_id if org is not None else ""
        email = self.crm_person_email(person, dup)
        phone = ""
        if self.rand() < 0.72:
            candidate = self.person_phone(person, 0.5)
            if candidate is not None:
                phone = candidate.spell(self.pick(_CRM_PHONE_STYLES))
        street = postcode = city = ""
        address = person.address
        if org is not None:
            address = org.address if self.rand() < 0.55 else None
        elif person.old_address is not None and self.rand() < (0.6 if dup else 0.25):
            address = person.old_address
        country = person.pool.country
        if address is not None:
            street = self.street_spelling(address.line, person.pool.language, 0.1, 0.04)
            postcode = self.postcode_spelling(address.postcode, address.country, 0.04)
            city = self.noisy(address.city, 0.02)
            country = address.country
        birth = self.crm_birth_date(person)
        if self.rand() < 0.004:
            record_id = ""  # malformed on purpose: a row without an Id
        modified = self.day_between(_AS_OF - (2600 if dup else 1800), _AS_OF - (700 if dup else 0))
        self.out.crm.add(
            [
                record_id,
                "Lead" if lead else "Contact",
                given,
                family,
                "",
                account_id,
                email,
                phone,
                street,
                postcode,
                city,
                self.crm_country(country),
                status,
                birth,
                "",
                self.timestamp(modified),
                "",
            ]
        )
        self.truth("crm", record_id, person.party_id, "person")

    def crm_person_email(self, person: _Person, dup: bool) -> str:
        """Private, second or family address for consumers; work address or the shared
        mailbox for company contacts."""
        org = person.org
        email: str | None
        if org is not None:
            x = self.rand()
            if x < 0.1 and org.shared_mailbox:
                email = org.shared_mailbox
            elif x < 0.95 or person.email is None:
                email = person.work_email
            else:
                email = person.email
        else:
            email = person.email
            if person.family_email and (email is None or self.rand() < 0.3):
                email = person.family_email
            elif person.email2 and (dup or self.rand() < 0.2):
                email = person.email2
        if self.rand() < 0.15:
            return ""
        if email and self.rand() < 0.015:
            email = self.email_typo(email)
        return self.email_spelling(email, 0.08)

    def crm_birth_date(self, person: _Person) -> str:
        """Mostly known for consumers, rarely for company contacts; now and then impossible."""
        if self.rand() >= (0.08 if person.org is not None else 0.55):
            return ""
        birth = self.iso_date(self.recorded_birth(person.birth, 0.01))
        if self.rand() < 0.012:  # malformed on purpose
            year = birth[:4]
            if self.rand() < 0.5:
                return f"{year}-13-45"
            return f"{year}-{self.between(13, 19)}-{self.between(32, 45)}"
        return birth

    def crm_account(self, org: _Org, dup: bool) -> None:
        record_id = self.crm_id("001")
        if not org.crm_account_id:
            org.crm_account_id = record_id
        address = org.address
        if org.old_address is not None and self.rand() < (0.5 if dup else 0.2):
            address = org.old_address
        phone = ""
        if org.phone is not None and self.rand() < 0.8:
            phone = org.phone.spell(self.pick(_CRM_PHONE_STYLES))
        email = org.shared_mailbox if self.rand() < 0.6 else None
        vat = self.vat_spelling(org.vat, 0.6) if self.rand() < (0.75 if not dup else 0.5) else ""
        status = _CRM_STATUS[org.lifecycle]
        modified = self.day_between(_AS_OF - (2600 if dup else 1800), _AS_OF - (700 if dup else 0))
        self.out.crm.add(
            [
                record_id,
                "Account",
                "",
                "",
                self.org_name_spelling(org, 0.5 if dup else 0.3, 0.12 if dup else 0.03),
                "",
                self.email_spelling(email, 0.05),
                phone,
                self.street_spelling(address.line, org.pool.language, 0.1, 0.03),
                self.postcode_spelling(address.postcode, address.country, 0.03),
                self.noisy(address.city, 0.02),
                self.crm_country(address.country),
                status,
                "",
                vat,
                self.timestamp(modified),
                # Salesforce's parent account, where the group company is in the CRM too
                org.parent.crm_account_id if org.parent is not None else "",
            ]
        )
        self.truth("crm", record_id, org.party_id, "organization")

    def recorded_birth(self, birth: int, p_wrong: float) -> int:
        """The birth date as a system has it: rarely off (day and month swapped, or a slip)."""
        if self.rand() >= p_wrong:
            return birth
        d = date.fromordinal(birth)
        if d.day <= 12 and d.day != d.month:
            return date(d.year, d.day, d.month).toordinal()
        return birth + self.pick((-1, 1, 365, -365))

    def person_phone(self, person: _Person, p_landline: float) -> _Phone | None:
        if person.org is not None and person.org.phone is not None and self.rand() < 0.3:
            return person.org.phone
        if person.landline is not None and (person.mobile is None or self.rand() < p_landline):
            return person.landline
        return person.mobile

    # ---- ERP

    def kunnr(self) -> str:
        self.n_erp += 1
        return f"{10_000_000 + _scramble(self.n_erp, 90_000_000, 4_242_424):010d}"

    def erp_text(self, text: str, language: str, p_upper: float) -> str:
        """Old ERP habits: sometimes all upper case, sometimes without umlauts and accents."""
        if language in ("de", "fr") and self.rand() < 0.1:
            text = text.translate(vocab.TRANSLITERATION)
        if self.rand() < p_upper:
            text = text.upper()
        return text

    def erp_person(self, person: _Person, dup: bool) -> None:
        pool = person.pool
        kunnr = self.kunnr()
        given = self.given_spelling(person, 0.1 if dup else 0.03, 0.1 if dup else 0.03)
        family = self.noisy(person.family, 0.1 if dup else 0.03)
        name = f"{family}, {given}" if self.rand() < 0.18 else f"{given} {family}"
        address = person.address
        if person.old_address is not None and self.rand() < 0.65:
            address = person.old_address
        if address is None:  # consumers always have one; company contacts are not here
            return
        phone = ""
        if self.rand() < 0.55:
            candidate = self.person_phone(person, 0.6)
            if candidate is not None:
                phone = candidate.spell(self.pick(_ERP_PHONE_STYLES))
        email = (person.email or person.family_email) if self.rand() < 0.4 else None
        birth = ""
        if self.rand() < 0.3:
            birth = self.de_date(self.recorded_birth(person.birth, 0.02))
            if self.rand() < 0.02:
                birth = self.pick(("31.02.", "30.02.", "31.04.", "31.06.")) + birth[-4:]
        created = self.day_between(date(2005, 1, 1).toordinal(), _AS_OF - 30)
        self.out.erp.add(
            [
                kunnr,
                "PERS",
                self.erp_text(name, pool.language, 0.08),
                "",
                self.erp_text(
                    self.street_spelling(address.line, pool.language, 0.3, 0.04),
                    pool.language,
                    0.05,
                ),
                self.postcode_spelling(address.postcode, address.country, 0.03),
                self.erp_text(self.noisy(address.city, 0.03), pool.language, 0.12),
                address.country,
                phone,
                self.email_spelling(email, 0.1),
                "",
                birth,
                self.de_date(created),
                "",
            ]
        )
        self.truth("erp", kunnr, person.party_id, "person")
        self.orders(kunnr, created, address.country, business=False)

    def erp_org(self, org: _Org, dup: bool) -> None:
        pool = org.pool
        kunnr = self.kunnr()
        address = org.address
        if org.old_address is not None and self.rand() < 0.6:
            address = org.old_address
        name = self.org_name_spelling(org, 0.5 if dup else 0.35, 0.1 if dup else 0.03)
        department = self.pick(vocab.DEPARTMENTS[pool.language]) if self.rand() < 0.25 else ""
        phone = ""
        if org.phone is not None and self.rand() < 0.8:
            phone = org.phone.spell(self.pick(_ERP_PHONE_STYLES))
        email = None
        if self.rand() < 0.5:
            email = org.billing_mailbox or org.shared_mailbox
        vat = self.vat_spelling(org.vat, 0.85) if org.vat[0] and self.rand() < 0.8 else ""
        created = self.day_between(date(2005, 1, 1).toordinal(), _AS_OF - 30)
        self.out.erp.add(
            [
                kunnr,
                "FIRM",
                self.erp_text(name, pool.language, 0.1),
                department,
                self.erp_text(
                    self.street_spelling(address.line, pool.language, 0.3, 0.03),
                    pool.language,
                    0.05,
                ),
                self.postcode_spelling(address.postcode, address.country, 0.02),
                self.erp_text(self.noisy(address.city, 0.02), pool.language, 0.12),
                address.country,
                phone,
                self.email_spelling(email, 0.05),
                vat,
                "",
                self.de_date(created),
                self.parent_vat(org, kunnr),
            ]
        )
        self.truth("erp", kunnr, org.party_id, "organization")
        self.orders(kunnr, created, address.country, business=True)

    def parent_vat(self, org: _Org, kunnr: str) -> str:
        """The group parent's VAT id, as typed into most ERP rows of a subsidiary whose
        parent has one with a country prefix (the kind STCEG holds). Drawn from a stream
        of the row's own, seeded by the seed and KUNNR: the main stream stays as it was."""
        parent = org.parent
        if parent is None or not parent.vat or not parent.vat[0]:
            return ""
        rand = random.Random(f"accord-demo:{self.seed}:parent-vat:{kunnr}").random  # noqa: S311
        if rand() >= _P_PARENT_VAT_IN_ERP:
            return ""
        return self.vat_spelling(parent.vat, 0.7, rand)

    def orders(self, kunnr: str, created: int, country: str, *, business: bool) -> None:
        count = self.from_cum((0.15, 0.4, 0.65, 0.85, 1.0))
        currency = vocab.CURRENCIES[country]
        for _ in range(count):
            self.n_order += 1
            vbeln = f"{_scramble(self.n_order, 10**8, 777):010d}"
            cents = self.between(20_000, 5_000_000) if business else self.between(1_000, 90_000)
            self.out.erp_orders.add(
                [
                    vbeln,
                    kunnr,
                    self.de_date(self.day_between(created, _AS_OF)),
                    f"{cents // 100}.{cents % 100:02d}",
                    currency,
                ]
            )

    # ---- billing

    def billing_id(self) -> str:
        self.n_billing += 1
        return f"BA-{1_000_000 + _scramble(self.n_billing, 9_000_000, 31_337)}"

    def billing_status(self, stage: int, dup: bool) -> str:
        if dup and self.rand() < 0.6:
            return "cancelled"  # the old account next to the new one
        status = _BILLING_STATUS[stage]
        if status == "active" and self.rand() < 0.03:
            return "cancelled"
        return status

    def billing_address(self, address: _Address, language: str) -> dict[str, str]:
        return {
            "line1": self.street_spelling(address.line, language, 0.08, 0.02),
            "postal_code": self.postcode_spelling(address.postcode, address.country, 0.02),
            "city": self.noisy(address.city, 0.015),
            "country": address.country,
        }

    def billing_consumer(self, person: _Person, dup: bool) -> None:
        account_id = self.billing_id()
        address = person.address
        if person.old_address is not None and self.rand() < (0.5 if dup else 0.1):
            address = person.old_address
        if address is None:  # consumers always have one; company contacts are not here
            return
        email = person.email2 if person.email2 and self.rand() < 0.4 else person.email
        if person.family_email and (email is None or self.rand() < 0.25):
            email = person.family_email
        if email is None or self.rand() < 0.04:
            email = None
        phone = None
        if self.rand() < 0.6:
            candidate = self.person_phone(person, 0.3)
            if candidate is not None:
                phone = candidate.spell(self.pick(_BILLING_PHONE_STYLES))
        status = self.billing_status(person.lifecycle, dup)
        record = {
            "account_id": account_id,
            "customer_type": "consumer",
            "first_name": self.given_spelling(person, 0.12 if dup else 0.04, 0.03),
            "last_name": self.noisy(person.family, 0.03),
            "company": None,
            "email": self.email_spelling(email, 0.06) or None,
            "phone": phone,
            "address": self.billing_address(address, person.pool.language),
            "vat_id": None,
            "status": status,
            "updated_at": self.timestamp(self.day_between(_AS_OF - 1500, _AS_OF), "+00:00"),
        }
        self.out.billing.add_json(_JSON.encode(record))
        self.truth("billing", account_id, person.party_id, "person")
        self.invoices(account_id, address.country, status, business=False)

    def billing_business(self, org: _Org, dup: bool) -> None:
        account_id = self.billing_id()
        address = org.address
        if org.old_address is not None and self.rand() < (0.5 if dup else 0.1):
            address = org.old_address
        first_name = last_name = None
        email = org.billing_mailbox
        if org.contacts and self.rand() < 0.6:
            contact = self.pick(org.contacts)
            first_name = self.given_spelling(contact, 0.05, 0.03)
            last_name = self.noisy(contact.family, 0.03)
            if email is None or self.rand() < 0.4:
                email = contact.work_email
        if email is None:
            email = org.shared_mailbox
        phone = None
        if org.phone is not None and self.rand() < 0.7:
            phone = org.phone.spell(self.pick(_BILLING_PHONE_STYLES))
        vat = self.vat_spelling(org.vat, 0.7) if org.vat[0] and self.rand() < 0.85 else ""
        status = self.billing_status(org.lifecycle, dup)
        record = {
            "account_id": account_id,
            "customer_type": "business",
            "first_name": first_name,
            "last_name": last_name,
            "company": self.org_name_spelling(org, 0.45 if dup else 0.3, 0.03),
            "email": self.email_spelling(email, 0.04) or None,
            "phone": phone,
            "address": self.billing_address(address, org.pool.language),
            "vat_id": vat or None,
            "status": status,
            "updated_at": self.timestamp(self.day_between(_AS_OF - 1500, _AS_OF), "+00:00"),
        }
        self.out.billing.add_json(_JSON.encode(record))
        self.truth("billing", account_id, org.party_id, "organization")
        self.invoices(account_id, address.country, status, business=True)

    def invoices(self, account_id: str, country: str, status: str, *, business: bool) -> None:
        # A trial rarely has an invoice yet.
        count = self.between(0, 5) if status != "trial" else int(self.rand() < 0.2)
        currency = vocab.CURRENCIES[country]
        for _ in range(count):
            self.n_invoice += 1
            cents = self.between(5_000, 2_000_000) if business else self.between(499, 30_000)
            x = self.rand()
            invoice_status = "paid" if x < 0.8 else ("open" if x < 0.93 else "overdue")
            if status == "cancelled" and invoice_status == "open":
                invoice_status = "paid"
            invoice_id = f"INV-{_scramble(self.n_invoice, 10**9, 98_765):09d}"
            issued_at = self.timestamp(self.day_between(_AS_OF - 1400, _AS_OF))
            # Every value is plain ASCII without quotes: no JSON encoder needed.
            self.out.invoices.add_json(
                f'{{"invoice_id": "{invoice_id}", "account_id": "{account_id}", '
                f'"issued_at": "{issued_at}", "amount": "{cents // 100}.{cents % 100:02d}", '
                f'"currency": "{currency}", "status": "{invoice_status}"}}'
            )

    # ---- service desk

    def requester_id(self) -> str:
        self.n_requester += 1
        return str(10_000_000_000 + _scramble(self.n_requester, 90_000_000_000, 5_550_555))

    def service_person(self, person: _Person, dup: bool) -> None:
        requester_id = self.requester_id()
        phone = ""
        if self.rand() < 0.35:
            candidate = self.person_phone(person, 0.3)
            if candidate is not None:
                phone = candidate.spell(self.pick(_SERVICE_PHONE_STYLES))
        created = self.day_between(date(2016, 1, 1).toordinal(), _AS_OF)
        self.out.service.add(
            [
                requester_id,
                self.service_name(person, dup),
                self.email_spelling(self.service_email(person, dup), 0.1),
                phone,
                self.service_organization(person.org),
                self.timestamp(created),
            ]
        )
        self.truth("service", requester_id, person.party_id, "person")
        self.tickets(requester_id, created, person.pool.language)

    def service_name(self, person: _Person, dup: bool) -> str:
        """The whole name in one field, as the requester signed or the agent typed it."""
        given = self.given_spelling(person, 0.3 if dup else 0.2, 0.05)
        family = self.noisy(person.family, 0.05)
        x = self.rand()
        if x < 0.04:
            name = given
        elif x < 0.06:
            name = f"{given[:1]}. {family}"
        else:
            name = f"{given} {family}"
        return name.lower() if self.rand() < 0.08 else name

    def service_email(self, person: _Person, dup: bool) -> str:
        """The address the request came from; a duplicate requester is the same person
        writing from another address."""
        org = person.org
        options: list[str] = []
        if org is not None:
            if person.work_email:
                options.append(person.work_email)
            if org.shared_mailbox and self.rand() < 0.3:
                options.insert(0, org.shared_mailbox)
            if person.email:
                options.append(person.email)
        else:
            if person.email:
                options.append(person.email)
            if person.email2:
                options.append(person.email2)
            if person.family_email:
                options.insert(0 if self.rand() < 0.3 else len(options), person.family_email)
        if not dup:
            return options[0] if options else ""
        if len(options) > 1:
            return options[1 + int(self.rand() * (len(options) - 1))]
        if options and self.rand() < 0.5:
            return self.email_typo(options[0])
        return self.private_email(person.pool, person.given, person.family, person.birth)

    def service_organization(self, org: _Org | None) -> str:
        """The company as an agent typed it: mostly without the legal form."""
        if org is None:
            return ""
        x = self.rand()
        if x < 0.6:
            organization = org.base
        elif x < 0.82:
            organization = org.name()
        elif x < 0.95:
            organization = self.org_name_spelling(org, 0.5, 0.0)
        else:
            return ""
        if self.rand() < 0.1:
            organization = organization.lower()
        return self.noisy(organization, 0.05)

    def tickets(self, requester_id: str, created: int, language: str) -> None:
        for _ in range(self.from_cum((0.25, 0.6, 0.85, 1.0))):
            self.n_ticket += 1
            self.out.tickets.add(
                [
                    f"{10_000_000 + _scramble(self.n_ticket, 90_000_000, 1_001)}",
                    requester_id,
                    self.timestamp(self.day_between(created, _AS_OF)),
                    self.pick(vocab.TICKET_SUBJECTS[language]),
                    self.pick(vocab.TICKET_PRIORITIES),
                    self.pick(vocab.TICKET_STATUSES),
                ]
            )


def _luhn_checksum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10
