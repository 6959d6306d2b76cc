"""User-written conditions and computed values: CEL expressions, never Python.

A mapping's computed fields (`compute:`) and the business rules of a project or a
mapping (`rules:`) are written in CEL, the Common Expression Language: side-effect free,
no loops but bounded list macros, no access to anything but the variables handed in.
This module compiles an expression once (checking it before any data is touched) and
evaluates it per record, turning every failure into a message instead of an exception
that would stop a batch.

Guards, because a project file is still input: an expression is at most
MAX_EXPRESSION_CHARS long (the CEL library's parser and evaluator recurse, and a
100,000-character chain of `+` crashes the process), holds at most one list macro
(`all`, `exists`, `exists_one`, `map`, `filter`: nested macros over literal lists take
time exponential in their depth), and the string helpers refuse to build results over
MAX_RESULT_CHARS.

Cost: converting a Python dict into CEL values dominates (about 5 µs per key); running a
compiled program on a prepared context takes about 1 µs. So a row's variables are
converted once per record (`Scope`), and only the source columns the expressions name.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The `cel` package imports its interactive shell (`cel.cli`: prompt_toolkit, pygments)
# whenever it is imported, half a second or more here, which every process that
# evaluates CEL would pay: each CLI command, and each process a load or a resolve
# spawns. Accord never uses the shell, so an empty module stands in for it, unless the
# package was imported already (then the shell is there anyway).
if "cel" not in sys.modules:
    sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))

import cel
from cel import stdlib

# The library logs a warning each time a helper function fails; here that failure is a
# reason on the record (compute.failed, rule.<name>), and a log line per bad row is noise.
logging.getLogger("cel").setLevel(logging.ERROR)

MAX_EXPRESSION_CHARS = 2_000
MAX_RESULT_CHARS = 65_536
MAX_LIST_MACROS = 1

COMPUTE_VARIABLES = frozenset({"source", "row", "record"})
RULE_VARIABLES = frozenset({"record"})
_SOURCE_NAMES = ("source", "row")  # one value, two names: use whichever reads better

_MACRO = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(")
_MACRO_VARIABLE = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STRING_LITERAL = re.compile(
    r"""[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
)


def _key_patterns(names: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns for a variable's mentions, and for its mentions with a plain key
    (`source.a`, `source['a b']`)."""
    mention = re.compile(rf"(?<![.\w])(?:{names})\b")
    key = re.compile(
        rf"(?<![.\w])(?:{names})\s*"
        r"""(?:\.\s*([A-Za-z_]\w*)|\[\s*'([^'\\]*)'\s*\]|\[\s*"([^"\\]*)"\s*\])"""
    )
    return mention, key


_SOURCE_KEYS = _key_patterns("source|row")
_RECORD_KEYS = _key_patterns("record")

# Functions of the CEL library itself, and the string helpers registered below.
_NATIVE_FUNCTIONS = frozenset(
    {
        "size", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn",
        "type", "contains", "startsWith", "endsWith", "matches", "getFullYear", "getMonth",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_STRING_HELPERS = (
    "charAt",
    "indexOf",
    "lastIndexOf",
    "substring",
    "replace",
    "split",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
)


class ExpressionError(ValueError):
    """An expression cannot be used (at compile time) or failed on one record."""


def _capped(function: Callable[..., Any]) -> Callable[..., Any]:
    """A string helper that refuses to build a value over MAX_RESULT_CHARS (`replace`
    chained a hundred times would otherwise multiply a string past any memory)."""

    @functools.wraps(function)
    def helper(*args: Any) -> Any:
        result = function(*args)
        if isinstance(result, str) and len(result) > MAX_RESULT_CHARS:
            raise ExpressionError(f"a text over {MAX_RESULT_CHARS:,} characters")
        if isinstance(result, list) and len(result) > MAX_RESULT_CHARS:
            raise ExpressionError(f"a list over {MAX_RESULT_CHARS:,} items")
        return result

    return helper


FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: _capped(stdlib.EXTENSIONS["strings"][name]) for name in _STRING_HELPERS
}
KNOWN_FUNCTIONS = _NATIVE_FUNCTIONS | frozenset(FUNCTIONS)


@dataclass(frozen=True)
class Expression:
    """A compiled expression, checked, with what it reads."""

    text: str
    program: cel.Program
    variables: frozenset[str]  # the bound variables it reads (source, row, record)
    source_keys: frozenset[str] | None  # the top-level source columns it names; None: any
    record_keys: frozenset[str] | None  # the canonical fields it names; None: any
    helpers: bool  # whether it calls a string helper (a Python function)

    def run(self, scope: Scope) -> Any:
        """The expression's value for one record; ExpressionError on any failure."""
        try:
            return self.program.execute(scope.context)
        except ExpressionError:
            raise
        except KeyError as exc:
            raise ExpressionError(
                f"no value for {exc.args[0]!r} (test it first with has(...))"
            ) from None
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except Exception as exc:  # noqa: BLE001  (the library raises many kinds; none may escape)
            raise ExpressionError(_first_sentence(str(exc))) from None


def compile_expression(text: str, allowed: frozenset[str]) -> Expression:
    """Compile and check `text`; raises ExpressionError saying what is wrong."""
    return _compile(text, allowed)


@functools.lru_cache(maxsize=1024)
def _compile(text: str, allowed: frozenset[str]) -> Expression:
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"the expression is {len(text):,} characters; at most {MAX_EXPRESSION_CHARS:,}"
        )
    code = _STRING_LITERAL.sub("''", text)
    if len(_MACRO.findall(code)) > MAX_LIST_MACROS:
        raise ExpressionError(
            f"at most {MAX_LIST_MACROS} list macro (all, exists, exists_one, map, filter) "
            "per expression"
        )
    try:
        program = cel.compile(text)
    except Exception as exc:  # noqa: BLE001  (a parse error, whatever its type)
        raise ExpressionError(_syntax_message(str(exc))) from None
    bound = set(_MACRO_VARIABLE.findall(code))
    names = set(program.variables())
    unknown = sorted(names - allowed - bound)
    if unknown:
        raise ExpressionError(
            f"unknown name {unknown[0]!r}; the names here are {', '.join(sorted(allowed))}"
        )
    functions = {f for f in program.functions() if f[:1].isalpha()} - bound
    strange = sorted(functions - KNOWN_FUNCTIONS)
    if strange:
        raise ExpressionError(f"unknown function {strange[0]!r}; see docs/mappings.md")
    return Expression(
        text,
        program,
        frozenset(names & allowed),
        _named_keys(text, *_SOURCE_KEYS),
        _named_keys(text, *_RECORD_KEYS),
        bool(functions & set(FUNCTIONS)),
    )


def _named_keys(text: str, mention: re.Pattern[str], key: re.Pattern[str]) -> frozenset[str] | None:
    """The keys `text` reads of a variable as `source.x` or `source['x']`; None when it
    uses the variable any other way (as a whole, or with a computed key). Safe both
    ways: a mention inside a string literal adds a key or falls back to all of them."""
    mentions = len(mention.findall(text))
    keys = [next(k for k in match if k) for match in key.findall(text)]
    if len(keys) != mentions:
        return None
    return frozenset(keys)


@dataclass(frozen=True)
class Needs:
    """What a set of expressions evaluated on the same record reads: which names the
    source row goes by, which of its columns and which canonical fields (None: all),
    and whether the string helpers must be registered. Converting values to CEL is the
    main cost of an expression, so a Scope converts only these."""

    source_names: frozenset[str]
    source_keys: frozenset[str] | None
    record_keys: frozenset[str] | None
    helpers: bool

    @classmethod
    def of(cls, expressions: Iterable[Expression]) -> Needs:
        chosen = list(expressions)
        readers = [e for e in chosen if e.variables & set(_SOURCE_NAMES)]
        judges = [e for e in chosen if "record" in e.variables]
        return cls(
            frozenset().union(*(e.variables for e in chosen)) & set(_SOURCE_NAMES),
            _union(e.source_keys for e in readers),
            _union(e.record_keys for e in judges),
            any(e.helpers for e in chosen),
        )


def _union(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    out: set[str] = set()
    for keys in sets:
        if keys is None:
            return None
        out |= keys
    return frozenset(out)


def _syntax_message(message: str) -> str:
    """The CEL parser's message without its repeated copy of the expression."""
    found = re.search(r"ERROR: <input>:(\d+):(\d+): (.*)", message)
    if found is None:
        return f"not a valid expression: {_first_sentence(message)}"
    line, column, what = found.groups()
    if len(what) > 200:
        what = what[:200] + "…"
    return f"not a valid expression (line {line}, column {column}): {what}"


def _first_sentence(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    cut = first.find(". ")
    return first[: cut + 1] if 0 < cut < 300 else first[:300]


class Scope:
    """The variables of one record, converted to CEL once and shared by every expression
    evaluated on it (as `needs` says); `record` is converted again only when the fields
    the expressions read have changed."""

    def __init__(self, needs: Needs, source: Mapping[str, Any] | None = None) -> None:
        self.needs = needs
        self.context = cel.Context(functions=FUNCTIONS) if needs.helpers else cel.Context()
        if source is not None and needs.source_names:
            value = cel_source(source, needs.source_keys)
            for name in needs.source_names:
                self.context.add_variable(name, value)
        self._record_seen: dict[str, Any] | None = None

    def set_record(self, record: dict[str, Any]) -> None:
        keys = self.needs.record_keys
        shown = record if keys is None else {k: record[k] for k in keys if k in record}
        if self._record_seen != shown:
            self.context.add_variable("record", shown)
            self._record_seen = dict(shown)


def cel_source(fields: Mapping[str, Any], keys: frozenset[str] | None = None) -> dict[str, Any]:
    """A source row as CEL sees it: text values, stripped; empty and missing values left
    out (so `has(source.x)` means "x has a value", as `from: x` does); objects and lists
    kept as maps and lists of text. With `keys`, only those top-level columns."""
    chosen: Iterable[tuple[str, Any]] = (
        fields.items() if keys is None else ((k, fields[k]) for k in keys if k in fields)
    )
    out: dict[str, Any] = {}
    for key, value in chosen:
        converted = _cel_value(value)
        if converted is not None:
            out[str(key)] = converted
    return out


def _cel_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, _cel_value(v)) for k, v in value.items()) if v}
    if isinstance(value, list):
        return [v for v in (_cel_value(item) for item in value) if v is not None]
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip() or None


def as_text(value: Any) -> str | None:
    """A computed value as the text a canonical field is standardized from; None for
    null. Raises ExpressionError for a value that is not one value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str):
        if len(value) > MAX_RESULT_CHARS:
            raise ExpressionError(f"the value is over {MAX_RESULT_CHARS:,} characters")
        return value
    kinds: dict[type[Any], str] = {list: "a list", dict: "a map", bytes: "bytes"}
    what = kinds.get(type(value), type(value).__name__)
    raise ExpressionError(f"gave {what}, not a single value")
