"""The second factor's pure parts: TOTP codes with a step of drift, replay, recovery codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp

from accord.govern import mfa

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2025, 3, 14, 9, 26, 45, tzinfo=UTC)
STEP = timedelta(seconds=30)


def _step(at: datetime) -> int:
    return pyotp.TOTP(SECRET).timecode(at)


def test_the_current_code_is_taken_and_names_its_step() -> None:
    code = mfa.code_at(SECRET, NOW)
    assert mfa.matching_step(SECRET, code, NOW, after=None) == _step(NOW)
    # as typed by people: with a space in the middle
    assert mfa.matching_step(SECRET, f"{code[:3]} {code[3:]}", NOW, after=None) == _step(NOW)


def test_a_code_one_step_early_or_late_is_taken_two_are_not() -> None:
    for offset, taken in [(-2, False), (-1, True), (1, True), (2, False)]:
        code = mfa.code_at(SECRET, NOW + offset * STEP)
        step = mfa.matching_step(SECRET, code, NOW, after=None)
        assert (step == _step(NOW) + offset) if taken else step is None, offset


def test_a_code_is_taken_once_and_never_one_older_than_the_last() -> None:
    code = mfa.code_at(SECRET, NOW)
    used = mfa.matching_step(SECRET, code, NOW, after=None)
    assert used is not None
    assert mfa.matching_step(SECRET, code, NOW, after=used) is None  # replay
    earlier = mfa.code_at(SECRET, NOW - STEP)
    assert mfa.matching_step(SECRET, earlier, NOW, after=used) is None
    later = mfa.code_at(SECRET, NOW + STEP)
    assert mfa.matching_step(SECRET, later, NOW + STEP, after=used) == used + 1


def test_wrong_and_malformed_codes_are_refused() -> None:
    code = mfa.code_at(SECRET, NOW)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for typed in [wrong, "", "12345", "1234567", "abcdef", code + "0"]:
        assert mfa.matching_step(SECRET, typed, NOW, after=None) is None, typed
    assert mfa.matching_step(mfa.new_secret(), code, NOW, after=None) is None


def test_recovery_codes_are_distinct_readable_and_stored_as_digests() -> None:
    recovery = mfa.new_recovery_codes()
    assert len(set(recovery.codes)) == mfa.RECOVERY_CODES == len(recovery.digests)
    for code, digest in zip(recovery.codes, recovery.digests, strict=True):
        assert len(code) == 11 and code[5] == "-"
        assert mfa.is_recovery_shaped(code) and not mfa.is_totp_shaped(code)
        assert digest == mfa.recovery_digest(code) != code
        # typed without the dash, in capitals, with spaces: the same code
        assert mfa.recovery_digest(code.replace("-", " ").upper()) == digest
    assert not mfa.is_recovery_shaped("abcde-fghi0")  # 0 is not in the alphabet


def test_the_provisioning_uri_and_qr_code_carry_the_secret() -> None:
    uri = mfa.provisioning_uri(SECRET, "ann")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parse_qs(parts.query)["secret"] == [SECRET]
    assert parse_qs(parts.query)["issuer"] == ["Accord"]
    assert mfa.qr_data_uri(uri).startswith("data:image/svg+xml")
    assert mfa.grouped("ABCDEFGHIJ") == "ABCD EFGH IJ"


def test_new_secrets_are_base32_of_160_bits() -> None:
    secret = mfa.new_secret()
    assert len(secret) == 32 and secret != mfa.new_secret()
    pyotp.TOTP(secret).now()  # a valid base32 secret
