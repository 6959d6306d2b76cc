"""The demo company generator: deterministic, streaming, and realistic where it counts."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from accord.demo import _vocab
from accord.demo import generator as gen
from accord.demo.generator import GenerationSummary, generate

SEED = 7
CUSTOMERS = 2000
PARTY_FILES = {
    "crm": gen.CRM_FILE,
    "erp": gen.ERP_CUSTOMERS_FILE,
    "billing": gen.BILLING_ACCOUNTS_FILE,
    "service": gen.SERVICE_REQUESTERS_FILE,
}
COUNTRY_CODES = {name: code for code, name in _vocab.COUNTRY_NAMES.items()}
BILLING_KEYS = [
    "account_id", "customer_type", "first_name", "last_name", "company", "email", "phone",
    "address", "vat_id", "status", "updated_at",
]  # fmt: skip
INVOICE_KEYS = ["invoice_id", "account_id", "issued_at", "amount", "currency", "status"]


# --------------------------------------------------------------------------- reading


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


class Demo:
    """One generated demo company, read back."""

    def __init__(self, out: Path, summary: GenerationSummary) -> None:
        self.out = out
        self.summary = summary
        self.crm_header, self.crm = read_csv(out / gen.CRM_FILE)
        self.erp_header, self.erp = read_csv(out / gen.ERP_CUSTOMERS_FILE, ";")
        self.orders_header, self.orders = read_csv(out / gen.ERP_ORDERS_FILE, ";")
        self.billing = read_jsonl_gz(out / gen.BILLING_ACCOUNTS_FILE)
        self.invoices = read_jsonl_gz(out / gen.BILLING_INVOICES_FILE)
        self.service_header, self.service = read_csv(out / gen.SERVICE_REQUESTERS_FILE)
        self.tickets_header, self.tickets = read_csv(out / gen.SERVICE_TICKETS_FILE)
        self.truth_header, self.truth = read_csv(out / gen.TRUTH_FILE)
        self.relationships_header, self.relationships = read_csv(out / gen.TRUTH_RELATIONSHIPS_FILE)
        self.party_of = {(t["system"], t["source_id"]): t["party_id"] for t in self.truth}
        self.kind_of = {t["party_id"]: t["kind"] for t in self.truth}

    def party_rows(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(system, source id, row) for every party row in the four party files."""
        for row in self.crm:
            yield "crm", row["Id"], row
        for row in self.erp:
            yield "erp", row["KUNNR"], row
        for record in self.billing:
            yield "billing", record["account_id"], record
        for row in self.service:
            yield "service", row["requester_id"], row


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo")
    return Demo(out, generate(out, seed=SEED, customers=CUSTOMERS))


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_also_in_a_fresh_process(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=11, customers=300)
    gen._pools.cache_clear()  # the Faker pools are drawn again, from the seed
    generate(tmp_path / "b", seed=11, customers=300)
    script = (
        "import sys; from pathlib import Path; from accord.demo.generator import generate; "
        "generate(Path(sys.argv[1]), seed=11, customers=300)"
    )
    # Another process with another string hash seed: no set or dict order leaks in.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "c")], check=True, env=env, timeout=120
    )
    a = file_bytes(tmp_path / "a")
    assert len(a) == 10
    assert a == file_bytes(tmp_path / "b")
    assert a == file_bytes(tmp_path / "c")


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=1, customers=200)
    generate(tmp_path / "b", seed=2, customers=200)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    for name in PARTY_FILES.values():
        assert a[name] != b[name], name


# --------------------------------------------------------------------------- files


def test_every_file_parses_with_its_exact_columns(demo: Demo) -> None:
    assert demo.crm_header == list(gen.CRM_COLUMNS)
    assert demo.erp_header == list(gen.ERP_CUSTOMER_COLUMNS)
    assert demo.orders_header == list(gen.ERP_ORDER_COLUMNS)
    assert demo.service_header == list(gen.SERVICE_REQUESTER_COLUMNS)
    assert demo.tickets_header == list(gen.SERVICE_TICKET_COLUMNS)
    assert demo.truth_header == ["system", "source_id", "party_id", "kind"]
    assert demo.relationships_header == ["from_party_id", "to_party_id", "relationship"]
    for record in demo.billing:
        assert list(record) == BILLING_KEYS
        assert list(record["address"]) == ["line1", "postal_code", "city", "country"]
    for record in demo.invoices:
        assert list(record) == INVOICE_KEYS
    # csv.DictReader puts surplus fields under None and fills missing ones with None.
    for rows in (demo.crm, demo.erp, demo.orders, demo.service, demo.tickets, demo.truth):
        for row in rows:
            assert None not in row
            assert None not in row.values()


def test_summary_and_manifest_count_the_rows_written(demo: Demo) -> None:
    counted = {
        gen.CRM_FILE: len(demo.crm),
        gen.ERP_CUSTOMERS_FILE: len(demo.erp),
        gen.ERP_ORDERS_FILE: len(demo.orders),
        gen.BILLING_ACCOUNTS_FILE: len(demo.billing),
        gen.BILLING_INVOICES_FILE: len(demo.invoices),
        gen.SERVICE_REQUESTERS_FILE: len(demo.service),
        gen.SERVICE_TICKETS_FILE: len(demo.tickets),
        gen.TRUTH_FILE: len(demo.truth),
        gen.TRUTH_RELATIONSHIPS_FILE: len(demo.relationships),
    }
    assert demo.summary.files == counted
    assert demo.summary.customers == CUSTOMERS
    assert demo.summary.truth_rows == len(demo.truth)
    manifest = json.loads((demo.out / gen.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["seed"] == SEED
    assert manifest["customers"] == CUSTOMERS
    assert manifest["generator"] == gen.GENERATOR_VERSION
    assert manifest["files"] == counted


def test_field_formats(demo: Demo) -> None:
    for row in demo.crm:
        assert row["RecordType"] in {"Account", "Contact", "Lead"}
        assert row["Status"] in {"Lead", "Prospect", "Customer", "Former Customer"}
        assert row["Country"] in COUNTRY_CODES or row["Country"] in _vocab.COUNTRIES
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["LastModified"])
        assert row["Id"] == "" or re.fullmatch(r"(001|003|00Q)A\d{8}", row["Id"])
        if row["RecordType"] == "Account":
            assert row["AccountName"]
            assert not row["FirstName"]
            assert not row["LastName"]
        else:
            assert row["LastName"]
            assert not row["AccountName"]
    for row in demo.erp:
        assert re.fullmatch(r"\d{10}", row["KUNNR"])
        assert row["KTOKD"] in {"PERS", "FIRM"}
        assert row["LAND1"] in _vocab.COUNTRIES
        assert re.fullmatch(r"\d\d\.\d\d\.\d{4}", row["ERDAT"])
        assert row["GEBDAT"] == "" or re.fullmatch(r"\d\d\.\d\d\.\d{4}", row["GEBDAT"])
        if row["KTOKD"] == "PERS":
            assert row["NAME2"] == ""
    for record in demo.billing:
        assert re.fullmatch(r"BA-\d{7}", record["account_id"])
        assert record["customer_type"] in {"consumer", "business"}
        assert record["status"] in {"active", "trial", "cancelled"}
        assert record["address"]["country"] in _vocab.COUNTRIES
        if record["customer_type"] == "consumer":
            assert record["company"] is None
            assert record["vat_id"] is None
        else:
            assert record["company"]
    for row in demo.service:
        assert row["name"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created_at"])


def test_transactions_reference_their_parties_in_the_right_currency(demo: Demo) -> None:
    currency_of_kunnr = {r["KUNNR"]: _vocab.CURRENCIES[r["LAND1"]] for r in demo.erp}
    for order in demo.orders:
        assert order["WAERK"] == currency_of_kunnr[order["KUNNR"]]
        assert re.fullmatch(r"\d+\.\d\d", order["NETWR"])
        assert re.fullmatch(r"\d\d\.\d\d\.\d{4}", order["ERDAT"])
    assert len({o["VBELN"] for o in demo.orders}) == len(demo.orders)
    currency_of_account = {
        r["account_id"]: _vocab.CURRENCIES[r["address"]["country"]] for r in demo.billing
    }
    for invoice in demo.invoices:
        assert invoice["currency"] == currency_of_account[invoice["account_id"]]
        assert isinstance(invoice["amount"], str)
        assert re.fullmatch(r"\d+\.\d\d", invoice["amount"])
        assert invoice["status"] in {"paid", "open", "overdue"}
    assert len({i["invoice_id"] for i in demo.invoices}) == len(demo.invoices)
    requesters = {r["requester_id"] for r in demo.service}
    assert all(t["requester_id"] in requesters for t in demo.tickets)
    assert len({t["ticket_id"] for t in demo.tickets}) == len(demo.tickets)
    per_kunnr = Counter(o["KUNNR"] for o in demo.orders)
    assert max(per_kunnr.values()) <= 4
    assert max(Counter(i["account_id"] for i in demo.invoices).values()) <= 5
    assert max(Counter(t["requester_id"] for t in demo.tickets).values()) <= 3


# --------------------------------------------------------------------------- truth


def test_truth_covers_every_party_row_exactly_once(demo: Demo) -> None:
    rows = Counter((system, source_id) for system, source_id, _ in demo.party_rows())
    truth = Counter((t["system"], t["source_id"]) for t in demo.truth)
    assert rows == truth
    # Only the rows malformed on purpose (an empty CRM Id) share a key.
    assert all(count == 1 for key, count in truth.items() if key[1])
    assert {t["system"] for t in demo.truth} == set(PARTY_FILES)
    assert all(re.fullmatch(r"P\d{7}", t["party_id"]) for t in demo.truth)


def test_truth_counts_the_customers_and_their_kinds(demo: Demo) -> None:
    parties = {t["party_id"] for t in demo.truth}
    assert len(parties) == CUSTOMERS
    kinds = Counter(demo.kind_of.values())
    assert 0.1 < kinds["organization"] / CUSTOMERS < 0.35
    for system, source_id, row in demo.party_rows():
        if not source_id:
            continue
        kind = demo.kind_of[demo.party_of[system, source_id]]
        if system == "crm":
            assert (row["RecordType"] == "Account") == (kind == "organization")
        elif system == "erp":
            assert row["KTOKD"] == ("FIRM" if kind == "organization" else "PERS")
        elif system == "billing":
            assert (row["customer_type"] == "business") == (kind == "organization")
        else:
            assert kind == "person"
    # Every party of a kind is consistently that kind.
    assert all(demo.kind_of[t["party_id"]] == t["kind"] for t in demo.truth)


def test_relationships_reference_existing_parties_of_the_right_kind(demo: Demo) -> None:
    kinds = Counter(r["relationship"] for r in demo.relationships)
    assert set(kinds) == {"contact_of", "subsidiary_of"}
    assert kinds["subsidiary_of"] > 0
    for rel in demo.relationships:
        assert rel["from_party_id"] != rel["to_party_id"]
        assert demo.kind_of[rel["to_party_id"]] == "organization"
        expected = "person" if rel["relationship"] == "contact_of" else "organization"
        assert demo.kind_of[rel["from_party_id"]] == expected
    contacts = [r["from_party_id"] for r in demo.relationships if r["relationship"] == "contact_of"]
    assert len(contacts) == len(set(contacts))  # one organization per contact person


def test_company_contacts_are_not_erp_customers(demo: Demo) -> None:
    contacts = {r["from_party_id"] for r in demo.relationships if r["relationship"] == "contact_of"}
    erp_parties = {demo.party_of["erp", r["KUNNR"]] for r in demo.erp}
    assert not contacts & erp_parties


def test_crm_contacts_point_at_their_organizations_account(demo: Demo) -> None:
    org_of = {r["from_party_id"]: r["to_party_id"] for r in demo.relationships}
    linked = 0
    for row in demo.crm:
        if row["AccountId"] and row["Id"]:
            person = demo.party_of["crm", row["Id"]]
            assert demo.party_of["crm", row["AccountId"]] == org_of[person]
            linked += 1
    assert linked > 100


def test_about_three_party_rows_per_party(demo: Demo) -> None:
    per_party = len(demo.truth) / CUSTOMERS
    assert 2.5 <= per_party <= 3.5
    systems_per_party = defaultdict(set)
    for t in demo.truth:
        systems_per_party[t["party_id"]].add(t["system"])
    assert {len(s) for s in systems_per_party.values()} == {1, 2, 3, 4}


def test_in_system_duplicates(demo: Demo) -> None:
    for system, low, high in (("crm", 0.04, 0.13), ("service", 0.12, 0.3)):
        rows = Counter(t["party_id"] for t in demo.truth if t["system"] == system)
        share = sum(1 for n in rows.values() if n > 1) / len(rows)
        assert low < share < high, (system, share)


# --------------------------------------------------------------------------- variation


def e164(text: str, region: str | None) -> str:
    number = phonenumbers.parse(text, region)
    assert phonenumbers.is_valid_number(number), text
    if region is not None:
        assert phonenumbers.region_code_for_number(number) == region, text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_every_phone_is_a_valid_number_of_its_country(demo: Demo) -> None:
    spellings: Counter[str] = Counter()
    for row in demo.crm:
        if row["Phone"]:
            e164(row["Phone"], COUNTRY_CODES.get(row["Country"], row["Country"]))
            spellings[phone_style(row["Phone"])] += 1
    for row in demo.erp:
        if row["TELF1"]:
            e164(row["TELF1"], row["LAND1"])
            spellings[phone_style(row["TELF1"])] += 1
    for record in demo.billing:
        if record["phone"]:
            e164(record["phone"], record["address"]["country"])
    for row in demo.service:
        if row["phone"]:
            e164(row["phone"], None)  # international spellings only
    assert set(spellings) == {"e164", "international", "national", "00", "(0)", "us"}


def phone_style(text: str) -> str:
    if text.startswith("("):
        return "us"  # (212) 555-0187
    if text.startswith("00"):
        return "00"  # 0049 30 123456
    if text.startswith("0"):
        return "national"  # 030 123456
    if "(0)" in text:
        return "(0)"  # +49 (0)30 123456
    return "international" if " " in text else "e164"


def _valid_vat(country: str, text: str) -> bool:
    compact = re.sub(r"[\s.]", "", text).upper()
    if country == "US":
        return re.fullmatch(r"\d{2}-?\d{7}", compact) is not None
    prefix = "ATU" if country == "AT" else country
    if not compact.startswith(prefix):
        compact = ("AT" + compact) if country == "AT" else prefix + compact
    body = compact[len(prefix) :]
    if country == "DE":
        check = 5
        for ch in body[:8]:
            check = (((check or 10) * 2) % 11 + int(ch)) % 10
        return len(body) == 9 and str((1 - ((check or 10) * 2) % 11) % 10) == body[8]
    if country == "AT":
        digits = [int(c) for c in body[:7]]
        total = sum(d if i % 2 == 0 else sum(divmod(2 * d, 10)) for i, d in enumerate(digits))
        return len(body) == 8 and (96 - total) % 10 == int(body[7])
    if country == "GB":
        weights = (8, 7, 6, 5, 4, 3, 2, 10, 1)
        return (
            len(body) == 9 and sum(w * int(c) for w, c in zip(weights, body, strict=True)) % 97 == 0
        )
    if country == "FR":
        siren = body[2:]
        luhn = sum(
            int(c) if i % 2 == 0 else sum(divmod(2 * int(c), 10))
            for i, c in enumerate(reversed(siren))
        )
        return len(body) == 11 and luhn % 10 == 0 and int(body[:2]) == int(siren + "12") % 97
    if country == "NL":
        digits = body[:9]
        total = sum((9 - i) * int(c) for i, c in enumerate(digits[:8])) - int(digits[8])
        return re.fullmatch(r"\d{9}B\d\d", body) is not None and total % 11 == 0
    return False


def test_vat_ids_have_valid_check_digits_in_every_spelling(demo: Demo) -> None:
    seen: Counter[str] = Counter()
    for row in demo.crm:
        if row["VatNumber"]:
            country = COUNTRY_CODES.get(row["Country"], row["Country"])
            assert _valid_vat(country, row["VatNumber"]), row["VatNumber"]
            seen["spaced" if " " in row["VatNumber"] else "compact"] += 1
            seen["lower" if row["VatNumber"][:1].islower() else "upper"] += 1
    for row in demo.erp:
        if row["STCEG"]:
            assert _valid_vat(row["LAND1"], row["STCEG"]), row["STCEG"]
    for record in demo.billing:
        if record["vat_id"]:
            assert _valid_vat(record["address"]["country"], record["vat_id"])
    assert min(seen.values()) > 0, seen


def _compact_vat(text: str) -> str:
    return re.sub(r"[\s.]", "", text).upper()


def test_an_erp_subsidiary_names_its_group_parents_vat_id(demo: Demo) -> None:
    parent_of = {
        r["from_party_id"]: r["to_party_id"]
        for r in demo.relationships
        if r["relationship"] == "subsidiary_of"
    }
    vat_ids: dict[str, set[str]] = defaultdict(set)  # party -> the VAT ids its rows carry
    for system, source_id, row in demo.party_rows():
        vat = row.get("VatNumber") or row.get("STCEG") or row.get("vat_id")
        if vat:
            vat_ids[demo.party_of[system, source_id]].add(_compact_vat(vat))
    named = 0
    for row in demo.erp:
        if not row["ZZ_PARENT_STCEG"]:
            continue
        named += 1
        party = demo.party_of["erp", row["KUNNR"]]
        assert row["KTOKD"] == "FIRM"
        assert party in parent_of  # subsidiaries only
        value = _compact_vat(row["ZZ_PARENT_STCEG"])
        assert _valid_vat(row["LAND1"], value), value  # a group shares its country
        assert value not in vat_ids[party]
        # the parent's own, as its rows carry it (some typed without the country prefix)
        held = vat_ids[parent_of[party]]
        assert not held or any(v.endswith(value) or value.endswith(v) for v in held), value
    # most subsidiaries' rows (not those of a US group: an EIN is no VAT id)
    rows = [r for r in demo.erp if demo.party_of["erp", r["KUNNR"]] in parent_of]
    assert len(rows) / 2 < named < len(rows)


def test_known_vat_examples_validate() -> None:
    # Published valid examples, to check the test's own checksum code.
    assert _valid_vat("DE", "DE136695976")
    assert _valid_vat("AT", "ATU13585627")
    assert _valid_vat("GB", "GB980780684")
    assert _valid_vat("FR", "FR40303265045")
    assert _valid_vat("NL", "NL004495445B01")
    assert not _valid_vat("DE", "DE136695977")


def _given_names_per_party(demo: Demo) -> dict[str, set[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    for system, source_id, row in demo.party_rows():
        if not source_id:
            continue
        party = demo.party_of[system, source_id]
        if system == "crm" and row["FirstName"]:
            names[party].add(row["FirstName"])
        elif system == "billing" and row["customer_type"] == "consumer":
            names[party].add(row["first_name"])
    return names


def test_nicknames_and_typos_between_systems(demo: Demo) -> None:
    assert len(_vocab.NICKNAMES) >= 40
    nick_pairs = {(formal, nick) for _, _, formal, nicks in _vocab.NICKNAMES for nick in nicks}
    names = _given_names_per_party(demo)
    nicknamed = [p for p, n in names.items() if any((a, b) in nick_pairs for a in n for b in n)]
    assert len(nicknamed) >= 5
    varied = [p for p, n in names.items() if len(n) > 1]
    assert len(varied) > len(nicknamed)


def test_erp_swaps_name_order_sometimes(demo: Demo) -> None:
    persons = [r["NAME1"] for r in demo.erp if r["KTOKD"] == "PERS"]
    swapped = [n for n in persons if ", " in n]
    assert 0.05 < len(swapped) / len(persons) < 0.35


def test_emails_carry_case_and_whitespace_noise(demo: Demo) -> None:
    emails = [r["Email"] for r in demo.crm if r["Email"]]
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() for e in emails)
    assert all("@" in e for e in emails)


def test_legal_forms_are_spelled_differently(demo: Demo) -> None:
    names = [r["AccountName"] for r in demo.crm if r["AccountName"]]
    names += [r["NAME1"] for r in demo.erp if r["KTOKD"] == "FIRM"]
    for spelling in ("GmbH", "G.m.b.H.", "Ltd", "Limited", "Inc.", "Inc", "B.V.", "BV", "SARL"):
        assert sum(n.endswith(" " + spelling) for n in names) >= 3, spelling


def test_some_parties_moved_and_old_systems_kept_the_old_address(demo: Demo) -> None:
    postcodes: dict[str, set[str]] = defaultdict(set)
    for row in demo.crm:
        if row["Id"] and row["RecordType"] == "Contact" and not row["AccountId"]:
            postcodes[demo.party_of["crm", row["Id"]]].add(row["PostalCode"].lstrip("0"))
    for row in demo.erp:
        postcodes[demo.party_of["erp", row["KUNNR"]]].add(row["PSTLZ"].lstrip("0"))
    moved = [
        p for p, codes in postcodes.items() if len({c.replace(" ", "").upper() for c in codes}) > 1
    ]
    assert len(moved) > 20


def test_malformed_rows_are_rare_and_present(demo: Demo) -> None:
    empty_ids = [r for r in demo.crm if not r["Id"]]
    bad_births = [r for r in demo.crm if r["BirthDate"] and not _iso_date_ok(r["BirthDate"])]
    bad_erp = [r for r in demo.erp if r["GEBDAT"] and not _german_date_ok(r["GEBDAT"])]
    assert empty_ids
    assert bad_births
    assert bad_erp
    share = (len(empty_ids) + len(bad_births) + len(bad_erp)) / len(demo.truth)
    assert share < 0.01


def _iso_date_ok(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _german_date_ok(text: str) -> bool:
    day, month, year = (int(x) for x in text.split("."))
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- look-alikes


def test_households_share_name_address_and_landline_but_are_different_parties(
    demo: Demo,
) -> None:
    groups: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for row in demo.crm:
        if row["RecordType"] != "Account" and row["Id"] and row["Phone"] and row["Street"]:
            region = COUNTRY_CODES.get(row["Country"], row["Country"])
            key = (row["LastName"], row["Street"], row["PostalCode"], e164(row["Phone"], region))
            groups[key].add(demo.party_of["crm", row["Id"]])
    households = [parties for parties in groups.values() if len(parties) > 1]
    assert len(households) >= 3


def test_household_members_share_family_address_and_landline() -> None:
    generator = gen._Generator(random.Random(3), gen._pools(SEED), out=None, seed=3)  # type: ignore[arg-type]
    for size in (2, 3, 4) * 20:
        members = generator.household(size)
        head = members[0]
        assert len(members) == size
        assert len({m.party_id for m in members}) == size
        assert len({m.given for m in members}) == size
        assert len({m.birth for m in members}) == size
        for member in members:
            assert member.family == head.family
            assert member.address is head.address
            assert member.landline is head.landline
            assert member.birth <= gen._AS_OF - 18 * 365


def test_namesakes_in_the_same_city_are_different_parties(demo: Demo) -> None:
    by_name: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in demo.crm:
        if row["RecordType"] != "Account" and row["Id"] and row["City"]:
            key = (row["FirstName"], row["LastName"], row["City"])
            by_name[key].add(demo.party_of["crm", row["Id"]])
    assert sum(1 for parties in by_name.values() if len(parties) > 1) >= 3


def test_contacts_of_one_company_share_its_mailbox(demo: Demo) -> None:
    org_of = {r["from_party_id"]: r["to_party_id"] for r in demo.relationships}
    users: dict[str, set[str]] = defaultdict(set)
    for row in demo.service:
        if row["email"]:
            users[row["email"].strip().lower()].add(demo.party_of["service", row["requester_id"]])
    shared = [
        parties
        for email, parties in users.items()
        if len(parties) > 1 and email.split("@")[0] in {"info", "office", "contact", "kontakt"}
    ]
    assert shared
    assert all(p in org_of for parties in shared for p in parties)  # contacts only
    assert any(len({org_of[p] for p in parties}) == 1 for parties in shared)


# --------------------------------------------------------------------------- streaming


def test_memory_stays_flat_as_customers_grow(tmp_path: Path) -> None:
    generate(tmp_path / "warm-up", seed=SEED, customers=100)  # pools and imports

    def traced(customers: int) -> tuple[int, list[int]]:
        current: list[int] = []
        tracemalloc.start()
        try:
            generate(
                tmp_path / str(customers),
                seed=SEED,
                customers=customers,
                progress=lambda _: current.append(tracemalloc.get_traced_memory()[0]),
            )
            return tracemalloc.get_traced_memory()[1], current
        finally:
            tracemalloc.stop()

    small_peak, _ = traced(2000)
    big_peak, current = traced(10_000)
    assert big_peak - small_peak < 1_500_000
    # What is held between batches does not grow either.
    assert max(current[-3:]) - min(current[:3]) < 1_000_000


def test_progress_reports_every_customer_once(tmp_path: Path) -> None:
    calls: list[int] = []
    summary = generate(tmp_path, seed=SEED, customers=2345, progress=calls.append)
    assert sum(calls) == 2345 == summary.customers
    assert len(calls) == 3
    assert all(n >= 1000 for n in calls[:-1])


def test_no_customers_writes_headers_only(tmp_path: Path) -> None:
    calls: list[int] = []
    summary = generate(tmp_path, customers=0, progress=calls.append)
    assert calls == []
    assert summary.truth_rows == 0
    assert set(summary.files.values()) == {0}
    header, rows = read_csv(tmp_path / gen.CRM_FILE)
    assert header == list(gen.CRM_COLUMNS)
    assert rows == []
    assert read_jsonl_gz(tmp_path / gen.BILLING_ACCOUNTS_FILE) == []


def test_negative_customers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers"):
        generate(tmp_path, customers=-1)


@pytest.mark.parametrize("customers", [1, 2, 3, 7])
def test_exact_customer_count_for_tiny_runs(tmp_path: Path, customers: int) -> None:
    summary = generate(tmp_path, seed=5, customers=customers)
    _, truth = read_csv(tmp_path / gen.TRUTH_FILE)
    assert len({t["party_id"] for t in truth}) == customers == summary.customers


def test_csv_rows_are_written_exactly_as_the_csv_module_writes_them(tmp_path: Path) -> None:
    rows = [
        ["plain", "Müller", "", "12, rue de la Paix"],
        ['say "hi"', "a;b", " padded ", "x"],
        ["line\nbreak", "cr\rhere", ",", ""],
    ]
    for delimiter, terminator in ((",", "\n"), (";", "\r\n")):
        table = gen._Table(
            tmp_path / "t.csv", ["a", "b", "c", "d"], delimiter=delimiter, lineterminator=terminator
        )
        for row in rows:
            table.add(row)
        table.close()
        with (tmp_path / "expected.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=delimiter, lineterminator=terminator)
            writer.writerow(["a", "b", "c", "d"])
            writer.writerows(rows)
        assert (tmp_path / "t.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
