"""The inbox: a key is claimed before the handler runs, done only after it succeeded.

The same behaviour suite runs on ``MemoryInbox`` and ``SqliteInbox``; the
SQLite-only tests cover two inboxes on one file (two processes) and
``complete_in``, which commits the key in the user's own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from interlink.core.errors import ConfigError, MessagingError
from interlink.messaging import ClaimLostError, Inbox, MemoryInbox, SqliteInbox, open_inbox
from interlink.testing import FakeClock

Factory = Callable[[], Awaitable[Inbox]]


@pytest.fixture(params=["memory", "sqlite"])
async def make_inbox(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Factory]:
    """Inboxes over one store: one memory inbox, or SQLite inboxes on one file."""
    made: list[Inbox] = []
    shared = MemoryInbox(clock=clock)

    async def make() -> Inbox:
        if request.param == "memory":
            return shared
        inbox = SqliteInbox(tmp_path / "app.db", clock=clock)
        await inbox.open()
        made.append(inbox)
        return inbox

    yield make
    for inbox in made:
        await inbox.close()


async def test_a_key_is_claimed_once_and_busy_for_everyone_else(make_inbox: Factory) -> None:
    inbox = await make_inbox()
    assert isinstance(inbox, Inbox)
    assert await inbox.claim("h", "m1", lease=30) == "claimed"
    assert await inbox.claim("h", "m1", lease=30) == "busy"
    assert await inbox.claim("other-handler", "m1", lease=30) == "claimed"  # keys are per handler


async def test_a_completed_key_is_done_for_ever_after(make_inbox: Factory) -> None:
    inbox = await make_inbox()
    assert await inbox.claim("h", "m1", lease=30) == "claimed"
    await inbox.complete("h", "m1")
    await inbox.complete("h", "m1")  # idempotent
    assert await inbox.claim("h", "m1", lease=30) == "done"
    await inbox.release("h", "m1")  # a done key is never released
    assert await inbox.claim("h", "m1", lease=30) == "done"


async def test_a_released_key_can_be_claimed_again_so_the_retry_does_the_work(
    make_inbox: Factory,
) -> None:
    inbox = await make_inbox()
    assert await inbox.claim("h", "m1", lease=30) == "claimed"
    await inbox.release("h", "m1")
    await inbox.release("h", "m1")  # nothing held any more: no-op
    assert await inbox.claim("h", "m1", lease=30) == "claimed"


async def test_a_claim_older_than_its_lease_is_taken_over(
    make_inbox: Factory, clock: FakeClock
) -> None:
    first = await make_inbox()
    second = await make_inbox()
    assert await first.claim("h", "m1", lease=10) == "claimed"
    await clock.advance(9)
    assert await second.claim("h", "m1", lease=10) == "busy"
    await clock.advance(1)
    assert await second.claim("h", "m1", lease=10) == "claimed"


async def test_extend_keeps_a_claim_alive_past_its_first_lease(
    make_inbox: Factory, clock: FakeClock
) -> None:
    inbox = await make_inbox()
    assert await inbox.claim("h", "m1", lease=10) == "claimed"
    for _ in range(5):
        await clock.advance(5)
        assert await inbox.extend("h", "m1", lease=10)
    assert await inbox.claim("h", "m1", lease=10) == "busy"
    assert not await inbox.extend("h", "never-claimed", lease=10)
    await inbox.complete("h", "m1")
    assert not await inbox.extend("h", "m1", lease=10)


async def test_done_keys_are_forgotten_after_the_retention(
    tmp_path: Path, clock: FakeClock
) -> None:
    memory = MemoryInbox(clock=clock, retention="1h")
    sqlite = SqliteInbox(tmp_path / "app.db", clock=clock, retention="1h")
    for inbox in (memory, sqlite):
        await inbox.claim("h", "old", lease=30)
        await inbox.complete("h", "old")
    await clock.advance(3601)
    for inbox in (memory, sqlite):
        await inbox.claim("h", "new", lease=30)
        await inbox.complete("h", "new")  # the sweep runs now
        assert await inbox.claim("h", "old", lease=30) == "claimed"
        assert await inbox.claim("h", "new", lease=30) == "done"
    assert len(memory) == 2
    assert memory.state("h", "new") == "done"
    assert memory.state("h", "missing") is None
    assert repr(memory) == "MemoryInbox(keys=2)"
    await sqlite.close()


async def test_another_sqlite_inbox_cannot_release_or_extend_a_claim_it_does_not_hold(
    tmp_path: Path, clock: FakeClock
) -> None:
    first = SqliteInbox(tmp_path / "app.db", clock=clock)
    second = SqliteInbox(tmp_path / "app.db", clock=clock)
    assert await first.claim("h", "m1", lease=10) == "claimed"
    await second.release("h", "m1")
    assert not await second.extend("h", "m1", lease=10)
    assert await second.claim("h", "m1", lease=10) == "busy"
    await clock.advance(10)
    assert await second.claim("h", "m1", lease=10) == "claimed"  # taken over
    assert not await first.extend("h", "m1", lease=10)  # the first one lost it
    await first.release("h", "m1")  # and cannot drop the new holder's claim
    assert await first.claim("h", "m1", lease=10) == "busy"
    await first.close()
    await second.close()


# -- complete_in: the key commits with the user's effect ----------------------------


@pytest.fixture
async def app_db(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[SqliteInbox, Path]]:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE shipments (order_id TEXT PRIMARY KEY)")
    conn.close()
    inbox = SqliteInbox(path, clock=clock)
    await inbox.open()
    yield inbox, path
    await inbox.close()


def _shipments(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT order_id FROM shipments")]
    finally:
        conn.close()


def _ship(path: Path, inbox: SqliteInbox, order: str, *, fail: bool = False) -> None:
    conn = sqlite3.connect(path, timeout=5)
    try:
        with conn:
            conn.execute("INSERT INTO shipments VALUES (?)", (order,))
            inbox.complete_in(conn, "h", order)
            if fail:
                raise RuntimeError("crash before commit")
    finally:
        conn.close()


async def test_complete_in_commits_the_key_with_the_effect(
    app_db: tuple[SqliteInbox, Path],
) -> None:
    inbox, path = app_db
    assert await inbox.claim("h", "o1", lease=30) == "claimed"
    _ship(path, inbox, "o1")
    assert _shipments(path) == ["o1"]
    await inbox.complete("h", "o1")  # what the worker does next: a no-op now
    assert await inbox.claim("h", "o1", lease=30) == "done"


async def test_a_rolled_back_effect_leaves_the_key_claimed_not_done(
    app_db: tuple[SqliteInbox, Path],
) -> None:
    inbox, path = app_db
    assert await inbox.claim("h", "o1", lease=30) == "claimed"
    with pytest.raises(RuntimeError, match="crash before commit"):
        _ship(path, inbox, "o1", fail=True)
    assert _shipments(path) == []
    await inbox.release("h", "o1")  # the worker releases it on failure
    assert await inbox.claim("h", "o1", lease=30) == "claimed"


async def test_a_lost_claim_rolls_the_effect_back(
    app_db: tuple[SqliteInbox, Path], clock: FakeClock
) -> None:
    inbox, path = app_db
    other = SqliteInbox(path, clock=clock)
    assert await inbox.claim("h", "o1", lease=10) == "claimed"
    await clock.advance(11)
    assert await other.claim("h", "o1", lease=10) == "claimed"  # this worker stalled
    with pytest.raises(ClaimLostError, match="taken over by another worker"):
        _ship(path, inbox, "o1")
    assert _shipments(path) == []
    _ship(path, other, "o1")
    assert _shipments(path) == ["o1"]
    await other.close()


async def test_complete_in_without_a_claim_is_refused(app_db: tuple[SqliteInbox, Path]) -> None:
    inbox, path = app_db
    with pytest.raises(ClaimLostError, match="holds no claim"):
        _ship(path, inbox, "o1")
    assert _shipments(path) == []


async def test_complete_in_refuses_a_connection_to_another_database(
    app_db: tuple[SqliteInbox, Path], tmp_path: Path
) -> None:
    inbox, _ = app_db
    await inbox.claim("h", "o1", lease=30)
    other = sqlite3.connect(tmp_path / "other.db")
    memory = sqlite3.connect(":memory:")
    try:
        with pytest.raises(ConfigError, match="needs a connection to the inbox's database"):
            inbox.complete_in(other, "h", "o1")
        with pytest.raises(ConfigError, match="an in-memory database"):
            inbox.complete_in(memory, "h", "o1")
    finally:
        other.close()
        memory.close()


async def test_complete_in_refuses_an_autocommit_connection_outside_a_transaction(
    app_db: tuple[SqliteInbox, Path],
) -> None:
    inbox, path = app_db
    await inbox.claim("h", "o1", lease=30)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(ConfigError, match="must run inside your transaction"):
            inbox.complete_in(conn, "h", "o1")
        conn.execute("BEGIN")
        inbox.complete_in(conn, "h", "o1")
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert await inbox.claim("h", "o1", lease=30) == "done"


# -- opening ----------------------------------------------------------------------------


async def test_open_inbox_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = await open_inbox("memory://")
    assert isinstance(fresh, MemoryInbox)
    assert fresh is not await open_inbox("memory://")
    named = await open_inbox("memory://shared?retention=1d")
    assert named is await open_inbox("memory://shared")
    assert isinstance(named, MemoryInbox)
    assert named.retention == 86400
    absolute = await open_inbox(f"sqlite:///{tmp_path}/abs.db?synchronous=full&retention=2h")
    assert isinstance(absolute, SqliteInbox)
    assert absolute.synchronous == "FULL"
    assert absolute.retention == 7200
    assert absolute.path == tmp_path / "abs.db"
    await absolute.close()
    await absolute.close()  # idempotent
    monkeypatch.chdir(tmp_path)
    relative = await open_inbox("sqlite:///rel.db")
    assert isinstance(relative, SqliteInbox)
    assert (tmp_path / "rel.db").exists()
    assert repr(relative) == "SqliteInbox('rel.db')"
    await relative.close()
    with pytest.raises(MessagingError, match="is closed"):
        await relative.claim("h", "m", lease=1)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("inbox.db", "an inbox URL looks like"),
        ("redis://localhost", "unknown inbox scheme 'redis'"),
        ("memory://?size=3", "unknown option 'size'"),
        ("memory://?synchronous=full", "applies to sqlite:// inboxes only"),
        ("sqlite://", "sqlite:///relative.db"),
        ("sqlite:///x.db?synchronous=off", "synchronous must be NORMAL or FULL"),
        ("memory://?retention=forever", "invalid duration 'forever'"),
        ("sqlite:////nonexistent-dir/x/inbox.db", "cannot open the inbox database"),
    ],
)
async def test_a_bad_inbox_url_is_a_config_error(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        await open_inbox(url)


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a sqlite database, not even close" * 100)
    inbox = SqliteInbox(path)
    with pytest.raises(ConfigError, match="cannot open the inbox database"):
        await inbox.open()
    await inbox.close()


async def test_opening_twice_is_harmless_and_a_storage_error_rolls_back(
    tmp_path: Path, clock: FakeClock
) -> None:
    inbox = SqliteInbox(tmp_path / "app.db", clock=clock)
    await inbox.open()
    await inbox.open()
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("DROP TABLE interlink_inbox")
    conn.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await inbox.claim("h", "m1", lease=30)
    await inbox.close()


async def test_ping_answers_the_round_trip_and_fails_once_closed(
    tmp_path: Path, clock: FakeClock
) -> None:
    memory = MemoryInbox(clock=clock)
    assert await memory.ping() == 0.0
    sqlite = SqliteInbox(tmp_path / "app.db", clock=clock)
    assert await sqlite.ping() >= 0.0  # opens the file on first use
    await sqlite.close()
    with pytest.raises(MessagingError, match="closed"):
        await sqlite.ping()
