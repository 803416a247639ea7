"""The embedded default broker: one SQLite file in WAL mode, nothing to install or run.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, with options
``synchronous`` (``FULL``, the default, or ``NORMAL``), ``visibility_timeout``
(30s), ``poll_interval`` (100ms) and ``busy_timeout`` (5s), e.g.
``sqlite:///queue.db?synchronous=NORMAL&visibility_timeout=2m``.

What survives what:

- ``synchronous=FULL``: ``publish`` and every settle return after the commit
  reached the disk (fsync). A process crash, a kill -9 or a power loss loses
  nothing that was confirmed.
- ``synchronous=NORMAL``: in WAL mode SQLite then syncs only at checkpoints.
  A process crash or kill -9 still loses nothing (the WAL is in the OS page
  cache); a power loss or an OS crash may roll back the last commits, so
  messages confirmed in the last moments may vanish, or come back as not
  yet acked. The file itself stays consistent either way.

Durability does not cost an fsync per message: a storage thread runs every
operation queued while it was busy in one transaction (group commit, see
``_sqlite_store``), so 100 concurrent publishers share a commit, and acks,
retries and leases ride in the same ones. Operations that wait for each other
cannot share: a loop that acks one delivery at a time pays one fsync per ack;
settle concurrently (the ``Worker`` does, up to its concurrency). A publish
whose caller is cancelled while it waits may still be stored, as a confirm
that arrives late would be. The WAL is copied back into the database file by
a thread of its own when commits pause, not inside them, and the ``-wal``
file stays under ~64 MB whatever the load (``_sqlite_checkpoint``).

Consumers *lease* messages for ``visibility_timeout`` and the broker renews
the lease every third of it while the delivery is unsettled. A consumer that
dies (crash, kill -9, a broker closed without settling) stops renewing; when
the lease runs out the message is delivered again with ``delivery_count`` + 1.
Delayed messages and retries wait as rows with a future ``available_at``,
never in process memory. Waiting consumers wake at once on a publish from
this process and otherwise poll the file every ``poll_interval``, which is
how they see publishes from other processes; every writer takes the write
lock with ``BEGIN IMMEDIATE`` and waits up to ``busy_timeout`` for it, so
several worker processes can share one file.

Times stored (delays, leases) are the clock's ``wall()`` seconds, so an
``interlink.testing.FakeClock`` drives them: a 1-hour delay fires when a test
advances the clock 3600 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final, Self
from urllib.parse import unquote, urlsplit

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError, MessagingError, PublishError
from interlink.messaging import _sqlite_ops as ops
from interlink.messaging._broker import Broker, QueueStats, url_options
from interlink.messaging._dead_letters import DeadLetters
from interlink.messaging._message import (
    HEADER_ORDERING_KEY,
    OCTET_STREAM,
    encode_body,
    validate_headers,
    validate_queue_name,
)
from interlink.messaging._sqlite_consumer import (
    CLOSED,
    LOST,
    NEW,
    OPEN,
    SqliteConsumer,
    SqliteDelivery,
    pack_headers,
)
from interlink.messaging._sqlite_dead_letters import SqliteDeadLetters
from interlink.messaging._sqlite_store import CALL, PUBLISH, RENEW, Store, is_busy

__all__ = ["SqliteBroker", "SqliteConsumer", "SqliteDelivery"]

_log = logging.getLogger("interlink.messaging.sqlite")

_OPTIONS: Final = {
    "synchronous": "FULL or NORMAL",
    "visibility_timeout": "a duration, e.g. 30s",
    "poll_interval": "a duration, e.g. 100ms",
    "busy_timeout": "a duration, e.g. 5s",
}


_IDS_PER_DRAW: Final = 256
_VERSION_4: Final = bytes(b & 0x0F | 0x40 for b in range(256))
_RFC_4122: Final = bytes(b & 0x3F | 0x80 for b in range(256))


class _MessageIds:
    """Fresh ids as ``new_message_id`` makes them (a random UUID 4: 32 hex digits), cut
    from one ``os.urandom`` draw per 256 ids: that call, a syscall that gives up the GIL
    (the storage thread may take it), was a fifth of the event loop's work per publish.
    One per broker, called from its event loop only.
    """

    __slots__ = ("_at", "_hex")

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._hex):
            raw = bytearray(os.urandom(16 * _IDS_PER_DRAW))
            raw[6::16] = raw[6::16].translate(_VERSION_4)
            raw[8::16] = raw[8::16].translate(_RFC_4122)
            self._hex = raw.hex()
            at = 0
        self._at = at + 32
        return self._hex[at : at + 32]


def _duration(name: str, value: str | float, *, allow_zero: bool) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)  # a bare number in a URL is seconds
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except ConfigError as exc:
        raise ConfigError(f"SQLite broker option {name}: {exc}") from None


class SqliteBroker(Broker):
    """Durable queues in one SQLite file; see the module docs for what survives what.

    ``SqliteBroker(path, synchronous="FULL", visibility_timeout=30, poll_interval=0.1,
    busy_timeout=5)`` or ``open_broker("sqlite:///path.db?...")``. ``commits``
    counts the transactions committed so far (many operations share one).
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        synchronous: str = "FULL",
        visibility_timeout: str | float = 30.0,
        poll_interval: str | float = 0.1,
        busy_timeout: str | float = 5.0,
    ) -> None:
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"the SQLite broker needs a file path, got {path!r}")
        if path == ":memory:" or path.startswith("file:"):
            raise ConfigError(
                f"the SQLite broker needs a file on disk, got {path!r}; "
                "use memory:// for a broker that lives in this process"
            )
        level = synchronous.upper() if isinstance(synchronous, str) else ""
        if level not in ("FULL", "NORMAL"):
            raise ConfigError(
                f"SQLite broker option synchronous must be FULL or NORMAL, got {synchronous!r}"
            )
        self.path = path
        self.url = f"sqlite:///{path}"
        self.clock = clock
        self.visibility_timeout = _duration(
            "visibility_timeout", visibility_timeout, allow_zero=False
        )
        self.poll_interval = _duration("poll_interval", poll_interval, allow_zero=False)
        self.busy_timeout = _duration("busy_timeout", busy_timeout, allow_zero=True)
        self._synchronous = level
        self._state = NEW
        self._store: Store | None = None
        self._starting: asyncio.Future[None] | None = None
        self._token = uuid.uuid4().hex[:12]
        self._fetches = itertools.count(1)
        self._new_id = _MessageIds()
        self._consumers: dict[str, set[SqliteConsumer]] = {}
        self._leased: dict[SqliteDelivery, None] = {}  # an ordered set
        self._renewer: asyncio.Task[None] | None = None
        self._queues: set[str] = set()  # names already validated
        self._dead_letters = SqliteDeadLetters(self)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = SYSTEM_CLOCK) -> Self:
        """A broker (not started) for ``sqlite:///relative.db`` or ``sqlite:////abs.db?opts``."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "sqlite":
            raise ConfigError(f"not an sqlite:// URL: {url!r}")
        if parts.netloc:
            raise ConfigError(
                f"an sqlite URL names a file, not a host: {url!r}; write "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        path = unquote(parts.path[1:])
        if not path:
            raise ConfigError(
                f"no file in {url!r}; write sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        options: dict[str, Any] = url_options(url, _OPTIONS)
        broker = cls(path, clock=clock, **options)
        broker.url = url
        return broker

    # -- lifecycle ----------------------------------------------------------
    @property
    def commits(self) -> int:
        """Transactions committed so far: far fewer than operations when they overlap."""
        return self._store.commits if self._store is not None else 0

    @property
    def synchronous(self) -> str:
        """The ``synchronous`` level SQLite reports for the open file (``""`` before start)."""
        return self._store.synchronous if self._store is not None else ""

    async def start(self) -> None:
        """Open the file (creating it and the schema if needed) and start the storage thread.

        A missing directory, an unwritable place or a file that is not an
        SQLite database raises ``ConfigError`` naming the path.
        """
        if self._state == OPEN:
            return
        if self._state == CLOSED:
            raise MessagingError(f"the SQLite broker {self.path!r} was closed; open a new one")
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._starting)

    async def _open(self) -> None:
        store = Store(
            self.path,
            synchronous=self._synchronous,
            busy_timeout=self.busy_timeout,
            wall=self.clock.wall,
            loop=asyncio.get_running_loop(),
        )
        self._store = store
        await store.start()
        if self._state == CLOSED:  # closed while opening
            await store.stop()
            store.join()
            return
        self._state = OPEN

    async def close(self) -> None:
        """Stop the storage thread after what is queued; idempotent.

        Unsettled deliveries stay leased, as after a crash: they are delivered
        again once their lease runs out. Consumers end their iteration.
        """
        if self._state == CLOSED:
            return
        self._state = CLOSED
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        for consumers in list(self._consumers.values()):
            for consumer in list(consumers):
                consumer._wake()
        self._leased.clear()
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._store is not None:
            await self._store.stop()
            self._store.join()

    def _submit(self, kind: int, args: Any) -> asyncio.Future[Any]:
        if self._state != OPEN or self._store is None:
            state = "was closed" if self._state == CLOSED else "is not started (await start())"
            raise MessagingError(f"the SQLite broker {self.path!r} {state}")
        return self._store.submit(kind, args)

    async def _call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, now, *args)`` on the storage thread; sqlite errors become MessagingError."""
        try:
            return await self._submit(CALL, (fn, args))
        except sqlite3.Error as exc:
            raise MessagingError(f"SQLite broker {self.path!r}: {exc}") from exc

    def _wake(self, queue: str) -> None:
        consumers = self._consumers.get(queue)
        if consumers:
            for consumer in consumers:
                consumer._wake()

    # -- publish ------------------------------------------------------------
    async def publish(
        self,
        queue: str,
        body: object,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        key: str | None = None,
    ) -> str:
        """Store a message; return its id once the transaction holding it committed."""
        if queue not in self._queues:
            self._queues.add(validate_queue_name(queue))
        if message_id is None:
            message_id = self._new_id()
        elif not isinstance(message_id, str) or not message_id:
            raise ConfigError(f"message_id must be a non-empty string, got {message_id!r}")
        stored, trace = None, ""
        if headers is not None or key is not None:
            fields = validate_headers(headers)
            if key is not None:
                if not isinstance(key, str) or not key:
                    raise ConfigError(f"key must be a non-empty string, got {key!r}")
                fields[HEADER_ORDERING_KEY] = key
            stored, trace = pack_headers(fields)
        now = self.clock.wall()
        available_at = now
        if delay is not None:
            if (
                isinstance(delay, bool)
                or not isinstance(delay, int | float)
                or not math.isfinite(delay)
                or delay < 0
            ):
                raise ConfigError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
            available_at += delay
        if body.__class__ is bytes:  # the common case, without a call
            data, content_type = body, OCTET_STREAM
        else:
            data, content_type = encode_body(body)
        row = (message_id, queue, data, stored, trace, content_type, 1, now, available_at)
        try:
            await self._submit(PUBLISH, row)
        except MessagingError as exc:
            raise PublishError(
                f"cannot publish to {queue!r}: {exc}",
                queue=queue,
                message_id=message_id,
                reason="disconnected",
            ) from exc
        except sqlite3.Error as exc:
            raise PublishError(
                f"message {message_id} to {queue!r} was not stored: {exc}",
                queue=queue,
                message_id=message_id,
                reason="timeout" if is_busy(exc) else "refused",
            ) from exc
        if self._consumers:  # delayed too: a waiting consumer learns when the next one is due
            self._wake(queue)
        return message_id

    # -- consume ------------------------------------------------------------
    def consume(self, queue: str, *, prefetch: int = 10) -> SqliteConsumer:
        """A consumer of ``queue`` holding at most ``prefetch`` unsettled (leased) deliveries."""
        validate_queue_name(queue)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        if self._state == CLOSED:
            raise MessagingError(f"the SQLite broker {self.path!r} was closed", queue=queue)
        return SqliteConsumer(self, queue, prefetch)

    def _ensure_renewer(self) -> None:
        if self._renewer is None and self._state == OPEN:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await self.clock.sleep(self.visibility_timeout / 3)
            if self._leased:
                await self._renew(list(self._leased))

    async def _renew(self, deliveries: list[SqliteDelivery]) -> None:
        try:
            await self._extend(deliveries)
        except (sqlite3.Error, MessagingError) as exc:
            _log.warning("could not renew %d leases in %s: %s", len(deliveries), self.path, exc)

    async def _extend(self, deliveries: list[SqliteDelivery]) -> bool:
        """Renew these leases now; False when one was lost (that delivery is forgotten)."""
        leases = [(d._seq, d._token) for d in deliveries]
        lost = await self._submit(RENEW, (ops.renew, (leases, self.visibility_timeout)))
        for index in lost:
            delivery = deliveries[index]
            consumer = delivery._consumer
            # A settle in flight (or done) explains a missing lease: it speaks for itself.
            if not delivery._gone and delivery not in consumer._settling:
                _log.warning("lost the lease of %r: %s", delivery, LOST)
                consumer._forget(delivery)
        return not lost

    # -- the rest of the contract ---------------------------------------------
    async def stats(self, queue: str) -> QueueStats:
        """Ready, delayed, leased (in flight), oldest ready age and dead letters of ``queue``."""
        validate_queue_name(queue)
        total, ready, delayed, oldest, dead, now = await self._call(ops.stats, queue)
        return QueueStats(
            queue=queue,
            ready=ready,
            delayed=delayed,
            in_flight=total - ready - delayed,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            dead_letters=dead,
        )

    async def ping(self) -> float:
        """Seconds for a statement to go through the storage thread and back."""
        started = time.perf_counter()
        await self._call(ops.ping)
        return time.perf_counter() - started

    @property
    def dead_letters(self) -> DeadLetters:
        """The ``dead_letters`` table: list, get, count, replay, purge."""
        return self._dead_letters

    def __repr__(self) -> str:
        state = ("new", "open", "closed")[self._state]
        return f"<SqliteBroker {self.path!r} {state} synchronous={self._synchronous}>"
