import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import InvalidValue, email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("anna.schmidt@example.de", "anna.schmidt@example.de"),
        ("  Anna.Schmidt@Example.DE ", "anna.schmidt@example.de"),
        ("JOHN.SMITH@EXAMPLE.CO.UK", "john.smith@example.co.uk"),
        ("jean-pierre.dupont@exemple.fr", "jean-pierre.dupont@exemple.fr"),
        ("j.de.vries+crm@voorbeeld.nl", "j.de.vries+crm@voorbeeld.nl"),  # tags kept
        ("John.Doe@Gmail.com", "john.doe@gmail.com"),  # dots kept: no provider rules
        ("müller@bücher.de", "müller@bücher.de"),  # internationalized
        ("o'brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_email(raw: str, expected: str) -> None:
    assert email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "anna schmidt@example.de",
        "anna@exa mple.de",
        "anna.schmidt",
        "anna@",
        "@example.de",
        "anna@@example.de",
        "anna@example",
        "anna@localhost",
        "anna..schmidt@example.de",
        "anna@example..de",
        "Anna Schmidt <anna@example.de>",
        "mailto:anna@example.de",
        "anna@example.de; bob@example.de",
        "anna@[192.168.0.1]",
        '"anna"@example.de',
        "anna@example.test",
    ],
)
def test_email_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        email(raw)
    assert error.value.code == "email.invalid"
    assert raw in error.value.message


def test_email_empty() -> None:
    with pytest.raises(InvalidValue) as error:
        email(" ")
    assert error.value.code == "email.empty"


_LOCAL = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._+-]{0,20}[A-Za-z0-9])?\Z").filter(
    lambda s: ".." not in s
)
_LABEL = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,15}[A-Za-z0-9])?\Z")
_TLD = st.sampled_from(["de", "com", "co.uk", "fr", "nl", "org", "DE", "Com", "bayern"])
_ADDRESSES = st.builds(lambda local, label, tld: f"{local}@{label}.{tld}", _LOCAL, _LABEL, _TLD)


@settings(max_examples=150)
@given(_ADDRESSES, st.sampled_from(["", " ", "\t"]))
def test_email_is_idempotent(raw: str, padding: str) -> None:
    once = email(padding + raw + padding)
    assert email(once) == once
    assert once == raw.lower()


@settings(max_examples=150)
@given(st.emails())
def test_email_is_idempotent_for_generated_addresses(raw: str) -> None:
    try:
        once = email(raw)
    except InvalidValue:
        return  # hypothesis also generates reserved domains email_validator refuses
    assert email(once) == once


@settings(max_examples=200)
@given(st.text())
def test_email_only_raises_invalid_value(raw: str) -> None:
    try:
        once = email(raw)
    except InvalidValue:
        return
    assert email(once) == once


def _full_check(raw: str) -> str:
    """email() as it was before its fast path: every address through email_validator."""
    text = raw.strip()
    try:
        return validate_email(text.lower(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        return f"invalid: {error}"


def _answer(raw: str) -> str:
    try:
        return email(raw)
    except InvalidValue as error:
        return "invalid: " + error.message.split("is not a valid email address: ", 1)[-1]


# ASCII addresses near the edges of the fast path: every atext character and then some,
# dots in odd places, hyphens and double hyphens in labels, numeric and special-use TLDs,
# lengths around the 64- and 254-octet limits.
_EDGE_CHARS = "aZ09._+-!#$%&'*/=?^`{|}~\"(),:;<>[]\\"
_EDGE_LOCAL = st.one_of(
    st.text(alphabet=_EDGE_CHARS, min_size=1, max_size=12),
    st.integers(60, 68).map(lambda n: "a" * n),
)
_EDGE_LABEL = st.one_of(
    st.text(alphabet="aZ09-", min_size=1, max_size=8),
    st.sampled_from(["xn--bcher-kva", "ab--cd", "xn--", "localhost", "test", "123", "a" * 63]),
    st.integers(62, 66).map(lambda n: "b" * n),
)
_EDGE_DOMAIN = st.lists(_EDGE_LABEL, min_size=1, max_size=5).map(".".join)


@settings(max_examples=800)
@given(_EDGE_LOCAL, st.sampled_from(["@", "@@", ""]), _EDGE_DOMAIN)
def test_fast_path_answers_as_the_full_check(local: str, at: str, domain: str) -> None:
    raw = f"{local}{at}{domain}"
    if any(ch.isspace() for ch in raw):
        return
    full = _full_check(raw)
    assert _answer(raw) == full


@settings(max_examples=300)
@given(_ADDRESSES)
def test_fast_path_answers_as_the_full_check_for_plain_addresses(raw: str) -> None:
    assert _answer(raw) == _full_check(raw)


def test_a_long_address_with_a_valid_domain_is_refused_as_the_full_check_does() -> None:
    raw = "a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".de"  # 256 octets in all
    assert _answer(raw) == _full_check(raw)
    assert _answer(raw).startswith("invalid")


_HOSTS = st.builds(
    lambda name, tld: f"{name}.{tld}" if name else tld,
    st.text(alphabet="aZ09-.", max_size=20),
    st.sampled_from(["de", "com", "c0m", "-de", "de-", "x", "localhost", "test", "b" * 64, "a-b"]),
)


@settings(max_examples=600)
@given(st.sampled_from(["anna", "a.b", "x+tag"]), _HOSTS)
def test_fast_path_answers_as_the_full_check_for_host_names(local: str, host: str) -> None:
    raw = f"{local}@{host}"
    assert _answer(raw) == _full_check(raw)
