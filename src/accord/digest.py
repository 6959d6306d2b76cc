"""Content hashes: sha256 over canonical JSON (sorted keys, no spaces, UTF-8).

One encoding for every hash Accord compares or chains (source record content, golden
record fingerprints, audit entries), so equal content always hashes equal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON; raises TypeError for anything JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """The sha256 hex digest of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
