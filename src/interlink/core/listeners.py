"""``Listeners``: functions a part calls as things happen, each with the same arguments.

A worker's events (``WorkerEvents``) and a webhook receiver's answers
(``WebhookReceiver.answered``) are made this way: a tuple of listeners
(copied on change, so that a listener may unsubscribe while being called), an
``active`` flag a hot path reads before doing any work for them, and an
``emit`` that logs and skips a listener that raises, so that an observer
never breaks what it observes. Written by hand: ten lines, and the hub of the
resilience policies (``resilience._events.EventHub``) also forwards to a
parent, which this does not need. (blinker and the like dispatch by sender and
name, which these hot paths would pay for on every call.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

__all__ = ["Listeners"]

P = ParamSpec("P")


class Listeners(Generic[P]):
    """Listeners called with ``emit``'s arguments, in the order they subscribed.

    ``what`` names them in the log line of one that raises (``"worker event
    listener <fn> failed"``), on ``logger``; a subclass may say more about the
    call in it (``_about``). ``active`` is true while any listener is
    subscribed: a plain attribute, as hot paths read it per call.
    """

    __slots__ = ("_listeners", "_logger", "_what", "active")

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._listeners: tuple[Callable[P, object], ...] = ()
        self._what = what
        self._logger = logger
        self.active = False

    def subscribe(self, listener: Callable[P, object]) -> Callable[[], None]:
        """Call ``listener`` on every ``emit``; returns a function that unsubscribes it."""
        self._listeners = (*self._listeners, listener)
        self.active = True

        def unsubscribe() -> None:
            self._listeners = tuple(lst for lst in self._listeners if lst is not listener)
            self.active = bool(self._listeners)

        return unsubscribe

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every listener; one that raises is logged and skipped."""
        for listener in self._listeners:
            try:
                listener(*args, **kwargs)
            except Exception:
                self._logger.exception(
                    "%s listener %r failed%s", self._what, listener, self._about(*args, **kwargs)
                )

    def _about(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """What the failed call was about, for its log line (``" on <kind>"``); nothing here."""
        return ""
