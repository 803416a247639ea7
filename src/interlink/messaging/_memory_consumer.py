"""Consumers and deliveries of ``MemoryBroker``: waiting for messages, settling them.

A ``_MemoryConsumer`` never fetches ahead: it takes a message from the broker
only with a prefetch slot free, and otherwise waits without polling on a
future that a publish, a settle, the broker closing or a timer at the queue's
next due time (on the broker's clock) resolves. A ``_MemoryDelivery`` settles
through its ``_Lease``: each settle first checks the lease is still held (the
broker open, the lease not expired), a retry or a dead letter also that the
queue it writes into accepts writes; when not, it raises ``DeliveryError``
and leaves the message intact.
``_check_delay`` validates the delays of publish, retry and release.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Self

from interlink.core.clock import TimerHandle
from interlink.core.errors import ConfigError, MessagingError, PublishError
from interlink.messaging._broker import Consumer, Delivery, settle_error
from interlink.messaging._dead_letters import DeadLetter, Failure
from interlink.messaging._memory_store import _Lease, _lose, _resolve
from interlink.messaging._message import (
    Message,
    new_message_id,
    validate_headers,
    validate_queue_name,
)

if TYPE_CHECKING:
    from interlink.messaging._memory import MemoryBroker

# Everything here is private to the memory broker's modules.
__all__: list[str] = []


def _check_delay(delay: object, what: str) -> float:
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ConfigError(f"{what} must be a number of seconds, got {delay!r}")
    if not math.isfinite(delay) or delay < 0:
        raise ConfigError(f"{what} must be finite and >= 0 seconds, got {delay!r}")
    return float(delay)


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
