"""Admission: whether a push request may come in now. Two checks, each answered with
`Retry-After` rather than by growing without limit:

- per-key rate limits (the `limits` library; sliding window counters, kept in memory by
  default or in Redis when `ACCORD_RATE_LIMIT_STORAGE` names one, so that several app
  processes share one count), refused as `RateLimited` (HTTP 429);
- the work queue's backlog (`store/queue.py`): past `ACCORD_MAX_BACKLOG` records waiting
  to be matched, new batches are refused as `Overloaded` (HTTP 503) until the workers
  catch up. The bound and the reading of the count (at most once a second per process)
  are the broker's too (`intake/backpressure.py`).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from sqlalchemy import Engine

from accord.errors import Overloaded, RateLimited
from accord.govern.throttle import limiter, parse_limits
from accord.intake.backpressure import BacklogReading, over_bound
from accord.settings import Settings


def rate_limits(value: str) -> list[RateLimitItem]:
    """Parse `ACCORD_RATE_LIMIT` ("100/second", "100/second;2000/minute", "off")."""
    return parse_limits("ACCORD_RATE_LIMIT", value)


class Admission:
    def __init__(self, settings: Settings) -> None:
        self.limits = rate_limits(settings.rate_limit)
        self.max_backlog = settings.max_backlog
        self.namespace = settings.rate_limit_namespace
        self.limiter = limiter(settings)
        self.reading = BacklogReading()

    def check_rate(self, key: str) -> None:
        """Count a request for `key`; raise RateLimited when it is over a limit."""
        for item in self.limits:
            if not self.limiter.hit(item, self.namespace, "push", key):
                reset = self.limiter.get_window_stats(item, self.namespace, "push", key).reset_time
                raise RateLimited(
                    f"rate limit of {item} exceeded for {key}",
                    retry_after=math.ceil(reset - time.time()),
                    hint="send fewer, larger batches, or ask for a higher ACCORD_RATE_LIMIT",
                )

    def check_backlog(self, engine: Engine) -> None:
        """Raise Overloaded when the records waiting to be matched reach the bound."""
        if self.max_backlog <= 0:
            return
        backlog = self.reading.backlog(engine)
        if over_bound(backlog, self.max_backlog):
            raise Overloaded(
                f"{backlog} records are waiting to be matched (the bound is "
                f"{self.max_backlog}); nothing of this request was stored",
                retry_after=30,
                hint="retry after the Retry-After seconds; if it lasts, start more workers "
                "(`accord worker run DIR`) or check them with `accord worker status DIR`",
            )
