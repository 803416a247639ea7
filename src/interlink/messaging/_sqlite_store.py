"""The storage under ``SqliteBroker``: one thread, one connection, one commit per batch.

Hand-written because no library fits. aiosqlite hands every statement to its
thread and back (130-185 us a hop on the machine we measured), so a commit
per message runs at ~1.1k/s; calling ``sqlite3`` with ``synchronous=FULL`` on
the event loop blocks the loop for the whole fsync. Here the loop collects
the operations submitted during one pass and hands them over together; the
thread takes *everything* handed over, runs it in one ``BEGIN IMMEDIATE``
transaction, commits once and wakes the loop once for the whole batch (group
commit). The more callers wait, the bigger the batch, and the cheaper each
durable message becomes: the callers one commit wakes up resubmit in the
same pass of the loop, so they share the next commit.

One failing operation must not fail its batch-mates: the batch first runs
straight through (publishes and acks as ``executemany``); if anything raises,
the transaction is rolled back and the batch re-run one operation per
SAVEPOINT, so each operation gets its own outcome. Operations therefore touch
nothing but the database until they return.

Times are the broker clock's ``wall()`` seconds: the thread reads it once per
batch (``now``), so a ``FakeClock`` drives leases and delays in tests.
"""

from __future__ import annotations

import asyncio
import os
import queue as _queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final

from interlink.core.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "LeaseLostError", "Store", "is_busy"]

SCHEMA_VERSION: Final = 1
"""``PRAGMA user_version`` of the file layout this code writes (migrations key on it)."""

# Every message is one row of ``messages``. ``available_at`` is when it may be
# leased next: its publish/retry time plus delay while it waits, and the lease
# expiry while a consumer holds it (``lease_owner`` set), so an expired lease
# is simply "available" again and one index serves leasing, delays and expiry.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT,
    content_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    published_at REAL NOT NULL,
    available_at REAL NOT NULL,
    lease_owner TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, available_at, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    source_queue TEXT NOT NULL,
    dead_letter_queue TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT,
    content_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    published_at REAL NOT NULL,
    error_type TEXT NOT NULL,
    error_message TEXT NOT NULL,
    traceback TEXT NOT NULL,
    handler TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at REAL NOT NULL,
    last_failed_at REAL NOT NULL,
    reason TEXT NOT NULL,
    dead_lettered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_source ON dead_letters (source_queue, seq);
CREATE INDEX IF NOT EXISTS dead_letters_dlq ON dead_letters (dead_letter_queue, seq);
"""

INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, queue, body, headers, content_type, attempt, delivery_count,"
    " published_at, available_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)"
)
_ACK = "DELETE FROM messages WHERE seq = ? AND lease_owner = ?"

# Operation kinds. Within a batch, publishes run first, then acks, then lease
# renewals, then everything else in arrival order: the callers of one batch
# all wait at once, so any order is one they could have seen, and this one
# lets a lease in the batch see what the batch published, acked and renewed.
PUBLISH: Final = 0
ACK: Final = 1
RENEW: Final = 2
CALL: Final = 3
_CLOSE: Final = 4

_MAX_BATCH = 2_000

Op = tuple[int, Any, "asyncio.Future[Any]"]
"""(kind, arguments, the caller's future)."""


class LeaseLostError(Exception):
    """The delivery's lease is gone: it expired and was taken again, or the row was settled."""


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Aborted(Exception):
    """An operation's failure ended the whole transaction: every operation in it failed."""


class _Mismatch(Exception):
    """An ``executemany`` touched fewer rows than asked: redo the batch op by op."""


class Store:
    """The writer thread and its connection; ``submit`` hands it an operation.

    ``commits`` counts committed transactions (group commit makes it far
    smaller than the number of operations); ``in_flight`` the operations
    submitted and not answered yet; ``synchronous`` and
    ``journal_mode`` are read back from SQLite once the file is open.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str,
        busy_timeout: float,
        wall: Callable[[], float],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.path = path
        self.commits = 0
        self.in_flight = 0  # operations submitted and not yet answered
        self.synchronous = ""
        self.journal_mode = ""
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._wall = wall
        self._loop = loop
        self._ops: _queue.SimpleQueue[list[Op]] = _queue.SimpleQueue()
        self._pending: list[Op] = []
        self._conn: sqlite3.Connection | None = None
        self._exited = False  # set by the thread before it resolves its last batch
        self._thread = threading.Thread(
            target=self._main, name=f"interlink-sqlite:{os.path.basename(path)}", daemon=True
        )

    # -- the event loop's side --------------------------------------------
    def start(self) -> asyncio.Future[None]:
        """Start the thread; the future resolves once the file is open and the schema ready."""
        opened: asyncio.Future[None] = self._loop.create_future()
        self.in_flight += 1
        self._ops.put([(CALL, (_open, (self,)), opened)])
        self._thread.start()
        return opened

    def submit(self, kind: int, args: Any) -> asyncio.Future[Any]:
        """Queue an operation; its future resolves on the loop once its batch committed.

        Operations submitted during one pass of the event loop travel to the
        thread together (one hand-off): the callers a commit woke up all
        resubmit in the same pass, so they land in the same next transaction.
        """
        fut = self._loop.create_future()
        self.in_flight += 1
        pending = self._pending
        pending.append((kind, args, fut))
        if len(pending) == 1:
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._ops.put(self._pending)
        self._pending = []

    def stop(self) -> asyncio.Future[None]:
        """Run what is queued, close the connection and end the thread (after the future)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        if self._exited or not self._thread.is_alive():
            fut.set_result(None)
        else:
            self._flush()  # what is pending runs before the close
            self.in_flight += 1
            self._ops.put([(_CLOSE, None, fut)])
        return fut

    def join(self) -> None:
        """Wait for the thread to end (it does right after ``stop``'s future resolves)."""
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _resolve(self, batch: list[Op], results: list[Any]) -> None:
        self.in_flight -= len(batch)
        for (_, _, fut), result in zip(batch, results, strict=True):
            if fut.done():  # the caller gave up (cancelled); the work stands
                continue
            if type(result) is _Failed:
                fut.set_exception(result.exc)
            else:
                fut.set_result(result)

    # -- the thread's side ------------------------------------------------
    def _main(self) -> None:
        ops = self._ops
        running = True
        while running:
            batch = ops.get()
            while len(batch) < _MAX_BATCH:
                try:
                    batch += ops.get_nowait()
                except _queue.Empty:
                    break
            closing = [op for op in batch if op[0] == _CLOSE]
            if closing:
                batch = [op for op in batch if op[0] != _CLOSE]
            try:
                results = self._run(batch) if batch else []
            except BaseException as exc:  # pragma: no cover - a bug here must not hang callers
                results = [_Failed(exc)] * len(batch)
            if self._conn is None and not closing:
                running = False  # the open failed: nothing to keep the thread for
            if closing:  # only ever after a successful open (``stop``)
                assert self._conn is not None
                self._conn.close()
                self._conn = None
                batch += closing
                results += [None] * len(closing)
                running = False
            if not running:
                self._exited = True
            try:
                self._loop.call_soon_threadsafe(self._resolve, batch, results)
            except RuntimeError:  # pragma: no cover - the event loop is gone: nobody waits
                return

    def _run(self, batch: list[Op]) -> list[Any]:
        conn = self._conn
        if conn is None:  # the open: the only operation before the connection exists
            return [self._call_each(op, 0.0) for op in batch]
        now = self._wall()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [_Failed(exc)] * len(batch)
        try:
            results = self._fast(conn, batch, now)
        except Exception:
            _rollback(conn)
            return self._slow(conn, batch, now)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # pragma: no cover - an I/O error at the very end
            _rollback(conn)
            return [_Failed(exc)] * len(batch)
        self.commits += 1
        return results

    def _call_each(self, op: Op, now: float) -> Any:
        try:
            return _run_one(self._conn, op, now)
        except Exception as exc:
            return _Failed(exc)

    @staticmethod
    def _order(batch: list[Op]) -> list[int]:
        return sorted(range(len(batch)), key=lambda i: batch[i][0])  # stable: arrival order

    def _fast(self, conn: sqlite3.Connection, batch: list[Op], now: float) -> list[Any]:
        results: list[Any] = [None] * len(batch)
        publishes = [op[1] for op in batch if op[0] == PUBLISH]
        if publishes:
            conn.executemany(INSERT_MESSAGE, publishes)
        acks = [op[1] for op in batch if op[0] == ACK]
        if acks and conn.executemany(_ACK, acks).rowcount != len(acks):
            raise _Mismatch
        for i in self._order(batch):
            kind, args, _ = batch[i]
            if kind >= RENEW:
                fn, fn_args = args
                results[i] = fn(conn, now, *fn_args)
        return results

    def _slow(self, conn: sqlite3.Connection, batch: list[Op], now: float) -> list[Any]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # pragma: no cover - another process got the lock in between
            return [_Failed(exc)] * len(batch)
        results: list[Any] = [None] * len(batch)
        try:
            for i in self._order(batch):
                conn.execute("SAVEPOINT op")
                try:
                    results[i] = _run_one(conn, batch[i], now)
                except Exception as exc:
                    if not conn.in_transaction:  # it took the whole transaction down
                        raise _Aborted from exc
                    results[i] = _Failed(exc)
                    conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except _Aborted as aborted:  # disk full, I/O error: SQLite rolled everything back
            return [_Failed(aborted.__cause__ or aborted)] * len(batch)
        except sqlite3.Error as exc:  # pragma: no cover - COMMIT failed (I/O error)
            _rollback(conn)
            return [_Failed(exc)] * len(batch)
        self.commits += 1
        return results


def _run_one(conn: sqlite3.Connection | None, op: Op, now: float) -> Any:
    kind, args, _ = op
    if kind == PUBLISH:
        assert conn is not None
        conn.execute(INSERT_MESSAGE, args)
        return None
    if kind == ACK:
        assert conn is not None
        if conn.execute(_ACK, args).rowcount != 1:
            raise LeaseLostError("its lease expired and it was delivered again, or it was settled")
        return None
    fn, fn_args = args
    return fn(conn, now, *fn_args)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": another writer held it too long."""
    return str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_BUSY")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _open(_conn: None, _now: float, store: Store) -> None:
    """Open the file in WAL mode, apply the pragmas, create or check the schema."""
    path = store.path
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        raise ConfigError(
            f"cannot open the SQLite broker database {path!r}: "
            f"the directory {folder!r} does not exist"
        )
    if os.path.isdir(full):
        raise ConfigError(f"cannot open the SQLite broker database {path!r}: it is a directory")
    # connect() opens lazily: a bad file shows at the first statement, below.
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(store._busy_timeout * 1000)}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode != "wal":  # pragma: no cover - only on filesystems without shared memory
            raise ConfigError(
                f"SQLite broker database {path!r} cannot use WAL journaling "
                f"(got {mode!r}); put it on a local filesystem"
            )
        conn.execute(f"PRAGMA synchronous = {store._synchronous}")
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
        store.synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[level]
        store.journal_mode = mode
        _ensure_schema(conn, path)
    except ConfigError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise _path_error(path, exc) from exc
    store._conn = conn


def _ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"SQLite broker database {path!r} has schema version {version}, newer than this "
                f"interlink understands ({SCHEMA_VERSION}): upgrade interlink, or check that the "
                "file is an interlink broker database"
            )
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not {"messages", "dead_letters"} <= tables:
                raise ConfigError(
                    f"{path!r} is an SQLite database of another application (user_version "
                    f"{version}, no interlink tables); give the broker a file of its own"
                )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _path_error(path: str, exc: sqlite3.Error) -> ConfigError:
    return ConfigError(
        f"cannot open the SQLite broker database {path!r} ({os.path.abspath(path)}): {exc}; "
        "the directory must exist and be writable, and the file must be an SQLite database"
    )
