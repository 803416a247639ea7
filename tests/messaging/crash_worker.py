"""A worker process for ``test_worker_crash.py``: killed or stopped by the test at a marked point.

Run as ``python -m tests.messaging.crash_worker MODE BROKER_URL APP_DB QUEUE MARKER``.
The handler ships an order: it writes a row into ``shipments`` of APP_DB and
marks the inbox key done in the same transaction (``SqliteInbox.complete_in``).
It touches MARKER when it reaches the point the test waits for:

- ``after-commit``: effect and key committed, the ack not sent; then it hangs
  (the test SIGKILLs it: behaviour 1);
- ``before-commit``: inside the transaction, nothing committed; then it hangs
  (the test SIGKILLs it: behaviour 2);
- ``graceful``: the handler has started; it finishes 0.5 s later. The test
  sends SIGTERM meanwhile; the process prints its worker's stats as JSON and
  exits 0 (behaviour 15).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from interlink.messaging import MessageContext, SqliteInbox, Worker, open_broker

HANDLER = "ship"
CLAIM_LEASE = 1.0  # short, so the test does not wait long for a dead worker's claim


def ship(
    app_db: Path, inbox: SqliteInbox, ctx: MessageContext, order: Any, mode: str, marker: Path
) -> None:
    """The effect: one row and the inbox key, in one transaction."""
    conn = sqlite3.connect(app_db, timeout=10)
    try:
        with conn:
            conn.execute(
                "INSERT INTO shipments (message_id, order_id, pid) VALUES (?, ?, ?)",
                (ctx.message_id, order["order"], os.getpid()),
            )
            inbox.complete_in(conn, ctx.handler, ctx.message_id)
            if mode == "before-commit":
                marker.touch()
                time.sleep(120)  # killed here, inside the transaction
    finally:
        conn.close()


async def main(mode: str, broker_url: str, app_db: Path, queue: str, marker: Path) -> int:
    broker = await open_broker(broker_url)
    inbox = SqliteInbox(app_db)
    worker = Worker(broker, inbox=inbox, claim_lease=CLAIM_LEASE, graceful_timeout=10)

    @worker.handler(queue, name=HANDLER)
    async def handle(order: Any, ctx: MessageContext) -> None:
        if mode == "graceful":
            await asyncio.to_thread(marker.touch)
            await asyncio.sleep(0.5)
        await asyncio.to_thread(ship, app_db, inbox, ctx, order, mode, marker)
        if mode == "after-commit":
            await asyncio.to_thread(marker.touch)
            await asyncio.sleep(120)  # killed here: committed, not acked

    await worker.run(handle_signals=True)
    await inbox.close()
    await broker.close()
    stats = worker.stats()[(queue, HANDLER)]
    print(json.dumps({"acked": stats.acked, "released": stats.released}), flush=True)
    return 0


if __name__ == "__main__":
    mode_arg, url_arg, db_arg, queue_arg, marker_arg = sys.argv[1:6]
    sys.exit(asyncio.run(main(mode_arg, url_arg, Path(db_arg), queue_arg, Path(marker_arg))))
