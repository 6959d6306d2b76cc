"""Backpressure: how much intake may take in while the workers match what is waiting.

Every channel that takes records in whenever it likes is held to one bound,
`ACCORD_MAX_BACKLOG` records waiting in the work queue (`store/queue.py`, `backlog`):

- the push API and webhooks refuse a batch at the bound with 503 and Retry-After
  (`runtime/admission.py`): the sender keeps it and sends it again;
- the broker consumer stops fetching at the bound (`intake/broker.py`): the messages stay
  in the stream, unacknowledged, which is the broker's own buffer, and fetching resumes
  once the backlog has fallen below RESUME_AT of the bound, so that it does not stop and
  start again on every record matched.

Files, drops and polls are not held to the bound: each run loads what it finds.

`over_bound` and `Gate` are pure; `BacklogReading` reads the count from the store, at most
once every READ_EVERY seconds however many callers ask (each read counts the queue).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from accord.store import queue

READ_EVERY = 1.0  # seconds between two reads of the backlog by one BacklogReading
RESUME_AT = 0.9  # a paused consumer resumes below this share of the bound


def over_bound(backlog: int, bound: int) -> bool:
    """Whether `backlog` records waiting is too many for the bound (0: no bound)."""
    return bound > 0 and backlog >= bound


def resume_below(bound: int) -> int:
    """The backlog under which a paused consumer fetches again: RESUME_AT of the bound,
    and at least 1 (with a bound of 1, once the queue is empty)."""
    return max(1, math.floor(bound * RESUME_AT))


@dataclass(frozen=True)
class Pause:
    """Why a consumer does not fetch: this many records wait, and the bound."""

    backlog: int
    bound: int

    def __str__(self) -> str:
        return f"backlog {self.backlog:,} (bound {self.bound:,})"

    def explained(self) -> str:
        return (
            f"{self.backlog:,} records wait to be matched, at or past the bound of "
            f"{self.bound:,} (ACCORD_MAX_BACKLOG)"
        )


WHAT_TO_DO = (
    "start more matching workers (`accord worker run DIR`; `accord worker status DIR` "
    "shows the queue) or raise ACCORD_MAX_BACKLOG"
)


@dataclass
class Gate:
    """Paused at the bound, open again below `resume_below(bound)`: the state of one
    consumer (pure; `update` is given each backlog read)."""

    bound: int
    pause: Pause | None = None

    def update(self, backlog: int) -> Pause | None:
        """The pause in force after reading `backlog` (None: fetch)."""
        if self.bound <= 0:
            self.pause = None
        elif self.pause is None:
            self.pause = Pause(backlog, self.bound) if over_bound(backlog, self.bound) else None
        else:
            self.pause = Pause(backlog, self.bound) if backlog >= resume_below(self.bound) else None
        return self.pause


class BacklogReading:
    """The work queue's backlog as last read from the store, read again when it is
    READ_EVERY seconds old (thread-safe: one reading may serve a process's threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._backlog = 0
        self._read_at = -math.inf

    def backlog(self, engine: Engine) -> int:
        with self._lock:
            now = self.clock()
            if now - self._read_at >= READ_EVERY:
                with engine.connect() as conn:
                    self._backlog = queue.backlog(conn)
                self._read_at = now
            return self._backlog
