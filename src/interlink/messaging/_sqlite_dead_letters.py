"""Dead letters of the SQLite broker: rows of the ``dead_letters`` table.

A replay inserts the message back into its source queue and deletes the
record in the same transaction, so the two can never disagree: the contract
only asks that a crash leaves both rather than neither, and here it leaves
exactly one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from interlink.core.errors import (
    ConfigError,
    DeadLetterNotFoundError,
    MessagingError,
    PublishError,
)
from interlink.messaging._dead_letters import DeadLetter, DeadLetters, Failure, check_limit
from interlink.messaging._message import HEADER_REPLAYED_FROM, Message
from interlink.messaging._sqlite_consumer import pack_headers
from interlink.messaging._sqlite_schema import INSERT_MESSAGE
from interlink.messaging._sqlite_store import CALL, is_busy

if TYPE_CHECKING:
    from interlink.messaging._sqlite import SqliteBroker

__all__ = ["SqliteDeadLetters"]

_List = list

_COLUMNS = (
    "id, message_id, source_queue, dead_letter_queue, body, headers, content_type, attempt,"
    " delivery_count, published_at, error_type, error_message, traceback, handler, attempts,"
    " first_failed_at, last_failed_at, reason, dead_lettered_at"
)
_Row = tuple[Any, ...]


def _where(
    *,
    ids: Sequence[str] | None = None,
    queue: str | None = None,
    dead_letter_queue: str | None = None,
    error_type: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if ids is not None:
        clauses.append("id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(ids)))
    for column, value in (
        ("source_queue", queue),
        ("dead_letter_queue", dead_letter_queue),
        ("error_type", error_type),
    ):
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"the {column} filter must be a string, got {value!r}")
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _select(
    conn: sqlite3.Connection, _now: float, where: str, params: list[Any], limit: int
) -> list[_Row]:
    sql = f"SELECT {_COLUMNS} FROM dead_letters{where} ORDER BY seq LIMIT ?"
    return conn.execute(sql, [*params, limit]).fetchall()


def _count(conn: sqlite3.Connection, _now: float, where: str, params: list[Any]) -> int:
    return int(conn.execute(f"SELECT count(*) FROM dead_letters{where}", params).fetchone()[0])


def _purge(conn: sqlite3.Connection, _now: float, where: str, params: list[Any]) -> int:
    return conn.execute(f"DELETE FROM dead_letters{where}", params).rowcount


def _replay(conn: sqlite3.Connection, now: float, ids: list[str]) -> list[tuple[str, str]]:
    rows = {
        row[0]: row
        for row in conn.execute(
            "SELECT id, message_id, source_queue, body, headers, content_type FROM dead_letters"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
    }
    for dead_letter_id in ids:
        if dead_letter_id not in rows:
            raise DeadLetterNotFoundError(dead_letter_id)
    sent: list[tuple[str, str]] = []
    for dead_letter_id in ids:
        _, message_id, queue, body, headers, content_type = rows[dead_letter_id]
        merged = json.loads(headers) if headers else {}
        merged[HEADER_REPLAYED_FROM] = dead_letter_id
        conn.execute(
            INSERT_MESSAGE,
            (message_id, queue, body, *pack_headers(merged), content_type, 1, now, now),
        )
        sent.append((message_id, queue))
    conn.execute(
        "DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
    )
    return sent


def _to_dead_letter(row: _Row) -> DeadLetter:
    (
        dead_letter_id,
        message_id,
        source_queue,
        dead_letter_queue,
        body,
        headers,
        content_type,
        attempt,
        delivery_count,
        published_at,
        error_type,
        error_message,
        traceback,
        handler,
        attempts,
        first_failed_at,
        last_failed_at,
        reason,
        dead_lettered_at,
    ) = row
    message = Message(
        id=message_id,
        queue=source_queue,
        body=body,
        headers=json.loads(headers) if headers else {},
        content_type=content_type,
        attempt=attempt,
        delivery_count=delivery_count,
        published_at=published_at,
    )
    failure = Failure(
        error_type=error_type,
        error_message=error_message,
        traceback=traceback,
        handler=handler,
        attempts=attempts,
        first_failed_at=first_failed_at,
        last_failed_at=last_failed_at,
        reason=reason,
    )
    return DeadLetter(
        id=dead_letter_id,
        message=message,
        failure=failure,
        source_queue=source_queue,
        dead_letter_queue=dead_letter_queue,
        dead_lettered_at=dead_lettered_at,
    )


def _ids(dead_letter_ids: Sequence[str]) -> list[str]:
    if isinstance(dead_letter_ids, str) or not all(isinstance(i, str) for i in dead_letter_ids):
        raise ConfigError(f"dead letter ids must be a sequence of strings, got {dead_letter_ids!r}")
    return list(dict.fromkeys(dead_letter_ids))  # once each, in the order given


class SqliteDeadLetters(DeadLetters):
    """``broker.dead_letters`` of a ``SqliteBroker``: queries on its storage thread."""

    def __init__(self, broker: SqliteBroker) -> None:
        self._broker = broker

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._broker._call(fn, *args)

    async def list(
        self,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> _List[DeadLetter]:
        check_limit(limit)
        where, params = _where(
            queue=queue, dead_letter_queue=dead_letter_queue, error_type=error_type
        )
        rows = await self._call(_select, where, params, limit)
        return [_to_dead_letter(row) for row in rows]

    async def get(self, dead_letter_id: str) -> DeadLetter:
        where, params = _where(ids=_ids([dead_letter_id]))
        rows = await self._call(_select, where, params, 1)
        if not rows:
            raise DeadLetterNotFoundError(dead_letter_id)
        return _to_dead_letter(rows[0])

    async def count(self, *, queue: str | None = None, dead_letter_queue: str | None = None) -> int:
        where, params = _where(queue=queue, dead_letter_queue=dead_letter_queue)
        return int(await self._call(_count, where, params))

    async def replay(self, dead_letter_ids: Sequence[str]) -> _List[str]:
        ids = _ids(dead_letter_ids)
        if not ids:
            return []
        try:
            replaying = self._broker._submit(CALL, (_replay, (ids,)))
        except MessagingError as exc:
            raise PublishError(str(exc), reason="disconnected") from exc
        try:
            sent: list[tuple[str, str]] = await replaying
        except sqlite3.Error as exc:  # the source queue refused it: nothing moved
            raise PublishError(
                f"replay of {len(ids)} dead letters was not stored: {exc}",
                reason="timeout" if is_busy(exc) else "refused",
            ) from exc
        for _, queue in sent:
            self._broker._wake(queue)
        return [message_id for message_id, _ in sent]

    async def purge(
        self,
        dead_letter_ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> int:
        ids = None if dead_letter_ids is None else _ids(dead_letter_ids)
        where, params = _where(ids=ids, queue=queue, dead_letter_queue=dead_letter_queue)
        return int(await self._call(_purge, where, params))
