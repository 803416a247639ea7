"""The SQLite broker's own promises: its URL, its file, its schema, its life cycle."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlink.core.errors import ConfigError, DeliveryError, MessagingError, PublishError
from interlink.messaging import Delivery, SqliteBroker, open_broker
from interlink.messaging._sqlite_schema import SCHEMA_VERSION
from interlink.testing import FakeClock


@pytest.fixture
async def broker(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteBroker]:
    opened = SqliteBroker(str(tmp_path / "b.db"), clock=clock)
    await opened.start()
    yield opened
    await opened.close()


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- the URL ----------------------------------------------------------------------


async def test_an_absolute_url_opens_that_file_with_its_options(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}?synchronous=normal&visibility_timeout=2m&poll_interval=250ms&busy_timeout=1"
    broker = await open_broker(url)
    try:
        assert isinstance(broker, SqliteBroker)
        assert broker.url == url
        assert broker.path == str(path)
        assert (broker.visibility_timeout, broker.poll_interval, broker.busy_timeout) == (
            120.0,
            0.25,
            1.0,
        )
        assert broker.synchronous == "NORMAL"
        assert path.exists()
    finally:
        await broker.close()


async def test_a_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = await open_broker("sqlite:///rel%20ative.db")
    try:
        assert broker.path == "rel ative.db"
        assert (tmp_path / "rel ative.db").exists()
    finally:
        await broker.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://host/x.db", "names a file, not a host"),
        ("sqlite://", "no file in"),
        ("sqlite:///", "no file in"),
        ("sqlite:///x.db?colour=blue", "unknown option 'colour'"),
        ("sqlite:///x.db?synchronous=OFF", "synchronous must be FULL or NORMAL"),
        ("sqlite:///x.db?visibility_timeout=0s", "option visibility_timeout"),
        ("sqlite:///x.db?poll_interval=soon", "option poll_interval"),
        ("sqlite:///x.db?busy_timeout=-1", "option busy_timeout"),
        ("sqlite:///:memory:", "needs a file on disk"),
        ("sqlite:///file:x.db", "needs a file on disk"),
    ],
)
async def test_a_bad_url_is_a_config_error_saying_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        await open_broker(url)


def test_the_constructor_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="needs a file path"):
        SqliteBroker("  ")
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteBroker("x.db", synchronous=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not an sqlite:// URL"):
        SqliteBroker.from_url("memory://x")


# -- the file -----------------------------------------------------------------------


async def test_a_missing_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "q.db"
    with pytest.raises(ConfigError, match=r"directory .*nope.* does not exist"):
        await open_broker(f"sqlite:///{missing}")
    assert not missing.parent.exists()


async def test_a_directory_in_place_of_the_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it is a directory"):
        await open_broker(f"sqlite:///{tmp_path}")


async def test_a_file_that_is_not_a_database_is_a_config_error_and_stays_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(ConfigError, match=r"notes\.txt.*not a database"):
        await open_broker(f"sqlite:///{path}")
    assert path.read_bytes().startswith(b"these are my notes")


async def test_a_path_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ConfigError, match="plain"):
        await open_broker(f"sqlite:///{tmp_path / 'plain' / 'q.db'}")


async def test_the_file_is_in_wal_mode_with_a_versioned_schema(
    broker: SqliteBroker, tmp_path: Path
) -> None:
    path = tmp_path / "b.db"
    assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert _query(path, "PRAGMA journal_mode") == [("wal",)]
    names = {row[0] for row in _query(path, "SELECT name FROM sqlite_master")}
    assert {"messages", "dead_letters", "messages_ready"} <= names


async def test_a_newer_schema_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this interlink"):
        await open_broker(f"sqlite:///{path}")
    assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


async def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    with pytest.raises(ConfigError, match="another application"):
        await open_broker(f"sqlite:///{path}")


async def test_reopening_keeps_the_schema_and_the_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    first = await open_broker(url)
    await first.publish("q", b"kept")
    await first.close()
    second = await open_broker(url)
    try:
        assert (await second.stats("q")).ready == 1
    finally:
        await second.close()


# -- the trace context column -----------------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def _take(broker: SqliteBroker, queue: str) -> Delivery:
    return await asyncio.wait_for(anext(broker.consume(queue)), 5)


@pytest.mark.parametrize(
    "value",
    [
        TRACEPARENT,
        TRACEPARENT.upper(),  # not W3C's form: kept exactly as sent, not normalised
        "not a traceparent",
    ],
)
async def test_a_traceparent_is_stored_in_its_own_column_and_delivered_as_published(
    broker: SqliteBroker, tmp_path: Path, value: str
) -> None:
    await broker.publish("q", b"x", headers={"traceparent": value, "tenant": "acme"})
    [(headers, trace)] = _query(tmp_path / "b.db", "SELECT headers, trace FROM messages")
    assert (headers, trace) == ('{"tenant":"acme"}', value)  # not in the JSON
    delivery = await _take(broker, "q")
    assert delivery.message.headers == {"tenant": "acme", "traceparent": value}


async def test_a_message_without_a_traceparent_stores_an_empty_trace(
    broker: SqliteBroker, tmp_path: Path
) -> None:
    await broker.publish("q", b"x", headers={"tenant": "acme"})
    await broker.publish("q", b"y")
    assert _query(tmp_path / "b.db", "SELECT trace FROM messages") == [("",), ("",)]
    assert (await _take(broker, "q")).message.headers == {"tenant": "acme"}


async def test_an_empty_traceparent_is_kept_among_the_headers(
    broker: SqliteBroker, tmp_path: Path
) -> None:
    await broker.publish("q", b"x", headers={"traceparent": ""})
    assert _query(tmp_path / "b.db", "SELECT headers, trace FROM messages") == [
        ('{"traceparent":""}', "")
    ]
    assert (await _take(broker, "q")).message.headers == {"traceparent": ""}


async def test_a_retry_with_a_new_traceparent_stores_the_new_one(broker: SqliteBroker) -> None:
    await broker.publish("q", b"x", headers={"traceparent": TRACEPARENT})
    delivery = await _take(broker, "q")
    later = TRACEPARENT.replace("00f067aa0ba902b7", "00f067aa0ba902b8")
    await delivery.retry(0, headers={"traceparent": later, "x-note": "again"})
    again = await _take(broker, "q")
    assert again.message.headers == {"traceparent": later, "x-note": "again"}
    await again.retry(0, headers={"traceparent": "not a traceparent"})
    third = await _take(broker, "q")
    assert third.message.headers == {"traceparent": "not a traceparent", "x-note": "again"}


async def test_a_version_1_file_gains_the_trace_column_and_keeps_its_messages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_VERSION_1_SCHEMA)
    conn.execute(
        "INSERT INTO messages (id, queue, body, headers, content_type, attempt, delivery_count,"
        " published_at, available_at) VALUES ('m1', 'q', x'6869', ?, 'application/octet-stream',"
        " 1, 0, 1.0, 1.0)",
        (f'{{"traceparent":"{TRACEPARENT}"}}',),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    broker = await open_broker(f"sqlite:///{path}")
    try:
        assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(2,)]
        delivery = await _take(broker, "q")
        assert (delivery.message.id, delivery.message.body) == ("m1", b"hi")
        assert delivery.message.headers == {"traceparent": TRACEPARENT}
        await delivery.ack()
        await broker.publish("q", b"new", headers={"traceparent": TRACEPARENT})
        assert _query(path, "SELECT trace FROM messages") == [(TRACEPARENT,)]
    finally:
        await broker.close()


# The layout of schema version 1, as interlink 0.1 wrote it.
_VERSION_1_SCHEMA = """
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, queue TEXT NOT NULL, body BLOB NOT NULL,
    headers TEXT, content_type TEXT NOT NULL, attempt INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL, published_at REAL NOT NULL, available_at REAL NOT NULL,
    lease_owner TEXT
);
CREATE INDEX messages_ready ON messages (queue, available_at, seq);
CREATE TABLE dead_letters (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, message_id TEXT NOT NULL,
    source_queue TEXT NOT NULL, dead_letter_queue TEXT NOT NULL, body BLOB NOT NULL,
    headers TEXT, content_type TEXT NOT NULL, attempt INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL, published_at REAL NOT NULL, error_type TEXT NOT NULL,
    error_message TEXT NOT NULL, traceback TEXT NOT NULL, handler TEXT NOT NULL,
    attempts INTEGER NOT NULL, first_failed_at REAL NOT NULL, last_failed_at REAL NOT NULL,
    reason TEXT NOT NULL, dead_lettered_at REAL NOT NULL
);
"""


# -- durability settings ------------------------------------------------------------


async def read_synchronous(broker: SqliteBroker) -> object:
    """``PRAGMA synchronous`` as the broker's own connection sees it (2 FULL, 1 NORMAL)."""
    return await broker._call(lambda conn, _now: conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_synchronous_is_full_by_default(broker: SqliteBroker) -> None:
    assert broker.synchronous == "FULL"
    assert await read_synchronous(broker) == 2


async def test_synchronous_normal_is_applied_when_asked(tmp_path: Path) -> None:
    broker = await open_broker(f"sqlite:///{tmp_path / 'n.db'}?synchronous=NORMAL")
    try:
        assert isinstance(broker, SqliteBroker)
        assert await read_synchronous(broker) == 1
    finally:
        await broker.close()


# -- life cycle ------------------------------------------------------------------------


async def test_close_is_idempotent_and_stops_the_storage_thread(broker: SqliteBroker) -> None:
    store = broker._store
    assert store is not None
    await broker.close()
    await broker.close()
    assert not store._thread.is_alive()
    assert "closed" in repr(broker)


async def test_everything_after_close_raises_a_clear_error(broker: SqliteBroker) -> None:
    await broker.publish("q", b"x")
    reader = broker.consume("q")
    delivery = await anext(reader)
    await broker.close()
    with pytest.raises(PublishError, match="was closed") as caught:
        await broker.publish("q", b"late")
    assert caught.value.reason == "disconnected"
    with pytest.raises(MessagingError, match="was closed"):
        broker.consume("q")
    with pytest.raises(MessagingError, match="was closed"):
        await broker.stats("q")
    with pytest.raises(MessagingError, match="was closed"):
        await broker.ping()
    with pytest.raises(MessagingError, match="was closed"):
        await broker.dead_letters.count()
    with pytest.raises(PublishError, match="was closed"):
        await broker.dead_letters.replay(["some-id"])
    with pytest.raises(DeliveryError, match="was closed"):
        await delivery.ack()
    with pytest.raises(DeliveryError, match="was closed"):
        await delivery.extend()
    assert not delivery.settled
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    with pytest.raises(MessagingError, match="was closed"):
        await broker.start()


async def test_a_consumer_waiting_when_the_broker_closes_ends_its_iteration(
    broker: SqliteBroker,
) -> None:
    consumer = broker.consume("q")
    waiting = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await broker.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_nothing_works_before_start(tmp_path: Path) -> None:
    broker = SqliteBroker(str(tmp_path / "b.db"))
    assert broker.commits == 0
    assert broker.synchronous == ""
    with pytest.raises(PublishError, match=r"not started \(await start\(\)\)"):
        await broker.publish("q", b"x")
    await broker.close()


async def test_start_is_idempotent_and_close_during_start_wins(tmp_path: Path) -> None:
    broker = SqliteBroker(str(tmp_path / "b.db"))
    await asyncio.gather(broker.start(), broker.start())
    await broker.start()
    assert await broker.ping() >= 0.0
    await broker.close()

    racing = SqliteBroker(str(tmp_path / "c.db"))
    starting = asyncio.ensure_future(racing.start())
    await asyncio.sleep(0)
    await racing.close()
    await starting
    assert racing._store is not None
    assert not racing._store._thread.is_alive()
    with pytest.raises(PublishError):
        await racing.publish("q", b"x")


async def test_a_failed_start_can_be_closed_and_says_why_again(tmp_path: Path) -> None:
    broker = SqliteBroker(str(tmp_path / "missing" / "b.db"))
    with pytest.raises(ConfigError, match="does not exist"):
        await broker.start()
    with pytest.raises(ConfigError, match="does not exist"):
        await broker.start()
    await broker.close()


async def test_consume_checks_its_arguments(broker: SqliteBroker) -> None:
    with pytest.raises(ConfigError, match="prefetch"):
        broker.consume("q", prefetch=0)
    with pytest.raises(ConfigError, match="prefetch"):
        broker.consume("q", prefetch=True)
    with pytest.raises(ConfigError, match="queue name"):
        broker.consume("")


async def test_publish_checks_key_and_message_id(broker: SqliteBroker) -> None:
    with pytest.raises(ConfigError, match="key"):
        await broker.publish("q", b"x", key="")
    with pytest.raises(ConfigError, match="message_id"):
        await broker.publish("q", b"x", message_id="")
    with pytest.raises(ConfigError, match="delay"):
        await broker.publish("q", b"x", delay=float("nan"))
    assert (await broker.stats("q")).ready == 0


async def test_generated_message_ids_are_random_uuid4_hex_across_draws(
    broker: SqliteBroker,
) -> None:
    ids = await asyncio.gather(*(broker.publish("q", b"x") for _ in range(600)))  # 3 draws
    assert len(set(ids)) == 600
    for message_id in ids:
        parsed = uuid.UUID(message_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (message_id, 4, uuid.RFC_4122)
