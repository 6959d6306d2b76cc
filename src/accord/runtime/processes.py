"""Processes beside the one doing a job (a large load's mapping, a full resolve's golden
records and index keys): new interpreters, each started by an initializer that freezes
what it holds once started (`runtime.heap.freeze_once`)."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Self, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def spawned(
    workers: int, initializer: Callable[..., object], initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """`workers` processes, each a new interpreter (`spawn`: safe beside the threads of
    a server or a scheduler, which `fork` is not), started by `initializer(*initargs)`."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    )


class Beside:
    """Owns a pool of spawned processes; as a context manager, shuts it down on leaving,
    cancelling what was not started."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def in_order(
        self, batches: Iterable[T], submit: Callable[[T], Future[R]], limit: int
    ) -> Iterator[tuple[T, R]]:
        """Each batch with its result, in the order given: `submit(batch)` hands a
        batch's work to the processes, and at most `limit` are in their hands at a time,
        so batches are read at the pace results are used. What is still in hand when the
        caller stops is cancelled. A process that dies raises `BrokenProcessPool`."""
        pending: deque[tuple[T, Future[R]]] = deque()
        try:
            for batch in batches:
                pending.append((batch, submit(batch)))
                if len(pending) >= limit:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
