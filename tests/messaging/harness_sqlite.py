"""The SQLite backend in the shared suite: a fresh file per harness, on a ``FakeClock``.

The broker answers from its storage thread, in real time, while the test
moves fake time. ``run_until`` therefore moves the clock timer by timer and
lets the storage thread finish what it was given before time moves on: a
lease, a retry or a delay then happens at the fake time it is due, however
slow the machine is, not a few fake steps later. Consumers poll every fake
second (``poll_interval=1s``): within one process a publish wakes them at
once and they wake for the next due message by themselves, so the poll only
costs thread round trips here.

``refuse_publishes`` makes the database itself refuse the writes: triggers
that ``RAISE(ABORT)`` on an insert into ``queue``, a retry into it (an update
of ``attempt``) and a dead letter into it, so the broker meets a genuine
storage refusal, not a flag in Python.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from interlink.messaging import Broker, SqliteBroker
from interlink.testing import FakeClock
from tests.messaging.harness import Harness, register

_triggers = itertools.count(1)
_MAX_TIMERS_PER_STEP = 10_000
_STORAGE_BUDGET = 10.0  # real seconds the storage thread may take to go idle


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _refuse(path: Path, queue: str) -> None:
    n = next(_triggers)
    q = _literal(queue)
    abort = "BEGIN SELECT RAISE(ABORT, 'refused by the test harness'); END"
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.executescript(
            f"""
            CREATE TRIGGER refuse_{n}_publish BEFORE INSERT ON messages
                WHEN NEW.queue = {q} {abort};
            CREATE TRIGGER refuse_{n}_retry BEFORE UPDATE OF attempt ON messages
                WHEN NEW.queue = {q} {abort};
            CREATE TRIGGER refuse_{n}_dead_letter BEFORE INSERT ON dead_letters
                WHEN NEW.dead_letter_queue = {q} {abort};
            """
        )
    finally:
        conn.close()


@register
class SqliteHarness(Harness):
    """``sqlite:////tmp/.../broker.db``: reopening the same file is a restart."""

    name = "sqlite"
    fake_time = True

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="interlink-sqlite-"))
        self.path = self.dir / "broker.db"
        self.url = f"sqlite:///{self.path}?poll_interval=1s"
        self.clock: FakeClock = FakeClock()

    async def open(self) -> Broker:
        broker = SqliteBroker.from_url(self.url, clock=self.clock)
        await broker.start()
        self.broker = broker
        return broker

    async def reopen(self) -> Broker:
        await self.broker.close()
        return await self.open()

    async def close(self) -> None:
        try:
            if hasattr(self, "broker"):
                await self.broker.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def refuse_publishes(self, queue: str) -> None:
        await asyncio.to_thread(_refuse, self.path, queue)

    async def run_until(
        self, condition: Callable[[], bool | Awaitable[bool]], *, within: float, step: float = 0.05
    ) -> None:
        """As ``Harness.run_until``, but time stops while the storage thread works."""
        clock = self.clock
        spent = 0.0
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if spent >= within:
                raise AssertionError(f"condition still false after {within}s on the sqlite backend")
            target = clock.monotonic() + step
            for _ in range(_MAX_TIMERS_PER_STEP):
                await self.quiesce()
                due = clock.next_deadline()
                if due is None or due > target:
                    break
                await clock.advance(max(0.0, due - clock.monotonic()))
            await clock.advance(max(0.0, target - clock.monotonic()))
            await self.quiesce()
            await asyncio.sleep(0.001)  # real time for other threads (a handler's to_thread)
            spent += step

    async def quiesce(self) -> None:
        """Let woken tasks run and the storage thread answer everything it was given."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STORAGE_BUDGET
        while True:
            await self.clock.settle()
            store = getattr(getattr(self, "broker", None), "_store", None)
            if store is None or store.in_flight == 0 or loop.time() > deadline:
                return
            await asyncio.sleep(0.0002)
