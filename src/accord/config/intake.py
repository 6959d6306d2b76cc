"""How a system's records come in, besides files loaded by hand and the push API: one
optional block per channel under `systems.<name>.intake` in accord.yaml.

Secrets (database URLs with passwords, webhook keys) are never written here: a block
names the environment variable that holds them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from accord.config.matching import StrictModel

ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"  # an environment variable's name
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(value: Any) -> Any:
    """A duration as written in accord.yaml (`500ms`, `2s`, `5m`, `1h`, or a number of
    seconds) in seconds; anything else is left for pydantic to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and (found := _DURATION.match(value)):
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if isinstance(value, str):
        # pydantic turns a ValueError, not a TypeError, into a validation problem
        raise ValueError(f"{value!r} is not a duration: write 500ms, 2s, 5m or 1h")  # noqa: TRY004
    return value


Seconds = Annotated[float, BeforeValidator(seconds)]


class BrokerIntake(StrictModel):
    """A NATS JetStream stream the system publishes its changes to; Accord pulls them
    through a durable consumer (`accord.intake.broker`). The server's URL, which may
    carry credentials, is read from the environment variable `url_env`; when it is not
    set, the local server `nats://127.0.0.1:4222` is used."""

    url_env: str = Field("NATS_URL", pattern=ENV_NAME)
    stream: str = Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")
    subject: str = Field(min_length=1, max_length=255, pattern=r"^[^\s]+$")
    durable: str = Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")
    batch_size: int = Field(500, ge=1, le=10_000, description="messages per transaction")
    max_wait: Seconds = Field(2.0, gt=0, le=300, description="how long a fetch waits")
    max_deliver: int = Field(
        5, ge=1, le=1000, description="deliveries after which a message goes to quarantine"
    )
    ack_wait: Seconds = Field(
        30.0, ge=1, le=3600, description="unacknowledged this long, a message is redelivered"
    )


class WebhookIntake(StrictModel):
    """Single changes the system POSTs to `/api/v1/systems/<name>/webhook`, signed with
    HMAC-SHA256 (`accord.intake.webhooks`). The secret is read from the environment
    variable `secret_env`; during a rotation, `previous_secret_env` names the old one,
    and a delivery signed with either is accepted."""

    secret_env: str = Field(pattern=ENV_NAME)
    previous_secret_env: str | None = Field(None, pattern=ENV_NAME)
    tolerance: Seconds = Field(
        300.0, ge=1, le=86_400, description="how old a delivery's timestamp may be"
    )


class IntakeConfig(StrictModel):
    """The channels a system sends records through. Each block is optional; a system
    with none is loaded by `accord load` and the push API only."""

    broker: BrokerIntake | None = None
    webhook: WebhookIntake | None = None
