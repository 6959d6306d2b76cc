"""Hostile files of linked records (property tests, SQLite): whatever a row holds, the
load neither crashes nor loses a row without a word.

What happens to each kind of bad input:
- an unreadable date, amount or currency: quarantined (`date.invalid`, `amount.invalid`,
  `currency.invalid`), naming the field;
- a field over `max_field_bytes`: quarantined (`field.too_large`), its raw text cut;
- invalid UTF-8 or a NUL: quarantined (`encoding.invalid`, `encoding.nul`);
- an id repeated in the file: the same content again is counted `repeated_in_file`;
  other content is quarantined (`source_id.repeated`) and the first one is kept.
Every row read is counted exactly once, and each id the file holds a good row of is
stored with the content of its first good row.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.config.loader import load_project
from accord.digest import digest
from accord.linked.intake import load_linked_file
from accord.linked.mapping import LinkedMapper
from accord.store.engine import make_engine
from accord.store.linked import stored
from accord.store.migrate import upgrade
from tests.conftest import DEMO_PROJECT

MAX_FIELD_BYTES = 256
COLUMNS = ("VBELN", "KUNNR", "ERDAT", "NETWR", "WAERK")

_plain = st.text(
    alphabet=st.characters(blacklist_characters=';"\r\n\x00', blacklist_categories=("Cs",)),
    max_size=12,
).map(str.encode)
_hostile = st.one_of(
    _plain,
    st.just(b"\xff\xfe broken"),  # invalid UTF-8
    st.just(b"nul\x00here"),
    st.binary(min_size=MAX_FIELD_BYTES + 1, max_size=MAX_FIELD_BYTES + 1).map(
        lambda b: b"x" * len(b)
    ),  # over max_field_bytes
)
_dates = st.one_of(
    st.dates().map(lambda d: d.strftime("%d.%m.%Y").encode()),
    st.sampled_from([b"31.02.2020", b"2020-01-01", b"", b"00.00.0000", b"04.10.13"]),
    _hostile,
)
_amounts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(lambda d: str(d).encode()),
    st.sampled_from([b"1.234,50", b"1e5", b"NaN", b"-0", b".5", b"", b"9" * 40]),
    _hostile,
)
_rows = st.lists(
    st.tuples(
        st.sampled_from([b"1", b"2", b"3", b""]),  # few ids: repeats are common
        st.one_of(st.sampled_from([b"K1", b"K2", b""]), _hostile),
        _dates,
        _amounts,
        st.one_of(st.sampled_from([b"EUR", b"eur", b"XXX", b"EURO", b""]), _hostile),
    ),
    min_size=1,
    max_size=12,
)


def _project(root: Path) -> Path:
    import shutil  # noqa: PLC0415

    project = root / "project"
    shutil.copytree(DEMO_PROJECT, project)
    path = project / "mappings" / "erp_orders.yaml"
    path.write_text(
        path.read_text().replace(
            'format: {type: csv, delimiter: ";"}',
            f'format: {{type: csv, delimiter: ";", max_field_bytes: {MAX_FIELD_BYTES}}}',
        )
    )
    return project


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows)
def test_a_hostile_file_loads_what_it_can_and_accounts_for_every_row(
    rows: list[tuple[bytes, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = load_project(_project(root))
        mapping = project.linked["erp_orders"]
        engine = make_engine(f"sqlite:///{root / 'accord.sqlite3'}")
        try:
            upgrade(engine)
            path = root / "orders.csv"
            path.write_bytes(
                b";".join(c.encode() for c in COLUMNS)
                + b"\n"
                + b"".join(b";".join(row) + b"\n" for row in rows)
            )
            report = load_linked_file(engine, project, mapping, path, actor="test")
            with engine.connect() as conn:
                found = stored(conn, "erp", "order", ["1", "2", "3"])
        finally:
            engine.dispose()

    blank = [row for row in rows if b";".join(row) == b""]  # a blank line is no row
    assert report.read == len(rows) - len(blank)
    assert (
        report.read
        == (report.new + report.changed + report.unchanged + report.remapped)
        + report.repeated_in_file
        + report.quarantined
    )
    # each id's first row that maps is the one stored
    mapper = LinkedMapper(mapping)
    first: dict[str, str] = {}
    for row in rows:
        try:
            fields = dict(zip(COLUMNS, (value.decode() for value in row), strict=True))
        except UnicodeDecodeError:
            continue
        if any("\x00" in v or len(v.encode()) > MAX_FIELD_BYTES for v in fields.values()):
            continue
        result = mapper.map(fields)
        if hasattr(result, "customer_source_id"):
            first.setdefault(fields["VBELN"], digest(fields))
    assert {source_id: found[source_id][0] for source_id in found} == first
    assert set(report.quarantine_reasons) <= {
        "source_id.missing",
        "customer.missing",
        "date.invalid",
        "date.out_of_range",
        "timestamp.invalid",
        "amount.invalid",
        "currency.invalid",
        "field.too_large",
        "encoding.invalid",
        "encoding.nul",
        "source_id.repeated",
    }
