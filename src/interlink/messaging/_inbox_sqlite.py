"""``SqliteInbox``: the inbox as a table in a SQLite file, committed with the user's effect.

See ``_inbox`` for the semantics every inbox keeps. This one adds
``complete_in``: the key is marked done on the user's own sqlite3 connection,
in the transaction that writes the effect, so both commit or neither does.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError, MessagingError
from interlink.messaging._inbox import (
    _PURGE_EVERY,
    _TABLE,
    DEFAULT_RETENTION,
    ClaimLostError,
    ClaimResult,
)

__all__ = ["SqliteInbox"]

T = TypeVar("T")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    handler    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('claimed', 'done')),
    token      TEXT,
    expires_at REAL NOT NULL DEFAULT 0,
    done_at    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (handler, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {_TABLE}_age ON {_TABLE} (state, done_at);
"""

_SYNCHRONOUS = ("NORMAL", "FULL")


class SqliteInbox:
    """An inbox in a SQLite file (table ``interlink_inbox``), shared by every process using it.

    sqlite3 runs in one private thread (no thread hop per statement beyond
    that one), in WAL mode. ``synchronous`` is ``"NORMAL"`` by default: a claim
    or done key lost to a power cut is harmless, because the message's ack is
    only sent after ``complete`` returns and the broker keeps its own
    durability; use ``"FULL"`` if you want the key itself to survive power
    loss. A claim older than its lease is taken over by the next caller.

    **Effect and key in one transaction.** Put the inbox in your application's
    own SQLite database and call ``complete_in`` in the transaction that writes
    the effect. The effect and the "done" key then commit together: a crash
    after the commit and before the ack redelivers the message, the inbox says
    ``"done"``, and the worker acks it and counts a duplicate without calling
    the handler (the effect happens once)::

        inbox = SqliteInbox("app.db")
        worker = Worker(broker, inbox=inbox)

        @worker.handler("orders")
        async def handle(order: dict, ctx: MessageContext) -> None:
            def write() -> None:
                with sqlite3.connect("app.db", timeout=5) as conn:  # commits on exit
                    conn.execute("INSERT INTO shipments(order_id) VALUES (?)", (order["id"],))
                    inbox.complete_in(conn, ctx.handler, ctx.message_id)
            await asyncio.to_thread(write)

    If the claim was lost meanwhile (this worker stalled past the lease and
    another took over), ``complete_in`` raises ``ClaimLostError`` and the
    ``with`` block rolls the effect back; the message is then retried and
    found done.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        retention: float | str = DEFAULT_RETENTION,
        synchronous: str = "NORMAL",
        busy_timeout: float | str = 5.0,
    ) -> None:
        self.path = Path(path)
        self.clock = clock or SYSTEM_CLOCK
        self.retention = parse_duration(retention, allow_zero=False)
        self.busy_timeout = parse_duration(busy_timeout)
        upper = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if upper not in _SYNCHRONOUS:
            raise ConfigError(
                f"SqliteInbox synchronous must be NORMAL or FULL, got {synchronous!r}"
            )
        self.synchronous = str(upper)
        self._held: dict[tuple[str, str], str] = {}
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._next_purge = 0.0

    # -- plumbing -------------------------------------------------------------
    async def open(self) -> None:
        """Open the file and create the table (the first call does it; idempotent)."""
        async with self._open_lock:
            if self._closed:
                raise MessagingError(f"SqliteInbox({str(self.path)!r}) is closed")
            if self._conn is not None:
                return
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="interlink-inbox")
            try:
                self._conn = await self._in_thread(self._connect)
            except BaseException:
                self._executor.shutdown(wait=False)
                self._executor = None
                raise

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the inbox database {str(self.path)!r}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise ConfigError(f"cannot open the inbox database {str(self.path)!r}: {exc}") from exc
        return conn

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            await self.open()
        conn = self._conn
        assert conn is not None
        return await self._in_thread(lambda: fn(conn))

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- the protocol ----------------------------------------------------------
    async def claim(self, handler: str, message_id: str, *, lease: float) -> ClaimResult:
        """See ``Inbox.claim``."""
        now = self.clock.wall()
        token = uuid.uuid4().hex

        def run(conn: sqlite3.Connection) -> ClaimResult:
            def body() -> ClaimResult:
                row = conn.execute(
                    f"SELECT state, expires_at FROM {_TABLE} WHERE handler = ? AND message_id = ?",
                    (handler, message_id),
                ).fetchone()
                if row is not None and row[0] == "done":
                    return "done"
                if row is not None and row[1] > now:
                    return "busy"
                conn.execute(
                    f"INSERT OR REPLACE INTO {_TABLE} (handler, message_id, state, token, "
                    "expires_at, done_at) VALUES (?, ?, 'claimed', ?, ?, 0)",
                    (handler, message_id, token, now + lease),
                )
                return "claimed"

            return self._transaction(conn, body)

        result = await self._run(run)
        if result == "claimed":
            self._held[(handler, message_id)] = token
        return result

    async def extend(self, handler: str, message_id: str, *, lease: float) -> bool:
        """See ``Inbox.extend``."""
        token = self._held.get((handler, message_id))
        if token is None:
            return False
        until = self.clock.wall() + lease

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE {_TABLE} SET expires_at = ? WHERE handler = ? AND message_id = ? "
                "AND state = 'claimed' AND token = ?",
                (until, handler, message_id, token),
            )
            return cur.rowcount == 1

        return await self._run(run)

    async def complete(self, handler: str, message_id: str) -> None:
        """See ``Inbox.complete``; also forgets done keys older than ``retention`` now and then."""
        self._held.pop((handler, message_id), None)
        now = self.clock.wall()
        purge = now >= self._next_purge
        if purge:
            self._next_purge = now + min(_PURGE_EVERY, self.retention)
        horizon = now - self.retention

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO {_TABLE} (handler, message_id, state, token, expires_at, done_at) "
                "VALUES (?, ?, 'done', NULL, 0, ?) ON CONFLICT (handler, message_id) DO UPDATE "
                "SET state = 'done', token = NULL, expires_at = 0, "
                "done_at = CASE WHEN state = 'done' THEN done_at ELSE excluded.done_at END",
                (handler, message_id, now),
            )
            if purge:
                conn.execute(
                    f"DELETE FROM {_TABLE} WHERE (state = 'done' AND done_at < ?) "
                    "OR (state = 'claimed' AND expires_at < ?)",
                    (horizon, horizon),
                )

        await self._run(run)

    async def release(self, handler: str, message_id: str) -> None:
        """See ``Inbox.release``."""
        token = self._held.pop((handler, message_id), None)
        if token is None:
            return

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"DELETE FROM {_TABLE} WHERE handler = ? AND message_id = ? "
                "AND state = 'claimed' AND token = ?",
                (handler, message_id, token),
            )

        await self._run(run)

    async def ping(self) -> float:
        """Seconds for a statement to go through the inbox's thread and back (health checks).

        Opens the file on first use; raises ``MessagingError`` once closed and
        ``ConfigError`` when the file cannot be opened.
        """
        started = time.perf_counter()
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        return time.perf_counter() - started

    async def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        async with self._open_lock:
            self._closed = True
            conn, self._conn = self._conn, None
            executor, self._executor = self._executor, None
            if executor is None or conn is None:  # never opened (or a failed open cleaned up)
                return
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=False)

    # -- same transaction --------------------------------------------------------
    def complete_in(self, conn: sqlite3.Connection, handler: str, message_id: str) -> None:
        """Mark the key done on *your* connection, inside *your* transaction.

        ``conn`` must be a ``sqlite3`` connection to the same database file as
        this inbox, with your effect's writes pending in the same transaction.
        Nothing is committed here: your commit makes effect and key durable
        together, your rollback drops both. Raises ``ClaimLostError`` when this
        inbox does not hold the claim (lease expired and taken over), and
        ``ConfigError`` for a connection to another file or one that would
        commit this statement alone (autocommit outside a transaction).
        """
        token = self._held.get((handler, message_id))
        if token is None:
            raise ClaimLostError(
                f"this inbox holds no claim on {handler}:{message_id}; "
                "complete_in must run inside the handler the worker called for it"
            )
        self._check_connection(conn)
        cur = conn.execute(
            f"UPDATE {_TABLE} SET state = 'done', token = NULL, expires_at = 0, done_at = ? "
            "WHERE handler = ? AND message_id = ? AND state = 'claimed' AND token = ?",
            (self.clock.wall(), handler, message_id, token),
        )
        if cur.rowcount != 1:
            raise ClaimLostError(
                f"the claim on {handler}:{message_id} was taken over by another worker after "
                "its lease expired; roll back this transaction (the message will be retried)"
            )

    def _check_connection(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("PRAGMA database_list").fetchone()
        theirs = Path(row[2]).resolve() if row and row[2] else None
        if theirs != self.path.resolve():
            raise ConfigError(
                f"complete_in needs a connection to the inbox's database {str(self.path)!r}, "
                f"got one to {str(theirs) if theirs else 'an in-memory database'!r}"
            )
        autocommit = getattr(conn, "autocommit", -1)  # Python 3.12+
        implicit = conn.isolation_level is not None and autocommit is not True
        if not (conn.in_transaction or implicit):
            raise ConfigError(
                "complete_in must run inside your transaction: this connection is in autocommit "
                "mode and no transaction is open (execute 'BEGIN' first)"
            )

    def __repr__(self) -> str:
        return f"SqliteInbox({str(self.path)!r})"
