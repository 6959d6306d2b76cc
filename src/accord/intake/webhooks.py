"""Signed webhooks: a system POSTs single changes (or a small batch), each delivery
signed with a secret the system and Accord share.

The scheme is Stripe's: the sender puts the current time in `Accord-Timestamp` (unix
seconds) and `Accord-Signature: v1=<hex>`, the HMAC-SHA256 with the secret of
`"<timestamp>.<raw body>"`. Several `v1=` values, comma-separated, are allowed, so a
sender can sign with an old and a new secret while a secret is rotated. Accord checks the
signature in constant time, refuses a timestamp more than `tolerance` from its clock
(a captured delivery cannot be sent again later), and remembers each delivery, by the
hash of what was signed, while its timestamp is still acceptable: the same delivery
again is answered as a duplicate and stores nothing.

The signature is the webhook's authentication: it is not an API-key endpoint, and a
system without a `webhook` block has no webhook at all.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine

from accord.config.intake import WebhookIntake
from accord.config.loader import Project
from accord.errors import NotAuthenticated, NotFound, Problem, ProjectInvalid
from accord.govern.permissions import Actor, Role
from accord.intake import push
from accord.store import deliveries
from accord.store.types import utcnow

TIMESTAMP_HEADER = "Accord-Timestamp"
SIGNATURE_HEADER = "Accord-Signature"
SCHEME = "v1"
MAX_SIGNATURES = 8  # v1= values in one header
MAX_HEADER_CHARS = 1024


class SignatureRejected(NotAuthenticated):
    """A webhook delivery whose signature does not hold: `reason` says which check
    failed (missing header, bad timestamp, signature expired, bad signature)."""

    def __init__(self, reason: str, detail: str, *, hint: str) -> None:
        super().__init__(f"{reason}: {detail}", hint=hint)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The `Accord-Signature` value a sender sends: one v1= per secret."""
    return ",".join(f"{SCHEME}={sign(s, timestamp, body)}" for s in secrets)


def delivery_key(timestamp: int, body: bytes) -> str:
    """What identifies a delivery whichever secrets signed it: the hash of what was
    signed. (Keyed on the header instead, a replay with one more v1= value, or with the
    old secret's signature only, would pass as new.)"""
    return hashlib.sha256(str(timestamp).encode() + b"." + body).hexdigest()


def verify(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    secrets: Sequence[str],
    tolerance: float,
    now: float,
) -> int:
    """Check a delivery's headers against the raw body; returns its timestamp. Raises
    SignatureRejected (401) with the reason. Pure: the secrets and the clock are given."""
    if not timestamp or not signature:
        missing = TIMESTAMP_HEADER if not timestamp else SIGNATURE_HEADER
        raise SignatureRejected(
            "missing header",
            f"the delivery has no {missing} header",
            hint=f"send {TIMESTAMP_HEADER} (unix seconds) and {SIGNATURE_HEADER} (v1=<hex>)",
        )
    text = timestamp.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise SignatureRejected(
            "bad timestamp",
            f"{TIMESTAMP_HEADER} must be whole unix seconds",
            hint="send int(time.time()) as it is when the delivery is signed",
        )
    sent_at = int(text)
    if abs(now - sent_at) > tolerance:
        raise SignatureRejected(
            "signature expired",
            f"the timestamp is {abs(now - sent_at):,.0f} s from Accord's clock; "
            f"at most {tolerance:,.0f} s is accepted",
            hint="sign each delivery (and each retry) when it is sent; check the sender's clock",
        )
    offered = _offered(signature)
    expected = [sign(secret, sent_at, body) for secret in secrets]
    # every pair compared, in constant time: how far a guess got tells nothing
    matched = False
    for candidate in offered:
        for good in expected:
            matched |= hmac.compare_digest(candidate, good)
    if not matched:
        raise SignatureRejected(
            "bad signature",
            "no v1 signature matches the body with the configured secret",
            hint='sign f"{timestamp}.{raw body}" with HMAC-SHA256 and send v1=<hex digest>; '
            "sign the body exactly as sent (after gzip, if gzipped)",
        )
    return sent_at


def _offered(header: str) -> list[str]:
    """The v1 signatures of an `Accord-Signature` header; other schemes are ignored."""
    if len(header) > MAX_HEADER_CHARS:
        raise SignatureRejected(
            "bad signature",
            f"{SIGNATURE_HEADER} is longer than {MAX_HEADER_CHARS} characters",
            hint=f"send at most {MAX_SIGNATURES} v1= values",
        )
    offered = []
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and value:
            offered.append(value.strip().lower())
    if not offered or len(offered) > MAX_SIGNATURES:
        raise SignatureRejected(
            "bad signature",
            f"{SIGNATURE_HEADER} must hold 1 to {MAX_SIGNATURES} v1=<hex> values",
            hint="send v1=<hex HMAC-SHA256>, several comma-separated while rotating secrets",
        )
    return offered


@dataclass(frozen=True)
class WebhookAnswer:
    answer: push.PushAnswer

    @property
    def duplicate(self) -> bool:
        """The same delivery came before; this one stored nothing."""
        return self.answer.replayed

    def as_dict(self) -> dict[str, object]:
        if self.duplicate:
            return {"load_id": self.answer.load_id, "duplicate": True}
        return self.answer.as_dict() | {"duplicate": False}


def settings(project: Project, system: str) -> WebhookIntake:
    """The system's webhook block; a system without one has no webhook (404)."""
    config = project.config.systems.get(system)
    if config is None or config.intake.webhook is None:
        raise NotFound(
            f"there is no webhook for {system!r}",
            hint="give the system a webhook block (intake: webhook: secret_env: ...) in "
            "accord.yaml",
        )
    return config.intake.webhook


def secrets_of(config: WebhookIntake, environ: Mapping[str, str], where: str) -> list[str]:
    """The secrets a delivery may be signed with, from the environment."""
    names = [config.secret_env, config.previous_secret_env or ""]
    found = [environ[name] for name in names if name and environ.get(name)]
    if not environ.get(config.secret_env):
        raise ProjectInvalid(
            [
                Problem(
                    where,
                    f"the environment variable {config.secret_env} (secret_env) is not set",
                    f"set {config.secret_env} to the secret shared with the sender",
                )
            ],
            what="the webhook's configuration",
        )
    return found


def receive(
    engine: Engine,
    project: Project,
    system: str,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    content_encoding: str | None,
    environ: Mapping[str, str] | None = None,
    now: float | None = None,
) -> WebhookAnswer:
    """Verify a delivery and store its record(s) through the push API's path, in one
    transaction with the note that it came; see the module's text."""
    config = settings(project, system)
    secrets = secrets_of(config, os.environ if environ is None else environ, system)
    sent_at = verify(
        body,
        timestamp,
        signature,
        secrets=secrets,
        tolerance=config.tolerance,
        now=time.time() if now is None else now,
    )
    mapping = project.mapping(system)
    batch = push.read_batch(
        body, content_encoding, max_field_bytes=mapping.config.format.max_field_bytes, single=True
    )
    key = delivery_key(sent_at, body)

    def earlier(conn: Connection) -> push.PushAnswer | None:
        # a delivery is refused as expired after `tolerance`; one signed up to
        # `tolerance` in the future is accepted, so keep it twice that long
        deliveries.prune_webhooks(conn, system, utcnow() - timedelta(seconds=2 * config.tolerance))
        load_id = deliveries.earlier_webhook(conn, system, key)
        return None if load_id is None else _duplicate(load_id)

    def remember(conn: Connection, answer: push.PushAnswer) -> None:
        deliveries.remember_webhook(conn, system, key, answer.load_id)

    actor = Actor("system", system, Role.SYSTEM).label
    answer = push.store_batch(
        engine,
        project,
        system,
        batch,
        channel="webhook",
        source=f"webhook {sent_at}",
        actor=actor,
        earlier=earlier,
        remember=remember,
    )
    return WebhookAnswer(answer)


def _duplicate(load_id: int) -> push.PushAnswer:
    return push.PushAnswer(load_id, {}, [], replayed=True)
