"""How the SQLite broker uses its file: group commit, per-operation outcomes, locks, leases."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from interlink.core.errors import ConfigError, DeliveryError, MessagingError, PublishError
from interlink.messaging import Consumer, SqliteBroker, describe_failure
from interlink.messaging import _sqlite_ops as ops
from interlink.messaging import _sqlite_store as store_module
from tests.messaging.harness import opened
from tests.messaging.harness_sqlite import SqliteHarness


@pytest.fixture
async def sq() -> AsyncIterator[SqliteHarness]:
    """An SQLite broker on a fake clock, in a fresh directory."""
    async with opened(SqliteHarness()) as harness:
        yield harness


def broker_of(harness: SqliteHarness) -> SqliteBroker:
    broker = harness.broker
    assert isinstance(broker, SqliteBroker)
    return broker


async def published(sq: SqliteHarness) -> tuple[SqliteBroker, Consumer]:
    """The harness's broker with one message (``b"x"``) in ``q``, and a consumer of ``q``."""
    broker = broker_of(sq)
    await broker.publish("q", b"x")
    return broker, broker.consume("q")


def _execute(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


class WriteLock:
    """Another connection holding the file's write lock, as a busy second process would."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def __enter__(self) -> WriteLock:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def failure() -> object:
    return describe_failure(
        ValueError("bad"), handler="h", attempts=1, first_failed_at=1.0, last_failed_at=1.0
    )


# -- group commit ---------------------------------------------------------------------


async def test_concurrent_publishes_share_commits(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    before = broker.commits
    ids = await asyncio.gather(*(broker.publish("q", {"n": n}) for n in range(300)))
    assert len(set(ids)) == 300
    assert broker.commits - before <= 3  # one transaction for what arrived together
    assert (await broker.stats("q")).ready == 300


async def test_concurrent_acks_share_commits(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    await asyncio.gather(*(broker.publish("q", {"n": n}) for n in range(100)))
    consumer = broker.consume("q", prefetch=100)
    deliveries = [await anext(consumer) for _ in range(100)]
    before = broker.commits
    await asyncio.gather(*(d.ack() for d in deliveries))
    assert broker.commits - before <= 3
    stats = await broker.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 0)
    await consumer.cancel()


async def test_one_refused_write_does_not_fail_the_others_in_its_transaction(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    await sq.refuse_publishes("bad")
    outcomes = await asyncio.gather(
        *(broker.publish("bad" if n % 5 == 0 else "good", {"n": n}) for n in range(50)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 10
    assert all(isinstance(o, PublishError) and o.reason == "refused" for o in refused)
    assert all(isinstance(o, PublishError) and o.queue == "bad" for o in refused)
    assert (await broker.stats("good")).ready == 40
    assert (await broker.stats("bad")).ready == 0


# -- the write lock -------------------------------------------------------------------------


async def test_a_write_lock_held_past_busy_timeout_fails_the_publish_as_a_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    async with SqliteBroker(str(path), busy_timeout="50ms") as broker:
        with WriteLock(path):
            with pytest.raises(PublishError) as caught:
                await broker.publish("q", b"x")
            assert caught.value.reason == "timeout"
        assert await broker.publish("q", b"x")  # the lock is gone: it goes through
        assert (await broker.stats("q")).ready == 1


async def test_a_consumer_waits_out_a_busy_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    async with SqliteBroker(str(path), busy_timeout="20ms", poll_interval="10ms") as broker:
        await broker.publish("q", b"x")
        consumer = broker.consume("q")
        with caplog.at_level(logging.WARNING, "interlink.messaging.sqlite"), WriteLock(path):
            getting = asyncio.ensure_future(anext(consumer))
            await asyncio.sleep(0.1)
            assert not getting.done()
        delivery = await asyncio.wait_for(getting, 5)
        assert delivery.message.body == b"x"
        assert "trying again" in caplog.text
        await delivery.ack()
        await consumer.cancel()


async def test_a_renewal_that_cannot_get_the_lock_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    async with SqliteBroker(str(path), busy_timeout="20ms", visibility_timeout="150ms") as broker:
        await broker.publish("q", b"x")
        consumer = broker.consume("q")
        delivery = await anext(consumer)
        with caplog.at_level(logging.WARNING, "interlink.messaging.sqlite"), WriteLock(path):
            await asyncio.sleep(0.12)  # a renewal (every 50 ms) meets the lock
        assert "could not renew" in caplog.text
        await delivery.ack()  # a later renewal kept the lease: the ack is ours
        await consumer.cancel()


# -- leases ---------------------------------------------------------------------------------


async def test_a_stolen_lease_cannot_be_settled_and_frees_its_prefetch_slot(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    for n in range(3):
        await broker.publish("q", {"n": n})
    consumer = broker.consume("q", prefetch=2)
    first, second = await anext(consumer), await anext(consumer)
    # Another process took the first one over (its lease had run out there).
    _execute(
        sq.path, "UPDATE messages SET lease_owner = 'elsewhere' WHERE id = ?", first.message.id
    )
    outcomes = await asyncio.gather(first.ack(), second.ack(), return_exceptions=True)
    assert isinstance(outcomes[0], DeliveryError)
    assert outcomes[0].message_id == first.message.id
    assert outcomes[1] is None
    assert not first.settled
    with pytest.raises(DeliveryError, match="delivered again"):
        await first.release()  # known lost: refused without asking the database
    third = await anext(consumer)  # both slots are free again
    assert third.message.decode() == {"n": 2}
    await third.ack()
    stats = await broker.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 1)  # the stolen one, held elsewhere
    await consumer.cancel()


async def test_renewal_finds_a_lost_lease_and_extend_reports_it(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"a")
    await broker.publish("q", b"b")
    consumer = broker.consume("q", prefetch=2)
    kept, lost = await anext(consumer), await anext(consumer)
    await kept.extend()
    _execute(sq.path, "UPDATE messages SET lease_owner = 'elsewhere' WHERE id = ?", lost.message.id)
    await sq.run_until(lambda: lost._gone, within=broker.visibility_timeout, step=1.0)
    with pytest.raises(DeliveryError, match="extend the lease"):
        await lost.extend()
    await kept.ack()
    await kept.extend()  # settled: nothing to renew, no error
    await consumer.cancel()


async def test_a_held_delivery_survives_many_lease_periods(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"slow")
    consumer = broker.consume("q")
    held = await anext(consumer)
    other = broker.consume("q")
    second = asyncio.ensure_future(anext(other))
    start = sq.clock.monotonic()
    await sq.run_until(
        lambda: sq.clock.monotonic() - start >= 4 * broker.visibility_timeout,
        within=5 * broker.visibility_timeout,
        step=1.0,
    )
    assert not second.done()
    await held.ack()
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    await other.cancel()
    await consumer.cancel()
    assert (await broker.stats("q")).in_flight == 0


async def test_a_crashed_brokers_lease_runs_out_and_another_broker_gets_it(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    await broker.publish("q", {"n": 1})
    lost = await anext(broker.consume("q"))
    async with SqliteBroker(str(sq.path), clock=sq.clock, poll_interval=1.0) as other:
        await broker.close()  # dies holding the lease
        consumer = other.consume("q")
        getting = asyncio.ensure_future(anext(consumer))
        await sq.run_until(getting.done, within=broker.visibility_timeout + 5, step=1.0)
        again = getting.result()
        assert again.message.id == lost.message.id
        assert (again.message.delivery_count, again.message.attempt) == (2, 1)
        await again.ack()
        await consumer.cancel()


# -- cancel -------------------------------------------------------------------------------------


async def test_cancel_puts_fetched_messages_back_in_place_uncounted(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    for n in range(5):
        await broker.publish("q", {"n": n})
    consumer = broker.consume("q", prefetch=5)
    first = await anext(consumer)  # the other four wait in the consumer
    await consumer.cancel()
    await consumer.cancel()
    with pytest.raises(StopAsyncIteration):
        await anext(consumer)
    await first.release()  # back at the head: it keeps its place
    again = broker.consume("q", prefetch=5)
    seen = [await anext(again) for _ in range(5)]
    assert [d.message.decode()["n"] for d in seen] == [0, 1, 2, 3, 4]
    assert [d.message.delivery_count for d in seen] == [2, 1, 1, 1, 1]
    for delivery in seen:
        await delivery.ack()
    await again.cancel()


async def test_a_fetch_cancelled_midway_hands_its_messages_back(sq: SqliteHarness) -> None:
    broker, consumer = await published(sq)
    fetching = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0)  # the lease is on its way to the storage thread
    fetching.cancel()
    await asyncio.gather(fetching, return_exceptions=True)
    await sq.quiesce()
    stats = await broker.stats("q")
    assert (stats.ready, stats.in_flight) == (1, 0)
    again = broker.consume("q")
    delivery = await anext(again)
    assert delivery.message.delivery_count == 1
    await delivery.ack()
    await again.cancel()


async def test_a_fetch_answered_after_cancel_hands_its_messages_back(sq: SqliteHarness) -> None:
    broker, consumer = await published(sq)
    fetching = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0)
    await consumer.cancel()  # the lease is in flight: it answers after this
    with pytest.raises(StopAsyncIteration):
        await fetching
    await sq.quiesce()
    assert (await broker.stats("q")).ready == 1


async def test_a_settle_cancelled_midway_still_happens_and_frees_the_slot(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"a")
    await broker.publish("q", b"b")
    consumer = broker.consume("q", prefetch=1)
    first = await anext(consumer)
    acking = asyncio.ensure_future(first.ack())
    await asyncio.sleep(0)
    acking.cancel()
    await asyncio.gather(acking, return_exceptions=True)
    second = await anext(consumer)
    assert second.message.body == b"b"
    await second.ack()
    await sq.quiesce()
    stats = await broker.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 0)
    await consumer.cancel()


# -- settling ----------------------------------------------------------------------------------


async def test_retry_and_release_refuse_an_endless_delay(sq: SqliteHarness) -> None:
    _, consumer = await published(sq)
    delivery = await anext(consumer)
    with pytest.raises(ConfigError, match="finite"):
        await delivery.retry(float("inf"))
    with pytest.raises(ConfigError, match="finite"):
        await delivery.release(float("inf"))
    with pytest.raises(ConfigError, match="queue name"):
        await delivery.dead_letter(failure(), dead_letter_queue="has space")  # type: ignore[arg-type]
    await delivery.ack()
    await consumer.cancel()


async def test_a_delayed_retry_wakes_no_one_early_and_fires_when_due(sq: SqliteHarness) -> None:
    _, consumer = await published(sq)
    delivery = await anext(consumer)
    start = sq.clock.wall()
    await delivery.retry(7.0, headers={"why": "later"})
    getting = asyncio.ensure_future(anext(consumer))
    await sq.run_until(getting.done, within=10, step=0.5)
    again = getting.result()
    assert sq.clock.wall() - start == pytest.approx(7.0, abs=1e-6)
    assert (again.message.attempt, again.message.delivery_count) == (2, 2)
    assert again.message.headers == {"why": "later"}
    await again.ack()
    await consumer.cancel()


async def test_replay_into_a_refusing_queue_moves_nothing(sq: SqliteHarness) -> None:
    broker, consumer = await published(sq)
    delivery = await anext(consumer)
    await delivery.dead_letter(failure())  # type: ignore[arg-type]
    [record] = await broker.dead_letters.list()
    await sq.refuse_publishes("q")
    with pytest.raises(PublishError, match="not stored") as caught:
        await broker.dead_letters.replay([record.id])
    assert caught.value.reason == "refused"
    assert await broker.dead_letters.count() == 1
    assert (await broker.stats("q")).ready == 0
    await consumer.cancel()


async def test_dead_letter_queries_check_their_arguments(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    with pytest.raises(ConfigError, match="limit"):
        await broker.dead_letters.list(limit=-1)
    with pytest.raises(ConfigError, match="sequence of strings"):
        await broker.dead_letters.replay("one-id")
    with pytest.raises(ConfigError, match="sequence of strings"):
        await broker.dead_letters.purge([1])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="filter must be a string"):
        await broker.dead_letters.count(queue=3)  # type: ignore[arg-type]
    assert await broker.dead_letters.replay([]) == []


# -- storage failures ---------------------------------------------------------------------


async def test_a_full_disk_fails_the_writes_with_the_reason_and_recovers(sq: SqliteHarness) -> None:
    broker = broker_of(sq)

    def limit_pages(extra: int) -> Callable[[sqlite3.Connection, float], None]:
        def apply(conn: sqlite3.Connection, _now: float) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + extra}").fetchone()

        return apply

    await broker._call(limit_pages(2))
    outcomes = await asyncio.gather(
        *(broker.publish("q", bytes(3000)) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(o, PublishError) and o.reason == "refused" for o in outcomes)
    assert "full" in str(outcomes[0])
    assert (await broker.stats("q")).ready == 0  # all or nothing: no half-written batch
    await broker._call(limit_pages(10_000))
    await broker.publish("q", bytes(3000))
    assert (await broker.stats("q")).ready == 1


async def test_a_failing_fetch_is_a_messaging_error_for_the_reader(
    sq: SqliteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_of(sq)

    def broken(error: sqlite3.Error) -> Callable[..., object]:
        def lease(*_args: object) -> object:
            raise error

        return lease

    for error in (sqlite3.OperationalError("disk I/O error"), sqlite3.DatabaseError("malformed")):
        monkeypatch.setattr(ops, "lease", broken(error))
        consumer = broker.consume("q")
        with pytest.raises(MessagingError, match="cannot fetch from 'q'") as caught:
            await anext(consumer)
        assert caught.value.queue == "q"
        await consumer.cancel()


async def test_a_stats_query_that_cannot_get_the_lock_is_a_messaging_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    async with SqliteBroker(str(path), busy_timeout="20ms") as broker:
        with WriteLock(path), pytest.raises(MessagingError, match="locked"):
            await broker.stats("q")


async def test_a_burst_bigger_than_one_transaction_is_all_stored(
    sq: SqliteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_MAX_BATCH", 10)
    broker = broker_of(sq)
    await asyncio.gather(*(broker.publish("q", {"n": n}) for n in range(50)))
    await asyncio.gather(*(broker.publish("q", {"n": n}) for n in range(5)))
    assert (await broker.stats("q")).ready == 55


# -- settling a lost lease, and races -------------------------------------------------------


async def test_retry_release_and_dead_letter_of_a_stolen_lease_leave_it_to_its_holder(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    for n in range(3):
        await broker.publish("q", {"n": n})
    consumer = broker.consume("q", prefetch=3)
    deliveries = [await anext(consumer) for _ in range(3)]
    _execute(sq.path, "UPDATE messages SET lease_owner = 'elsewhere'")
    settles = [
        deliveries[0].retry(1.0),
        deliveries[1].release(),
        deliveries[2].dead_letter(failure()),  # type: ignore[arg-type]
    ]
    for settle, delivery in zip(settles, deliveries, strict=True):
        with pytest.raises(DeliveryError, match="delivered again") as caught:
            await settle
        assert caught.value.message_id == delivery.message.id
    assert await broker.dead_letters.count() == 0
    stats = await broker.stats("q")
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 3)  # the holder has them
    await consumer.cancel()


async def test_two_acks_of_one_delivery_one_wins_and_the_slot_frees_once(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"a")
    await broker.publish("q", b"b")
    consumer = broker.consume("q", prefetch=1)
    delivery = await anext(consumer)
    outcomes = await asyncio.gather(delivery.ack(), delivery.ack(), return_exceptions=True)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], DeliveryError)
    assert consumer._held == 0
    second = await anext(consumer)
    assert second.message.body == b"b"
    await second.ack()
    await consumer.cancel()


async def test_a_renewal_racing_an_ack_does_not_call_the_acked_lease_lost(
    sq: SqliteHarness, caplog: pytest.LogCaptureFixture
) -> None:
    broker, consumer = await published(sq)
    delivery = await anext(consumer)
    with caplog.at_level(logging.WARNING, "interlink.messaging.sqlite"):
        renewing = asyncio.ensure_future(broker._extend([delivery]))
        acking = asyncio.ensure_future(delivery.ack())
        kept = await renewing  # the ack ran first in the shared transaction
        await acking
    assert kept is False
    assert delivery.settled
    assert "lost the lease" not in caplog.text
    await consumer.cancel()


async def test_two_tasks_reading_one_consumer_get_different_deliveries(
    sq: SqliteHarness,
) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"a")
    await broker.publish("q", b"b")
    consumer = broker.consume("q", prefetch=4)
    # The first leases both; the second, waiting for the fetch, takes the other.
    readers = [asyncio.ensure_future(anext(consumer)) for _ in range(2)]
    await sq.run_until(lambda: all(r.done() for r in readers), within=5)
    assert sorted(r.result().message.body for r in readers) == [b"a", b"b"]
    for reader in readers:
        await reader.result().ack()
    await consumer.cancel()


async def test_cancel_while_an_empty_fetch_is_in_flight_ends_the_iteration(
    sq: SqliteHarness,
) -> None:
    consumer = broker_of(sq).consume("q")
    fetching = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0)
    await consumer.cancel()
    with pytest.raises(StopAsyncIteration):
        await fetching


async def test_a_failed_fetch_after_cancel_hands_back_nothing(
    sq: SqliteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lease(*_args: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ops, "lease", lease)
    consumer = broker_of(sq).consume("q")
    fetching = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0)
    fetching.cancel()
    await asyncio.gather(fetching, return_exceptions=True)
    await sq.quiesce()
    assert broker_of(sq)._store is not None
    assert broker_of(sq)._store.in_flight == 0


async def test_a_hand_back_that_fails_is_logged_and_the_lease_runs_out_instead(
    sq: SqliteHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_of(sq)
    for n in range(3):
        await broker.publish("q", {"n": n})

    def release_unhandled(*_args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ops, "release_unhandled", release_unhandled)
    with caplog.at_level(logging.WARNING, "interlink.messaging.sqlite"):
        buffered = broker.consume("q", prefetch=2)
        first = await anext(buffered)  # the second waits in the consumer
        await buffered.cancel()
        cancelled = broker.consume("q")
        fetching = asyncio.ensure_future(anext(cancelled))
        await asyncio.sleep(0)
        await cancelled.cancel()
        with pytest.raises(StopAsyncIteration):
            await fetching
        await sq.quiesce()
    assert "could not release 1 fetched messages" in caplog.text
    assert "releasing fetched messages failed" in caplog.text
    await first.ack()
    stats = await broker.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 2)  # back once their leases run out


async def test_cancel_after_close_leaves_fetched_messages_leased(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    broker = SqliteBroker(str(path))
    await broker.start()
    await broker.publish("q", b"a")
    await broker.publish("q", b"b")
    consumer = broker.consume("q", prefetch=2)
    await anext(consumer)
    await broker.close()
    await consumer.cancel()  # nothing to talk to: they stay leased, as after a crash
    async with SqliteBroker(str(path)) as again:
        stats = await again.stats("q")
        assert (stats.ready, stats.in_flight) == (0, 2)


async def test_a_message_due_while_the_fetch_answered_is_fetched_at_once(
    sq: SqliteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_of(sq)
    await broker.publish("q", b"x")
    real = ops.lease
    answers: list[str] = []

    def lease(conn: sqlite3.Connection, now: float, *args: object) -> object:
        if not answers:  # the first answer: nothing yet, but due a moment ago
            answers.append("empty")
            return [], now - 1.0
        answers.append("real")
        return real(conn, now, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ops, "lease", lease)
    consumer = broker.consume("q")
    getting = asyncio.ensure_future(anext(consumer))
    await sq.quiesce()  # no fake time passes: no poll could have fired
    assert getting.done()
    assert answers == ["empty", "real"]
    await getting.result().ack()
    await consumer.cancel()


async def test_a_delayed_publish_shorter_than_the_poll_fires_on_time(sq: SqliteHarness) -> None:
    broker = broker_of(sq)
    assert broker.poll_interval == 1.0  # the harness polls every fake second
    consumer = broker.consume("q")
    getting = asyncio.ensure_future(anext(consumer))
    await sq.quiesce()  # the consumer waits for its next poll
    start = sq.clock.wall()
    await broker.publish("q", b"soon", delay=0.3)
    await sq.run_until(getting.done, within=2, step=0.05)
    assert sq.clock.wall() - start == pytest.approx(0.3, abs=1e-6)
    await getting.result().ack()
    await consumer.cancel()
