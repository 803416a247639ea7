"""The clients ``bench/messaging.py`` measures: raw baselines, FastStream and interlink.

**SQLite.** Raw sqlite3 is what a user writes without a queue library: the
loop runs in one worker thread (``asyncio.to_thread``, so the event loop stays
free), WAL, ``synchronous=FULL``, and inserts the row a queue needs (the same
columns and ready index as interlink's ``messages`` table, a fresh message id
per row). Committing once per message is the floor (one fsync each); batches
of 100 per commit are the ceiling of what batching buys. Both time the inserts
only: nothing consumes them.

interlink's SQLite broker (``sqlite:///file.db``, ``synchronous=FULL``, its
default) is driven like every other client (``_messaging_common``): through
the ``Broker`` API (``consume`` with ``prefetch=100``, every delivery acked by
its own task, so up to 100 acks wait on one group commit) and, when the worker
runtime is present, through ``Worker`` with a handler that does nothing.

**RabbitMQ** (one connection per client, opened once): raw aio-pika is the
baseline at its best for this job: a robust connection, a publishing channel
with publisher confirms (``mandatory``, a returned message raises), a
consuming channel with ``prefetch_count=100``, a durable queue of the same
type interlink declares (quorum; classic as well, for scale), persistent
messages, a callback that acks each message. FastStream (``RabbitBroker``)
does the same through its API: ``broker.publish(persist=True)`` (confirms on
by default) and a subscriber with ``prefetch_count=100`` acking after its
handler (``AckPolicy.ACK``), with its per-message logging off
(``logger=None``), its fastest setting. interlink's ``RabbitBroker`` is driven
through the ``Broker`` API like the SQLite one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from _messaging_common import BODY, PREFETCH, Client, Phase, Publish

_SCHEMA = """
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT,
    content_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    published_at REAL NOT NULL,
    available_at REAL NOT NULL,
    lease_owner TEXT
);
CREATE INDEX messages_ready ON messages (queue, available_at, seq);
"""
_INSERT = (
    "INSERT INTO messages (id, queue, body, headers, content_type, attempt, delivery_count,"
    " published_at, available_at) VALUES (?, 'bench', ?, NULL, 'application/octet-stream',"
    " 1, 0, ?, ?)"
)


class RawSqlite3:
    """sqlite3 as a user writes it: one connection, used from one worker thread at a time.

    The file is opened once and kept for the whole run, like interlink's, so
    both write to a WAL that is already grown; the rows of a repeat are deleted
    (untimed) after it, so the table stays as small as a drained queue's.
    """

    def __init__(self, path: Path, batch: int) -> None:
        self.path = path
        self.batch = batch
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        connection.execute("PRAGMA synchronous=FULL")
        if mode != "wal" or connection.execute("PRAGMA synchronous").fetchone()[0] != 2:
            connection.close()
            raise RuntimeError(f"raw sqlite3: could not set WAL + synchronous=FULL on {self.path}")
        connection.executescript(_SCHEMA)
        self._connection = connection

    def _inserts(self, n: int) -> Phase:
        assert self._connection is not None
        execute, body, wall, new_id = self._connection.execute, BODY, time.time, uuid.uuid4
        cpu, started = time.process_time(), time.perf_counter()
        for _ in range(n // self.batch):
            execute("BEGIN")
            for _ in range(self.batch):
                now = wall()
                execute(_INSERT, (new_id().hex, body, now, now))
            execute("COMMIT")
        return Phase(n, time.perf_counter() - started, time.process_time() - cpu)

    def _clear(self) -> None:
        assert self._connection is not None
        self._connection.execute("DELETE FROM messages")

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    async def publish(self, n: int) -> Phase:
        """``n`` rows, a commit every ``batch``, timed in the thread; then delete them."""
        if n % self.batch:
            raise ValueError(f"{n} rows do not make whole batches of {self.batch}")
        phase = await asyncio.to_thread(self._inserts, n)
        await asyncio.to_thread(self._clear)
        return phase

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        _unlink(self.path)


def _unlink(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


class InterlinkBroker(Client):
    """interlink's ``Broker`` API: ``publish``; ``consume`` + ``ack`` (one task per ack)."""

    def __init__(self, name: str, url: str, cleanup: list[Path] | None = None) -> None:
        self.name = name
        self.url = url
        self.broker: Any = None
        self._cleanup = cleanup or []

    async def open(self) -> None:
        from interlink.messaging import open_broker

        self.broker = await open_broker(self.url)

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.close()
        for path in self._cleanup:
            _unlink(path)

    def commits(self) -> int | None:
        commits = getattr(self.broker, "commits", None)  # SqliteBroker counts its commits
        return commits if isinstance(commits, int) else None

    async def create(self, queue: str) -> None:
        """One message through ``queue``, untimed: the broker declares the queue (and, on
        RabbitMQ, its dead-letter queue) here, not in the first timed publish, as the other
        clients declare theirs before their phases."""
        await self.publisher(queue)()
        await InterlinkBroker.consume(self, queue, 1, asyncio.Event())

    def server_queues(self, queue: str) -> list[str]:
        if self.url.startswith("amqp"):  # RabbitBroker declares <queue> and <queue>.dlq
            return [queue, f"{queue}.dlq"]
        return []

    def publisher(self, queue: str) -> Publish:
        publish, body = self.broker.publish, BODY

        async def call() -> object:
            return await publish(queue, body)

        return call

    async def consume(self, queue: str, n: int, subscribed: asyncio.Event) -> None:
        acks: set[asyncio.Task[None]] = set()
        create_task, keep, drop = asyncio.create_task, acks.add, acks.discard
        received = 0
        consumer = self.broker.consume(queue, prefetch=PREFETCH)
        try:
            subscribed.set()
            async for delivery in consumer:
                task = create_task(delivery.ack())
                keep(task)
                task.add_done_callback(drop)
                received += 1
                if received >= n:
                    break
            await asyncio.gather(*acks)
        finally:
            await consumer.cancel()
        if received < n:
            raise RuntimeError(f"{self.name}: the consumer ended after {received} of {n}")


class InterlinkWorker(InterlinkBroker):
    """interlink's ``Worker`` runtime: a handler that does nothing, concurrency and prefetch
    100, no inbox (the default); a fresh ``Worker`` per consume, stopped after the ``n``-th."""

    async def consume(self, queue: str, n: int, subscribed: asyncio.Event) -> None:
        from interlink.messaging import Worker

        done = asyncio.Event()
        handled = 0

        async def handle(body: object, ctx: object) -> None:
            nonlocal handled
            handled += 1
            if handled >= n:
                done.set()

        worker = Worker(self.broker, name=f"bench-{self.name}")
        worker.add_handler(queue, handle, concurrency=PREFETCH, prefetch=PREFETCH)
        await worker.start()
        subscribed.set()
        try:
            await done.wait()
        finally:
            await worker.stop()


# --- RabbitMQ -----------------------------------------------------------------------------


class AioPika(Client):
    """Raw aio-pika: confirms, ``IN_FLIGHT`` publishes waiting, manual acks, prefetch 100."""

    def __init__(self, name: str, url: str, queue_type: str) -> None:
        self.name = name
        self.url = url
        self.queue_type = queue_type
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publishing: aio_pika.abc.AbstractChannel | None = None
        self._consuming: aio_pika.abc.AbstractChannel | None = None
        self._queues: dict[str, aio_pika.abc.AbstractQueue] = {}

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        self._publishing = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._consuming = await self.connection.channel(publisher_confirms=False)
        await self._consuming.set_qos(prefetch_count=PREFETCH)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def create(self, queue: str) -> None:
        assert self._consuming is not None
        self._queues[queue] = await self._consuming.declare_queue(
            queue, durable=True, arguments={"x-queue-type": self.queue_type}
        )

    def server_queues(self, queue: str) -> list[str]:
        self._queues.pop(queue, None)
        return [queue]

    def publisher(self, queue: str) -> Publish:
        assert self._publishing is not None
        publish = self._publishing.default_exchange.publish
        message, persistent, new_id = aio_pika.Message, aio_pika.DeliveryMode.PERSISTENT, uuid.uuid4

        async def call() -> object:
            outgoing = message(BODY, delivery_mode=persistent, message_id=new_id().hex)
            return await publish(outgoing, routing_key=queue, mandatory=True)

        return call

    async def consume(self, queue: str, n: int, subscribed: asyncio.Event) -> None:
        source = self._queues[queue]
        done = asyncio.Event()
        acked = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked
            await message.ack()
            acked += 1
            if acked >= n:
                done.set()

        tag = await source.consume(on_message, no_ack=False)
        subscribed.set()
        try:
            await done.wait()
        finally:
            await source.cancel(tag)


class FastStream(Client):
    """FastStream's ``RabbitBroker``: confirmed persistent publishes; a subscriber that acks."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.broker: Any = None

    async def open(self) -> None:
        from faststream.rabbit import RabbitBroker

        self.broker = RabbitBroker(self.url, logger=None)
        await self.broker.start()

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.stop()

    def _queue(self, queue: str) -> Any:
        from faststream.rabbit import QueueType, RabbitQueue

        return RabbitQueue(queue, queue_type=QueueType.QUORUM, durable=True)

    async def create(self, queue: str) -> None:
        await self.broker.declare_queue(self._queue(queue))

    def server_queues(self, queue: str) -> list[str]:
        return [queue]

    def publisher(self, queue: str) -> Publish:
        publish, new_id = self.broker.publish, uuid.uuid4

        async def call() -> object:
            return await publish(BODY, queue=queue, persist=True, message_id=new_id().hex)

        return call

    async def consume(self, queue: str, n: int, subscribed: asyncio.Event) -> None:
        from faststream import AckPolicy
        from faststream.rabbit import Channel

        done = asyncio.Event()
        handled = 0

        async def handle(body: bytes) -> None:
            nonlocal handled
            handled += 1
            if handled >= n:
                done.set()

        subscriber = self.broker.subscriber(
            self._queue(queue), channel=Channel(prefetch_count=PREFETCH), ack_policy=AckPolicy.ACK
        )
        subscriber(handle)
        await subscriber.start()
        subscribed.set()
        try:
            await done.wait()
        finally:
            await subscriber.stop()
