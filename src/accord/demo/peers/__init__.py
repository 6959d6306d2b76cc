"""Accord's demo peers: small but real systems Accord keeps in step with (billing, a
service desk), each a process of its own with a SQLite store and a REST API with ETags,
idempotency keys, batches, a rate limit and faults switched from outside.

They are Accord's counterparts in tests and the demo, not mocks of Accord:
`store` holds the records and the log of writes, `parse` reads requests, `faults` the
injected faults and the rate limit, `app` the API, `process` runs one as a subprocess.
See docs/peers.md.
"""

from accord.demo.peers.app import RESOURCES, Kind, PeerConfig, create_app
from accord.demo.peers.process import PeerProcess, PeerStartError
from accord.demo.peers.store import PeerStore

__all__ = [
    "RESOURCES",
    "Kind",
    "PeerConfig",
    "PeerProcess",
    "PeerStartError",
    "PeerStore",
    "create_app",
]
