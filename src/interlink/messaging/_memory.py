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
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Self
from urllib.parse import urlsplit

from interlink.core.clock import SYSTEM_CLOCK, Clock, TimerHandle
from interlink.core.durations import parse_duration
from interlink.core.errors import (
    ConfigError,
    DeadLetterNotFoundError,
    MessagingError,
    PublishError,
)
from interlink.messaging._broker import (
    Broker,
    Consumer,
    Delivery,
    QueueStats,
    settle_error,
    url_options,
)
from interlink.messaging._dead_letters import DeadLetter, DeadLetters, Failure
from interlink.messaging._message import (
    HEADER_ORDERING_KEY,
    HEADER_REPLAYED_FROM,
    Message,
    encode_body,
    new_message_id,
    validate_headers,
    validate_queue_name,
)

__all__ = ["MemoryBroker"]

_List = list  # ``DeadLetters.list`` shadows the builtin inside the class

# Float wall times: a message due at t is available at t even when the clock,
# after adding the delay, lands one rounding step short of it.
_EPSILON = 1e-6

_URL_OPTIONS = {"visibility_timeout": "a duration such as '30s' (default 30s)"}

_seq = itertools.count()


class _Entry:
    """One stored message and where it is in its life."""

    __slots__ = (
        "attempt",
        "available_at",
        "body",
        "content_type",
        "deliveries",
        "headers",
        "id",
        "published_at",
        "queue",
        "seq",
    )

    def __init__(
        self,
        *,
        queue: str,
        message_id: str,
        body: bytes,
        headers: dict[str, str],
        content_type: str,
        published_at: float,
        available_at: float,
    ) -> None:
        self.queue = queue
        self.id = message_id
        self.body = body
        self.headers = headers
        self.content_type = content_type
        self.published_at = published_at
        self.available_at = available_at
        self.attempt = 1
        self.deliveries = 0  # deliveries of this attempt so far, plus attempt - 1
        self.seq = next(_seq)


class _Session:
    """One open period of one ``MemoryBroker``: its leases end with it."""

    __slots__ = ("leases", "open", "visibility_timeout")

    def __init__(self, visibility_timeout: float) -> None:
        self.open = True
        self.visibility_timeout = visibility_timeout
        self.leases: set[_Lease] = set()


class _Lease:
    """A delivery's hold on its message; ``active`` until settled or lost."""

    __slots__ = ("active", "consumer", "entry", "home", "session")

    def __init__(
        self, entry: _Entry, home: _Queue, session: _Session, consumer: _MemoryConsumer
    ) -> None:
        self.entry = entry
        self.home = home
        self.session = session
        self.consumer = consumer
        self.active = True  # held while its session is open, however long


class _Queue:
    """One queue's messages: available/delayed in one heap, leased ones aside."""

    __slots__ = ("expiring", "heap", "leased", "waiters")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Entry]] = []
        self.leased: set[_Lease] = set()
        # leases of closed brokers, by the time they run out
        self.expiring: list[tuple[float, int, _Lease]] = []
        self.waiters: set[asyncio.Future[None]] = set()

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self.heap, (entry.available_at, entry.seq, entry))
        self.wake()

    def wake(self) -> None:
        for waiter in tuple(self.waiters):
            _resolve(waiter)

    def reclaim(self, now: float) -> None:
        """Put back every message whose closed broker's lease has run out."""
        while self.expiring and self.expiring[0][0] <= now + _EPSILON:
            expires_at, _, lease = heapq.heappop(self.expiring)
            if lease.active:
                _lose(lease)
                lease.entry.available_at = expires_at
                self.push(lease.entry)

    def next_due(self) -> float | None:
        """When the next message becomes available (a due time or a lease running out)."""
        due = [self.heap[0][0]] if self.heap else []
        if self.expiring:
            due.append(self.expiring[0][0])
        return min(due) if due else None


class _Store:
    """Everything a broker holds: shared by every ``memory://name`` of one name."""

    __slots__ = ("dead_letters", "queues", "refused")

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.dead_letters: dict[str, DeadLetter] = {}  # insertion order: oldest first
        self.refused: set[str] = set()

    def queue(self, name: str) -> _Queue:
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = _Queue()
        return found

    def refuse(self, queue: str, message_id: str) -> None:
        if queue in self.refused:
            raise PublishError(
                f"the memory broker refuses writes to {queue!r} (refuse_publishes); "
                f"message {message_id} was not stored",
                queue=queue,
                message_id=message_id,
                reason="refused",
            )


_NAMED: dict[str, _Store] = {}


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done() and not waiter.get_loop().is_closed():
        waiter.set_result(None)


def _lose(lease: _Lease) -> None:
    """End a lease: the delivery no longer holds its message nor a prefetch slot."""
    lease.active = False
    lease.session.leases.discard(lease)
    lease.home.leased.discard(lease)
    consumer = lease.consumer
    consumer._unsettled -= 1
    consumer._wake()


def _check_delay(delay: object, what: str) -> float:
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ConfigError(f"{what} must be a number of seconds, got {delay!r}")
    if not math.isfinite(delay) or delay < 0:
        raise ConfigError(f"{what} must be finite and >= 0 seconds, got {delay!r}")
    return float(delay)


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
        names = [queue] if queue is not None else _List(self._store.queues)
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


class _MemoryConsumer(Consumer):
    """Yields deliveries as they become available; never fetches ahead."""

    def __init__(self, broker: MemoryBroker, queue: str, prefetch: int) -> None:
        self._broker = broker
        self.queue = queue
        self.prefetch = prefetch
        self._unsettled = 0
        self._stopped = False
        self._slot_waiter: asyncio.Future[None] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        broker = self._broker
        session = broker._session
        while True:
            if self._stopped or not session.open:
                raise StopAsyncIteration
            if self._unsettled >= self.prefetch:
                await self._wait(None, on_queue=False)
                continue
            now = broker.clock.wall()
            delivery = broker._take(self, now)
            if delivery is not None:
                return delivery
            await self._wait(broker._store.queue(self.queue).next_due(), on_queue=True)

    async def _wait(self, due: float | None, *, on_queue: bool) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stored = self._broker._store.queue(self.queue)
        if on_queue:
            stored.waiters.add(waiter)
        else:
            self._slot_waiter = waiter
        timer: TimerHandle | None = None
        if due is not None:
            clock = self._broker.clock
            timer = clock.call_later(max(due - clock.wall(), 0.0), lambda: _resolve(waiter))
        try:
            await waiter
        finally:
            stored.waiters.discard(waiter)
            self._slot_waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._slot_waiter is not None:
            _resolve(self._slot_waiter)

    def _stop(self) -> None:
        self._stopped = True
        self._broker._consumers.discard(self)
        self._wake()
        self._broker._store.queue(self.queue).wake()

    async def cancel(self) -> None:
        """Stop: the iteration ends. Nothing is fetched ahead, so nothing is released."""
        self._stop()

    def __repr__(self) -> str:
        return (
            f"<MemoryConsumer {self.queue!r} prefetch={self.prefetch} "
            f"unsettled={self._unsettled}{' stopped' if self._stopped else ''}>"
        )


class _MemoryDelivery(Delivery):
    __slots__ = ("_broker", "_lease")

    def __init__(self, message: Message, broker: MemoryBroker, lease: _Lease) -> None:
        super().__init__(message)
        self._broker = broker
        self._lease = lease

    def _hold(self, action: str) -> _Lease:
        """The lease, still ours, or the ``DeliveryError`` saying why not."""
        lease = self._lease
        if not lease.session.open:
            raise settle_error(action, self.message, MessagingError("the broker was closed"))
        if not lease.active:
            raise settle_error(
                action,
                self.message,
                MessagingError("its lease expired and it was made available again"),
            )
        return lease

    def _requeue(self, lease: _Lease, delay: float | None) -> None:
        """Back into the queue after ``delay``; ``None``: at its old place in line."""
        _lose(lease)
        entry = lease.entry
        if delay is not None:
            entry.available_at = self._broker.clock.wall() + delay
        lease.home.push(entry)

    async def _ack(self) -> None:
        _lose(self._hold("ack"))

    async def _retry(self, delay: float, headers: dict[str, str]) -> None:
        delay = _check_delay(delay, "retry delay")
        merged = validate_headers(headers)
        lease = self._hold("retry")
        try:
            self._broker._store.refuse(self.message.queue, self.message.id)
        except PublishError as exc:
            raise settle_error("retry", self.message, exc) from exc
        entry = lease.entry
        entry.headers = {**entry.headers, **merged}
        entry.attempt += 1
        entry.deliveries = entry.attempt - 1
        self._requeue(lease, delay)

    async def _dead_letter(self, failure: Failure, dead_letter_queue: str) -> None:
        dead_letter_queue = validate_queue_name(dead_letter_queue)
        lease = self._hold("dead-letter")
        store = self._broker._store
        try:
            store.refuse(dead_letter_queue, self.message.id)
        except PublishError as exc:
            raise settle_error("dead-letter", self.message, exc) from exc
        record = DeadLetter(
            id=new_message_id(),
            message=self.message,
            failure=failure,
            source_queue=self.message.queue,
            dead_letter_queue=dead_letter_queue,
            dead_lettered_at=self._broker.clock.wall(),
        )
        store.dead_letters[record.id] = record
        _lose(lease)

    async def _release(self, delay: float) -> None:
        delay = _check_delay(delay, "release delay")
        # Released at once, it keeps its place: FIFO survives a shutdown.
        self._requeue(self._hold("release"), delay or None)

    async def extend(self) -> None:
        """Check the lease is still held (it is renewed while the broker is open).

        ``DeliveryError`` when the broker closed or the lease was lost
        (``expire_leases``): the message will be, or was, delivered again.
        """
        if not self.settled:
            self._hold("extend")


class _MemoryDeadLetters(DeadLetters):
    """Dead letters kept in the store, oldest first."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    def _matching(
        self, queue: str | None, dead_letter_queue: str | None, error_type: str | None = None
    ) -> Iterator[DeadLetter]:
        self._broker._require_open()
        for record in self._broker._store.dead_letters.values():
            if queue is not None and record.source_queue != queue:
                continue
            if dead_letter_queue is not None and record.dead_letter_queue != dead_letter_queue:
                continue
            if error_type is not None and record.failure.error_type != error_type:
                continue
            yield record

    async def list(
        self,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> _List[DeadLetter]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"limit must be an integer >= 0, got {limit!r}")
        return list(itertools.islice(self._matching(queue, dead_letter_queue, error_type), limit))

    async def get(self, dead_letter_id: str) -> DeadLetter:
        self._broker._require_open()
        record = self._broker._store.dead_letters.get(dead_letter_id)
        if record is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        return record

    async def count(self, *, queue: str | None = None, dead_letter_queue: str | None = None) -> int:
        return sum(1 for _ in self._matching(queue, dead_letter_queue))

    async def replay(self, dead_letter_ids: Sequence[str]) -> _List[str]:
        if isinstance(dead_letter_ids, str):
            raise ConfigError("replay takes a list of dead letter ids, not one string")
        self._broker._require_open()
        store = self._broker._store
        records = [await self.get(dl_id) for dl_id in dict.fromkeys(dead_letter_ids)]
        for record in records:
            store.refuse(record.source_queue, record.message.id)
        sent: _List[str] = []
        now = self._broker.clock.wall()
        for record in records:
            original = record.message
            entry = _Entry(
                queue=record.source_queue,
                message_id=original.id,
                body=original.body,
                headers={**original.headers, HEADER_REPLAYED_FROM: record.id},
                content_type=original.content_type,
                published_at=now,
                available_at=now,
            )
            store.queue(record.source_queue).push(entry)
            del store.dead_letters[record.id]
            sent.append(original.id)
        return sent

    async def purge(
        self,
        dead_letter_ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> int:
        if isinstance(dead_letter_ids, str):
            raise ConfigError("purge takes a list of dead letter ids, not one string")
        wanted = None if dead_letter_ids is None else set(dead_letter_ids)
        doomed = [
            record.id
            for record in self._matching(queue, dead_letter_queue)
            if wanted is None or record.id in wanted
        ]
        for dl_id in doomed:
            del self._broker._store.dead_letters[dl_id]
        return len(doomed)
