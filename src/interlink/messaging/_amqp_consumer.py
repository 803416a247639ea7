"""Consumers and deliveries of the RabbitMQ backend.

A ``RabbitConsumer`` owns one aiormq channel (QoS ``prefetch``) and a
supervisor task that keeps it subscribed: open a channel, declare the queue
(and its DLQ), ``basic.consume``, then wait until the channel closes (lost
connection, channel error) or RabbitMQ cancels the subscription (queue
deleted: ``consumer_cancel_notify``); then do it all again, with a short
backoff, until the consumer is cancelled or the broker closed. Messages
fetched on a channel that has since closed are dropped from the buffer
(RabbitMQ already gave them back); deliveries already handed out from it
fail to settle with ``DeliveryError``, and RabbitMQ delivers them again.

Settling: ``ack`` is ``basic.ack``. ``retry`` publishes the next attempt
(to a delay queue, or straight to the queue for 0) with a publisher confirm,
then acks. ``dead_letter`` publishes the original body and headers plus the
failure to the dead-letter queue, confirmed, then acks. ``release(delay)``
publishes the message unchanged (to a delay queue for ``delay > 0``) and
acks; ``release(0)`` is a ``basic.nack`` with requeue on RabbitMQ 4.3+, where
a nack no longer counts against ``x-delivery-limit`` (rabbitmq-server
PR#15387), and a republish before that, so a release never burns the limit.
If that publish fails (RabbitMQ refuses writes to the queue), the release
falls back to the nack, sent once ``delay`` is over: until then the delivery
stays unacked on its channel (``cancel()`` and ``close()`` give it back at
once). A nack at once would bring it straight back, and a refused retry would
then turn into a hot loop that, before 4.3, burns the queue's delivery limit
in milliseconds and has RabbitMQ dead-letter a message that failed once.
``cancel()`` nacks (requeue) what was fetched but not handed out; on RabbitMQ
before 4.3 each such nack counts as a delivery for the delivery limit. No
frame is sent on a channel once its close began (RabbitMQ answers one with a
connection error, 504 CHANNEL_ERROR): what such a channel holds goes back
to the queue when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import aiormq.abc
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelAccessRefused
from pamqp.commands import Basic

from interlink.core.errors import ConfigError, DeliveryError, MessagingError, PublishError
from interlink.messaging._amqp_dead_letter_headers import failure_headers
from interlink.messaging._amqp_topology import (
    H_ATTEMPT,
    H_DELIVERIES,
    H_DUE_AT,
    H_PUBLISHED_AT,
    RESERVED,
    check_delay,
    check_header_names,
    tag_of,
    text_header,
)
from interlink.messaging._broker import Consumer, Delivery, default_dead_letter_queue, settle_error
from interlink.messaging._dead_letters import Failure
from interlink.messaging._message import (
    OCTET_STREAM,
    Message,
    new_message_id,
    validate_headers,
    validate_queue_name,
)

if TYPE_CHECKING:
    from interlink.messaging._amqp import RabbitBroker

__all__ = ["RabbitConsumer", "RabbitDelivery", "message_of"]

_log = logging.getLogger("interlink.messaging.amqp")

_EARLY_TOLERANCE = 0.5  # seconds: a long-delayed message this close to due is handed out
_LONGEST_HOLD = 300.0
"""Seconds a release that fell back to a nack holds its delivery at most.

Held longer, RabbitMQ's ``consumer_timeout`` (30 min by default) would close
the channel and give back every delivery on it.
"""


def _number(value: Any, default: float) -> float:
    if type(value) is float or type(value) is int:
        return value
    try:
        return float(text_header(value))
    except (TypeError, ValueError):
        return default


def message_of(raw: DeliveredMessage, queue: str) -> tuple[Message, float | None]:
    """The ``Message`` a delivery carries, and its due time when it is delayed past the top level."""
    properties = raw.header.properties
    headers = properties.headers or {}
    attempt = int(_number(headers.get(H_ATTEMPT, 1), 1))
    count = int(_number(headers.get(H_DELIVERIES, 0), 0)) + int(
        _number(headers.get("x-delivery-count", 0), 0)
    )
    published = headers.get(H_PUBLISHED_AT)
    if published is None and properties.timestamp is not None:
        published = properties.timestamp.timestamp()
    due = headers.get(H_DUE_AT)
    user = {
        name: value if type(value) is str else text_header(value)
        for name, value in headers.items()
        if name not in RESERVED
    }
    message = Message(
        id=properties.message_id or new_message_id(),
        queue=queue,
        body=raw.body,
        headers=user,
        content_type=properties.content_type or OCTET_STREAM,
        attempt=max(attempt, 1),
        delivery_count=max(count + 1, attempt),
        published_at=_number(published, 0.0),
    )
    return message, None if due is None else _number(due, 0.0)


class RabbitConsumer(Consumer):
    """Deliveries from one queue over a channel that re-subscribes after any failure.

    ``subscriptions`` counts how often it subscribed (1, plus one per resume
    after a lost connection or a deleted queue).
    """

    def __init__(self, broker: RabbitBroker, queue: str, prefetch: int) -> None:
        self._broker = broker
        self.queue = queue
        self.prefetch = prefetch
        self.subscriptions = 0
        self._tag = f"interlink-{uuid.uuid4().hex}"
        self._buffer: deque[DeliveredMessage] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._kicked: asyncio.Future[None] | None = None
        self._stopped = False
        self._error: BaseException | None = None
        self._held = 0  # handed out, not yet settled (or given back later)
        self._halted = asyncio.Event()  # set by _halt: give back what is held now
        self._later: set[asyncio.Task[None]] = set()  # nacks waiting for their delay

    # -- the subscription ----------------------------------------------------
    async def _on_message(self, raw: DeliveredMessage) -> None:
        if self._stopped:  # arrived after cancel(): give it back at once
            await self._give_back(raw.channel, tag_of(raw))
            return
        self._buffer.append(raw)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_cancel(self, frame: Any) -> None:
        # RabbitMQ cancelled a subscription on this consumer's own channel: ours
        kicked = self._kicked
        if kicked is not None and not kicked.done():
            kicked.set_result(None)

    async def _run(self) -> None:
        broker = self._broker
        pause = 0.05
        while True:  # until cancelled (cancel() and the broker's close() cancel this task)
            try:
                channel = self._channel
                if channel is None or channel.is_closed:
                    amqp = await broker._link(None)
                    channel = await amqp.channel(
                        publisher_confirms=False, timeout=broker.publish_timeout
                    )
                    channel.on_consumer_cancel_callbacks.add(self._on_cancel)
                    await channel.basic_qos(
                        prefetch_count=self.prefetch, timeout=broker.publish_timeout
                    )
                    self._channel = channel
                await broker._declare_source(self.queue)
                self._kicked = kicked = asyncio.get_running_loop().create_future()
                await channel.basic_consume(
                    self.queue,
                    self._on_message,
                    consumer_tag=self._tag,
                    timeout=broker.publish_timeout,
                )
                self.subscriptions += 1
                pause = 0.05
                await asyncio.wait((channel.closing, kicked), return_when=asyncio.FIRST_COMPLETED)
                if kicked.done():
                    # RabbitMQ cancelled us (queue deleted): declare it and its DLQ again
                    broker._declared.pop(self.queue, None)
                    broker._declared.pop(default_dead_letter_queue(self.queue), None)
                    _log.warning("consumer of %r was cancelled by RabbitMQ; resuming", self.queue)
            except (ConfigError, ChannelAccessRefused) as exc:
                self._fail(exc)  # will not get better by trying again: tell the iterator
                return
            except MessagingError as exc:  # no connection within a declare's wait
                _log.warning("consumer of %r: %s", self.queue, exc)
                await asyncio.sleep(pause)
            except Exception as exc:
                _log.warning(
                    "consumer of %r lost its subscription (%r); subscribing again in %.2fs",
                    self.queue,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, broker.reconnect_interval)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- iteration ------------------------------------------------------------
    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name=f"interlink consumer {self.queue}")
        buffer = self._buffer
        while True:
            if self._stopped:
                raise StopAsyncIteration
            while buffer:
                raw = buffer.popleft()
                channel = raw.channel
                if channel.is_closed:
                    continue  # RabbitMQ gave it back when the channel closed
                message, due = message_of(raw, self.queue)
                if due is not None and due - self._broker.clock.wall() > _EARLY_TOLERANCE:
                    await self._go_round(raw, message, due)
                    if self._stopped:  # cancelled while it went round
                        raise StopAsyncIteration
                    continue
                self._held += 1
                return RabbitDelivery(message, self, channel, tag_of(raw))
            if self._error is not None:
                raise MessagingError(
                    f"cannot consume {self.queue!r}: {self._error}", queue=self.queue
                ) from self._error
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def _go_round(self, raw: DeliveredMessage, message: Message, due: float) -> None:
        """A delay longer than the top level: send it through a delay queue again, then ack."""
        broker = self._broker
        channel = raw.channel
        tag = tag_of(raw)
        headers = dict(raw.header.properties.headers or {})
        try:
            target, next_due = await broker._prepare(
                "delay",
                self.queue,
                message.id,
                broker._delay_target(self.queue, due - broker.clock.wall()),
            )
            headers[H_DUE_AT] = repr(due if next_due is None else next_due)
            properties = Basic.Properties(
                content_type=raw.header.properties.content_type,
                delivery_mode=2,
                message_id=message.id,
                headers=headers,
            )
            await broker._send(self.queue, target, raw.body, properties)
            if channel is self._channel:  # else it is closing and gives the message back
                await channel.basic_ack(tag)
        except Exception as exc:
            _log.warning("could not delay %s on %r further: %r", message.id, self.queue, exc)
            await asyncio.sleep(broker.reconnect_interval)
            await self._give_back(channel, tag)

    async def _give_back(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        """Nack (requeue) ``tag``, unless its channel is closing: that gives it back itself."""
        if channel is not self._channel or channel.is_closed:
            return
        with contextlib.suppress(Exception):
            await channel.basic_nack(tag, requeue=True)

    def _give_back_after(self, channel: aiormq.abc.AbstractChannel, tag: int, delay: float) -> None:
        """Nack ``tag`` (a handed-out delivery) after ``delay`` seconds, or at once on ``_halt``."""
        task = asyncio.create_task(
            self._nack_after(channel, tag, min(delay, _LONGEST_HOLD)),
            name=f"interlink give back {self.queue}",
        )
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _nack_after(
        self, channel: aiormq.abc.AbstractChannel, tag: int, delay: float
    ) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halted.wait(), delay)
            await self._give_back(channel, tag)
        finally:
            await self._settled()

    # -- stopping -------------------------------------------------------------
    def _halt(self) -> None:
        """Stop fetching now (no I/O): iteration ends, the supervisor is cancelled."""
        self._stopped = True
        self._halted.set()
        self._broker._consumers.discard(self)
        self._wake()
        if self._task is not None:
            self._task.cancel()

    async def _join(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._later:  # woken by _halt: they nack now
            await asyncio.gather(*self._later, return_exceptions=True)

    async def cancel(self) -> None:
        """``basic.cancel``, then give back (nack, requeue) what was fetched but not handed out.

        Deliveries already handed out stay valid until settled; the channel
        closes after the last one is settled. Idempotent.
        """
        if self._stopped:
            return
        self._halt()
        await self._join()
        channel = self._channel
        pending = [raw for raw in self._buffer if raw.channel is channel]
        self._buffer.clear()
        if channel is None or channel.is_closed:
            return
        with contextlib.suppress(Exception):
            await channel.basic_cancel(self._tag, timeout=self._broker.publish_timeout)
        for raw in pending:
            await self._give_back(channel, tag_of(raw))
        if self._held == 0:
            await self._close_channel()

    async def _settled(self) -> None:
        self._held -= 1
        if self._stopped and self._held <= 0:
            await self._close_channel()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    def __repr__(self) -> str:
        return (
            f"<RabbitConsumer {self.queue!r} prefetch={self.prefetch} "
            f"subscriptions={self.subscriptions}{' stopped' if self._stopped else ''}>"
        )


class RabbitDelivery(Delivery):
    """A message delivered on a consumer's channel; settled with that channel's delivery tag."""

    __slots__ = ("_channel", "_consumer", "_tag")

    def __init__(
        self,
        message: Message,
        consumer: RabbitConsumer,
        channel: aiormq.abc.AbstractChannel,
        tag: int | None,
    ) -> None:
        super().__init__(message)
        self._consumer = consumer
        self._channel = channel
        self._tag = tag or 0

    async def _frame(self, action: str, *, requeue: bool = False) -> None:
        """``basic.ack`` (or ``basic.nack`` with requeue) on the delivering channel."""
        channel = self._channel
        try:
            if requeue:
                await channel.basic_nack(self._tag, requeue=True)
            else:
                await channel.basic_ack(self._tag)
        except Exception as exc:
            why = (
                MessagingError("the channel that delivered it closed; RabbitMQ gives it back")
                if channel.is_closed
                else exc
            )
            raise settle_error(action, self.message, why) from exc
        await self._consumer._settled()

    async def _copy(self, action: str, queue: str, delay: float, headers: dict[str, Any]) -> None:
        """Publish this message's body with ``headers`` to ``queue`` after ``delay``, confirmed."""
        broker = self._consumer._broker
        message = self.message
        try:
            target = queue
            if delay > 0.0:
                target, due = await broker._prepare(
                    action, queue, message.id, broker._delay_target(queue, delay)
                )
                if due is not None:
                    headers[H_DUE_AT] = repr(due)
            properties = Basic.Properties(
                content_type=message.content_type,
                delivery_mode=2,
                message_id=message.id,
                headers=headers,
            )
            await broker._send(queue, target, message.body, properties)
        except PublishError as exc:
            raise settle_error(action, message, exc) from exc

    async def _ack(self) -> None:
        await self._frame("ack")

    async def _retry(self, delay: float, headers: dict[str, str]) -> None:
        delay = check_delay(delay)
        message = self.message
        stored: dict[str, Any] = {**message.headers, **validate_headers(headers)}
        check_header_names(stored)
        stored[H_ATTEMPT] = message.attempt + 1
        stored[H_DELIVERIES] = message.attempt
        stored[H_PUBLISHED_AT] = repr(float(message.published_at))
        await self._copy("retry", message.queue, delay, stored)
        await self._frame("retry")

    async def _dead_letter(self, failure: Failure, dead_letter_queue: str) -> None:
        dead_letter_queue = validate_queue_name(dead_letter_queue)
        broker = self._consumer._broker
        message = self.message
        try:
            await broker._prepare(
                "dead-letter",
                dead_letter_queue,
                message.id,
                broker._declare_dead_letter_queue(dead_letter_queue, message.queue),
            )
        except PublishError as exc:
            raise settle_error("dead-letter", message, exc) from exc
        stored: dict[str, Any] = {**message.headers}
        stored[H_ATTEMPT] = message.attempt
        stored[H_PUBLISHED_AT] = repr(float(message.published_at))
        stored.update(failure_headers(message, failure, broker.clock.wall()))
        await self._copy("dead-letter", dead_letter_queue, 0.0, stored)
        await self._frame("dead-letter")

    async def _release(self, delay: float) -> None:
        delay = check_delay(delay)
        message = self.message
        if delay == 0.0 and self._consumer._broker.nack_keeps_delivery_count:
            await self._frame("release", requeue=True)
            return
        stored: dict[str, Any] = {**message.headers}
        stored[H_ATTEMPT] = message.attempt
        stored[H_DELIVERIES] = message.delivery_count
        stored[H_PUBLISHED_AT] = repr(float(message.published_at))
        try:
            await self._copy("release", message.queue, delay, stored)
        except DeliveryError as exc:
            # it could not be put back by publishing: hand it back to RabbitMQ instead,
            # after its delay (a nack now brings it straight back: a hot loop)
            _log.warning("release of %s falls back to a nack in %.3gs: %s", message.id, delay, exc)
            channel = self._channel
            if delay > 0.0 and channel is self._consumer._channel and not channel.is_closed:
                self._consumer._give_back_after(channel, self._tag, delay)
                return
            await self._frame("release", requeue=True)
            return
        await self._frame("release")
