"""Email addresses."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from accord.standardize.errors import InvalidValue, show


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
    if any(ch.isspace() for ch in text):
        raise InvalidValue("email.invalid", f"{show(raw)} is not an email address (has spaces)")
    try:
        result = validate_email(text.lower(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue(
            "email.invalid", f"{show(raw)} is not a valid email address: {error}"
        ) from None
    return result.normalized.lower()
