"""Phone numbers, to E.164."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, ValidationResult

from accord.standardize.errors import InvalidValue, show

# Keep every compiled metadata pattern: numbers from many regions otherwise push them out
# of the re module's small cache, and recompiling them was a sixth of a number's cost.
phonenumbers.enable_pattern_cache()

_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
# "0049 30 ...": 00 is the international prefix of most of the world (not of the US, 011).
_INTERNATIONAL_00 = re.compile(r"^00\s*(?=[1-9])")
_PARSE_CODES = {
    NumberParseException.INVALID_COUNTRY_CODE: "phone.invalid",
    NumberParseException.NOT_A_NUMBER: "phone.invalid",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone.too_short",
    NumberParseException.TOO_SHORT_NSN: "phone.too_short",
    NumberParseException.TOO_LONG: "phone.too_long",
}
_POSSIBLE_CODES = {
    ValidationResult.TOO_SHORT: "phone.too_short",
    ValidationResult.TOO_LONG: "phone.too_long",
}


def phone(raw: str, default_region: str | None = None) -> str:
    """Return the number in E.164; raises phone.invalid/.no_region/.too_short/.too_long/...

    A number without a country code needs `default_region` (ISO alpha-2); none is ever
    guessed. An extension ("ext. 12") is an error, not dropped: E.164 cannot hold it.
    """
    text = raw.strip()
    if not text:
        raise InvalidValue("phone.empty", "the phone number is empty")
    region = default_region.strip().upper() if default_region else None
    if region not in _REGIONS:
        region = None
    number = _parse(raw, text, region)
    if number.extension:
        raise InvalidValue(
            "phone.extension", f"{show(raw)} has an extension, which E.164 cannot hold"
        )
    if not phonenumbers.is_valid_number(number):
        reason = phonenumbers.is_possible_number_with_reason(number)
        code = _POSSIBLE_CODES.get(reason, "phone.invalid")
        raise InvalidValue(code, f"{show(raw)} is not a valid phone number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _parse(raw: str, text: str, region: str | None) -> PhoneNumber:
    international = _INTERNATIONAL_00.sub("+", text, count=1)
    if international != text:
        try:
            number = phonenumbers.parse(international, None)
        except NumberParseException:
            number = None
        # 00 might be a region's own prefix ("0011" in Australia): then ask with the region.
        if number is not None and (region is None or phonenumbers.is_valid_number(number)):
            return number
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as error:
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE and not (
            region or text.lstrip("(").startswith("+")
        ):
            raise InvalidValue(
                "phone.no_region",
                f"{show(raw)} has no country code and no default region was given",
            ) from None
        code = _PARSE_CODES.get(error.error_type, "phone.invalid")
        raise InvalidValue(code, f"{show(raw)} is not a phone number: {error.args[0]}") from None
