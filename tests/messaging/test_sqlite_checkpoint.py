"""The SQLite broker's WAL: checkpoints off the commit path, a bounded WAL, the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from interlink.messaging import SqliteBroker
from interlink.messaging import _sqlite_checkpoint as checkpoints
from interlink.messaging import _sqlite_store as store_module
from interlink.messaging._sqlite_store import begin
from tests.polling import eventually

BODY = bytes(1000)


def _checkpointer(broker: SqliteBroker) -> checkpoints.Checkpointer:
    store = broker._store
    assert store is not None
    assert store._checkpointer is not None
    return store._checkpointer


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("interlink-sqlite-checkpoint:")]


def _rows_in_the_database_file(path: Path, tmp: Path) -> int:
    """Messages in the database file alone: what checkpoints copied there, not the WAL."""
    copy = tmp / "copy.db"
    shutil.copyfile(path, copy)  # without its -wal: SQLite sees the file as it is
    conn = sqlite3.connect(copy)
    try:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE name = 'messages'").fetchall()
        if not tables:  # not even the schema was copied yet
            return 0
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def _record_frames_copied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each checkpoint's count of WAL frames in the database file once it finished."""
    copied: list[int] = []
    real = checkpoints.checkpoint

    def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
        result = real(conn)
        copied.append(result[2])
        return result

    monkeypatch.setattr(checkpoints, "checkpoint", checkpoint)
    return copied


@contextlib.asynccontextmanager
async def _started(path: Path) -> AsyncIterator[SqliteBroker]:
    """A started broker on ``path``, closed at the end (start it after patching the module)."""
    broker = SqliteBroker(str(path))
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


def _only_when_hurried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits never pause long enough for the checkpointer: only ``hurry`` makes it run."""
    monkeypatch.setattr(checkpoints, "IDLE", 3600.0)
    monkeypatch.setattr(checkpoints, "MAX_DELAY", 3600.0)


async def _wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    await eventually(condition, "the condition holding", within, step=0.005)


async def _publish_rounds(broker: SqliteBroker, rounds: int, per_round: int) -> list[int]:
    """Rounds of concurrent 1 KB publishes, back to back; the WAL's size after each."""
    sizes = []
    for _ in range(rounds):
        await asyncio.gather(*(broker.publish("q", BODY) for _ in range(per_round)))
        sizes.append(checkpoints.wal_size(broker.path))
    return sizes


async def test_commits_no_longer_checkpoint_the_checkpointer_does_once_they_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "IDLE", 0.02)
    path = tmp_path / "b.db"
    async with _started(path) as broker:
        autocheckpoint = await broker._call(
            lambda c, _now: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == 0
        checkpointer = _checkpointer(broker)
        assert checkpointer.alive
        await _publish_rounds(broker, 5, 20)
        await _wait_for(lambda: checkpointer.seen == broker.commits)
        assert checkpointer.copied == checkpointer.frames > 0  # after a pause: the whole WAL
        assert _rows_in_the_database_file(path, tmp_path) == 100


async def test_after_a_pause_the_wal_starts_over_instead_of_growing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "IDLE", 0.02)
    async with _started(tmp_path / "b.db") as broker:
        checkpointer = _checkpointer(broker)
        first = max(await _publish_rounds(broker, 20, 50))
        await _wait_for(lambda: checkpointer.seen == broker.commits)
        second = max(await _publish_rounds(broker, 20, 50))
        assert second < 1.2 * first  # written over from the start, not appended (~2x)


async def test_commits_that_never_pause_still_get_checkpoints_every_max_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "IDLE", 3600.0)  # no pause would ever be long enough
    monkeypatch.setattr(checkpoints, "MAX_DELAY", 0.05)
    copied = _record_frames_copied(monkeypatch)
    async with _started(tmp_path / "b.db") as broker:
        checkpointer = _checkpointer(broker)
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            await broker.publish("q", b"x")
        checkpointer.stop()
        assert checkpointer.checkpoints >= 3
        # Each copied commits into the database file while more kept coming. The file is
        # not read alone here: a checkpoint that a snapshot held back part way leaves it
        # readable only with its WAL beside it (it read as "malformed" in 4 runs of 150).
        assert len([frames for frames in copied if frames > 0]) >= 3


async def test_the_wal_stays_bounded_under_sustained_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 512 * 1024
    monkeypatch.setattr(checkpoints, "WAL_LIMIT", limit)
    _only_when_hurried(monkeypatch)
    monkeypatch.setattr(store_module, "_CATCH_UP_AFTER", 8)  # ~0.7 MB past the limit at most
    async with _started(tmp_path / "b.db") as broker:
        sizes = await _publish_rounds(broker, 80, 50)  # ~7 MB of WAL without a bound
        checkpointer = _checkpointer(broker)
        assert checkpointer.checkpoints >= 3  # hurried ones: nothing else makes it run
        assert max(sizes) < 4 * limit
        assert (await broker.stats("q")).ready == 4000


async def test_the_wal_stays_bounded_when_the_checkpointer_never_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 256 * 1024
    monkeypatch.setattr(checkpoints, "WAL_LIMIT", limit)
    _only_when_hurried(monkeypatch)
    monkeypatch.setattr(checkpoints.Checkpointer, "hurry", lambda self: None)
    monkeypatch.setattr(store_module, "_CATCH_UP_AFTER", 4)
    async with _started(tmp_path / "b.db") as broker:
        sizes = await _publish_rounds(broker, 40, 50)
        assert max(sizes) < 4 * limit  # the writer checkpointed inline, 4 commits past it
        assert (await broker.stats("q")).ready == 2000


async def test_close_stops_the_checkpointer_and_checkpoints_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_when_hurried(monkeypatch)  # the thread copies nothing: close must
    path = tmp_path / "b.db"
    broker = SqliteBroker(str(path))
    await broker.start()
    other = sqlite3.connect(path)  # keeps the file open: SQLite's own last-close checkpoint skips
    try:
        checkpointer = _checkpointer(broker)
        for _ in range(30):
            await broker.publish("q", BODY)
        assert _rows_in_the_database_file(path, tmp_path) == 0
        await broker.close()
        assert not checkpointer.alive
        assert not _checkpoint_threads()
        assert _rows_in_the_database_file(path, tmp_path) == 30
    finally:
        other.close()
        await broker.close()


async def test_failing_checkpoints_are_logged_once_and_publishing_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(checkpoints, "IDLE", 0.005)
    real = checkpoints.checkpoint
    failing = True

    def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
        if failing:
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn)

    monkeypatch.setattr(checkpoints, "checkpoint", checkpoint)
    broker = SqliteBroker(str(tmp_path / "b.db"))
    await broker.start()
    checkpointer = _checkpointer(broker)
    with caplog.at_level(logging.WARNING, "interlink.messaging.sqlite"):
        for _ in range(5):
            await broker.publish("q", b"x")
            await asyncio.sleep(0.02)  # a checkpoint (failing) after each
        assert caplog.text.count("checkpoint of the SQLite broker's WAL failed") == 1
        assert checkpointer.checkpoints == 0
        failing = False
        await broker.publish("q", b"x")
        await _wait_for(lambda: checkpointer.checkpoints > 0)
        failing = True
        await broker.close()  # its last checkpoint fails: logged, the close goes on
    assert "checkpoint of " + str(tmp_path / "b.db") + " failed: disk I/O error" in caplog.text
    assert not checkpointer.alive


async def test_a_checkpoint_tells_what_it_copied_and_one_under_way_elsewhere_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "IDLE", 0.005)
    # Another connection's checkpoint under way; one a reader's snapshot held back; a whole one.
    results = [(1, -1, -1), (0, 12, 10), (0, 14, 14)]
    real = checkpoints.checkpoint
    monkeypatch.setattr(
        checkpoints, "checkpoint", lambda conn: results.pop(0) if results else real(conn)
    )
    async with _started(tmp_path / "b.db") as broker:
        checkpointer = _checkpointer(broker)
        found: list[tuple[int, int, int]] = []  # (seen, frames, copied) after each checkpoint
        for _ in range(len(results)):
            await broker.publish("q", b"x")
            await _wait_for(lambda: checkpointer.checkpoints == len(found) + 1)
            found.append((checkpointer.seen, checkpointer.frames, checkpointer.copied))
        commits = broker.commits
        assert found == [(0, 0, 0), (commits - 1, 12, 10), (commits, 14, 14)]


def test_a_checkpointer_never_started_stops_and_closes_its_connection(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "b.db", check_same_thread=False)
    checkpointer = checkpoints.Checkpointer(conn, str(tmp_path / "b.db"), idle=1, max_delay=1)
    assert not checkpointer.alive
    checkpointer.stop()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    assert checkpoints.wal_size(str(tmp_path / "absent.db")) == 0


# -- the pipeline ---------------------------------------------------------------------------


async def test_a_big_batch_runs_as_two_transactions_and_the_halves_keep_alternating(
    tmp_path: Path,
) -> None:
    async with _started(tmp_path / "b.db") as broker:

        async def publisher() -> None:
            for _ in range(20):
                await broker.publish("q", b"x")

        before = broker.commits
        await asyncio.gather(*(publisher() for _ in range(100)))
        commits = broker.commits - before
        assert 40 <= commits < 100  # two per round of 100, not one, not one each
        assert (await broker.stats("q")).ready == 2000


@pytest.fixture
def two_connections(tmp_path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    path = tmp_path / "b.db"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("PRAGMA journal_mode = WAL")
    second = sqlite3.connect(path, isolation_level=None)
    second.execute("PRAGMA busy_timeout = 30")
    return first, second


def test_begin_with_answers_waiting_answers_them_before_waiting_for_the_lock(
    two_connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    holder, conn = two_connections
    answered: list[bool] = []
    begin(conn, "PRAGMA busy_timeout = 30", lambda: answered.append(True))
    assert conn.in_transaction
    assert not answered  # no lock to wait for: the answer waits for the statements
    conn.execute("ROLLBACK")
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin(conn, "PRAGMA busy_timeout = 30", lambda: answered.append(True))
    assert answered == [True]  # before the (failed) wait, not after it
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30
    holder.execute("ROLLBACK")


def test_begin_passes_on_other_errors_and_keeps_the_busy_timeout(
    two_connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    _, conn = two_connections
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin(conn, "PRAGMA busy_timeout = 30", lambda: pytest.fail("answered"))
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30
    conn.execute("ROLLBACK")
    begin(conn, "PRAGMA busy_timeout = 30", None)
    assert conn.in_transaction
