"""The idempotent consumer, on every backend: crashes and duplicates do not repeat effects.

Behaviours (research/messaging.md (e)): 1 (crash after the effect, before the
ack: the key committed with the effect makes the redelivery a duplicate),
2 (crash mid-handler: redelivered, processed, nothing lost), 4 (the same
message id delivered twice at once: exactly one handler run). A "crash" here
is the broker closing under a running handler (``harness.reopen()``): its
deliveries can no longer be settled and come back after their lease, as after
a process death. ``test_worker_crash.py`` does the same with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlink.messaging import MemoryInbox, MessageContext, SqliteInbox, Worker
from tests.messaging import worker_helpers
from tests.messaging.harness import Harness
from tests.messaging.worker_helpers import Gate, scaled, settled

workers = worker_helpers.workers  # the fixture
Workers = Callable[..., Worker]

LEASE_WAIT = 40.0  # fake seconds: past the 30 s default visibility timeout


def _app_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE shipments (message_id TEXT, attempt INTEGER)")
    conn.close()


def _rows(path: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT message_id, attempt FROM shipments"))
    finally:
        conn.close()


async def test_crash_after_the_effect_before_the_ack_counts_a_duplicate_and_the_effect_once(
    harness: Harness, workers: Workers, tmp_path: Path
) -> None:
    """Behaviour 1, in process: effect and key commit together via ``complete_in``."""
    q = harness.queue()
    db = tmp_path / "app.db"
    _app_db(db)
    committed = asyncio.Event()
    crash_window = asyncio.Event()  # never set: the process "dies" before the ack
    calls: list[str] = []

    def make_handler(inbox: SqliteInbox) -> Any:
        async def ship(body: Any, ctx: MessageContext) -> None:
            calls.append(ctx.message_id)

            def write() -> None:
                conn = sqlite3.connect(db, timeout=5)
                try:
                    with conn:
                        conn.execute(
                            "INSERT INTO shipments VALUES (?, ?)", (ctx.message_id, ctx.attempt)
                        )
                        inbox.complete_in(conn, ctx.handler, ctx.message_id)
                finally:
                    conn.close()

            await asyncio.to_thread(write)
            committed.set()
            await crash_window.wait()

        return ship

    first_inbox = SqliteInbox(db, clock=harness.clock)
    first = workers(inbox=first_inbox)
    first.add_handler(q, make_handler(first_inbox), name="ship")
    await first.start()
    message_id = await harness.broker.publish(q, {"order": 1})
    await harness.run_until(committed.is_set, within=5, step=0.01)
    await harness.reopen()  # the broker connection dies with the delivery unacked
    await first.stop(graceful_timeout=0)
    await first_inbox.close()

    second_inbox = SqliteInbox(db, clock=harness.clock)  # a new process
    second = workers(inbox=second_inbox)
    second.add_handler(q, make_handler(second_inbox), name="ship")
    await second.start()
    await harness.run_until(
        lambda: second.stats()[(q, "ship")].duplicates == 1,
        within=scaled(harness, LEASE_WAIT, 10),
        step=scaled(harness, 0.5, 0.05),
    )
    assert calls == [message_id]  # the handler did not run again
    assert _rows(db) == [(message_id, 1)]  # the effect happened once
    await harness.run_until(lambda: settled(harness, q), within=5)
    await second_inbox.close()


async def test_crash_mid_handler_redelivers_and_nothing_is_lost(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 2: the handler dies before its effect; the redelivery does the work."""
    q = harness.queue()
    gate = Gate()  # the first run never gets past it
    first = workers()
    first.add_handler(q, gate, name="h")
    await first.start()
    await harness.broker.publish(q, {"n": 1})
    await harness.run_until(lambda: len(gate.entered) == 1, within=5)
    await harness.reopen()
    await first.stop(graceful_timeout=0)
    assert gate.cancelled == [{"n": 1}]

    done: list[tuple[Any, int]] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        done.append((body, ctx.attempt))

    second = workers()
    second.add_handler(q, handle, name="h")
    await second.start()
    await harness.run_until(
        lambda: len(done) == 1,
        within=scaled(harness, LEASE_WAIT, 10),
        step=scaled(harness, 0.5, 0.05),
    )
    assert done == [({"n": 1}, 1)]  # a crash is not a failed attempt
    await harness.run_until(lambda: settled(harness, q), within=5)


async def test_the_same_message_delivered_to_two_workers_at_once_runs_once(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 4: eager claim; the second copy waits (released), then is a duplicate."""
    q = harness.queue()
    inbox = MemoryInbox(clock=harness.clock)
    gate = Gate()
    pair = [workers(inbox=inbox, name=f"w{i}") for i in (1, 2)]
    for worker in pair:
        worker.add_handler(q, gate, name="h", concurrency=2)
        await worker.start()

    def total(field: str) -> int:
        return sum(getattr(w.stats()[(q, "h")], field) for w in pair)

    await harness.broker.publish(q, {"n": 1}, message_id="same-id")
    await harness.broker.publish(q, {"n": 1}, message_id="same-id")
    await harness.run_until(lambda: len(gate.entered) == 1 and total("released") >= 1, within=5)
    await harness.run_until(lambda: total("received") >= 2, within=5)
    gate.opened.set()
    await harness.run_until(
        lambda: total("acked") == 1 and total("duplicates") == 1,
        within=scaled(harness, 10, 10),
    )
    assert gate.entered == [{"n": 1}]  # exactly one handler run
    await harness.run_until(lambda: settled(harness, q), within=5)
