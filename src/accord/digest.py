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

# Where orjson and the standard library write a value differently: NaN and infinities
# (orjson writes null), and floats under 1e-4 (the standard library writes 1e-05 and
# 1e-07; orjson 0.00001 and 1e-7). Any other float they write alike (a property test
# holds them to it). A document whose orjson text holds null, "0.0000" or a digit
# followed by "e-" (also when that is only text) goes to the standard library.
_NEGATIVE_EXPONENT = re.compile(rb"e-(?<=[0-9]e-)")  # "e-" first: found fast


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
    bytes, as it does for what most documents hold (text, integers, booleans, objects,
    lists, most floats), several times faster. None for what orjson would write
    differently or declines, which the standard library then writes: NaN, infinities
    and floats under 1e-4 (see above), integers beyond 64 bits, keys that are not
    text, lone surrogates."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if b"null" in text or b"0.0000" in text or _NEGATIVE_EXPONENT.search(text) is not None:
        return None
    return text


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
