"""Sign-in throttling: failed attempts (wrong passwords, wrong codes) are counted per
username and per client address, with the `limits` library in memory or in Redis
(ACCORD_RATE_LIMIT_STORAGE, shared with the push API's rate limits, so several app
processes share one count). Past a limit, attempts are refused as RateLimited before
any password or code is looked at, until the window moves on.

Only failures count, so a person who signs in often is never held back by it, and a
guesser gets `ACCORD_SIGN_IN_LIMIT` guesses a window per username whatever their
addresses, and `ACCORD_SIGN_IN_CLIENT_LIMIT` per address whatever the usernames."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many, storage, strategies

from accord.errors import AccordError, RateLimited
from accord.settings import Settings


def parse_limits(variable: str, value: str) -> list[RateLimitItem]:
    """`5/minute;20/hour` as limits; "off" (or nothing) for none."""
    if value.strip().lower() in {"", "off", "none"}:
        return []
    try:
        return list(parse_many(value))
    except ValueError as exc:
        raise AccordError(
            f"{variable}={value!r} is not a rate limit",
            hint='write it as "100/second", "5/minute;20/hour", or "off"',
        ) from exc


def limiter(settings: Settings) -> strategies.SlidingWindowCounterRateLimiter:
    """A sliding-window limiter over the configured counts (memory, or Redis)."""
    try:
        counts = storage.storage_from_string(settings.rate_limit_storage)
    except Exception as exc:
        raise AccordError(
            f"cannot use the rate limit storage {settings.rate_limit_storage!r}: {exc}",
            hint="set ACCORD_RATE_LIMIT_STORAGE to memory:// or redis://host:6379",
        ) from exc
    return strategies.SlidingWindowCounterRateLimiter(counts)


class SignInThrottle:
    def __init__(self, settings: Settings) -> None:
        self.per_user = parse_limits("ACCORD_SIGN_IN_LIMIT", settings.sign_in_limit)
        self.per_client = parse_limits("ACCORD_SIGN_IN_CLIENT_LIMIT", settings.sign_in_client_limit)
        self.namespace = settings.rate_limit_namespace
        self.limiter = limiter(settings)

    def _keys(self, username: str, client: str) -> list[tuple[RateLimitItem, str, str]]:
        # usernames are folded so that "Ann" and "ann" share a count
        user = username.strip().lower()[:150]
        return [(item, "sign-in-user", user) for item in self.per_user] + [
            (item, "sign-in-client", client) for item in self.per_client
        ]

    def check(self, username: str, client: str) -> None:
        """Raise RateLimited when `username` or `client` has failed too often lately."""
        for item, kind, key in self._keys(username, client):
            if not self.limiter.test(item, self.namespace, kind, key):
                stats = self.limiter.get_window_stats(item, self.namespace, kind, key)
                raise RateLimited(
                    "too many failed sign-in attempts; wait a little and try again",
                    retry_after=math.ceil(stats.reset_time - time.time()),
                    hint="the wait is given in the Retry-After header",
                )

    def failed(self, username: str, client: str) -> None:
        """Count a failed attempt against `username` and `client`."""
        for item, kind, key in self._keys(username, client):
            self.limiter.hit(item, self.namespace, kind, key)
