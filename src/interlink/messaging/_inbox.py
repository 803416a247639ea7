"""The idempotent-consumer inbox: which (handler, message id) pairs are being handled or done.

Camel's Idempotent Consumer semantics (research/messaging.md (b)): the key is
claimed *before* the handler runs (``eager``), so a duplicate delivered while
the first copy is still running is seen as ``"busy"``; the key is released
when the handler fails (``removeOnFailure``), so a retry does the work again.
A key is only ``"done"`` once the handler succeeded. That avoids Redpanda
Connect's ``dedupe`` trap, where a key stored before the effect turns an
outage into a lost message.

A claim holds a lease: a worker that dies mid-handler leaves a claim that goes
stale after ``lease`` seconds and is then taken over by the next delivery.
The worker renews the lease (``extend``) while its handler runs.

Backends: ``MemoryInbox`` (one process, tests), ``SqliteInbox`` (a table in a
SQLite file; put it in your application's database and
``SqliteInbox.complete_in`` commits the key in your own transaction). The
``Inbox`` protocol is kept small so a PostgreSQL inbox can follow.

Hand-written because no library offers an async inbox with claim leases and
same-transaction completion on the user's own connection.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError, MessagingError
from interlink.messaging._broker import url_options

__all__ = [
    "ClaimLostError",
    "ClaimResult",
    "Inbox",
    "MemoryInbox",
    "open_inbox",
]

ClaimResult = Literal["claimed", "done", "busy"]
"""``"claimed"``: run the handler; ``"done"``: handled before, skip; ``"busy"``: running elsewhere."""

DEFAULT_RETENTION = 7 * 86_400.0
"""How long a done key is remembered: Dramatiq keeps dead messages 7 days, and a
duplicate later than that is a new event in practice."""

_PURGE_EVERY = 3600.0  # at most one retention sweep per hour of clock time
_TABLE = "interlink_inbox"


class ClaimLostError(MessagingError):
    """The inbox claim this worker held is gone: its lease expired and another worker took it.

    Raised by ``SqliteInbox.complete_in`` inside your transaction, so that the
    transaction rolls back and the effect is not committed twice.
    """


ClaimLostError.__module__ = "interlink.messaging"


@runtime_checkable
class Inbox(Protocol):
    """What the worker needs from an inbox; every method is safe to call concurrently.

    Keys are ``(handler, message_id)``. ``claim`` answers ``"claimed"`` (this
    caller now holds it for ``lease`` seconds), ``"done"`` (a handler finished
    it before) or ``"busy"`` (another caller holds a live claim; a claim older
    than its lease is taken over and answers ``"claimed"``). ``extend`` renews
    a held claim and says whether it is still held. ``complete`` marks the key
    done; ``release`` drops a claim held by this inbox (never a done key, never
    another holder's claim). One inbox object holds at most one claim per key.
    """

    async def claim(self, handler: str, message_id: str, *, lease: float) -> ClaimResult:
        """Claim the key before running the handler."""
        ...

    async def extend(self, handler: str, message_id: str, *, lease: float) -> bool:
        """Renew a claim this inbox holds; ``False`` if it was lost."""
        ...

    async def complete(self, handler: str, message_id: str) -> None:
        """Mark the key done (idempotent)."""
        ...

    async def release(self, handler: str, message_id: str) -> None:
        """Give up this inbox's claim on the key, so the next delivery runs the handler."""
        ...

    async def close(self) -> None:
        """Release resources (idempotent)."""
        ...


@dataclass(slots=True)
class _Entry:
    state: str  # "claimed" | "done"
    token: str | None
    expires_at: float
    done_at: float


class MemoryInbox:
    """An in-process inbox on a clock: for tests and single-process use.

    Claims expire on ``clock.wall()`` (a ``FakeClock`` drives them); done keys
    are forgotten after ``retention`` seconds. Nothing survives the process.
    """

    def __init__(self, *, clock: Clock | None = None, retention: float | str = DEFAULT_RETENTION):
        self.clock = clock or SYSTEM_CLOCK
        self.retention = parse_duration(retention, allow_zero=False)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._next_purge = 0.0

    def __len__(self) -> int:
        """How many keys (claimed or done) the inbox remembers."""
        return len(self._entries)

    def state(self, handler: str, message_id: str) -> str | None:
        """``"claimed"``, ``"done"`` or ``None`` (unknown): for tests and inspection."""
        entry = self._entries.get((handler, message_id))
        return None if entry is None else entry.state

    async def claim(self, handler: str, message_id: str, *, lease: float) -> ClaimResult:
        """See ``Inbox.claim``."""
        now = self.clock.wall()
        self._purge(now)
        key = (handler, message_id)
        entry = self._entries.get(key)
        if entry is not None and entry.state == "done":
            return "done"
        if entry is not None and entry.expires_at > now:
            return "busy"
        self._entries[key] = _Entry("claimed", uuid.uuid4().hex, now + lease, 0.0)
        return "claimed"

    async def extend(self, handler: str, message_id: str, *, lease: float) -> bool:
        """See ``Inbox.extend``."""
        entry = self._entries.get((handler, message_id))
        if entry is None or entry.state != "claimed":
            return False
        entry.expires_at = self.clock.wall() + lease
        return True

    async def complete(self, handler: str, message_id: str) -> None:
        """See ``Inbox.complete``."""
        entry = self._entries.get((handler, message_id))
        if entry is not None and entry.state == "done":
            return
        self._entries[(handler, message_id)] = _Entry("done", None, 0.0, self.clock.wall())

    async def release(self, handler: str, message_id: str) -> None:
        """See ``Inbox.release``."""
        entry = self._entries.get((handler, message_id))
        if entry is not None and entry.state == "claimed":
            del self._entries[(handler, message_id)]

    async def ping(self) -> float:
        """``0.0``: an inbox in this process always answers (for health checks)."""
        return 0.0

    async def close(self) -> None:
        """Nothing to release; kept for the protocol."""

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + min(_PURGE_EVERY, self.retention)
        horizon = now - self.retention
        stale = [
            key
            for key, e in self._entries.items()
            if (e.state == "done" and e.done_at < horizon)
            or (e.state == "claimed" and e.expires_at < horizon)
        ]
        for key in stale:
            del self._entries[key]

    def __repr__(self) -> str:
        return f"MemoryInbox(keys={len(self._entries)})"


_NAMED: weakref.WeakValueDictionary[str, MemoryInbox] = weakref.WeakValueDictionary()
_NAMED_LOCK = threading.Lock()

_OPTIONS = {
    "retention": "how long done keys are kept, e.g. 7d",
    "synchronous": "normal or full (sqlite)",
}


async def open_inbox(url: str, *, clock: Clock | None = None) -> Inbox:
    """Open the inbox ``url`` names: ``memory://`` (``memory://name`` shared per process by name)
    or ``sqlite:///relative.db`` / ``sqlite:////absolute.db``.

    Options: ``?retention=7d`` (both), ``?synchronous=full`` (SQLite). A bad
    URL is a ``ConfigError`` saying what was expected.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"an inbox URL looks like memory:// or sqlite:///path.db, got {url!r}")
    scheme, rest = url.split("://", 1)
    options = url_options(url, _OPTIONS)
    retention = options.get("retention", DEFAULT_RETENTION)
    if scheme.lower() == "memory":
        if "synchronous" in options:
            raise ConfigError("option 'synchronous' applies to sqlite:// inboxes only")
        name = urlsplit(url).netloc
        if not name:
            return MemoryInbox(clock=clock, retention=retention)
        with _NAMED_LOCK:
            inbox = _NAMED.get(name)
            if inbox is None:
                inbox = MemoryInbox(clock=clock, retention=retention)
                _NAMED[name] = inbox
        return inbox
    if scheme.lower() == "sqlite":
        path = rest.split("?", 1)[0]
        if not path.startswith("/") or len(path) < 2:
            raise ConfigError(
                f"a SQLite inbox URL is sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
            )
        from interlink.messaging._inbox_sqlite import SqliteInbox

        sqlite_inbox = SqliteInbox(
            path[1:],
            clock=clock,
            retention=retention,
            synchronous=options.get("synchronous", "NORMAL"),
        )
        await sqlite_inbox.open()
        return sqlite_inbox
    raise ConfigError(f"unknown inbox scheme {scheme!r} in {url!r}; known schemes: memory, sqlite")
