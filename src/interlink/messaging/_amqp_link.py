"""The ground a ``RabbitBroker`` stands on: its connection, its channels, its queues.

- **Connection.** aio-pika's ``connect_robust`` reconnects in the background;
  ``_link`` hands out the live aiormq connection, waiting a bounded time
  (``publish_timeout``) while there is none, so nothing hangs while
  RabbitMQ is away (aio-pika#636, faststream#1579).
- **Channels.** Plain aiormq channels owned here: one confirm-mode channel
  for every publish; one for declares, so a declare RabbitMQ refuses (a
  queue that exists with other arguments) closes only that one, never the
  publishes in flight; short-lived ones for passive declares and browsing.
- **Declares.** Once per queue and process, remembered in ``_declared``;
  concurrent first publishes share one declare. A delay queue is declared
  again at least every ``DELAY_REFRESH_SECONDS`` while used (its
  ``x-expires`` restarts only on a declare).
- **Publishing** (``_send``): ``mandatory`` and confirmed. A nack, no confirm
  within ``confirm_timeout`` or an unroutable message raises ``PublishError``
  (``nack``, ``timeout``, ``unroutable``); an unroutable publish first
  declares its queue again, once (someone deleted it), and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq
import aiormq.abc
from aiormq.exceptions import (
    AMQPChannelError,
    AMQPError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from pamqp.commands import Basic

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError, MessagingError, PublishError
from interlink.messaging._amqp_topology import (
    DELAY_REFRESH_SECONDS,
    DLQ_ARGUMENTS,
    MAX_DELAY_MS,
    delay_level_ms,
    delay_queue,
    delay_queue_arguments,
    source_arguments,
)
from interlink.messaging._broker import default_dead_letter_queue

if TYPE_CHECKING:
    from interlink.messaging._amqp_consumer import RabbitConsumer

__all__ = ["LINK_ERRORS", "MAX_SHORTSTR", "RabbitLink", "Unavailable", "server_version"]

_log = logging.getLogger("interlink.messaging.amqp")

MAX_SHORTSTR = 255
_LONGEST_SUFFIX = len(delay_queue("", MAX_DELAY_MS))

# What a failed publish or declare looks like when the connection is the problem.
LINK_ERRORS = (AMQPError, ConnectionError, OSError, RuntimeError, TimeoutError)


class Unavailable(MessagingError):
    """No connection (or channel) within the wait, or the broker is closed."""


def server_version(properties: Mapping[str, Any]) -> tuple[int, ...]:
    """``(major, minor)`` of the RabbitMQ that sent these server properties (``()`` if unknown)."""
    version = properties.get("version", "")
    if isinstance(version, bytes):
        version = version.decode("ascii", "replace")
    parts = str(version).split(".")[:2]
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else ()


class RabbitLink:
    """Connection, channels and declared queues of one broker (``RabbitBroker`` is one).

    ``_init_link`` sets the state; the settings are the broker's.
    """

    clock: Clock
    url: str
    delivery_limit: int
    publish_timeout: float
    confirm_timeout: float
    reconnect_interval: float
    browse_limit: int

    def _init_link(self) -> None:
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._closed = False
        self._publisher: aiormq.abc.AbstractChannel | None = None
        self._admin: aiormq.abc.AbstractChannel | None = None
        self._publisher_lock = asyncio.Lock()
        self._admin_lock = asyncio.Lock()
        # queue -> monotonic time of its last declare; its arguments; declares in flight
        self._declared: dict[str, float] = {}
        self._arguments: dict[str, dict[str, Any]] = {}
        self._declaring: dict[str, asyncio.Future[None]] = {}
        self._dead_letter_queues: set[str] = set()  # every DLQ this broker knows of
        self._named_dead_letter_queues: set[str] = set()  # those given as dead_letter_queue=
        self._consumers: set[RabbitConsumer] = set()

    # -- connection and channels ----------------------------------------------
    def _live(self) -> aiormq.abc.AbstractConnection | None:
        connection = self._connection
        transport = connection.transport if connection is not None else None
        if transport is None or transport.connection.is_closed:
            return None
        return transport.connection

    async def _link(self, patience: float | None) -> aiormq.abc.AbstractConnection:
        """The live AMQP connection, waiting up to ``patience`` s (``None``: for ever)."""
        loop = asyncio.get_running_loop()
        deadline = None if patience is None else loop.time() + patience
        while True:
            if self._closed or self._connection is None:
                raise Unavailable(f"the RabbitMQ broker {self.url} is closed or not started")
            amqp = self._live()
            if amqp is not None:
                return amqp
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise Unavailable(f"no connection to RabbitMQ at {self.url} within {patience}s")
            # aio-pika reconnects in the background; look again shortly (only while down)
            await asyncio.sleep(0.05 if left is None else min(0.05, left))

    async def _publisher_channel(self) -> aiormq.abc.AbstractChannel:
        async with self._publisher_lock:
            channel = self._publisher
            if channel is None or channel.is_closed:
                amqp = await self._link(self.publish_timeout)
                channel = await amqp.channel(publisher_confirms=True, timeout=self.publish_timeout)
                self._publisher = channel
            return channel

    async def _admin_channel(self) -> aiormq.abc.AbstractChannel:
        async with self._admin_lock:
            channel = self._admin
            if channel is None or channel.is_closed:
                amqp = await self._link(self.publish_timeout)
                channel = await amqp.channel(publisher_confirms=False, timeout=self.publish_timeout)
                self._admin = channel
            return channel

    async def _scratch_channel(self) -> aiormq.abc.AbstractChannel:
        """A channel of its own, for work that may close it (passive declares, browsing)."""
        amqp = await self._link(self.publish_timeout)
        return await amqp.channel(publisher_confirms=False, timeout=self.publish_timeout)

    # -- topology -----------------------------------------------------------------
    async def _ensure(self, name: str, arguments: dict[str, Any]) -> None:
        """Declare ``name`` (one declare at a time per queue; callers in between wait for it).

        A queue that exists with other arguments is used as it is, with a warning.
        """
        self._arguments[name] = arguments
        while (pending := self._declaring.get(name)) is not None:
            try:
                await asyncio.shield(pending)
                return
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled
                # the task declaring it was cancelled, not us: declare it ourselves
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._declaring[name] = future
        try:
            await self._declare_now(name, arguments)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            self._declared[name] = time.monotonic()
            future.set_result(None)
        finally:
            del self._declaring[name]

    async def _declare_now(self, name: str, arguments: dict[str, Any]) -> None:
        channel = await self._admin_channel()
        try:
            await channel.queue_declare(
                name, durable=True, arguments=arguments, timeout=self.confirm_timeout
            )
        except ChannelPreconditionFailed as exc:
            _log.warning(
                "RabbitMQ queue %r exists with other arguments than %r (%s); using it as it is",
                name,
                arguments,
                exc,
            )
            channel = await self._admin_channel()  # the failed declare closed the channel
            await channel.queue_declare(name, passive=True, timeout=self.confirm_timeout)

    async def _declare_source(self, queue: str) -> None:
        """Declare ``queue`` and its dead-letter queue."""
        if len(queue.encode()) + _LONGEST_SUFFIX > MAX_SHORTSTR:
            raise ConfigError(
                f"queue name {queue[:40]!r}... is too long for RabbitMQ: with its delay-queue "
                f"suffix it must fit in {MAX_SHORTSTR} bytes of UTF-8"
            )
        dead_letter_queue = default_dead_letter_queue(queue)
        if dead_letter_queue not in self._declared:
            await self._ensure(dead_letter_queue, DLQ_ARGUMENTS)
        self._dead_letter_queues.add(dead_letter_queue)
        await self._ensure(queue, source_arguments(dead_letter_queue, self.delivery_limit))

    async def _declare_dead_letter_queue(self, name: str, source: str) -> None:
        """Declare the dead-letter queue ``name`` that ``source`` dead-letters into."""
        self._dead_letter_queues.add(name)
        if name != default_dead_letter_queue(source):
            self._named_dead_letter_queues.add(name)
        if name not in self._declared:
            await self._ensure(name, DLQ_ARGUMENTS)

    async def _delay_target(self, queue: str, delay: float) -> tuple[str, float | None]:
        """Where a message for ``queue`` waits ``delay`` s; its due time when it must go round."""
        level = delay_level_ms(delay)  # >= 1 for any delay > 0
        name = delay_queue(queue, level)
        declared = self._declared.get(name)
        if declared is None or time.monotonic() - declared > DELAY_REFRESH_SECONDS:
            if queue not in self._declared:
                await self._declare_source(queue)
            await self._ensure(name, delay_queue_arguments(queue, level))
        due = self.clock.wall() + delay if delay * 1000.0 > MAX_DELAY_MS else None
        return name, due

    # -- publishing -----------------------------------------------------------
    async def _prepare(self, action: str, queue: str, message_id: str, prepare: Any) -> Any:
        """Await ``prepare`` (declares), turning failures into ``PublishError``."""
        try:
            return await prepare
        except ConfigError:
            raise
        except AMQPChannelError as exc:
            raise PublishError(
                f"RabbitMQ refused to declare a queue to {action} message {message_id} "
                f"to {queue!r}: {exc}",
                queue=queue,
                message_id=message_id,
                reason="refused",
            ) from exc
        except (Unavailable, *LINK_ERRORS) as exc:
            raise PublishError(
                f"could not {action} message {message_id} to {queue!r}: {exc!r}",
                queue=queue,
                message_id=message_id,
                reason="timeout" if isinstance(exc, TimeoutError) else "disconnected",
            ) from exc

    async def _send(
        self, queue: str, target: str, body: bytes, properties: Basic.Properties
    ) -> None:
        """Publish ``body`` to queue ``target`` and wait for the confirm.

        ``queue`` is the queue the caller meant (``target`` may be one of its
        delay queues); it names the queue in the ``PublishError``.
        """
        redeclared = False
        while True:
            channel = self._publisher
            if channel is None or channel.is_closed:
                channel = await self._prepare(
                    "publish", queue, properties.message_id or "", self._publisher_channel()
                )
            try:
                await channel.basic_publish(
                    body,
                    routing_key=target,
                    properties=properties,
                    mandatory=True,
                    timeout=self.confirm_timeout,
                )
                return
            except aiormq.exceptions.PublishError as exc:
                if not redeclared and target in self._arguments:
                    # the queue was deleted behind our back: declare it again, once
                    redeclared = True
                    self._declared.pop(target, None)
                    await self._prepare(
                        "publish",
                        queue,
                        properties.message_id or "",
                        self._ensure(target, self._arguments[target]),
                    )
                    continue
                reason, detail = "unroutable", f"no queue {target!r} took it ({exc})"
            except aiormq.exceptions.DeliveryError as exc:
                reason = "nack"
                detail = f"RabbitMQ refused it (nack: the queue is full or failing) ({exc})"
            except TimeoutError:
                reason = "timeout"
                detail = f"no publisher confirm within {self.confirm_timeout}s"
            except LINK_ERRORS as exc:
                reason, detail = (
                    "disconnected",
                    f"the connection failed before the confirm ({exc!r})",
                )
            raise PublishError(
                f"message {properties.message_id} to {queue!r} is not known to be stored: {detail}",
                queue=queue,
                message_id=properties.message_id or "",
                reason=reason,
            )

    async def _counts(self, names: list[str]) -> dict[str, int | None]:
        """Ready messages per queue by passive declare (``None``: no such queue)."""
        counts: dict[str, int | None] = {}
        channel: aiormq.abc.AbstractChannel | None = None
        try:
            for name in names:
                if channel is None or channel.is_closed:
                    channel = await self._scratch_channel()
                try:
                    ok = await channel.queue_declare(
                        name, passive=True, timeout=self.confirm_timeout
                    )
                except ChannelNotFoundEntity:
                    counts[name] = None
                else:
                    counts[name] = ok.message_count
        finally:
            if channel is not None and not channel.is_closed:
                await channel.close()
        return counts
