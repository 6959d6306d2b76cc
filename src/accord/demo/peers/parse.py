"""Reading what a client sends a peer: ids, ETag preconditions, idempotency keys and
JSON bodies. Anything that cannot be read raises `BadRequest` with a message saying what
and where; nothing here touches the store."""

from __future__ import annotations

import json
import re
from typing import Any

from accord.demo.peers.store import Condition, Operation

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_OPERATIONS = 1000
MAX_ID_CHARS = 200
MAX_KEY_CHARS = 255
_OPERATION_KEYS = ("op", "id", "fields", "if_match", "if_none_match", "key")
_ENTITY_TAG = re.compile(r'\s*((?:W/)?"[^"\x00-\x1f\x7f]*")\s*(?:,|$)')


class BadRequest(Exception):
    """A request the peer cannot read: 422 (or 413 when it is too large)."""

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid_request"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def check_id(value: Any, where: str = "the id") -> str:
    """A record id: 1 to 200 printable characters, without `/`."""
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, not {_kind(value)}")
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise BadRequest(f"{where} must be 1 to {MAX_ID_CHARS} characters; it has {len(value)}")
    if not value.isprintable():
        raise BadRequest(f"{where} {value!r} holds a character that is not printable")
    if "/" in value:
        raise BadRequest(f"{where} {value!r} must not contain '/'")
    return value


def check_key(value: Any, where: str = "the Idempotency-Key") -> str:
    """An idempotency key: 1 to 255 printable characters."""
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, not {_kind(value)}")
    if not 1 <= len(value) <= MAX_KEY_CHARS or not value.isprintable():
        raise BadRequest(f"{where} must be 1 to {MAX_KEY_CHARS} printable characters")
    return value


def condition(value: Any, where: str) -> Condition:
    """An If-Match or If-None-Match value: `*`, or entity tags separated by commas
    (`"3"`, with the quotes; a weak `W/"3"` never matches, the comparison being strong)."""
    if not isinstance(value, str):
        raise BadRequest(f'{where} must be a string such as "\\"3\\"" or "*", not {_kind(value)}')
    if value.strip() == "*":
        return Condition(any=True)
    tags: list[str] = []
    position = 0
    while position < len(value):
        found = _ENTITY_TAG.match(value, position)
        if found is None:
            raise BadRequest(
                f'{where} {value!r} is not "*" or a list of entity tags such as "3" '
                "(with the double quotes)"
            )
        tags.append(found.group(1))
        position = found.end()
    if not tags:
        raise BadRequest(f"{where} is empty")
    return Condition(tags=frozenset(tags))


def json_body(body: bytes) -> Any:
    """A request body's JSON (UTF-8, RFC 8259: no NaN or Infinity)."""
    if len(body) > MAX_BODY_BYTES:
        raise too_large(len(body))
    try:
        return json.loads(body, parse_constant=_not_a_number)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply") from None


def too_large(size: int) -> BadRequest:
    return BadRequest(
        f"the request body is {size:,} bytes or more; the limit is {MAX_BODY_BYTES:,}",
        status=413,
        code="body_too_large",
    )


def put_fields(document: Any) -> dict[str, Any]:
    """The fields of a PUT body, `{"fields": {...}}`."""
    if not isinstance(document, dict):
        raise BadRequest(
            f'the body must be a JSON object {{"fields": {{...}}}}, not {_kind(document)}'
        )
    unknown = sorted(set(document) - {"fields"})
    if unknown:
        raise BadRequest(f"the body has unknown keys {unknown}; it takes only 'fields'")
    if "fields" not in document:
        raise BadRequest("the body has no 'fields': send {\"fields\": {...}}")
    return _fields(document["fields"], "'fields'")


def batch(document: Any) -> list[Operation]:
    """The operations of a batch body, `{"operations": [...]}`; a bad one is named by
    its index."""
    if not isinstance(document, dict) or not isinstance(document.get("operations"), list):
        raise BadRequest('the body must be a JSON object {"operations": [{...}, ...]}')
    unknown = sorted(set(document) - {"operations"})
    if unknown:
        raise BadRequest(f"the body has unknown keys {unknown}; it takes only 'operations'")
    items: list[Any] = document["operations"]
    if len(items) > MAX_BATCH_OPERATIONS:
        raise BadRequest(
            f"the batch holds {len(items):,} operations; the limit is {MAX_BATCH_OPERATIONS:,}",
            status=413,
            code="batch_too_large",
        )
    return [operation(item, f"operations[{index}]") for index, item in enumerate(items)]


def operation(item: Any, where: str) -> Operation:
    """One operation of a batch."""
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object, not {_kind(item)}")
    unknown = sorted(set(item) - set(_OPERATION_KEYS))
    if unknown:
        raise BadRequest(f"{where} has unknown keys {unknown}; it takes {list(_OPERATION_KEYS)}")
    op = item.get("op")
    if op not in ("put", "delete"):
        raise BadRequest(f"{where}.op must be 'put' or 'delete', not {op!r}")
    record_id = check_id(item.get("id"), f"{where}.id")
    if op == "put":
        if "fields" not in item:
            raise BadRequest(f"{where} is a put without 'fields'")
        fields: dict[str, Any] | None = _fields(item["fields"], f"{where}.fields")
    else:
        if item.get("fields") is not None:
            raise BadRequest(f"{where} is a delete; it takes no 'fields'")
        fields = None
    return Operation(
        op=op,
        id=record_id,
        fields=fields,
        if_match=_optional(item, "if_match", where),
        if_none_match=_optional(item, "if_none_match", where),
        key=None if item.get("key") is None else check_key(item["key"], f"{where}.key"),
    )


def _optional(item: dict[str, Any], name: str, where: str) -> Condition | None:
    value = item.get(name)
    return None if value is None else condition(value, f"{where}.{name}")


def _fields(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object of fields, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return kinds.get(type(value), type(value).__name__)


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")
