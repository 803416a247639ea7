"""Dead letters of the RabbitMQ backend: the messages in the dead-letter queues, browsed.

A dead letter is a message in a dead-letter queue (``<queue>.dlq`` or the
one given to ``dead_letter``): the original body, the original headers and
``x-interlink-dl-*`` headers for the failure. RabbitMQ puts messages there
too, by itself, when a quorum queue's ``x-delivery-limit`` is exceeded: those
carry ``x-death`` instead, and show as ``Failure(reason="delivery_limit",
error_type="rabbitmq.delivery_limit")``.

AMQP has no "peek", so reading is *browsing*: ``basic.get`` without ack on a
channel of its own, at most ``browse_limit`` messages per dead-letter queue
per call, then the channel is closed and RabbitMQ puts them all back, in
order. Replaying or purging one acks it on that channel before the close.
Counting without a filter is a passive declare (RabbitMQ's ready count).

Ids: ``<dead-letter queue>:<32 hex>``. The queue is in the id because a
client cannot list queues over AMQP: with it, ``get``/``replay``/``purge`` by
id work from any process. Without an explicit ``dead_letter_queue``, the
queues searched are the ones this broker has declared or dead-lettered
into, plus ``<queue>.dlq`` when ``queue`` is given. A queue's own ``.dlq``
is taken to hold only that queue's dead letters when counting and purging
by ``queue``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiormq.abc
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelNotFoundEntity
from pamqp.commands import Basic

from interlink.core.errors import ConfigError, DeadLetterNotFoundError, MessagingError
from interlink.messaging._amqp_dead_letter_headers import dead_letter_of
from interlink.messaging._amqp_topology import H_PUBLISHED_AT, tag_of
from interlink.messaging._broker import default_dead_letter_queue
from interlink.messaging._dead_letters import (
    DeadLetter,
    DeadLetters,
    check_id_list,
    check_limit,
    matches,
)
from interlink.messaging._message import (
    HEADER_REPLAYED_FROM,
    validate_queue_name,
)

if TYPE_CHECKING:
    from interlink.messaging._amqp import RabbitBroker

__all__ = ["RabbitDeadLetters", "dead_letter_of"]

_List = list  # ``DeadLetters.list`` shadows the builtin inside the class


def _split_id(dead_letter_id: object) -> tuple[str, str]:
    """``(dead-letter queue, key)`` of an id, or ``DeadLetterNotFoundError``."""
    if not isinstance(dead_letter_id, str):
        raise DeadLetterNotFoundError(repr(dead_letter_id))
    queue, sep, key = dead_letter_id.rpartition(":")
    if not sep or not queue or not key:
        raise DeadLetterNotFoundError(dead_letter_id)
    try:
        validate_queue_name(queue)
    except ConfigError:
        raise DeadLetterNotFoundError(dead_letter_id) from None
    return queue, key


class _Browser:
    """``basic.get`` without ack on a channel of its own; closing it gives them all back."""

    def __init__(self, broker: RabbitBroker, queue: str, channel: aiormq.abc.AbstractChannel):
        self.broker = broker
        self.queue = queue
        self.channel = channel
        self.missing = False
        self.seen = 0
        self.ready = 0  # the queue's ready count when browsing began
        self.removed = 0

    async def records(self) -> AsyncIterator[tuple[DeliveredMessage, DeadLetter]]:
        broker = self.broker
        while not self.missing and self.seen < broker.browse_limit:
            raw = await self.channel.basic_get(
                self.queue, no_ack=False, timeout=broker.confirm_timeout
            )
            if isinstance(raw.delivery, Basic.GetEmpty):
                return
            self.seen += 1
            yield raw, dead_letter_of(raw, self.queue)

    async def remove(self, raw: DeliveredMessage) -> None:
        await self.channel.basic_ack(tag_of(raw))
        self.removed += 1

    async def give_back(self) -> None:
        """Close the channel, then wait until RabbitMQ has put the browsed messages back.

        A quorum queue applies the returns of a closed channel a few
        milliseconds later; without this wait, a ``count`` or ``get`` just
        after a ``list`` would miss them. Bounded: someone else taking
        messages meanwhile only makes it stop at the deadline.
        """
        if not self.channel.is_closed:
            await self.channel.close()
        if not self.seen:
            return
        broker = self.broker
        expected = self.ready - self.removed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(broker.confirm_timeout, 2.0)
        while loop.time() < deadline:
            counts = await broker._counts([self.queue])
            if (counts[self.queue] or 0) >= expected:
                return
            await asyncio.sleep(0.005)


class RabbitDeadLetters(DeadLetters):
    """``DeadLetters`` over RabbitMQ dead-letter queues, by browsing (see the module docstring).

    Each call scans at most ``browse_limit`` messages per dead-letter queue;
    a connection problem raises ``MessagingError``.
    """

    def __init__(self, broker: RabbitBroker) -> None:
        self._broker = broker

    @asynccontextmanager
    async def _browse(self, queue: str) -> AsyncIterator[_Browser]:
        broker = self._broker
        try:
            channel = await broker._scratch_channel()
        except Exception as exc:
            raise MessagingError(f"cannot read dead letters: {exc!r}", queue=queue) from exc
        browser = _Browser(broker, queue, channel)
        try:
            try:
                ok = await channel.queue_declare(
                    queue, passive=True, timeout=broker.confirm_timeout
                )
            except ChannelNotFoundEntity:
                browser.missing = True
            else:
                browser.ready = ok.message_count or 0
            yield browser
        except (MessagingError, ConfigError):
            raise
        except Exception as exc:
            raise MessagingError(f"reading dead letters failed: {exc!r}", queue=queue) from exc
        finally:
            with contextlib.suppress(Exception):  # a broken connection gave them back anyway
                await browser.give_back()

    def _scope(self, queue: str | None, dead_letter_queue: str | None) -> _List[str]:
        broker = self._broker
        if dead_letter_queue is not None:
            return [validate_queue_name(dead_letter_queue)]
        if queue is not None:
            own = default_dead_letter_queue(validate_queue_name(queue))
            return [own, *sorted(broker._named_dead_letter_queues - {own})]
        return sorted(broker._dead_letter_queues)

    async def _matching(
        self,
        queue: str | None,
        dead_letter_queue: str | None,
        error_type: str | None,
        limit: int,
    ) -> _List[DeadLetter]:
        per_queue: _List[_List[DeadLetter]] = []
        for name in self._scope(queue, dead_letter_queue):
            found: _List[DeadLetter] = []
            async with self._browse(name) as browser:
                async for _, record in browser.records():
                    if not matches(record, queue, error_type=error_type):
                        continue
                    found.append(record)
                    if len(found) >= limit:
                        break
            per_queue.append(found)
        merged = heapq.merge(*per_queue, key=lambda record: record.dead_lettered_at)
        return _List(itertools.islice(merged, limit))

    async def list(
        self,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> _List[DeadLetter]:
        """Matching dead letters, oldest first, at most ``limit``."""
        check_limit(limit)
        if limit == 0:
            return []
        return await self._matching(queue, dead_letter_queue, error_type, limit)

    async def get(self, dead_letter_id: str) -> DeadLetter:
        """The dead letter with this id; ``DeadLetterNotFoundError`` if its queue holds none."""
        queue, _ = _split_id(dead_letter_id)
        async with self._browse(queue) as browser:
            async for _, record in browser.records():
                if record.id == dead_letter_id:
                    return record
        raise DeadLetterNotFoundError(dead_letter_id, queue=queue)

    async def count(self, *, queue: str | None = None, dead_letter_queue: str | None = None) -> int:
        """How many match: a passive declare per queue, browsing only to filter by source."""
        scope = self._scope(queue, dead_letter_queue)
        fast = [name for name in scope if queue is None or name == default_dead_letter_queue(queue)]
        try:
            counts = await self._broker._counts(fast)
        except Exception as exc:
            raise MessagingError(f"cannot count dead letters: {exc!r}") from exc
        total = sum(n or 0 for n in counts.values())
        for name in scope:
            if name not in counts:
                async with self._browse(name) as browser:
                    async for _, record in browser.records():
                        total += record.source_queue == queue
        return total

    async def replay(self, dead_letter_ids: Sequence[str]) -> _List[str]:
        """Publish each back to its source queue (confirmed), then ack it in the DLQ.

        Every id is found first; an unknown one raises
        ``DeadLetterNotFoundError`` before anything is sent. A publish that
        fails raises ``PublishError``; the ones before it stay replayed.
        """
        check_id_list(dead_letter_ids, "replay")
        ids = _List(dict.fromkeys(dead_letter_ids))
        groups: dict[str, set[str]] = {}
        for dead_letter_id in ids:
            groups.setdefault(_split_id(dead_letter_id)[0], set()).add(dead_letter_id)
        broker = self._broker
        held: dict[str, tuple[_Browser, DeliveredMessage, DeadLetter]] = {}
        async with AsyncExitStack() as stack:
            for name, wanted in groups.items():
                browser = await stack.enter_async_context(self._browse(name))
                async for raw, record in browser.records():
                    if record.id in wanted:
                        held[record.id] = (browser, raw, record)
                        wanted.discard(record.id)
                        if not wanted:
                            break
            for dead_letter_id in ids:
                if dead_letter_id not in held:
                    raise DeadLetterNotFoundError(dead_letter_id)
            sent: _List[str] = []
            for dead_letter_id in ids:
                browser, raw, record = held[dead_letter_id]
                original = record.message
                source = record.source_queue
                headers: dict[str, Any] = {
                    **original.headers,
                    HEADER_REPLAYED_FROM: record.id,
                    H_PUBLISHED_AT: repr(broker.clock.wall()),
                }
                if source not in broker._declared:
                    await broker._prepare(
                        "replay", source, original.id, broker._declare_source(source)
                    )
                properties = Basic.Properties(
                    content_type=original.content_type,
                    delivery_mode=2,
                    message_id=original.id,
                    headers=headers,
                )
                await broker._send(source, source, original.body, properties)
                try:
                    await browser.remove(raw)
                except Exception as exc:
                    raise MessagingError(
                        f"replayed {original.id} to {source!r} but could not remove dead letter "
                        f"{record.id} ({exc!r}); it stays and a second replay would repeat it",
                        queue=source,
                    ) from exc
                sent.append(original.id)
            return sent

    async def purge(
        self,
        dead_letter_ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> int:
        """Delete the given (or every matching) dead letter; how many went. Unknown ids are skipped."""
        check_id_list(dead_letter_ids, "purge")
        if dead_letter_ids is None:
            scope = self._scope(queue, dead_letter_queue)
            if queue is None:
                return await self._purge_whole(scope)
            own = default_dead_letter_queue(queue)
            gone = await self._purge_whole([own]) if own in scope else 0
            return gone + await self._purge_where([n for n in scope if n != own], queue, None)
        wanted: set[str] = set()
        names: set[str] = set()
        for dead_letter_id in dead_letter_ids:
            try:
                name, _ = _split_id(dead_letter_id)
            except DeadLetterNotFoundError:
                continue
            if dead_letter_queue is None or name == dead_letter_queue:
                names.add(name)
                wanted.add(dead_letter_id)
        return await self._purge_where(sorted(names), queue, wanted)

    async def _purge_where(
        self, scope: _List[str], queue: str | None, wanted: set[str] | None
    ) -> int:
        gone = 0
        for name in scope:
            async with self._browse(name) as browser:
                async for raw, record in browser.records():
                    if not matches(record, queue):
                        continue
                    if wanted is not None and record.id not in wanted:
                        continue
                    await browser.remove(raw)
                    gone += 1
                    if wanted is not None:
                        wanted.discard(record.id)
                        if not wanted:
                            break
        return gone

    async def _purge_whole(self, names: _List[str]) -> int:
        return sum([await self._purge_queue(name) for name in names])

    async def _purge_queue(self, name: str) -> int:
        """Empty the dead-letter queue ``name`` (``queue.purge``); how many went."""
        timeout = self._broker.confirm_timeout
        async with self._browse(name) as browser:
            ok = (
                None
                if browser.missing
                else await browser.channel.queue_purge(name, timeout=timeout)
            )
        return (ok.message_count or 0) if ok is not None else 0
