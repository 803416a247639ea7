"""How one delivery is settled: ack, retry, dead letter or release, and never a silent loss.

The rule (dramatiq PR#545 is the bug it rules out): a retry or dead letter the
broker refuses is never turned into an ack. The delivery is released instead
(back after the delay the retry would have had), or, if the broker refuses
that too, left unsettled: its lease or its closed channel brings it back.
A shutdown never interrupts a settle halfway: it cancels only handlers
(``_Runner.cancel_handlers``), never a task that is settling, so settles run
unshielded (a shield per settle cost a task per message). ``Settling`` is
the half of a handler's runtime that does this; ``_runner._Runner`` is the
other half (fetching and running handlers).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlink.messaging._broker import Delivery, default_dead_letter_queue
from interlink.messaging._context import Reject, RetryLater
from interlink.messaging._dead_letters import describe_failure
from interlink.messaging._handler import Handler
from interlink.messaging._message import HEADER_FIRST_FAILED_AT, HEADER_LAST_ERROR
from interlink.messaging._observe import WorkerEvent
from interlink.messaging._ordering import KeyHolds
from interlink.observability import _tracing as tracing

if TYPE_CHECKING:
    from interlink.messaging._worker import Worker

__all__ = ["Settling"]

_log = logging.getLogger("interlink.messaging")

_MAX_LAST_ERROR = 500
_BUSY_DELAY = 1.0
_REMEMBERED_RELEASES = 10_000


@dataclass(slots=True)
class _Counters:
    received: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    released: int = 0
    failed_to_settle: int = 0
    in_flight: int = 0
    processing_seconds: float = 0.0
    processed: int = 0


class Settling:
    """Settling deliveries for one handler, with its counters and events."""

    def __init__(self, worker: Worker, handler: Handler) -> None:
        self.worker = worker
        self.h = handler
        self.counters = _Counters()
        self._holds = KeyHolds()  # ordering="block": keys with a message in retry
        self._releases: OrderedDict[tuple[str, int], int] = OrderedDict()

    # -- ordering -------------------------------------------------------------------
    async def _blocked(self, delivery: Delivery, key: str) -> bool:
        """Release ``delivery`` if its key's line says it is not its turn (see ``_ordering``)."""
        wait = self._holds.check(key, delivery.message.id, self.worker.clock.wall())
        if wait is None:
            return False
        await self._release(delivery, wait, why="key")
        return True

    def _hold_key(self, key: str | None, message_id: str, delay: float) -> None:
        if key is not None and self.h.ordering == "block":
            self._holds.retrying(key, message_id, self.worker.clock.wall(), delay)

    def _free_key(self, key: str | None, message_id: str) -> None:
        if key is not None:
            self._holds.settled(key, message_id, self.worker.clock.wall())

    # -- settling ---------------------------------------------------------------------
    async def _failed(self, delivery: Delivery, error: Exception, key: str | None) -> None:
        h, msg = self.h, delivery.message
        if isinstance(error, Reject):
            reason = "rejected"
        elif h.is_permanent(error):
            reason = "permanent"
        elif msg.attempt >= h.max_attempts:
            reason = "exhausted"
        else:
            if isinstance(error, RetryLater) and error.delay is not None:
                delay = error.delay
            else:
                delay = h.schedule.delay(msg.attempt)
            await self._retry(delivery, error, delay, key)
            return
        await self._dead_letter(delivery, error, reason, key)

    def _first_failed_at(self, delivery: Delivery, now: float) -> float:
        try:
            return float(delivery.message.headers[HEADER_FIRST_FAILED_AT])
        except (KeyError, ValueError):
            return now

    async def _retry(
        self, delivery: Delivery, error: Exception, delay: float, key: str | None
    ) -> None:
        now = self.worker.clock.wall()
        last = f"{type(error).__name__}: {error}"
        headers = {
            HEADER_FIRST_FAILED_AT: repr(self._first_failed_at(delivery, now)),
            HEADER_LAST_ERROR: last[:_MAX_LAST_ERROR],
        }
        try:
            await delivery.retry(delay, headers=headers)
        except Exception as exc:
            await self._settle_failed(delivery, exc, delay, key)
            return
        self.counters.retried += 1
        self._hold_key(key, delivery.message.id, delay)
        self._emit("delivery.settled", delivery, outcome="retried", delay=delay, error=error)

    async def _dead_letter(
        self, delivery: Delivery, error: BaseException, reason: str, key: str | None
    ) -> None:
        h, msg = self.h, delivery.message
        now = self.worker.clock.wall()
        failure = describe_failure(
            error,
            handler=h.name,
            attempts=msg.attempt,
            first_failed_at=self._first_failed_at(delivery, now),
            last_failed_at=now,
            reason=reason,
        )
        try:
            if tracing.enabled():  # observability (tracing): the move as a send to the DLQ
                dlq = h.dead_letter_queue or default_dead_letter_queue(msg.queue)
                system = tracing.messaging_system(self.worker.broker.url)
                with tracing.dead_letter_span(msg, dlq, system, reason, error):
                    await delivery.dead_letter(failure, dead_letter_queue=h.dead_letter_queue)
            else:
                await delivery.dead_letter(failure, dead_letter_queue=h.dead_letter_queue)
        except Exception as exc:
            await self._settle_failed(delivery, exc, h.schedule.delay(msg.attempt), key)
            return
        self.counters.dead_lettered += 1
        self._free_key(key, msg.id)
        _log.info(
            "worker %s: dead-lettered %s from %r (%s): %s: %s",
            self.worker.name,
            msg.id,
            msg.queue,
            reason,
            failure.error_type,
            failure.error_message[:200],
        )
        self._emit(
            "delivery.settled", delivery, outcome="dead_lettered", reason=reason, error=error
        )

    async def _settle_failed(
        self, delivery: Delivery, exc: Exception, delay: float, key: str | None
    ) -> None:
        """The retry or dead letter was refused: never ack; release, or leave it unsettled."""
        self.counters.failed_to_settle += 1
        msg = delivery.message
        _log.warning(
            "worker %s: could not settle %s from %r (%s); it stays unacknowledged",
            self.worker.name,
            msg.id,
            msg.queue,
            exc,
        )
        try:
            await delivery.release(delay)
        except Exception as again:
            _log.warning("worker %s: release of %s failed too: %s", self.worker.name, msg.id, again)
            self._emit("delivery.settled", delivery, outcome="unsettled", error=exc)
            return
        self._note_release(delivery)
        self._hold_key(key, msg.id, delay)
        self._emit("delivery.settled", delivery, outcome="failed_to_settle", delay=delay, error=exc)

    async def _ack(self, delivery: Delivery, key: str | None, *, duplicate: bool = False) -> None:
        try:
            await delivery.ack()
        except Exception as exc:  # it comes back; the inbox (if any) then says done
            self.counters.failed_to_settle += 1
            _log.warning("worker %s: ack of %s failed: %s", self.worker.name, delivery, exc)
            self._emit("delivery.settled", delivery, outcome="unsettled", error=exc)
            return
        self._free_key(key, delivery.message.id)
        if duplicate:
            self.counters.duplicates += 1
            self._emit("delivery.settled", delivery, outcome="duplicate")
        else:
            self.counters.acked += 1
            self._emit("delivery.settled", delivery, outcome="acked")

    async def _release(self, delivery: Delivery, delay: float, *, why: str) -> None:
        try:
            await delivery.release(delay)
        except Exception as exc:
            self.counters.failed_to_settle += 1
            _log.warning("worker %s: release of %s failed: %s", self.worker.name, delivery, exc)
            self._emit("delivery.settled", delivery, outcome="unsettled", error=exc)
            return
        self.counters.released += 1
        self._note_release(delivery)
        self._emit("delivery.settled", delivery, outcome="released", delay=delay, reason=why)

    # -- releases this worker made (they are not crashes) -------------------------------
    def _note_release(self, delivery: Delivery) -> None:
        key = (delivery.message.id, delivery.message.attempt)
        self._releases[key] = self._releases.get(key, 0) + 1
        self._releases.move_to_end(key)
        while len(self._releases) > _REMEMBERED_RELEASES:
            self._releases.popitem(last=False)

    def _released_here(self, delivery: Delivery) -> int:
        return self._releases.get((delivery.message.id, delivery.message.attempt), 0)

    def _busy_delay(self, delivery: Delivery) -> float:
        """1 s, doubling with each busy release of this message, up to half the claim lease."""
        doublings = min(self._released_here(delivery), 16)
        return float(min(_BUSY_DELAY * 2**doublings, self.worker.claim_lease / 2.0))

    def _emit(self, kind: str, delivery: Delivery, **attributes: Any) -> None:
        if kind == "delivery.settled" and tracing.enabled():  # observability (tracing)
            tracing.settled(attributes["outcome"], attributes)
        events = self.worker.events
        if events.active:
            msg = delivery.message
            events.emit(
                WorkerEvent(
                    kind=kind,
                    queue=msg.queue,
                    handler=self.h.name,
                    message_id=msg.id,
                    attempt=msg.attempt,
                    time=self.worker.clock.wall(),
                    attributes=attributes,
                )
            )
