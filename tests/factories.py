"""Test data builders: source files in the demo systems' own formats."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

CRM_COLUMNS = [
    "Id",
    "RecordType",
    "FirstName",
    "LastName",
    "AccountName",
    "AccountId",
    "Email",
    "Phone",
    "Street",
    "PostalCode",
    "City",
    "Country",
    "Status",
    "BirthDate",
    "VatNumber",
    "LastModified",
    "ParentId",
]


def crm_row(source_id: str, **values: str) -> dict[str, str]:
    """A CRM contact row; keyword arguments override columns."""
    row = dict.fromkeys(CRM_COLUMNS, "")
    row.update(
        Id=source_id,
        RecordType="Contact",
        FirstName="Anna",
        LastName="Schmidt",
        Email="anna.schmidt@example.de",
        Phone="+49 30 1234567",
        Street="Hauptstraße 5",
        PostalCode="10115",
        City="Berlin",
        Country="Germany",
        Status="Customer",
        BirthDate="1985-04-12",
        LastModified="2024-01-01T10:00:00Z",
    )
    row.update(values)
    return row


ERP_COLUMNS = [
    "KUNNR",
    "KTOKD",
    "NAME1",
    "NAME2",
    "STRAS",
    "PSTLZ",
    "ORT01",
    "LAND1",
    "TELF1",
    "SMTP_ADDR",
    "STCEG",
    "GEBDAT",
    "ERDAT",
    "ZZ_PARENT_STCEG",
]


def erp_row(**values: str) -> dict[str, str]:
    """An ERP (SAP-style) customer row for a person; keyword arguments override columns."""
    row = dict.fromkeys(ERP_COLUMNS, "")
    row.update(
        KUNNR="0000000001",
        KTOKD="PERS",
        NAME1="Müller, Hans",
        LAND1="DE",
        TELF1="030 1234567",
        GEBDAT="01.02.1960",
    )
    row.update(values)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    columns = list(rows[0]) if rows else CRM_COLUMNS
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def billing_row(account_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": account_id,
        "customer_type": "consumer",
        "first_name": "Anna",
        "last_name": "Schmidt",
        "company": None,
        "email": "Anna.Schmidt@Example.de ",
        "phone": "030 1234567",
        "address": {
            "line1": "Hauptstr. 5",
            "postal_code": "10115",
            "city": "Berlin",
            "country": "DE",
        },
        "vat_id": None,
        "status": "active",
        "updated_at": "2024-06-01T08:00:00+00:00",
    }
    row.update(values)
    return row


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, gzipped: bool = False) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if gzipped:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def anna_chain_and_bob() -> list[dict[str, str]]:
    """CRM rows: Anna three times, chained (C1 - C2 share an email, C2 - C3 a phone; C1
    and C3 share nothing the rules link on), and Bob (C4), who shares nothing with anyone.
    The rules engine puts C1-C3 in one customer. Used by the stewardship tests."""
    return [
        crm_row("C1", Email="anna@x.org", Phone="+49 30 1111111", BirthDate="", PostalCode="10115"),
        crm_row(
            "C2",
            Email="anna@x.org",
            Phone="+49 30 2222222",
            BirthDate="",
            PostalCode="20095",
            City="Hamburg",
            Street="Elbweg 2",
        ),
        crm_row(
            "C3",
            Email="schmidt@y.org",
            Phone="+49 30 2222222",
            BirthDate="",
            PostalCode="80331",
            City="München",
            Street="Marienplatz 1",
        ),
        crm_row(
            "C4",
            FirstName="Bob",
            LastName="Jones",
            Email="bob@z.org",
            Phone="+49 89 5555555",
            BirthDate="1970-01-01",
            PostalCode="50667",
            City="Köln",
            Street="Domplatz 1",
        ),
    ]


def bob_row(phone: str = "+49 89 5555555", city: str = "Köln") -> dict[str, str]:
    """Bob (C4 of `anna_chain_and_bob`), with another phone or city: a change to him."""
    return crm_row(
        "C4",
        FirstName="Bob",
        LastName="Jones",
        Email="bob@z.org",
        Phone=phone,
        BirthDate="1970-01-01",
        PostalCode="50667",
        City=city,
        Street="Domplatz 1",
    )


def erp_order_row(vbeln: str, kunnr: str, **values: str) -> dict[str, str]:
    """An ERP (SAP-style) order row, as the demo generator writes them; keyword arguments
    override columns."""
    row = {"VBELN": vbeln, "KUNNR": kunnr, "ERDAT": "04.10.2013", "NETWR": "1234.50"}
    row["WAERK"] = "EUR"
    row.update(values)
    return row


def invoice_row(invoice_id: str, account_id: str, **values: Any) -> dict[str, Any]:
    """A billing invoice, as the demo generator writes them (JSON Lines)."""
    row: dict[str, Any] = {
        "invoice_id": invoice_id,
        "account_id": account_id,
        "issued_at": "2024-03-01T09:30:00Z",
        "amount": "99.90",
        "currency": "EUR",
        "status": "paid",
    }
    row.update(values)
    return row


def ticket_row(ticket_id: str, requester_id: str, **values: str) -> dict[str, str]:
    """A service desk ticket, as the demo generator writes them."""
    row = {
        "ticket_id": ticket_id,
        "requester_id": requester_id,
        "opened_at": "2024-05-02T08:00:00Z",
        "subject": "Login does not work",
        "priority": "high",
        "status": "open",
    }
    row.update(values)
    return row


# A CRM linked-record mapping for tests (the demo's CRM has none): contracts of accounts
# and contacts, named by the CRM id of the customer's record.
CRM_CONTRACTS_MAPPING = """\
system: crm
kind: contract
source_id: ContractId
customer: CustomerId
format: {type: csv}
fields:
  occurred_at: {from: Signed, formats: ["%Y-%m-%d"]}
  amount: Value
  currency: Currency
  title: Name
"""


def contract_row(contract_id: str, customer_id: str, **values: str) -> dict[str, str]:
    row = {
        "ContractId": contract_id,
        "CustomerId": customer_id,
        "Signed": "2024-01-15",
        "Value": "500.00",
        "Currency": "EUR",
        "Name": f"Service contract {contract_id}",
    }
    row.update(values)
    return row
