"""Every decision a policy makes is an event that subscribers can see.

A listener is a plain callable taking one ``ResilienceEvent``. Listeners
subscribe to one policy (``policy.events.subscribe``) or to every policy in
the process (``interlink.resilience.subscribe``); metrics, tracing and logs
attach here. Events are built only when someone listens, so an unobserved
policy pays one attribute check per decision. A listener that raises is
logged and skipped: observing a call never breaks it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENTS", "EventHub", "Listener", "ResilienceEvent", "subscribe"]

_log = logging.getLogger("interlink.resilience")


@dataclass(frozen=True, slots=True)
class ResilienceEvent:
    """One decision.

    ``kind`` is dotted, ``<policy type>.<what>`` (``retry.attempt``,
    ``retry.delay``, ``circuit_breaker.transition``, ``bulkhead.rejected``, ...);
    ``policy`` is the name of the policy instance; ``time`` is the policy
    clock's monotonic time in seconds; ``attributes`` holds the details
    (documented per policy in docs/resilience.md).
    """

    kind: str
    policy: str
    time: float
    attributes: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[ResilienceEvent], object]


class EventHub:
    """Listeners of one policy, forwarding every event to a parent hub too.

    ``active`` is a plain attribute, kept up to date on every (un)subscribe
    down the chain of hubs, because policies read it on every call.
    """

    __slots__ = ("__weakref__", "_children", "_listeners", "_parent", "active")

    def __init__(self, parent: EventHub | None = None) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._parent = parent
        self._children: weakref.WeakSet[EventHub] = weakref.WeakSet()
        self.active: bool = parent is not None and parent.active
        """True when at least one listener would see an event emitted here."""
        if parent is not None:
            parent._children.add(self)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns a function that removes it again."""
        self._listeners = (*self._listeners, listener)
        self._refresh()

        def unsubscribe() -> None:
            self._listeners = tuple(lst for lst in self._listeners if lst is not listener)
            self._refresh()

        return unsubscribe

    def _refresh(self) -> None:
        self.active = bool(self._listeners) or (self._parent is not None and self._parent.active)
        for child in list(self._children):
            child._refresh()

    def emit(self, event: ResilienceEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("resilience event listener %r failed on %s", listener, event.kind)
        if self._parent is not None:
            self._parent.emit(event)


EVENTS = EventHub()
"""The process-wide hub: every policy's events reach its listeners."""


def subscribe(listener: Listener) -> Callable[[], None]:
    """Listen to the events of every policy in this process; returns the unsubscriber."""
    return EVENTS.subscribe(listener)
