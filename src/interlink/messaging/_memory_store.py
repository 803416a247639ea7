"""The state under ``MemoryBroker``: stored messages, queues, leases and named stores.

Apart from the broker because it is the data model every side of the memory
backend works on, with no policy of its own: the broker publishes into it and
leases from it, deliveries settle against it, dead letters are kept in it. A
``_Store`` is what one broker (or every ``memory://name`` of one name, through
``_NAMED``) holds: its ``_Queue``s, its dead letters and the queues refusing
writes. A ``_Queue`` keeps available and delayed ``_Entry``s in one heap,
ordered by the time each becomes available, then publish order (O(log n) per
operation), and its leased messages aside. A ``_Lease`` is one delivery's hold
on its message for one ``_Session``, an open period of one broker; ``_lose``
ends it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import TYPE_CHECKING

from interlink.core.errors import PublishError
from interlink.messaging._dead_letters import DeadLetter

if TYPE_CHECKING:
    from interlink.messaging._memory_consumer import _MemoryConsumer

# Everything here is private to the memory broker's modules.
__all__: list[str] = []

# Float wall times: a message due at t is available at t even when the clock,
# after adding the delay, lands one rounding step short of it.
_EPSILON = 1e-6

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
