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

The thread keeps the event loop and the disk busy at the same time. When a
commit returns and operations are waiting, it first runs their statements
(the loop is idle then: the two do not take turns at the GIL mid-batch),
then answers the committed batch, then COMMITs: the loop wakes those callers,
and they publish again, while the fsync runs. That needs a next transaction
to overlap with, so a batch of ``_SPLIT`` operations or more that arrives
when nothing is under way runs as two transactions; the first half's callers
come back while the second half syncs, and from then on the halves
alternate, each syncing while the other's callers run. That is two fsyncs
per 100 messages instead of one, but the loop's ~0.5-1 ms per 100 publishes
no longer waits for the disk, nor the disk for it: with 100 publishers on a
2-core machine, publishing measured 13-22% faster than one transaction per
batch when the cores were free, and about even when other processes kept
them busy. Executing the statements before answering is what makes it pay:
answering first, the thread's statements and the loop's work took turns at
the GIL, and that measured slower than not splitting at all. The answer
waits for those statements only, never for another process's write lock
(``begin``).

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
import contextlib
import itertools
import logging
import os
import queue as _queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final

from interlink.messaging import _sqlite_checkpoint as checkpoints
from interlink.messaging._sqlite_schema import INSERT_MESSAGE, open_database, path_error, rollback

__all__ = ["LeaseLostError", "Store", "begin", "is_busy"]

_log = logging.getLogger("interlink.messaging.sqlite")

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

# Publishes go in as multi-row INSERTs of these many rows (largest first, then the rest:
# 25 rows are 16 + 8 + 1), not one ``executemany`` step per row: fewer statement steps,
# resets and GIL releases per row. Measured with callgrind on the receiver's publish path:
# the writer thread ran ~20% fewer instructions per message (32k -> 26k); the context
# switches per message did not change measurably. The sizes are few and fixed so their
# statements stay in the connection's statement cache (a new batch size must not compile a
# new statement). Same rows, same order, same transaction; a failure still falls back to
# ``_slow``, one operation per SAVEPOINT.
_INSERT_CHUNKS: Final = (64, 32, 16, 8, 4, 2, 1)
_INTO, _, _ROW = INSERT_MESSAGE.partition(" VALUES ")
_INSERTS: Final = {n: f"{_INTO} VALUES {', '.join([_ROW] * n)}" for n in _INSERT_CHUNKS}
_chain = itertools.chain.from_iterable

_MAX_BATCH = 2_000
_SPLIT = 64  # a batch this big runs as two transactions when nothing else is under way
_CATCH_UP_AFTER = 32  # commits past the WAL limit after which the writer checkpoints anyway

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
        self._busy_pragma = f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}"
        self._full_path = os.path.abspath(path)  # its -wal file, whatever the cwd becomes
        self._checkpointer: checkpoints.Checkpointer | None = None
        self._done: tuple[list[Op], list[Any]] | None = None  # committed, not yet answered
        self._nudged = 0  # ``commits`` when the checkpointer was last nudged
        self._over: int | None = None  # ``commits`` when the WAL was found past its limit
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
        carry: list[Op] = []  # taken from the queue for the next transaction
        while True:
            batch, carry = carry, []
            if not batch:
                try:
                    batch = ops.get_nowait()
                except _queue.Empty:
                    self._answer_done()  # nothing to run meanwhile: answer now
                    batch = ops.get()
            while len(batch) < _MAX_BATCH:
                try:
                    batch += ops.get_nowait()
                except _queue.Empty:
                    break
            closing = [op for op in batch if op[0] == _CLOSE]
            if closing:
                batch = [op for op in batch if op[0] != _CLOSE]
            elif self._done is None and len(batch) >= _SPLIT and self._conn is not None:
                half = len(batch) // 2  # two transactions, so the pipeline fills (module docs)
                batch, carry = batch[:half], batch[half:]
            try:
                results = self._run(batch) if batch else []
            except BaseException as exc:  # pragma: no cover - a bug here must not hang callers
                results = [_Failed(exc)] * len(batch)
            self._answer_done()  # if ``_run`` did not (it answers before its COMMIT)
            if closing or self._conn is None:  # closing, or the open failed
                if closing:  # only ever after a successful open (``stop``)
                    self._close()
                    batch += closing
                    results += [None] * len(closing)
                self._exited = True
                self._answer(batch, results)
                return
            self._done = (batch, results)
            self._watch_wal()

    def _answer(self, batch: list[Op], results: list[Any]) -> None:
        # RuntimeError: the event loop is gone, so nobody waits.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._resolve, batch, results)

    def _answer_done(self) -> None:
        done = self._done
        if done is not None:
            self._done = None
            self._answer(*done)

    def _watch_wal(self) -> None:
        """Nudge the checkpointer after a commit; keep the WAL near its limit (``_sqlite_checkpoint``)."""
        checkpointer = self._checkpointer
        assert checkpointer is not None
        if self.commits == self._nudged:
            return
        self._nudged = self.commits
        checkpointer.nudge(self.commits)
        if self._over is None:
            if checkpoints.wal_size(self._full_path) > checkpoints.WAL_LIMIT:
                self._over = self.commits
                checkpointer.hurry()
        elif checkpointer.seen >= self._over or self.commits - self._over >= _CATCH_UP_AFTER:
            self._over = None
            self._answer_done()  # answered before the checkpoint, not after it
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Checkpoint inline: the next transaction starts the WAL over (unless a reader holds it)."""
        assert self._conn is not None
        try:
            checkpoints.checkpoint(self._conn)
        except sqlite3.Error as exc:
            _log.warning("checkpoint of %s failed: %s", self.path, exc)

    def _close(self) -> None:
        """Stop the checkpointer, checkpoint one last time, close the connection."""
        assert self._conn is not None
        assert self._checkpointer is not None
        self._checkpointer.stop()
        self._checkpoint()
        self._conn.close()
        self._conn = None

    def _run(self, batch: list[Op]) -> list[Any]:
        conn = self._conn
        if conn is None:  # the open: the only operation before the connection exists
            return [self._call_each(op, 0.0) for op in batch]
        now = self._wall()
        try:
            begin(conn, self._busy_pragma, self._answer_done if self._done else None)
        except sqlite3.Error as exc:
            return [_Failed(exc)] * len(batch)
        try:
            results = self._fast(conn, batch, now)
        except Exception:
            rollback(conn)
            self._answer_done()
            return self._slow(conn, batch, now)
        self._answer_done()  # the last commit's callers run on the loop while this one syncs
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # pragma: no cover - an I/O error at the very end
            rollback(conn)
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
            _insert(conn, publishes)
        acks = [op[1] for op in batch if op[0] == ACK]
        if acks and conn.executemany(_ACK, acks).rowcount != len(acks):
            raise _Mismatch
        others = [i for i, op in enumerate(batch) if op[0] >= RENEW]
        others.sort(key=lambda i: batch[i][0])  # renewals first; stable: arrival order
        for i in others:
            fn, fn_args = batch[i][1]
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
            rollback(conn)
            return [_Failed(exc)] * len(batch)
        self.commits += 1
        return results


def _insert(conn: sqlite3.Connection, rows: list[Any]) -> None:
    """Insert ``rows`` (``INSERT_MESSAGE``'s parameters) in order, in few statements (``_INSERTS``)."""
    at, left = 0, len(rows)
    for size in _INSERT_CHUNKS:
        statement = _INSERTS[size]
        while left >= size:
            if size == 1:
                conn.execute(statement, rows[at])
            else:
                conn.execute(statement, tuple(_chain(rows[at : at + size])))
            at += size
            left -= size


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


def begin(conn: sqlite3.Connection, busy_pragma: str, answer: Callable[[], None] | None) -> None:
    """``BEGIN IMMEDIATE``; with callers waiting on ``answer``, no lock wait before it.

    The writer answers the last commit's callers once the next transaction's
    statements ran. When another process holds the write lock, waiting for it
    (up to ``busy_timeout``, ``busy_pragma`` sets it back) must not keep them
    waiting too: the first try does not wait, and on "locked" they are
    answered before the wait.
    """
    if answer is not None:
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.Error as exc:
            if not is_busy(exc):
                raise
        finally:
            conn.execute(busy_pragma)
        answer()
    conn.execute("BEGIN IMMEDIATE")


def _open(_conn: None, _now: float, store: Store) -> None:
    """Open the file (``open_database``) and start its checkpointer."""
    conn, level = open_database(
        store.path,
        synchronous=store._synchronous,
        busy_timeout=store._busy_timeout,
        wal_limit=checkpoints.WAL_LIMIT,
    )
    try:
        second = checkpoints.connect(store.path, store._synchronous, store._busy_timeout)
    except sqlite3.Error as exc:  # pragma: no cover - the same file opened a moment ago
        conn.close()
        raise path_error(store.path, exc) from exc
    store.synchronous = level
    store.journal_mode = "wal"
    store._conn = conn
    store._checkpointer = checkpoints.Checkpointer(
        second, store.path, idle=checkpoints.IDLE, max_delay=checkpoints.MAX_DELAY
    )
    store._checkpointer.start()
