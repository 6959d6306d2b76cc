"""Tax and registration identifiers."""

from __future__ import annotations

import re

from accord.standardize.errors import InvalidValue, show

_SEPARATORS = re.compile(r"[\s./-]+")
_VALID = re.compile(r"^[A-Z0-9]{4,20}$", re.ASCII)


def tax_id(raw: str) -> str:
    """Return the identifier uppercased without separators; raises tax_id.invalid/.empty.

    "DE 123.456.789" -> "DE123456789". A leading country prefix is kept as typed. No
    checksum is validated yet: any 4 to 20 letters and digits pass.
    """
    text = _SEPARATORS.sub("", raw.upper())
    if not text:
        raise InvalidValue("tax_id.empty", "the tax id is empty")
    if not _VALID.match(text):
        raise InvalidValue(
            "tax_id.invalid", f"{show(raw)} is not a tax id (4 to 20 letters and digits)"
        )
    return text
