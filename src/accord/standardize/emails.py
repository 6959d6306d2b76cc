"""Email addresses."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from accord.standardize.errors import InvalidValue, show

# A plain ASCII local part (RFC 5322 dot-atom), the form almost every address has; for
# it, email_validator checks nothing but this and its length, so the fast path below
# gives its answer without its cost. Anything else takes the full check.
_DOT_ATOM = re.compile(r"[a-z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-z0-9_!#$%&'*+\-/=?^`{|}~]+)*\Z")
_SPACE = re.compile(r"\s")  # what str.isspace() calls a space, as the standard library's re does
_LOCAL_MAX = 64  # octets, RFC 5321 4.5.3.1.1
_ADDRESS_MAX = 254  # octets, RFC 3696 errata 1690


def email(raw: str) -> str:
    """Return the normalized, lowercased address; raises email.invalid (or email.empty).

    Only the syntax is checked (no DNS). The whole address is lowercased: RFC 5321 lets
    the part before the @ be case-sensitive, but no mail provider in practice treats
    "Anna.Schmidt@" and "anna.schmidt@" as different people, and for matching and
    survivorship one spelling per mailbox matters more. Nothing else is rewritten (no
    dot or "+tag" removal): those rules are provider-specific.
    """
    text = raw.strip()
    if not text:
        raise InvalidValue("email.empty", "the email address is empty")
    if _SPACE.search(text):
        raise InvalidValue("email.invalid", f"{show(raw)} is not an email address (has spaces)")
    lowered = text.lower()
    local, at, domain = lowered.rpartition("@")
    try:
        if (
            at
            and lowered.isascii()
            and len(lowered) <= _ADDRESS_MAX
            and len(local) <= _LOCAL_MAX
            and _DOT_ATOM.match(local)
        ):
            return f"{local}@{_domain(domain)}"
        return validate_email(lowered, check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidValue(
            "email.invalid", f"{show(raw)} is not a valid email address: {error}"
        ) from None


# A plain ASCII host name (RFC 952/1123 labels of at most 63 characters, ending in a
# letter, with a period): for one without "--" (Punycode or other R-LDH labels) and not
# a special-use name, email_validator's check passes it unchanged.
_PLAIN_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]\Z"
)
_DOMAIN_MAX = 253  # octets, RFC 1035 2.3.4


@lru_cache(maxsize=65_536)
def _domain(domain: str) -> str:
    """The part after the @, as email_validator checks it in a whole address (held to
    its answers by a property test): plain host names at once, any other by it."""
    if (
        len(domain) <= _DOMAIN_MAX
        and _PLAIN_DOMAIN.match(domain)
        and "--" not in domain
        and not any(
            domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES
        )
    ):
        return domain
    checked = validate_email(f"a@{domain}", check_deliverability=False)
    return checked.normalized.lower().rpartition("@")[2]
