"""Backing up the SQLite broker's file while it runs, the two ways docs/operations.md gives.

Copying the file alone is not one of them: until a checkpoint has copied the
whole WAL into it, the file is meaningful only beside its ``-wal``, and a
checkpoint held back part way by a reader leaves it unreadable on its own
(test_sqlite_checkpoint's file copies read "malformed" in 4 runs of 150).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from interlink.messaging import SqliteBroker
from tests.polling import eventually


def _messages(path: Path) -> int:
    """Messages in ``path``, after SQLite found the file whole."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def _backup_api(source: Path, target: Path) -> None:
    """Python's ``sqlite3.Connection.backup`` (the sqlite3 shell's ``.backup``)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _vacuum_into(source: Path, target: Path) -> None:
    src = sqlite3.connect(source)
    try:
        src.execute("VACUUM INTO ?", (str(target),))
    finally:
        src.close()


@pytest.mark.parametrize("backup", [_backup_api, _vacuum_into])
async def test_a_backup_taken_while_publishing_holds_every_message_confirmed_before_it(
    tmp_path: Path, backup: Callable[[Path, Path], None]
) -> None:
    path, target = tmp_path / "b.db", tmp_path / "backup.db"
    broker = SqliteBroker(str(path))
    await broker.start()
    publishing = True

    async def publish() -> None:
        while publishing:
            await asyncio.gather(*(broker.publish("q", bytes(500)) for _ in range(20)))

    publisher = asyncio.create_task(publish())
    try:
        await eventually(lambda: broker.commits >= 30, "30 commits made")
        confirmed = (await broker.stats("q")).ready
        await asyncio.to_thread(backup, path, target)  # while commits and checkpoints go on
        before = broker.commits
        await eventually(lambda: broker.commits > before + 5, "publishing going on after it")
    finally:
        publishing = False
        await publisher  # a publish that failed beside the backup fails the test here
        await broker.close()
    assert _messages(target) >= confirmed > 0
