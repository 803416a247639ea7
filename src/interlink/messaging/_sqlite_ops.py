"""The SQL of the SQLite broker's operations, run on its storage thread.

Each function takes ``(conn, now, *args)`` and runs inside the batch's
transaction (see ``_sqlite_store``): it touches nothing but the database, and
raises to make its own changes roll back (``LeaseLostError`` when the lease it
settles is gone).

A lease is ``lease_owner`` (a token unique to one fetch) plus ``available_at``
moved to the lease expiry. Settling checks the token, so a consumer whose
lease expired and was taken by another cannot ack, retry or dead-letter the
other's delivery; an expired lease nobody took yet still settles fine.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from interlink.messaging._sqlite_store import LeaseLostError

__all__ = [
    "dead_letter",
    "lease",
    "ping",
    "release",
    "release_unhandled",
    "renew",
    "retry",
    "stats",
]

_READY = (
    "SELECT seq, id, body, headers, content_type, attempt, delivery_count, published_at,"
    " available_at, trace FROM messages WHERE queue = ? AND available_at <= ?"
    " ORDER BY available_at, seq LIMIT ?"
)
_TAKE = (
    "UPDATE messages SET lease_owner = ?, available_at = ?, delivery_count = delivery_count + 1"
    " WHERE seq IN (SELECT seq FROM messages WHERE queue = ? AND available_at <= ?"
    " ORDER BY available_at, seq LIMIT ?)"
)
_NEXT_DUE = (
    "SELECT available_at FROM messages WHERE queue = ? AND available_at > ?"
    " ORDER BY available_at LIMIT 1"
)
_STILL_LEASED = (
    "SELECT count(*) FROM json_each(?) AS p JOIN messages AS m"
    " ON m.seq = json_extract(p.value, '$[0]') AND m.lease_owner = json_extract(p.value, '$[1]')"
)
_RENEW = "UPDATE messages SET available_at = ? WHERE seq = ? AND lease_owner = ?"
_RETRY = (
    "UPDATE messages SET attempt = attempt + 1, delivery_count = attempt, headers = ?,"
    " trace = ?, available_at = ?, lease_owner = NULL WHERE seq = ? AND lease_owner = ?"
)
_RELEASE = (
    "UPDATE messages SET lease_owner = NULL, available_at = ?, delivery_count = delivery_count - ?"
    " WHERE seq = ? AND lease_owner = ?"
)
_DELETE = "DELETE FROM messages WHERE seq = ? AND lease_owner = ?"
_INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (id, message_id, source_queue, dead_letter_queue, body, headers,"
    " content_type, attempt, delivery_count, published_at, error_type, error_message, traceback,"
    " handler, attempts, first_failed_at, last_failed_at, reason, dead_lettered_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STATS = (
    "SELECT count(*), coalesce(sum(available_at <= :now), 0),"
    " coalesce(sum(available_at > :now AND lease_owner IS NULL), 0),"
    " min(CASE WHEN available_at <= :now THEN published_at END)"
    " FROM messages WHERE queue = :queue"
)
_DEAD_COUNT = "SELECT count(*) FROM dead_letters WHERE source_queue = ?"

Row = tuple[Any, ...]


def lease(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    limit: int,
    token: str,
    lease_for: float,
    settling: str | None,
) -> tuple[list[Row], float | None]:
    """Lease up to ``limit`` ready messages of ``queue``, oldest available first.

    ``settling`` is a JSON list of the consumer's ``[seq, token]`` leases whose
    settle was submitted before this lease: those ran already (earlier in this
    batch, or in an earlier one), and ``limit`` counted them as free room, so
    each one still leased (its settle failed) takes one off ``limit``. This
    lets a consumer lease in the same transaction as the acks that make room.

    Returns the rows as they were before the lease (``delivery_count`` not yet
    counted) and, when fewer than ``limit`` were ready, when the next one
    becomes available (a delayed message, or a lease that will expire).
    """
    if settling is not None:
        limit -= conn.execute(_STILL_LEASED, (settling,)).fetchone()[0]
        if limit <= 0:
            return [], None
    rows = conn.execute(_READY, (queue, now, limit)).fetchall()
    if rows:
        conn.execute(_TAKE, (token, now + lease_for, queue, now, limit))
    next_due = None
    if len(rows) < limit:
        due = conn.execute(_NEXT_DUE, (queue, now)).fetchone()
        next_due = None if due is None else float(due[0])
    return rows, next_due


def renew(
    conn: sqlite3.Connection, now: float, leases: list[tuple[int, str]], lease_for: float
) -> list[int]:
    """Extend each ``(seq, token)`` lease to ``now + lease_for``; the indexes of leases lost."""
    until = now + lease_for
    params = [(until, seq, token) for seq, token in leases]
    if conn.executemany(_RENEW, params).rowcount == len(params):
        return []
    return [i for i, p in enumerate(params) if conn.execute(_RENEW, p).rowcount != 1]


def retry(
    conn: sqlite3.Connection,
    _now: float,
    seq: int,
    token: str,
    headers: str | None,
    trace: str,
    available_at: float,
) -> None:
    """Ack and requeue in one statement: attempt + 1, new headers, available after the delay.

    ``headers`` and ``trace`` as ``pack_headers`` makes them.

    ``delivery_count`` restarts at the old attempt, so the next delivery counts
    as the new attempt's first: it never falls below ``attempt``.
    """
    if conn.execute(_RETRY, (headers, trace, available_at, seq, token)).rowcount != 1:
        raise LeaseLostError("its lease expired and it was delivered again, or it was settled")


def release(
    conn: sqlite3.Connection, _now: float, seq: int, token: str, available_at: float, undo: int
) -> None:
    """Give the lease back: available at ``available_at``; ``undo`` 1 uncounts the delivery."""
    if conn.execute(_RELEASE, (available_at, undo, seq, token)).rowcount != 1:
        raise LeaseLostError("its lease expired and it was delivered again, or it was settled")


def release_unhandled(
    conn: sqlite3.Connection, _now: float, leases: list[tuple[float, int, str]]
) -> None:
    """Release deliveries fetched but never handed out: back in place, delivery uncounted."""
    conn.executemany(_RELEASE, [(at, 1, seq, token) for at, seq, token in leases])


def dead_letter(
    conn: sqlite3.Connection, _now: float, seq: int, token: str, record: tuple[Any, ...]
) -> None:
    """Store the dead letter and delete the message, both or neither."""
    conn.execute(_INSERT_DEAD_LETTER, record)
    if conn.execute(_DELETE, (seq, token)).rowcount != 1:
        raise LeaseLostError("its lease expired and it was delivered again, or it was settled")


def stats(
    conn: sqlite3.Connection, now: float, queue: str
) -> tuple[int, int, int, float | None, int, float]:
    """(total, ready, delayed, oldest ready published_at, dead letters, now) for ``queue``."""
    total, ready, delayed, oldest = conn.execute(_STATS, {"now": now, "queue": queue}).fetchone()
    dead = conn.execute(_DEAD_COUNT, (queue,)).fetchone()[0]
    return total, ready, delayed, oldest, dead, now


def ping(conn: sqlite3.Connection, _now: float) -> None:
    """A statement that touches the file: the storage answers."""
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
