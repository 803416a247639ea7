"""``ReceiptLog``: which webhooks this receiver already stored, to answer a repeat at once.

A provider resends a webhook it thinks failed, and some send the same one
twice anyway. The log maps ``"<source>:<webhook id>"`` to the receipt given,
for ``window`` seconds, at most ``max_entries`` of them (the oldest go first).
It lives in process memory on purpose: it only spares a second store. The
guarantee that a webhook takes effect once does not rest on it: the message
id is the same on every copy and the worker's inbox deduplicates what gets
through (after a restart, or between two receiver processes).

Two copies arriving at the same moment: the second waits for the first's
publish and answers "duplicate" if it was stored, or tries itself if not.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Final

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError

__all__ = ["DEFAULT_WINDOW", "ReceiptLog"]

_TRIM_EVERY: Final = 255  # expired receipts are dropped every 256 inserts (``get`` skips them)

DEFAULT_WINDOW: Final = 24 * 3600.0
"""Seconds a receipt is remembered (a day: longer than any provider's tolerance)."""


class ReceiptLog:
    """Receipts by key, bounded in age and count; see the module docstring."""

    __slots__ = ("_clock", "_entries", "_inserts", "_pending", "max_entries", "window")

    def __init__(
        self, clock: Clock, *, window: float = DEFAULT_WINDOW, max_entries: int = 100_000
    ) -> None:
        if not window > 0:
            raise ConfigError(f"receipt window must be > 0 seconds, got {window!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries must be a positive integer, got {max_entries!r}")
        self._clock = clock
        self.window = float(window)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str | None] | None] = {}
        self._inserts = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        """The receipt of ``key`` if it was stored within the window."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock.monotonic() - entry[1] > self.window:
            del self._entries[key]
            return None
        return entry[0]

    def try_claim(self, key: str) -> bool:
        """Claim ``key`` at once if nobody is storing it (then ``done``); ``False`` if somebody is.

        Call ``get`` first; after ``False``, ``claim`` waits for the other copy.
        """
        if key in self._pending:
            return False
        self._pending[key] = None
        return True

    async def claim(self, key: str) -> str | None:
        """``None`` when the caller should store ``key`` now (then ``done``), else its receipt.

        While another request is storing the same key this waits for it: its
        receipt if it stored it, else the claim passes to this caller.
        """
        pending = self._pending
        while True:
            receipt = self.get(key)
            if receipt is not None:
                return receipt
            if key not in pending:
                pending[key] = None  # claimed; a future only once a second copy waits
                return None
            waiter = pending[key]
            if waiter is None:
                waiter = pending[key] = asyncio.get_running_loop().create_future()
            receipt = await asyncio.shield(waiter)
            if receipt is not None:
                return receipt

    def done(self, key: str, receipt: str | None) -> None:
        """Close a claim: ``receipt`` when ``key`` was stored, ``None`` when it was not."""
        waiter = self._pending.pop(key, None)
        if receipt is not None:
            entries = self._entries
            entries[key] = (receipt, self._clock.monotonic())
            entries.move_to_end(key)
            if len(entries) > self.max_entries:
                entries.popitem(last=False)
            self._inserts += 1
            if self._inserts & _TRIM_EVERY == 0:
                self._trim()
        if waiter is not None and not waiter.done():
            waiter.set_result(receipt)

    def _trim(self) -> None:
        """Forget the receipts older than the window (the oldest come first)."""
        entries = self._entries
        now = self._clock.monotonic()
        while entries:
            key, (_, stored) = next(iter(entries.items()))
            if now - stored <= self.window:
                break
            del entries[key]
