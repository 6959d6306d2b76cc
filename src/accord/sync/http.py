"""The HTTP channel out: a target's REST API, one resource per record, with ETags.

What it speaks (docs/sync.md):
- `GET {url}/{resource}/{id}`: 200 `{"id", "fields", "version", "updated_at"}` with an
  `ETag`; 404 when absent; 410 when deleted.
- `PUT {url}/{resource}/{id}` `{"fields": {...}}` with `If-Match` (the version Accord
  last saw) or `If-None-Match: *` (create only): 200/201 with the record and its ETag;
  412 with `{"current": record, "etag"}` when the condition fails.
- `DELETE` likewise; 204.
- `POST {url}/{resource}:batch` `{"operations": [...]}` answering per operation, when
  the target allows batches (`http.batch` > 0).
- Every write carries an `Idempotency-Key`, so a request retried after a lost answer
  is applied once.

A whole request that fails for a passing reason (no connection, a timeout, 429, 5xx)
raises `Unavailable`: the caller retries later and its circuit breaker counts it. It is
first tried again a few times within the round (tenacity), honouring Retry-After.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx2
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from accord.config.sync import HttpTarget
from accord.store.engine import json_text, json_value
from accord.sync.channel import Operation, Remote, Result, TargetMisconfigured, Unavailable
from accord.sync.plan import TRANSIENT_STATUSES

# the values of a channel, importable from here as before
__all__ = [
    "HttpChannel",
    "Operation",
    "Remote",
    "Result",
    "TargetMisconfigured",
    "Unavailable",
]

QUICK_ATTEMPTS = 3  # within a round, before the delivery waits for its back-off
QUICK_WAIT_CAP = 2.0  # seconds: a longer Retry-After is left to the back-off


class _RetryAfterWait(wait_base):
    """Exponential from 0.2 s, or the target's Retry-After when it says so (capped)."""

    def __call__(self, retry_state: Any) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        asked = getattr(failure, "retry_after", None)
        if asked is not None:
            return float(min(asked, QUICK_WAIT_CAP))
        return float(min(0.2 * 2 ** (retry_state.attempt_number - 1), QUICK_WAIT_CAP))


class HttpChannel:
    def __init__(self, target: str, config: HttpTarget, *, quick_attempts: int = QUICK_ATTEMPTS):
        self.target = target
        self.config = config
        headers = {"Accept": "application/json", "User-Agent": "accord-sync"}
        if config.token_env is not None:
            token = os.environ.get(config.token_env)
            if not token:
                raise TargetMisconfigured(
                    f"{target}: the environment variable {config.token_env} holding the "
                    "target's token is not set",
                    hint=f"export {config.token_env}=... before running `accord sync`",
                )
            headers["Authorization"] = f"Bearer {token}"
        self._base = f"{config.url}/{config.resource}"
        self._client = httpx2.Client(
            headers=headers, timeout=config.timeout.total_seconds(), follow_redirects=False
        )
        self._retrying = Retrying(
            stop=stop_after_attempt(quick_attempts),
            wait=_RetryAfterWait(),
            retry=retry_if_exception_type(Unavailable),
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, record_id: str) -> Remote | None:
        """The record as the target holds it; None when it has none. A deleted record
        comes back with `deleted` set."""
        response = self._retrying(self._send, "GET", f"{self._base}/{_quoted(record_id)}")
        if response.status_code == 404:
            return None
        if response.status_code in (200, 410):
            return _remote(record_id, _json(response), response.headers.get("ETag"))
        raise Unavailable(
            f"{self.target}: GET {record_id} answered {response.status_code}: {_excerpt(response)}",
            status=response.status_code,
        )

    def page(self, after: str | None, limit: int = 1000) -> tuple[list[Remote], str | None]:
        """One page of the target's records in id order, after `after`; and the id to
        ask after for the next page (None: this was the last)."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        response = self._retrying(self._send, "GET", self._base, params=params)
        body = _json(response) if response.status_code == 200 else {}
        items = body.get("items")
        if not isinstance(items, list):
            raise Unavailable(
                f"{self.target}: listing the records answered {response.status_code}: "
                f"{_excerpt(response)}",
                status=response.status_code,
            )
        records = [_remote(str(i.get("id", "")), i, _etag(i)) for i in items if isinstance(i, dict)]
        following = body.get("next")
        return records, str(following) if following else None

    def apply(self, operations: Sequence[Operation]) -> list[Result]:
        """Apply the operations in order; one result each."""
        if not operations:
            return []
        if self.config.batch > 0:
            results: list[Result] = []
            for start in range(0, len(operations), self.config.batch):
                chunk = operations[start : start + self.config.batch]
                results += self._retrying(self._batch, chunk)
            return results
        return [self._retrying(self._single, operation) for operation in operations]

    def _batch(self, operations: Sequence[Operation]) -> list[Result]:
        body = json_text({"operations": [o.as_json() for o in operations]}).encode()
        response = self._send(
            "POST",
            f"{self._base}:batch",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        if response.status_code != 200:
            return [_refused(response)] * len(operations)
        answers = _json(response).get("results")
        if not isinstance(answers, list) or len(answers) != len(operations):
            raise Unavailable(
                f"{self.target}: the batch answer does not hold one result per operation",
                status=response.status_code,
            )
        return [_batch_result(o, a) for o, a in zip(operations, answers, strict=True)]

    def _single(self, operation: Operation) -> Result:
        headers = {"Idempotency-Key": operation.key}
        if operation.if_match is not None:
            headers["If-Match"] = operation.if_match
        if operation.if_none_match is not None:
            headers["If-None-Match"] = operation.if_none_match
        url = f"{self._base}/{_quoted(operation.record_id)}"
        if operation.op == "delete":
            response = self._send("DELETE", url, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            response = self._send(
                "PUT",
                url,
                content=json_text({"fields": operation.fields}).encode(),
                headers=headers,
            )
        status = response.status_code
        body = _json(response) if response.content else {}
        etag = response.headers.get("ETag")
        if status < 300:
            record = _remote(operation.record_id, body, etag) if body else None
            return Result(status, etag, record, None)
        return _failed(operation.record_id, status, body, etag)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx2.TimeoutException as exc:
            raise Unavailable(f"{self.target}: {method} timed out ({exc})") from None
        except httpx2.TransportError as exc:
            raise Unavailable(f"{self.target}: {method} failed: {exc}") from None
        if response.status_code in TRANSIENT_STATUSES:
            raise Unavailable(
                f"{self.target}: {method} answered {response.status_code}: {_excerpt(response)}",
                status=response.status_code,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        return response


def _quoted(record_id: str) -> str:
    return httpx2.URL("/" + record_id).raw_path.decode("ascii").lstrip("/")


def _json(response: httpx2.Response) -> dict[str, Any]:
    """The body's JSON object ({} when it is none), read as the store reads JSON: a
    target's integer beyond 64 bits stays exact (orjson alone would make it a float, and
    every later comparison with it would see a change)."""
    try:
        value = json_value(response.content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _excerpt(response: httpx2.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] + ("..." if len(text) > 300 else "")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the back-off decides


def _remote(record_id: str, body: dict[str, Any], etag: str | None) -> Remote:
    fields = body.get("fields")
    return Remote(
        str(body.get("id", record_id)),
        etag,
        dict(fields) if isinstance(fields, dict) else {},
        bool(body.get("deleted", False)),
        body.get("updated_at"),
    )


def _etag(item: dict[str, Any]) -> str | None:
    version = item.get("version")
    return f'"{version}"' if isinstance(version, int) else None


def _failed(record_id: str, status: int, body: dict[str, Any], etag: str | None) -> Result:
    current = body.get("current")
    record = (
        _remote(record_id, current, body.get("etag") or etag) if isinstance(current, dict) else None
    )
    message = body.get("message") or body.get("error") or f"answered {status}"
    return Result(status, body.get("etag") or etag, record, str(message))


def _refused(response: httpx2.Response) -> Result:
    return Result(response.status_code, None, None, f"the batch was refused: {_excerpt(response)}")


def _batch_result(operation: Operation, answer: Any) -> Result:
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), int):
        return Result(502, None, None, "the target's answer to this operation is unreadable")
    status = answer["status"]
    etag = answer.get("etag")
    if status < 300:
        record = answer.get("record")
        remote = _remote(operation.record_id, record, etag) if isinstance(record, dict) else None
        return Result(status, etag, remote, None)
    error = answer.get("error")
    body = error if isinstance(error, dict) else {"message": error}
    return _failed(operation.record_id, status, body, etag)
