"""``MemoryBroker``: the whole broker contract in this process, failures included.

Hand-written because the test brokers that exist (FastStream's ``TestBroker``,
Dramatiq's ``StubBroker``, Celery's eager mode) route messages but model
neither redelivery, leases, delays on a controllable clock nor dead letters,
so a handler tested on them meets those for the first time in production
(research note, pain 9). This one keeps the same semantics as the SQLite and
RabbitMQ backends, and runs its delays and lease expiry on the injected
clock: with ``interlink.testing.FakeClock`` a one-hour retry delay fires when
the test advances the clock 3600 seconds.

What it models and how:

- **Leases.** A delivery is leased to the broker that handed it out. While
  that broker is open the lease is held (the durable backends renew it every
  ``visibility_timeout / 3``, which amounts to the same). ``close()`` leaves
  unsettled deliveries leased, as a crash would: they become deliverable
  again ``visibility_timeout`` seconds later, with ``delivery_count`` one
  higher. ``expire_leases()`` makes every unsettled delivery deliverable at
  once, as if the consumer's process had died and the lease run out.
- **Failures.** ``refuse_publishes(queue)`` makes the storage refuse writes
  into ``queue``: a publish raises ``PublishError(reason="refused")``; a
  retry into it or a dead letter into it raises ``DeliveryError`` and leaves
  the delivery unsettled, its message intact.
- **Sharing.** ``memory://`` is a fresh broker; ``memory://name`` shares one
  store per name in this process, so closing it and opening the same URL
  again is a restart that keeps every message (delayed, leased and dead
  ones too). Nothing survives the process itself: memory is not durable.

Cost per operation is O(log n) (a heap per queue, ordered by the time a
message becomes available, then publish order); ``stats`` and the
dead-letter queries scan, which suits inspection, not hot paths.

This module holds the broker itself: its URL, fault injection, sessions and
the ``Broker`` contract. The rest of the backend is in ``_memory_store``
(messages, queues, leases and the named stores), ``_memory_consumer``
(consumers and deliveries) and ``_memory_dead_letters``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Self
from urllib.parse import urlsplit

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError, MessagingError, PublishError
from interlink.messaging._broker import Broker, Consumer, QueueStats, url_options
from interlink.messaging._dead_letters import DeadLetters
from interlink.messaging._memory_consumer import _check_delay, _MemoryConsumer, _MemoryDelivery
from interlink.messaging._memory_dead_letters import _MemoryDeadLetters
from interlink.messaging._memory_store import (
    _EPSILON,
    _NAMED,
    _Entry,
    _Lease,
    _lose,
    _Session,
    _Store,
)
from interlink.messaging._message import (
    HEADER_ORDERING_KEY,
    Message,
    encode_body,
    new_message_id,
    validate_headers,
    validate_queue_name,
)

__all__ = ["MemoryBroker"]

_URL_OPTIONS = {"visibility_timeout": "a duration such as '30s' (default 30s)"}


class MemoryBroker(Broker):
    """The broker contract in process memory, for tests and single-process tools.

    Same semantics as the durable backends (``Broker``): delays, retries,
    leases, dead letters, replay, FIFO per queue and the prefetch bound, with
    time read from ``clock`` (``clock.wall()`` for due times), so a
    ``FakeClock`` drives every delay and lease expiry. ``visibility_timeout``
    is how long an unsettled delivery of a closed broker stays leased before
    it is delivered again. Not durable across a process exit.

    ``MemoryBroker()`` is open at once (``start`` only reopens it after
    ``close``); ``name`` (``memory://name`` via ``open_broker``) shares one
    store per name in this process (see the module docstring). Fault
    injection: ``refuse_publishes``/``accept_publishes``, ``expire_leases``.
    Use it from event-loop code only: it is not thread-safe.
    """

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        visibility_timeout: float | str = 30.0,
        name: str | None = None,
    ) -> None:
        self.clock = clock
        self.visibility_timeout = parse_duration(visibility_timeout, allow_zero=False)
        """Seconds a closed broker's unsettled deliveries stay leased before redelivery."""
        self.name = name
        """The store's name for ``memory://name``, or ``None`` for a private store."""
        if name is None:
            self._store = _Store()
        else:
            self._store = _NAMED.setdefault(name, _Store())
        self.url = f"memory://{name or ''}"
        self._session = _Session(self.visibility_timeout)
        self._consumers: set[_MemoryConsumer] = set()
        self._dead_letters = _MemoryDeadLetters(self)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock) -> Self:
        """``memory://`` (private store) or ``memory://name`` (shared by name).

        Option: ``visibility_timeout`` (a duration, default ``30s``). An
        unknown option or a bad value is a ``ConfigError``.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != "memory":
            raise ConfigError(f"not a memory:// URL: {url!r}")
        options = url_options(url, _URL_OPTIONS)
        visibility = parse_duration(options.get("visibility_timeout", 30.0), allow_zero=False)
        name = (parts.netloc + parts.path).strip("/") or None
        broker = cls(clock=clock, visibility_timeout=visibility, name=name)
        if parts.query:
            broker.url = f"{broker.url}?{parts.query}"
        return broker

    @classmethod
    def discard(cls, name: str) -> bool:
        """Forget the shared store ``memory://name`` and everything in it.

        Brokers still open on it keep working on their copy; a later
        ``memory://name`` starts empty. Whether there was such a store.
        """
        return _NAMED.pop(name, None) is not None

    # -- fault injection ------------------------------------------------------
    def refuse_publishes(self, queue: str) -> None:
        """Make the storage refuse writes into ``queue`` until ``accept_publishes``.

        Publishing to it raises ``PublishError(reason="refused")``; a retry
        into it or a dead letter into it (``dead_letter_queue=queue``) raises
        ``DeliveryError`` and the delivery stays unsettled; a replay into it
        raises ``PublishError`` before anything moves. Acks and releases still
        work, so the message is never lost. Shared by every broker on the
        same named store.
        """
        self._store.refused.add(validate_queue_name(queue))

    def accept_publishes(self, queue: str) -> None:
        """Undo ``refuse_publishes(queue)``."""
        self._store.refused.discard(validate_queue_name(queue))

    def expire_leases(self, queue: str | None = None) -> int:
        """Simulate a consumer crash: every unsettled delivery is available again now.

        As if each lease had run out (every broker on this store, or only
        ``queue``'s): the messages go back to their queues, to be delivered
        again with ``delivery_count`` one higher and the same ``attempt``.
        Settling one of the old deliveries afterwards raises
        ``DeliveryError``. Returns how many deliveries lost their lease.
        """
        names = [queue] if queue is not None else list(self._store.queues)
        now = self.clock.wall()
        lost = 0
        for name in names:
            stored = self._store.queues.get(name)
            if stored is None:
                continue
            for lease in sorted(stored.leased, key=lambda held: held.entry.seq):
                _lose(lease)
                lease.entry.available_at = now
                stored.push(lease.entry)
                lost += 1
        return lost

    # -- the Broker contract ----------------------------------------------------
    async def start(self) -> None:
        """Open again after ``close`` (a fresh session); a no-op when open."""
        if not self._session.open:
            self._session = _Session(self.visibility_timeout)

    async def close(self) -> None:
        """Stop every consumer; unsettled deliveries come back after ``visibility_timeout``.

        Settling one of them afterwards raises ``DeliveryError``, as it would
        after a crash. Idempotent.
        """
        session = self._session
        if not session.open:
            return
        session.open = False
        expires_at = self.clock.wall() + session.visibility_timeout
        for lease in sorted(session.leases, key=lambda held: held.entry.seq):
            heapq.heappush(lease.home.expiring, (expires_at, lease.entry.seq, lease))
            lease.home.wake()
        for consumer in tuple(self._consumers):
            consumer._stop()

    def _require_open(self, queue: str = "") -> None:
        if not self._session.open:
            raise MessagingError(f"the memory broker {self.url} is closed", queue=queue)

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
        """Store the message; return its id. See ``Broker.publish``.

        Raises ``ConfigError`` for a bad argument and ``PublishError`` when the
        queue refuses writes (``reason="refused"``) or the broker is closed
        (``reason="disconnected"``); nothing is stored then.
        """
        queue = validate_queue_name(queue)
        stored_headers = validate_headers(headers)
        seconds = 0.0 if delay is None else _check_delay(delay, "delay")
        if message_id is None:
            message_id = new_message_id()
        elif not isinstance(message_id, str) or not message_id:
            raise ConfigError(f"message_id must be a non-empty string, got {message_id!r}")
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ConfigError(f"key must be a non-empty string, got {key!r}")
            stored_headers[HEADER_ORDERING_KEY] = key
        data, content_type = encode_body(body)
        if not self._session.open:
            raise PublishError(
                f"the memory broker {self.url} is closed; message {message_id} was not stored",
                queue=queue,
                message_id=message_id,
                reason="disconnected",
            )
        self._store.refuse(queue, message_id)
        now = self.clock.wall()
        entry = _Entry(
            queue=queue,
            message_id=message_id,
            body=data,
            headers=stored_headers,
            content_type=content_type,
            published_at=now,
            available_at=now + seconds,
        )
        self._store.queue(queue).push(entry)
        return message_id

    def consume(self, queue: str, *, prefetch: int = 10) -> Consumer:
        """A consumer of ``queue`` holding at most ``prefetch`` unsettled deliveries.

        It waits without polling: a publish, a settle or the clock reaching the
        next due time wakes it. It ends when cancelled or the broker closes.
        """
        queue = validate_queue_name(queue)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        self._require_open(queue)
        consumer = _MemoryConsumer(self, queue, prefetch)
        self._consumers.add(consumer)
        return consumer

    async def stats(self, queue: str) -> QueueStats:
        """What ``queue`` holds now (an unknown queue is empty). Scans the queue."""
        queue = validate_queue_name(queue)
        self._require_open(queue)
        now = self.clock.wall()
        stored = self._store.queue(queue)
        stored.reclaim(now)
        ready = [entry for _, _, entry in stored.heap if entry.available_at <= now + _EPSILON]
        dead = sum(1 for dl in self._store.dead_letters.values() if dl.source_queue == queue)
        return QueueStats(
            queue=queue,
            ready=len(ready),
            delayed=len(stored.heap) - len(ready),
            in_flight=len(stored.leased),
            oldest_age=max(0.0, now - min(e.published_at for e in ready)) if ready else None,
            dead_letters=dead,
        )

    async def ping(self) -> float:
        """``0.0``: memory always answers. ``MessagingError`` once closed."""
        self._require_open()
        return 0.0

    @property
    def dead_letters(self) -> DeadLetters:
        """This broker's dead letters (shared with every broker on the same store)."""
        return self._dead_letters

    # -- internals --------------------------------------------------------------
    def _take(self, consumer: _MemoryConsumer, now: float) -> _MemoryDelivery | None:
        stored = self._store.queue(consumer.queue)
        stored.reclaim(now)
        if not stored.heap or stored.heap[0][0] > now + _EPSILON:
            return None
        _, _, entry = heapq.heappop(stored.heap)
        lease = _Lease(entry, stored, self._session, consumer)
        entry.deliveries += 1
        self._session.leases.add(lease)
        stored.leased.add(lease)
        consumer._unsettled += 1
        message = Message(
            id=entry.id,
            queue=entry.queue,
            body=entry.body,
            headers=dict(entry.headers),
            content_type=entry.content_type,
            attempt=entry.attempt,
            delivery_count=entry.deliveries,
            published_at=entry.published_at,
        )
        return _MemoryDelivery(message, self, lease)

    def __repr__(self) -> str:
        state = "open" if self._session.open else "closed"
        return f"<MemoryBroker {self.url} queues={len(self._store.queues)} {state}>"
