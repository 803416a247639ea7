"""The SQLite broker's file: its tables, and opening it with the pragmas the broker relies on."""

from __future__ import annotations

import os
import sqlite3
from typing import Final

from interlink.core.errors import ConfigError

__all__ = ["INSERT_MESSAGE", "SCHEMA_VERSION", "open_database", "path_error", "rollback"]

SCHEMA_VERSION: Final = 2
"""``PRAGMA user_version`` of the file layout this code writes (migrations key on it).

1: the first layout. 2: ``messages.trace``, a message's W3C ``traceparent``
header in a column of its own (``pack_headers``); a version-1 file gains the
column when it is opened (``ALTER TABLE``: no rows are rewritten)."""

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
    lease_owner TEXT,
    trace TEXT NOT NULL DEFAULT ''
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
    "INSERT INTO messages (id, queue, body, headers, trace, content_type, attempt,"
    " delivery_count, published_at, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)

_MIGRATIONS: Final = {
    1: "ALTER TABLE messages ADD COLUMN trace TEXT NOT NULL DEFAULT ''",  # -> 2
}

_LEVELS: Final = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def open_database(
    path: str, *, synchronous: str, busy_timeout: float, wal_limit: int
) -> tuple[sqlite3.Connection, str]:
    """The writer's connection (WAL, ``synchronous``, schema checked) and the level SQLite reports.

    Automatic checkpoints are off (``_sqlite_checkpoint`` runs them) and
    ``journal_size_limit`` trims the WAL file back to ``wal_limit`` bytes when
    it starts over. Raises ``ConfigError`` naming the path when it cannot be used.
    """
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
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode != "wal":  # pragma: no cover - only on filesystems without shared memory
            raise ConfigError(
                f"SQLite broker database {path!r} cannot use WAL journaling "
                f"(got {mode!r}); put it on a local filesystem"
            )
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        level = _LEVELS[conn.execute("PRAGMA synchronous").fetchone()[0]]
        _ensure_schema(conn, path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {wal_limit}")
    except ConfigError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise path_error(path, exc) from exc
    return conn, level


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
            while version < SCHEMA_VERSION:
                conn.execute(_MIGRATIONS[version])
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the transaction under way, if SQLite has not already."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def path_error(path: str, exc: sqlite3.Error) -> ConfigError:
    """The ``ConfigError`` for a file SQLite refused: which file, and what it needs."""
    return ConfigError(
        f"cannot open the SQLite broker database {path!r} ({os.path.abspath(path)}): {exc}; "
        "the directory must exist and be writable, and the file must be an SQLite database"
    )
