"""`python -m accord.demo.peers --kind billing --db billing.sqlite3 --port 8101`: run one
peer in this process, with uvicorn."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import cast

from accord.demo.peers.app import RESOURCES, Kind, PeerConfig, create_app
from accord.demo.peers.store import PeerStore


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m accord.demo.peers",
        description="Run one of Accord's demo peers: a small system of record with its own "
        "SQLite store and a REST API (ETags, idempotency keys, batches, rate limits, faults "
        "switched from outside).",
    )
    parser.add_argument("--kind", required=True, choices=sorted(RESOURCES))
    parser.add_argument("--db", required=True, help="the peer's SQLite file (made if missing)")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--token",
        default=None,
        help="the bearer token every endpoint but /health needs "
        "(default: $PEER_TOKEN; neither: no authentication)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="R",
        help="requests a second to the collection (token bucket; default: unlimited)",
    )
    parser.add_argument(
        "--allow-reset", action="store_true", help="enable POST /_reset, which empties the store"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    arguments = parser.parse_args(argv)
    if arguments.rate_limit is not None and arguments.rate_limit <= 0:
        parser.error(f"--rate-limit must be above 0, not {arguments.rate_limit:g}")
    if not 0 <= arguments.port <= 65535:
        parser.error(f"--port must be 0 to 65535, not {arguments.port}")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn  # noqa: PLC0415  (only running a peer needs it)

    arguments = _arguments(argv)
    token = arguments.token if arguments.token is not None else os.environ.get("PEER_TOKEN")
    config = PeerConfig(
        kind=cast(Kind, arguments.kind),
        token=token or None,
        rate_limit=arguments.rate_limit,
        allow_reset=arguments.allow_reset,
    )
    try:
        store = PeerStore(arguments.db)
    except sqlite3.Error as exc:
        sys.stderr.write(f"peer: cannot open the store {arguments.db}: {exc}\n")
        return 2
    sys.stderr.write(
        f"peer {config.kind}: /{config.resource} on http://{arguments.host}:{arguments.port}, "
        f"store {arguments.db}, {'a bearer token' if token else 'no authentication'}\n"
    )
    uvicorn.run(
        create_app(store, config),
        host=arguments.host,
        port=arguments.port,
        log_level=arguments.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,  # a hung request (timeout_rate) must not hold a stop
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
