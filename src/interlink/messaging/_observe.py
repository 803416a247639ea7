"""What a worker tells the outside: per-handler counters and a stream of events.

``HandlerStats`` are the numbers the metrics issue will export (they map onto
the OTel messaging conventions: received = ``messaging.client.consumed.messages``,
processing time = ``messaging.process.duration``). ``WorkerEvent`` is the hook
for tracing and custom metrics: one event when a delivery arrives, when its
handler starts and finishes, and when it is settled.

Not ``interlink.resilience.EventHub``: its events name a *policy* and its
listeners are typed to ``ResilienceEvent``, and it forwards to the process-wide
resilience hub, which would hand message events to resilience listeners.
``WorkerEvents`` keeps its contract (events built only when someone listens; a
listener that raises is logged and skipped) in a dozen lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlink.core.listeners import Listeners

__all__ = ["HandlerStats", "Listener", "WorkerEvent", "WorkerEvents"]

_log = logging.getLogger("interlink.messaging")


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """Counters of one handler on one queue since its worker started.

    Every delivery counts once in ``received`` and, once finished, in exactly
    one outcome: ``acked`` (handled), ``retried`` (scheduled for a next
    attempt), ``dead_lettered``, ``duplicates`` (the inbox said done: acked
    without running the handler), ``released`` (given back untouched: a
    duplicate still running elsewhere, a blocked ordering key, shutdown) or
    ``failed_to_settle`` (the broker refused the ack/retry/dead letter; the
    message stays unacknowledged and comes back). ``in_flight`` are being
    handled now. ``processing_seconds`` / ``processed`` are the sum and count of
    handler run times (success or failure).
    """

    queue: str
    handler: str
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


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """One thing that happened to one delivery.

    ``kind`` is one of:

    - ``"delivery.received"``: a delivery arrived (``attributes``: ``delivery_count``);
    - ``"handler.started"``: the handler is about to run;
    - ``"handler.finished"``: it returned or raised (``duration`` seconds,
      ``error``: the exception or ``None``);
    - ``"delivery.settled"``: how it ended (``outcome``: acked, retried,
      dead_lettered, duplicate, released, failed_to_settle or unsettled;
      ``delay`` for a retry or release; ``reason`` for a dead letter;
      ``error``: the exception of a failed attempt that was dead-lettered, or of
      a failed settle).

    ``time`` is wall seconds (the worker clock's ``wall()``).
    """

    kind: str
    queue: str
    handler: str
    message_id: str
    attempt: int
    time: float
    attributes: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[WorkerEvent], object]


class WorkerEvents(Listeners[[WorkerEvent]]):
    """Listeners of one worker (``worker.events``). ``active`` is true when anyone listens.

    ``subscribe(listener)`` calls ``listener(event)`` for every ``WorkerEvent``
    and returns a function that unsubscribes; one that raises is logged and
    skipped.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("worker event", _log)

    def _about(self, event: WorkerEvent) -> str:
        return f" on {event.kind}"
