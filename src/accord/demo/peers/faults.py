"""Faults a peer can be told to inject, from outside, into its resource endpoints, and the
token bucket of its rate limit.

Each request to a resource endpoint draws its fate once, four numbers in a fixed order
(throttle, error, timeout, fail after commit), so a peer given a `seed` answers the same
sequence of requests with the same sequence of faults."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """What `PUT /_faults` takes and `GET /_faults` shows; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    error_status: Literal[500, 502, 503] = 500
    throttle_rate: float = Field(0.0, ge=0.0, le=1.0)
    throttle_retry_after: int = Field(1, ge=1, le=3600)
    delay_ms: int = Field(0, ge=0, le=600_000)
    timeout_rate: float = Field(0.0, ge=0.0, le=1.0)
    hang_seconds: float = Field(30.0, ge=0.0, le=3600.0)
    fail_after_commit_rate: float = Field(0.0, ge=0.0, le=1.0)
    seed: int | None = None


@dataclass(frozen=True)
class Fate:
    """What befalls one request: held back before anything (`delay_s`), refused before
    it is read (`throttle`, `error`), held once read (`hang_s`), or answered 500 after
    its write committed (`fail_after_commit`)."""

    throttle: bool = False
    error: bool = False
    delay_s: float = 0.0
    hang_s: float = 0.0
    fail_after_commit: bool = False


class FaultInjector:
    """The faults in force and the random numbers that decide them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._random = random.Random()  # noqa: S311  (fault injection, not cryptography)

    def configure(self, settings: FaultSettings) -> None:
        """Put `settings` in force; a seed starts its own reproducible sequence."""
        with self._lock:
            self.settings = settings
            self._random = random.Random(settings.seed)  # noqa: S311

    def clear(self) -> None:
        self.configure(FaultSettings())

    def draw(self) -> Fate:
        """The fate of the next request to a resource endpoint."""
        with self._lock:
            s = self.settings
            throttle, error, hang, lost = (self._random.random() for _ in range(4))
        return Fate(
            throttle=throttle < s.throttle_rate,
            error=error < s.error_rate,
            delay_s=s.delay_ms / 1000,
            hang_s=s.hang_seconds if hang < s.timeout_rate else 0.0,
            fail_after_commit=lost < s.fail_after_commit_rate,
        )


class TokenBucket:
    """`rate` requests a second on average, bursts of up to `rate` (at least one)."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be above 0 requests a second, not {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """Take a token: None if there was one, else the whole seconds to wait (≥ 1)."""
        with self._lock:
            moment = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (moment - self._at) * self.rate)
            self._at = moment
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / self.rate))

    def refill(self) -> None:
        with self._lock:
            self._tokens = self.capacity
            self._at = time.monotonic()
