"""The NATS channel out: each golden change published to a JetStream subject as a
CloudEvent (structured JSON, `application/cloudevents+json`), for subscribers.

The event:
- `id`: the change's id in the outbox, `source`: `accord/<project>`, `subject`: the golden
  id, `type`: `com.accord.customer.<created|updated|merged|retired|repair>`, `time`: when
  the golden record changed;
- `data`: `{"golden_id", "change", "fields": {the target's field: value}, "changed":
  [canonical fields that changed, or null for all], "merged_into"}`.

The JetStream message id is `accord-<target>-<change id>`: a change published again
(after a lost acknowledgement, or by a retry) within the stream's duplicate window is
stored once. Changes are published in order on one connection and each is sent once its
acknowledgement has come back; one that fails, and every later one of the round, is
tried again later, so one customer's changes stay in order.

The rest of Accord is synchronous: a `NatsChannel` keeps one connection on an asyncio
event loop of its own, as the broker intake does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from nats.aio.client import Client

from accord.config.sync import NatsTarget
from accord.intake import broker
from accord.store.outbox import Change
from accord.sync.channel import Published, Unavailable

__all__ = ["CONTENT_TYPE", "NatsChannel", "Published", "event"]

CONTENT_TYPE = "application/cloudevents+json"


def event(change: Change, fields: dict[str, Any], *, project: str) -> CloudEvent:
    """The CloudEvent of one golden change, with the target's fields."""
    return CloudEvent(
        {
            "id": str(change.id),
            "source": f"accord/{project}",
            "type": f"com.accord.customer.{change.change}",
            "subject": change.golden_id,
            "time": change.changed_at,
            "datacontenttype": "application/json",
        },
        {
            "golden_id": change.golden_id,
            "change": change.change,
            "fields": fields,
            "changed": change.fields,
            "merged_into": change.merged_into,
        },
    )


class NatsChannel:
    def __init__(self, target: str, config: NatsTarget, *, project: str) -> None:
        self.target = target
        self.config = config
        self.project = project
        self.urls = broker.server_urls(config, os.environ)
        self._format = JSONFormat()
        self._nats = broker.Connection(self.urls)
        self._failure: str | None = None  # why the last publish stopped short

    def publish(self, items: Sequence[tuple[Change, dict[str, Any]]]) -> list[Published]:
        """Publish in order until one fails; returns those acknowledged (a prefix of
        `items`). Raises Unavailable when none could be (no server, no stream)."""
        if not items:
            return []
        done: list[Published] = self._nats.run(self._publish(items))
        if not done:
            raise Unavailable(self._failure or f"{self.target}: nothing could be published")
        return done

    async def _publish(self, items: Sequence[tuple[Change, dict[str, Any]]]) -> list[Published]:
        client = await self._connected()
        js = client.jetstream(timeout=self.config.timeout.total_seconds())
        done: list[Published] = []
        self._failure = None
        for change, fields in items:
            body = self._format.write(event(change, fields, project=self.project))
            try:
                ack = await js.publish(
                    self.config.subject,
                    body,
                    headers={
                        "Nats-Msg-Id": f"accord-{self.target}-{change.id}",
                        "Content-Type": CONTENT_TYPE,
                    },
                )
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                self._failure = (
                    f"{self.target}: no JetStream stream captures {self.config.subject!r}; "
                    "create one (with a duplicate window) for the subject"
                )
                break
            except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                self._failure = f"{self.target}: publishing failed: {type(exc).__name__}: {exc}"
                await self._nats.drop()
                break
            done.append(Published(change.id, ack.seq, bool(ack.duplicate)))
        return done

    @property
    def last_failure(self) -> str | None:
        """Why the last publish stopped short, if it did."""
        return self._failure

    async def _connected(self) -> Client:
        try:
            return await self._nats.client()
        except broker.BrokerUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def close(self) -> None:
        self._nats.close()
