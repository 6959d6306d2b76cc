"""Content hashes: sha256 over canonical JSON (sorted keys, no spaces, UTF-8).

One encoding for every hash Accord compares or chains (source record content, golden
record fingerprints, audit entries), so equal content always hashes equal. The encoding
is the standard library's (`json.dumps` with sorted keys, compact separators and
`ensure_ascii=False`): hashes stored by earlier versions must keep verifying.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson

# A number in exponent form ("1e-07"): orjson writes it differently from the standard
# library ("1e-7"), so a document holding one (or text that looks like one) is
# encoded by the standard library.
_EXPONENT = re.compile(rb"[0-9][eE]")


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON; raises TypeError for anything JSON cannot hold."""
    fast = _through_orjson(value)
    return fast.decode() if fast is not None else _standard(value)


def digest(value: Any) -> str:
    """The sha256 hex digest of `value`'s canonical JSON."""
    fast = _through_orjson(value)
    return hashlib.sha256(fast if fast is not None else _standard(value).encode()).hexdigest()


def _standard(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _through_orjson(value: Any) -> bytes | None:
    """The canonical JSON as UTF-8, when orjson writes exactly the standard library's
    bytes: for what most documents hold (text, integers, booleans, objects, lists, and
    floats outside exponent form), several times faster. None for what orjson would
    write differently or declines, which the standard library then writes: NaN and
    infinities (orjson writes null), exponent forms, integers beyond 64 bits, keys that
    are not text, lone surrogates."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if b"null" in text or _EXPONENT.search(text) is not None:
        return None
    return text


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
