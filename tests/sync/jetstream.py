"""A JetStream stream of a test's own (127.0.0.1:4222, or ACCORD_TEST_NATS_URL), its
subject, and what it holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import Any

import nats

from tests.services import require

NATS_URL = os.environ.get("ACCORD_TEST_NATS_URL", "nats://127.0.0.1:4222")


class Subject:
    """A stream of the test's own with a duplicate window, and its subject."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:12]
        self.stream = f"ACCORD_OUT_{token}"
        self.subject = f"accord{token}.customers"

    async def _client(self) -> Any:
        return await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)

    def create(self) -> None:
        async def add() -> None:
            client = await self._client()
            await client.jetstream().add_stream(
                name=self.stream, subjects=[self.subject], duplicate_window=120.0
            )
            await client.close()

        asyncio.run(add())

    def delete(self) -> None:
        async def remove() -> None:
            client = await self._client()
            await client.jetstream().delete_stream(self.stream)
            await client.close()

        asyncio.run(remove())

    def messages(self) -> list[Any]:
        """Every message in the stream, in order."""

        async def read() -> list[Any]:
            client = await self._client()
            js = client.jetstream()
            info = await js.stream_info(self.stream)
            found = [
                await js.get_msg(self.stream, seq)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
                if info.state.messages
            ]
            await client.close()
            return found

        return asyncio.run(read())

    def payloads(self, batch: int = 1000) -> list[bytes]:
        """Every message's data, in order, fetched in batches (for large streams)."""

        async def read() -> list[bytes]:
            client = await self._client()
            js = client.jetstream()
            total = (await js.stream_info(self.stream)).state.messages
            subscription = await js.pull_subscribe(self.subject, stream=self.stream)
            found: list[bytes] = []
            while len(found) < total:
                for message in await subscription.fetch(batch, timeout=10):
                    found.append(message.data)
                    await message.ack()
            await subscription.unsubscribe()
            await client.close()
            return found

        return asyncio.run(read())


def jetstream_available() -> None:
    """Skip (or, under CI=true, fail) when JetStream does not answer."""

    async def probe() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        await client.jetstream().account_info()
        await client.close()

    require("NATS JetStream", NATS_URL, lambda: asyncio.run(probe()))


def stream_size(stream: str) -> int:
    """How many messages `stream` holds."""

    async def count() -> int:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        info = await client.jetstream().stream_info(stream)
        await client.close()
        return int(info.state.messages)

    return asyncio.run(count())


def delete_stream(stream: str) -> None:
    """Delete `stream` if there is one."""

    async def delete() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(stream)
        await client.close()

    asyncio.run(delete())
