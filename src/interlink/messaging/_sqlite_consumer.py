"""Consumers and deliveries of the SQLite broker (``_sqlite``): leases, held and settled.

A consumer leases up to ``prefetch`` rows in one operation and hands them out
in order. A settle already submitted counts as free room, so the next lease
can ride in the same transaction as the acks that make room for it (the
storage runs settles before leases; ``ops.lease`` takes back what a failed
settle still holds): with acks in flight the consumer needs one commit per
batch, not two.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import sqlite3
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Self

from interlink.core.clock import TimerHandle
from interlink.core.errors import ConfigError, MessagingError
from interlink.messaging import _sqlite_ops as ops
from interlink.messaging._broker import Consumer, Delivery, settle_error
from interlink.messaging._dead_letters import Failure
from interlink.messaging._message import (
    Message,
    new_message_id,
    validate_headers,
    validate_queue_name,
)
from interlink.messaging._sqlite_store import ACK, CALL, LeaseLostError, is_busy
from interlink.observability._tracing import TRACEPARENT

if TYPE_CHECKING:
    from interlink.messaging._sqlite import SqliteBroker

__all__ = [
    "CLOSED",
    "NEW",
    "OPEN",
    "SqliteConsumer",
    "SqliteDelivery",
    "dumps_headers",
    "pack_headers",
    "unpack_headers",
]

_log = logging.getLogger("interlink.messaging.sqlite")

NEW: Final = 0
OPEN: Final = 1
CLOSED: Final = 2
LOST: Final = "its lease expired and it was delivered again, or it was settled already"


def dumps_headers(headers: Mapping[str, str]) -> str | None:
    """Headers as stored: compact JSON, or NULL when there are none.

    Written with the JSON module's own string escaper rather than
    ``json.dumps``, which builds an encoder per call: that was an eighth of a
    webhook receiver's publish. The output is what ``json.dumps(headers,
    separators=(",", ":"), ensure_ascii=False)`` gives for str to str.
    """
    if not headers:
        return None
    quote = _quote
    return "{" + ",".join([quote(k) + ":" + quote(v) for k, v in headers.items()]) + "}"


_quote = json.encoder.encode_basestring


def pack_headers(headers: dict[str, str]) -> tuple[str | None, str]:
    """Headers as a ``messages`` row stores them: ``(headers, trace)``.

    A non-empty ``traceparent`` header is taken out of ``headers`` (the
    caller's own dict) into ``trace``, a column of its own (``""`` means none,
    so an empty one stays among the headers); ``unpack_headers`` puts it back
    as it was. Why: every traced message carries one, and in the JSON it
    cost its name, quotes and separator (16 bytes of the row) and escaping 55
    characters on each publish. With a 1 KB body those bytes decided whether
    three rows fitted a 4 KB page or two (docs/performance.md, "Tracing and
    metrics on ingest"). ``""`` rather than NULL because CPython's
    ``sqlite3`` binds ``str``, ``int``, ``float`` and ``bytearray`` directly
    but sends ``None`` and ``bytes`` through its adapter lookup, about 1.7k
    instructions per value (callgrind).
    """
    trace = headers.get(TRACEPARENT)
    if not trace:
        return dumps_headers(headers), ""
    del headers[TRACEPARENT]
    return dumps_headers(headers), trace


def unpack_headers(stored: str | None, trace: str) -> dict[str, str]:
    """The headers of a ``messages`` row (``pack_headers``'s two parts) as one dict again."""
    headers: dict[str, str] = json.loads(stored) if stored else {}
    if trace:
        headers[TRACEPARENT] = trace
    return headers


def _check_finite(delay: float, action: str) -> None:
    if not math.isfinite(delay):
        raise ConfigError(f"{action} delay must be a finite number of seconds, got {delay!r}")


def _ignore_outcome(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        _log.warning("releasing fetched messages failed: %s", fut.exception())


class SqliteConsumer(Consumer):
    """Leases up to ``prefetch`` messages of one queue at a time and hands them out in order.

    It fetches as many as there is room for in one lease (one transaction),
    waits for a local publish, a settle that frees room, the next delayed
    message or the poll interval, whichever comes first.
    """

    def __init__(self, broker: SqliteBroker, queue: str, prefetch: int) -> None:
        self._broker = broker
        self._queue = queue
        self._prefetch = prefetch
        self._buffer: deque[SqliteDelivery] = deque()
        self._held = 0  # leased and unsettled: buffered plus handed out
        self._settling: dict[SqliteDelivery, None] = {}  # settles submitted, not yet answered
        self._cancelled = False
        self._registered = False
        self._dirty = True  # something may have changed since the last lease
        self._waiter: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SqliteDelivery:
        broker = self._broker
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._cancelled or broker._state == CLOSED:
                self._unregister()
                raise StopAsyncIteration
            if not self._registered:
                broker._consumers.setdefault(self._queue, set()).add(self)
                self._registered = True
            async with self._lock:
                if not self._buffer:
                    await self._fill()

    async def _fill(self) -> None:
        broker = self._broker
        settling = self._settling
        # A settle in flight counts as room: it runs before this lease does, and
        # the lease takes back whatever a failed settle still holds (ops.lease).
        room = self._prefetch - self._held + len(settling)
        if room <= 0:
            await self._wait(None)  # a settle frees room and wakes us
            return
        self._dirty = False
        token = f"{broker._token}.{next(broker._fetches)}"
        pending = json.dumps([[d._seq, d._token] for d in settling]) if settling else None
        lease_args = (self._queue, room, token, broker.visibility_timeout, pending)
        leasing = broker._submit(CALL, (ops.lease, lease_args))
        try:
            rows, next_due = await asyncio.shield(leasing)
        except asyncio.CancelledError:
            # The lease still runs: hand its rows back when it answers.
            leasing.add_done_callback(functools.partial(self._orphaned, token))
            raise
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise MessagingError(
                    f"cannot fetch from {self._queue!r}: {exc}", queue=self._queue
                ) from exc
            _log.warning("fetching from %r in %s: %s; trying again", self._queue, broker.path, exc)
            rows, next_due = [], None
        except sqlite3.Error as exc:
            raise MessagingError(
                f"cannot fetch from {self._queue!r}: {exc}", queue=self._queue
            ) from exc
        if rows:
            if self._cancelled:  # cancelled meanwhile: hand them straight back, uncounted
                self._hand_back(rows, token)
            else:
                self._take(rows, token)
            return
        now = broker.clock.wall()
        if next_due is not None and next_due <= now:
            return
        if self._dirty or self._cancelled:
            return
        timeout = broker.poll_interval
        if next_due is not None:
            timeout = min(timeout, next_due - now)
        await self._wait(timeout)

    def _orphaned(self, token: str, leasing: asyncio.Future[Any]) -> None:
        """A lease whose caller was cancelled answered: release its rows, uncounted."""
        if not leasing.cancelled() and leasing.exception() is None:
            self._hand_back(leasing.result()[0], token)

    def _hand_back(self, rows: list[Any], token: str) -> None:
        """Release leased rows nobody will see, in their place; a closed broker leaves them."""
        if rows and self._broker._state == OPEN:
            back = [(row[8], row[0], token) for row in rows]
            done = self._broker._submit(CALL, (ops.release_unhandled, (back,)))
            done.add_done_callback(_ignore_outcome)

    def _take(self, rows: list[Any], token: str) -> None:
        broker = self._broker
        queue = self._queue
        leased = broker._leased
        buffer = self._buffer
        for (
            seq,
            message_id,
            body,
            headers,
            content_type,
            attempt,
            count,
            published,
            at,
            trace,
        ) in rows:
            message = Message(
                message_id,
                queue,
                body,
                unpack_headers(headers, trace),
                content_type,
                attempt,
                count + 1,
                published,
            )
            delivery = SqliteDelivery(message, self, seq, token, at)
            buffer.append(delivery)
            leased[delivery] = None
        self._held += len(rows)
        broker._ensure_renewer()

    async def _wait(self, seconds: float | None) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        timer: TimerHandle | None = None
        if seconds is not None:
            timer = self._broker.clock.call_later(seconds, self._wake)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        self._dirty = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _forget(self, delivery: SqliteDelivery) -> None:
        """The delivery no longer holds a lease (settled, released or lost)."""
        if delivery._gone:
            return
        delivery._gone = True
        self._broker._leased.pop(delivery, None)
        self._held -= 1
        self._wake()

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            consumers = self._broker._consumers[self._queue]
            consumers.discard(self)
            if not consumers:
                del self._broker._consumers[self._queue]

    async def cancel(self) -> None:
        """Stop; release what was fetched but not handed out (not counted as a delivery)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._wake()
        self._unregister()
        unhandled = list(self._buffer)
        self._buffer.clear()
        if not unhandled:
            return
        for delivery in unhandled:
            self._forget(delivery)
        if self._broker._state != OPEN:
            return  # leased, as after a crash: they come back after the lease
        back = [(d._available_at, d._seq, d._token) for d in unhandled]
        try:
            await self._broker._call(ops.release_unhandled, back)
        except MessagingError as exc:
            _log.warning("could not release %d fetched messages: %s", len(back), exc)


class SqliteDelivery(Delivery):
    """A leased row of the ``messages`` table; settling checks the lease is still ours."""

    __slots__ = ("_available_at", "_consumer", "_gone", "_seq", "_token")

    def __init__(
        self,
        message: Message,
        consumer: SqliteConsumer,
        seq: int,
        token: str,
        available_at: float,
    ) -> None:
        super().__init__(message)
        self._consumer = consumer
        self._seq = seq
        self._token = token
        self._available_at = available_at
        self._gone = False

    async def _settle(self, action: str, kind: int, args: Any, *, wake: bool = False) -> None:
        consumer = self._consumer
        if self._gone:
            raise settle_error(action, self.message, LeaseLostError(LOST))
        try:
            fut = consumer._broker._submit(kind, args)
        except MessagingError as exc:
            raise settle_error(action, self.message, exc) from exc
        settling = consumer._settling
        settling[self] = None
        consumer._wake()  # it may lease the room this settle frees, in the same commit
        try:
            await fut
        except asyncio.CancelledError:
            # The operation still runs and its outcome is unknown here: stop
            # holding the lease (renewing it, counting it against prefetch).
            consumer._forget(self)
            raise
        except LeaseLostError as exc:
            consumer._forget(self)
            raise settle_error(action, self.message, exc) from exc
        except (sqlite3.Error, MessagingError) as exc:
            consumer._wake()
            raise settle_error(action, self.message, exc) from exc
        finally:
            settling.pop(self, None)
        consumer._forget(self)
        if wake:
            consumer._broker._wake(self.message.queue)

    async def _ack(self) -> None:
        await self._settle("ack", ACK, (self._seq, self._token))

    async def _retry(self, delay: float, headers: dict[str, str]) -> None:
        _check_finite(delay, "retry")
        merged = {**self.message.headers, **validate_headers(headers)}
        at = self._consumer._broker.clock.wall() + delay
        args = (self._seq, self._token, *pack_headers(merged), at)
        await self._settle("retry", CALL, (ops.retry, args), wake=True)

    async def _dead_letter(self, failure: Failure, dead_letter_queue: str) -> None:
        validate_queue_name(dead_letter_queue)
        m = self.message
        record = (
            new_message_id(),
            m.id,
            m.queue,
            dead_letter_queue,
            m.body,
            dumps_headers(m.headers),
            m.content_type,
            m.attempt,
            m.delivery_count,
            m.published_at,
            failure.error_type,
            failure.error_message,
            failure.traceback,
            failure.handler,
            failure.attempts,
            failure.first_failed_at,
            failure.last_failed_at,
            failure.reason,
            self._consumer._broker.clock.wall(),
        )
        await self._settle("dead-letter", CALL, (ops.dead_letter, (self._seq, self._token, record)))

    async def _release(self, delay: float) -> None:
        _check_finite(delay, "release")
        # Released at once, it keeps its place in the queue (FIFO survives a shutdown).
        at = self._available_at if delay <= 0 else self._consumer._broker.clock.wall() + delay
        args = (self._seq, self._token, at, 0)
        await self._settle("release", CALL, (ops.release, args), wake=True)

    async def extend(self) -> None:
        """Renew the lease now; ``DeliveryError`` if it was lost (another consumer has it)."""
        if self._settled:
            return
        action = "extend the lease of"
        try:
            kept = not self._gone and await self._consumer._broker._extend([self])
        except (sqlite3.Error, MessagingError) as exc:
            raise settle_error(action, self.message, exc) from exc
        if not kept:
            raise settle_error(action, self.message, LeaseLostError(LOST))
