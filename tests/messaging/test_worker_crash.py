"""Real worker processes on SQLite, killed with SIGKILL or stopped with SIGTERM.

Behaviour 1: killed after the handler committed its effect and inbox key
(one transaction), before the ack: the message is redelivered, the inbox says
done, the next worker acks it as a duplicate; the effect exists once.
Behaviour 2: killed inside the handler's transaction: nothing committed, the
dead worker's claim goes stale, the next worker does the work once.
Behaviour 15: SIGTERM mid-handler: the handler finishes and is acked, the
next message is not started, the process exits 0.

Each test starts one process (``tests/messaging/crash_worker.py``), waits for
its marker file with a deadline, and kills only that process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from interlink.messaging import MessageContext, SqliteBroker, SqliteInbox, Worker, open_broker
from tests.messaging import crash_worker
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "orders"
DEADLINE = 30.0  # seconds; each wait below normally takes well under 2


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.broker_url = f"sqlite:///{tmp_path}/broker.db?visibility_timeout=1s&poll_interval=20ms"
        self.app_db = tmp_path / "app.db"
        self.marker = tmp_path / "marker"
        conn = sqlite3.connect(self.app_db)
        with conn:
            conn.execute("CREATE TABLE shipments (message_id TEXT, order_id INTEGER, pid INTEGER)")
        conn.close()

    def shipments(self) -> list[tuple[str, int]]:
        conn = sqlite3.connect(self.app_db, timeout=10)
        try:
            return list(conn.execute("SELECT message_id, order_id FROM shipments"))
        finally:
            conn.close()

    @contextmanager
    def process(self, mode: str) -> Iterator[subprocess.Popen[str]]:
        """Start the worker process; on the way out kill it if it still runs."""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.messaging.crash_worker",
                mode,
                self.broker_url,
                str(self.app_db),
                QUEUE,
                str(self.marker),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=DEADLINE)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


async def until(condition: Callable[[], bool], *, what: str, proc: Any = None) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail after ``DEADLINE`` seconds.

    With ``proc``, fail at once if that process exits first, with its stderr.
    """

    def holds_while_alive() -> bool:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the worker process exited early ({proc.returncode}): {err}")
        return False

    await eventually(holds_while_alive, what, DEADLINE, step=0.02)


@pytest.fixture
async def broker(setup: Setup) -> AsyncIterator[SqliteBroker]:
    opened = await open_broker(setup.broker_url)
    assert isinstance(opened, SqliteBroker)
    yield opened
    await opened.close()


async def restarted_worker(setup: Setup, broker: SqliteBroker) -> tuple[Worker, list[str]]:
    """The next worker process, played by this one: same handler, same inbox file."""
    inbox = SqliteInbox(setup.app_db)
    worker = Worker(broker, inbox=inbox, claim_lease=crash_worker.CLAIM_LEASE)
    calls: list[str] = []

    @worker.handler(QUEUE, name=crash_worker.HANDLER)
    async def handle(order: Any, ctx: MessageContext) -> None:
        calls.append(ctx.message_id)
        await asyncio.to_thread(
            crash_worker.ship, setup.app_db, inbox, ctx, order, "", setup.marker
        )

    await worker.start()
    return worker, calls


async def test_sigkill_after_the_commit_before_the_ack_is_a_duplicate_not_a_second_effect(
    setup: Setup, broker: SqliteBroker
) -> None:
    message_id = await broker.publish(QUEUE, {"order": 1})
    with setup.process("after-commit") as proc:
        await until(setup.marker.exists, what="the handler committed", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
    assert setup.shipments() == [(message_id, 1)]
    worker, calls = await restarted_worker(setup, broker)
    try:
        await until(
            lambda: worker.stats()[(QUEUE, "ship")].duplicates == 1, what="redelivered duplicate"
        )
    finally:
        await worker.stop()
        assert worker.inbox is not None
        await worker.inbox.close()
    assert calls == []  # the handler did not run again
    assert setup.shipments() == [(message_id, 1)]  # the effect exists once
    stats = await broker.stats(QUEUE)
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 0)


async def test_sigkill_inside_the_transaction_loses_nothing_and_runs_once(
    setup: Setup, broker: SqliteBroker
) -> None:
    message_id = await broker.publish(QUEUE, {"order": 2})
    with setup.process("before-commit") as proc:
        await until(setup.marker.exists, what="the handler is in its transaction", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
    assert setup.shipments() == []  # nothing was committed
    worker, calls = await restarted_worker(setup, broker)
    try:
        await until(lambda: worker.stats()[(QUEUE, "ship")].acked == 1, what="handled again")
    finally:
        await worker.stop()
        assert worker.inbox is not None
        await worker.inbox.close()
    assert calls == [message_id]
    assert setup.shipments() == [(message_id, 2)]


async def test_sigterm_lets_the_running_handler_finish_and_starts_nothing_new(
    setup: Setup, broker: SqliteBroker
) -> None:
    first = await broker.publish(QUEUE, {"order": 3})
    await broker.publish(QUEUE, {"order": 4})
    with setup.process("graceful") as proc:
        await until(setup.marker.exists, what="the handler started", proc=proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"acked": 1, "released": 0}
    assert setup.shipments() == [(first, 3)]
    stats = await broker.stats(QUEUE)
    assert (stats.ready, stats.in_flight) == (1, 0)  # the second one waits for the next worker
