"""The second factor, as pure functions: TOTP codes (RFC 6238, 30-second steps, six
digits, one step of clock drift either way), one-time recovery codes, and the QR code an
authenticator app scans. Storing any of it is `accord.govern.identity`'s business."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

ISSUER = "Accord"
DRIFT_STEPS = 1  # a code of the step before or after the current one is taken too
RECOVERY_CODES = 10
# No 0/o, 1/l/i: a recovery code is read off paper and typed in by hand.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_CHARS = 10  # 10 characters of 31: 49 bits, guessed only under the throttle
_TOTP_SHAPE = re.compile(r"^[0-9]{6}$")
_RECOVERY_SHAPE = re.compile(f"^[{_RECOVERY_ALPHABET}]{{{_RECOVERY_CHARS}}}$")


def new_secret() -> str:
    """A fresh TOTP secret: 160 random bits in base32, as authenticator apps take it."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG `data:` URI, for an `<img>` (the page's
    Content-Security-Policy allows images from data: and nothing inline else)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def normalized(code: str) -> str:
    """What the person typed, without spaces and dashes, lower-case."""
    return re.sub(r"[\s-]", "", code).lower()


def is_totp_shaped(code: str) -> bool:
    return bool(_TOTP_SHAPE.match(normalized(code)))


def is_recovery_shaped(code: str) -> bool:
    return bool(_RECOVERY_SHAPE.match(normalized(code)))


def matching_step(secret: str, code: str, at: datetime, *, after: int | None) -> int | None:
    """The time step whose code `code` is, within the drift around `at`, and later than
    `after` (the last step used: a code is taken once, so a code seen by someone looking
    over a shoulder is worth nothing); None when it is no such code."""
    code = normalized(code)
    if not _TOTP_SHAPE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(at)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # every candidate is compared, so the time taken says nothing of which matched
        if secrets.compare_digest(totp.generate_otp(step), code):
            found = step
    if found is None or (after is not None and found <= after):
        return None
    return found


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at `at` (for tests and the CLI)."""
    return pyotp.TOTP(secret).at(at)


@dataclass(frozen=True)
class RecoveryCodes:
    codes: tuple[str, ...]  # shown to the person once
    digests: tuple[str, ...]  # kept


def new_recovery_codes(count: int = RECOVERY_CODES) -> RecoveryCodes:
    """Fresh one-time codes, as `abcde-fghjk`, with the digests that are stored."""
    raw = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_CHARS))
        for _ in range(count)
    ]
    shown = tuple(f"{code[:5]}-{code[5:]}" for code in raw)
    return RecoveryCodes(shown, tuple(recovery_digest(code) for code in raw))


def recovery_digest(code: str) -> str:
    """What is stored of a recovery code. They are random (49 bits) and every guess is
    throttled, so a fast hash suffices, as for session tokens."""
    return hashlib.sha256(normalized(code).encode()).hexdigest()
