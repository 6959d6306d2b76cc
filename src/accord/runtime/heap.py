"""The cyclic garbage collector in a long-running Accord process.

A server or worker holds some hundreds of thousands of long-lived objects once it has
started (modules, SQLAlchemy's and pydantic's machinery, phonenumbers' metadata, the
project). Every full collection walks them all again: measured, 60 to 90 ms each, a
few times a minute under load. That was a quarter of the CPU time of delivering a
change, and the slowest one in a hundred push requests (p99 170 ms against 85 ms
without, for batches of 500 records on PostgreSQL).

`freeze_once` puts what the process holds by then out of the collector's sight
(`gc.freeze`, after a collection, so no garbage is kept): frozen objects are still freed
when their last reference goes, and everything made afterwards is collected as before.
What is frozen and later becomes cyclic garbage (a cycle still in use at that moment,
by another thread, say) is never collected: a leak bounded by what the process held at
that one moment, which is why it is called where a process starts or a load begins.
"""

from __future__ import annotations

import gc
import threading

_frozen = threading.Lock()  # taken once and never given back: the first caller freezes


def freeze_once() -> bool:
    """Collect, then freeze what the process holds, the first time it is called in the
    process; True when this call did it."""
    if not _frozen.acquire(blocking=False):
        return False
    gc.collect()
    gc.freeze()
    return True
