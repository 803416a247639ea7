"""One handler at work: fetch deliveries, keep per-key order, run the handler, settle.

The flow of one delivery (``_Runner._process``):

1. a delivery seen ``delivery_limit`` times more than its attempts explains
   (its handler keeps killing the process) is dead-lettered, reason
   ``"delivery_limit"``, without running the handler again;
2. a message whose ordering key is blocked by an earlier message in retry is
   released until that retry is due (``ordering="block"``);
3. the body is decoded, transformed and validated; one that fails any of
   these is dead-lettered at once (``"permanent"``), the handler never sees it;
4. with an inbox, the key ``(handler, message id)`` is claimed: ``"done"`` ->
   ack and count a duplicate; ``"busy"`` -> release with a short delay (never
   ack: the other holder may still fail); ``"claimed"`` -> go on, renewing the
   claim while the handler runs;
5. success: inbox ``complete``, then ack. Failure: inbox ``release``, then a
   dead letter (declared permanent, ``Reject``, or attempts used up) or a
   retry after the schedule's delay. A settle the broker refuses is never
   an ack: the delivery is released instead, or left unsettled if that fails
   too, and comes back.

Settling lives in ``_settling``. A handler runs in one of ``concurrency``
long-lived tasks that take deliveries from the fetch loop (no task or
semaphore per delivery). At the graceful deadline only a task that is inside
its handler is cancelled (``cancel_handlers``): the cancellation lands in the
handler's own ``await``, and a task busy settling, claiming or releasing is
left to finish. That is what keeps a shutdown from interrupting a settle
halfway, without shielding every settle; nothing else in the runtime cancels
these tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from interlink.core.errors import MessagingError, TransformError
from interlink.messaging._broker import Consumer, Delivery
from interlink.messaging._context import MessageContext
from interlink.messaging._handler import Handler, InvalidPayloadError
from interlink.messaging._message import HEADER_ORDERING_KEY
from interlink.messaging._observe import HandlerStats
from interlink.messaging._settling import Settling
from interlink.observability import _tracing as tracing
from interlink.observability._logging import bind_message, unbind_message

if TYPE_CHECKING:
    from interlink.messaging._worker import Worker

__all__ = ["DeliveryLimitError"]

_log = logging.getLogger("interlink.messaging")

_RECONNECT_FIRST = 0.1
_RECONNECT_MAX = 30.0


class DeliveryLimitError(MessagingError):
    """Recorded in a dead letter when a message was delivered too often without being settled.

    That happens when its handler kills the worker process (out of memory, a
    segfault, ``os._exit``) every time: without a bound it would crash every
    worker in turn forever. The handler is not run again.
    """


DeliveryLimitError.__module__ = "interlink.messaging"


class _Runner(Settling):
    """The runtime of one handler inside a worker: fetch, order, run (settling: ``Settling``)."""

    def __init__(self, worker: Worker, handler: Handler) -> None:
        super().__init__(worker, handler)
        # (delivery, key) ready to start; None tells a serving task to end.
        self._ready: asyncio.Queue[tuple[Delivery, str | None] | None] = asyncio.Queue()
        self._keys: dict[str, deque[Delivery]] = {}
        self._pending: set[Delivery] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling: set[asyncio.Task[None]] = set()  # tasks inside their handler now
        self._consumer: Consumer | None = None
        self._loop: asyncio.Task[None] | None = None
        self.stopping = False
        self.abandoning = False  # past the graceful deadline: start no handler

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.create_task(
            self._consume_loop(), name=f"interlink-consume-{self.h.name}"
        )
        for n in range(self.h.concurrency):
            task = asyncio.create_task(self._serve(), name=f"interlink-handle-{self.h.name}-{n}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop_fetching(self) -> None:
        """Stop fetching and give back every delivery fetched but not started."""
        self.stopping = True
        consumer = self._consumer
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.cancel()
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        ready = self._ready
        while not ready.empty():  # still in _pending: released just below
            ready.get_nowait()
        for _ in range(len(self._tasks)):
            ready.put_nowait(None)  # idle serving tasks end; busy ones after their delivery
        for delivery in list(self._pending):
            self._pending.discard(delivery)
            await self._release(delivery, 0.0, why="shutdown")

    def cancel_handlers(self) -> None:
        """The graceful deadline passed: cancel the handlers running; start no other.

        Only a task inside its handler is cancelled; one that is settling (or
        claiming, or releasing) finishes that first, then starts nothing new.
        """
        self.abandoning = True
        for task in self._handling:
            task.cancel()

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self._tasks

    def stats(self) -> HandlerStats:
        c = self.counters
        return HandlerStats(
            queue=self.h.queue,
            handler=self.h.name,
            received=c.received,
            acked=c.acked,
            retried=c.retried,
            dead_lettered=c.dead_lettered,
            duplicates=c.duplicates,
            released=c.released,
            failed_to_settle=c.failed_to_settle,
            in_flight=c.in_flight,
            processing_seconds=c.processing_seconds,
            processed=c.processed,
        )

    # -- fetching ---------------------------------------------------------------
    async def _consume_loop(self) -> None:
        wait = _RECONNECT_FIRST
        broker, clock = self.worker.broker, self.worker.clock
        while not self.stopping:
            try:
                consumer = broker.consume(self.h.queue, prefetch=self.h.prefetch)
            except Exception as exc:
                _log.warning(
                    "worker %s: cannot consume %r (%s); trying again in %.1fs",
                    self.worker.name,
                    self.h.queue,
                    exc,
                    wait,
                )
            else:
                self._consumer = consumer
                try:
                    async for delivery in consumer:
                        wait = _RECONNECT_FIRST
                        await self._dispatch(delivery)
                except Exception as exc:
                    _log.warning(
                        "worker %s: consumer of %r failed (%s); resuming in %.1fs",
                        self.worker.name,
                        self.h.queue,
                        exc,
                        wait,
                    )
                finally:
                    self._consumer = None
                    with contextlib.suppress(Exception):
                        await consumer.cancel()
            if self.stopping:
                return
            await clock.sleep(wait)
            wait = min(wait * 2, _RECONNECT_MAX)

    async def _dispatch(self, delivery: Delivery) -> None:
        self.counters.received += 1
        self._emit("delivery.received", delivery, delivery_count=delivery.message.delivery_count)
        if tracing.enabled():  # observability (tracing): the receive span
            tracing.received(delivery.message, tracing.messaging_system(self.worker.broker.url))
        key = delivery.message.headers.get(HEADER_ORDERING_KEY)
        self._pending.add(delivery)
        if key is not None:
            queued = self._keys.get(key)
            if queued is not None:  # this key's previous message is still here: wait behind it
                queued.append(delivery)
                return
            self._keys[key] = deque()
        self._ready.put_nowait((delivery, key))

    async def _serve(self) -> None:
        """One of ``concurrency`` tasks: handle ready deliveries until told to end."""
        ready = self._ready
        while True:
            item = await ready.get()
            if item is None or self.stopping:  # a delivery left here is released by stop
                return
            try:
                await self._chain(*item)
            except Exception:  # a bug, not a failed message: keep serving the others
                _log.exception(
                    "worker %s: handling a delivery from %r failed unexpectedly; "
                    "it stays unacknowledged",
                    self.worker.name,
                    self.h.queue,
                )

    async def _chain(self, delivery: Delivery | None, key: str | None) -> None:
        """Handle ``delivery``, then the next waiting message of its key, one at a time."""
        while delivery is not None:
            self._pending.discard(delivery)
            if tracing.enabled():  # observability (tracing): one process span per attempt
                system = tracing.messaging_system(self.worker.broker.url)
                with tracing.process_span(delivery.message, self.h.name, system):
                    await self._process(delivery, key)
            else:
                await self._process(delivery, key)
            delivery = None
            if key is None or self.stopping:
                break
            queued = self._keys.get(key)
            if queued:
                delivery = queued.popleft()
            else:
                self._keys.pop(key, None)

    # -- one delivery -------------------------------------------------------------
    async def _process(self, delivery: Delivery, key: str | None) -> None:
        h, worker = self.h, self.worker
        msg = delivery.message
        self.counters.in_flight += 1
        ids = bind_message(msg.id, msg.headers)  # observability: ids on every log line
        try:
            unexplained = msg.delivery_count - msg.attempt - self._released_here(delivery)
            if unexplained >= h.delivery_limit:
                error = DeliveryLimitError(
                    f"message {msg.id} was delivered {msg.delivery_count} times in attempt "
                    f"{msg.attempt} without being settled (limit {h.delivery_limit}): its handler "
                    "probably kills the worker process",
                    queue=msg.queue,
                )
                await self._dead_letter(delivery, error, "delivery_limit", key)
                return
            if key is not None and h.ordering == "block" and await self._blocked(delivery, key):
                return
            try:
                body = h.decode(msg)
            except (InvalidPayloadError, TransformError) as exc:
                await self._dead_letter(delivery, exc, "permanent", key)
                return
            claimed = False
            inbox = worker.inbox
            if inbox is not None:
                try:
                    state = await inbox.claim(h.name, msg.id, lease=worker.claim_lease)
                except Exception as exc:  # the inbox is down: a failed attempt, retried later
                    _log.warning("worker %s: inbox claim failed: %s", worker.name, exc)
                    await self._failed(delivery, exc, key)
                    return
                if state == "done":
                    await self._ack(delivery, key, duplicate=True)
                    return
                if state == "busy":
                    await self._release(delivery, self._busy_delay(delivery), why="busy")
                    return
                claimed = True
            await self._run(delivery, body, key, claimed)
        finally:
            self.counters.in_flight -= 1
            unbind_message(ids)

    async def _run(self, delivery: Delivery, body: Any, key: str | None, claimed: bool) -> None:
        h, worker = self.h, self.worker
        msg = delivery.message
        inbox = worker.inbox
        if self.abandoning:  # the graceful deadline passed while this was being claimed
            await self._give_back(delivery, claimed)
            return
        ctx = MessageContext(message=msg, handler=h.name, clock=worker.clock)
        keeper = asyncio.create_task(self._keep_claim(msg.id)) if claimed else None
        self._emit("handler.started", delivery)
        started = worker.clock.monotonic()
        error: Exception | None = None
        task = asyncio.current_task()
        assert task is not None
        handling = self._handling
        handling.add(task)  # cancel_handlers may cancel it until the handler returns
        try:
            if tracing.enabled():  # observability (tracing): the handler span
                with tracing.handler_span(h.name):
                    await h.func(body, ctx)
            else:
                await h.func(body, ctx)
        except asyncio.CancelledError:
            # The graceful deadline passed: give the key and the message back. Out of
            # ``_handling`` first: nothing cancels the give back.
            handling.discard(task)
            if keeper is not None:
                keeper.cancel()
            await self._give_back(delivery, claimed)
            if task.cancelling():
                raise
            # Not a cancellation of this task (the handler let one of its own out):
            # the message is back, and this task goes on serving.
            return
        except Exception as exc:
            error = exc
        finally:
            handling.discard(task)
            if keeper is not None:
                keeper.cancel()
        elapsed = max(0.0, worker.clock.monotonic() - started)
        self.counters.processing_seconds += elapsed
        self.counters.processed += 1
        self._emit("handler.finished", delivery, duration=elapsed, error=error)
        if error is None:
            if claimed and inbox is not None:
                try:
                    await inbox.complete(h.name, msg.id)
                except Exception as exc:  # handled all the same: ack, the key just is not kept
                    _log.warning(
                        "worker %s: inbox could not record %s:%s as done: %s",
                        worker.name,
                        h.name,
                        msg.id,
                        exc,
                    )
            await self._ack(delivery, key)
            return
        if claimed and inbox is not None:
            try:
                await inbox.release(h.name, msg.id)
            except Exception as exc:  # the claim then goes stale after its lease
                _log.warning("worker %s: inbox release failed: %s", worker.name, exc)
        await self._failed(delivery, error, key)

    async def _give_back(self, delivery: Delivery, claimed: bool) -> None:
        """Release the inbox key (if claimed) and the delivery, not counted as an attempt."""
        inbox = self.worker.inbox
        if claimed and inbox is not None:
            with contextlib.suppress(Exception):
                await inbox.release(self.h.name, delivery.message.id)
        await self._release(delivery, 0.0, why="shutdown")

    async def _keep_claim(self, message_id: str) -> None:
        worker = self.worker
        assert worker.inbox is not None
        while True:
            await worker.clock.sleep(worker.claim_lease / 3.0)
            try:
                held = await worker.inbox.extend(self.h.name, message_id, lease=worker.claim_lease)
            except Exception as exc:
                _log.warning("worker %s: inbox lease renewal failed: %s", worker.name, exc)
                continue
            if not held:
                _log.warning(
                    "worker %s: the inbox claim on %s:%s was lost (its lease ran out); "
                    "another worker may run it too",
                    worker.name,
                    self.h.name,
                    message_id,
                )
                return
