"""What only the memory broker has: named stores, fault injection, exact lease timing."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from interlink.core.errors import (
    ConfigError,
    DeadLetterNotFoundError,
    DeliveryError,
    MessagingError,
    PublishError,
)
from interlink.messaging import (
    Consumer,
    Delivery,
    MemoryBroker,
    describe_failure,
    open_broker,
)
from interlink.messaging._memory import _NAMED
from interlink.testing import FakeClock

_names = itertools.count(1)


@pytest.fixture
def name() -> Iterator[str]:
    """A store name unique to the test, discarded after it."""
    made = f"test-memory-{next(_names)}"
    yield made
    MemoryBroker.discard(made)


@pytest.fixture
async def broker(clock: FakeClock) -> AsyncIterator[MemoryBroker]:
    made = MemoryBroker(clock=clock, visibility_timeout=10.0)
    yield made
    await made.close()


def failure() -> Any:
    return describe_failure(
        ValueError("bad"), handler="h", attempts=1, first_failed_at=1.0, last_failed_at=2.0
    )


async def take(consumer: Consumer) -> Delivery:
    """The next delivery, which must be available now."""
    return await asyncio.wait_for(anext(aiter(consumer)), 1.0)


async def nothing_now(consumer: Consumer, clock: FakeClock) -> asyncio.Future[Delivery]:
    """Start waiting for a delivery and assert none is available yet; the pending wait."""
    task = asyncio.ensure_future(anext(aiter(consumer)))
    await clock.settle()
    assert not task.done()
    return task


# -- opening ----------------------------------------------------------------------


async def test_memory_url_without_a_name_is_a_fresh_broker_each_time(clock: FakeClock) -> None:
    first = await open_broker("memory://", clock=clock)
    second = await open_broker("memory://", clock=clock)
    assert isinstance(first, MemoryBroker)
    assert first.url == "memory://"
    assert first.name is None
    await first.publish("q", {"n": 1})
    assert (await second.stats("q")).ready == 0
    await first.close()
    await second.close()


async def test_memory_url_with_a_name_shares_one_store(clock: FakeClock, name: str) -> None:
    producer = await open_broker(f"memory://{name}", clock=clock)
    worker = await open_broker(f"memory://{name}", clock=clock)
    assert isinstance(worker, MemoryBroker)
    assert worker.name == name
    waiting = asyncio.ensure_future(anext(aiter(worker.consume("q"))))
    await clock.settle()
    message_id = await producer.publish("q", {"n": 1})
    await clock.settle()
    assert waiting.done()  # a publish through another broker wakes this consumer at once
    delivery = waiting.result()
    assert delivery.message.id == message_id
    await delivery.dead_letter(failure())
    assert await producer.dead_letters.count(queue="q") == 1
    await producer.close()
    await worker.close()


async def test_a_named_store_outlives_its_brokers_until_discarded(
    clock: FakeClock, name: str
) -> None:
    first = await open_broker(f"memory://{name}", clock=clock)
    await first.publish("q", {"n": 1})
    await first.close()
    again = await open_broker(f"memory://{name}/", clock=clock)
    assert (await again.stats("q")).ready == 1
    await again.close()
    assert MemoryBroker.discard(name) is True
    assert MemoryBroker.discard(name) is False
    fresh = await open_broker(f"memory://{name}", clock=clock)
    assert (await fresh.stats("q")).ready == 0
    await fresh.close()
    assert name in _NAMED


async def test_visibility_timeout_comes_from_the_url(clock: FakeClock) -> None:
    broker = MemoryBroker.from_url("memory://?visibility_timeout=1m30s", clock=clock)
    assert broker.visibility_timeout == 90.0
    assert broker.url == "memory://?visibility_timeout=1m30s"
    assert MemoryBroker(clock=clock).visibility_timeout == 30.0


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("memory://?visibility=5s", "unknown option 'visibility'.*visibility_timeout"),
        ("memory://?visibility_timeout=5", "invalid duration '5'"),
        ("memory://?visibility_timeout=-5s", "invalid duration"),
        ("memory://?visibility_timeout=0s", "greater than zero"),
        ("memory://?visibility_timeout=1s&visibility_timeout=2s", "given twice"),
        ("sqlite:///x.db", "not a memory:// URL"),
    ],
)
def test_bad_url_options_are_config_errors(url: str, complaint: str, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match=complaint):
        MemoryBroker.from_url(url, clock=clock)


def test_a_zero_visibility_timeout_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        MemoryBroker(visibility_timeout=0)


async def test_repr_names_the_store_and_state(broker: MemoryBroker, clock: FakeClock) -> None:
    named = MemoryBroker.from_url("memory://orders", clock=clock)
    assert repr(named) == "<MemoryBroker memory://orders queues=0 open>"
    await named.close()
    assert repr(named) == "<MemoryBroker memory://orders queues=0 closed>"
    MemoryBroker.discard("orders")
    await broker.publish("q", b"x")
    consumer = broker.consume("q", prefetch=3)
    delivery = await take(consumer)
    assert repr(consumer) == "<MemoryConsumer 'q' prefetch=3 unsettled=1>"
    assert repr(delivery) == f"<_MemoryDelivery q/{delivery.message.id} attempt=1 settled=False>"
    await consumer.cancel()
    assert repr(consumer) == "<MemoryConsumer 'q' prefetch=3 unsettled=1 stopped>"


# -- exact semantics --------------------------------------------------------------


async def test_headers_come_back_exactly_as_published(broker: MemoryBroker) -> None:
    await broker.publish("q", {"n": 1}, headers={"a": "1"})
    delivery = await take(broker.consume("q"))
    assert delivery.message.headers == {"a": "1"}


async def test_delivery_count_counts_releases_and_restarts_with_each_retry(
    broker: MemoryBroker,
) -> None:
    await broker.publish("q", {"n": 1})
    consumer = broker.consume("q")
    first = await take(consumer)
    await first.release()
    second = await take(consumer)
    assert (second.message.attempt, second.message.delivery_count) == (1, 2)
    await second.retry(0)
    third = await take(consumer)
    assert (third.message.attempt, third.message.delivery_count) == (2, 2)
    broker.expire_leases()
    fourth = await take(consumer)
    assert (fourth.message.attempt, fourth.message.delivery_count) == (2, 3)
    await fourth.ack()


async def test_a_message_released_at_once_keeps_its_place_in_line(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    first_id = await broker.publish("q", {"n": 1})
    await clock.advance(1.0)
    second_id = await broker.publish("q", {"n": 2})
    consumer = broker.consume("q")
    first = await take(consumer)
    await clock.advance(1.0)
    await first.release()
    assert [(await take(consumer)).message.id for _ in range(2)] == [first_id, second_id]


async def test_a_waiting_consumer_does_not_poll(broker: MemoryBroker, clock: FakeClock) -> None:
    consumer = broker.consume("q")
    waiting = await nothing_now(consumer, clock)
    assert clock.pending == 0  # nothing due: no timer at all
    await broker.publish("q", {"n": 1}, delay=60.0)
    await clock.settle()
    assert clock.pending == 1  # one timer, for the due time
    await clock.advance(59.9)
    assert not waiting.done()
    await clock.advance(0.1)
    assert waiting.done()
    await waiting.result().ack()


async def test_real_clock_delays_fire() -> None:
    broker = MemoryBroker()
    await broker.publish("q", {"n": 1}, delay=0.02)
    delivery = await asyncio.wait_for(anext(aiter(broker.consume("q"))), 5.0)
    assert delivery.message.decode() == {"n": 1}
    await broker.close()


async def test_two_consumers_share_a_queue_without_duplicates(broker: MemoryBroker) -> None:
    ids = {await broker.publish("q", {"n": n}) for n in range(4)}
    a, b = broker.consume("q", prefetch=2), broker.consume("q", prefetch=2)
    got = [await take(a), await take(b), await take(a), await take(b)]
    assert {d.message.id for d in got} == ids


async def test_the_prefetch_slot_frees_when_a_delivery_settles_while_waiting(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    for n in range(2):
        await broker.publish("q", {"n": n})
    consumer = broker.consume("q", prefetch=1)
    first = await take(consumer)
    waiting = await nothing_now(consumer, clock)
    await first.ack()
    await clock.settle()
    assert waiting.done()


async def test_stats_of_an_unknown_queue_are_zero(broker: MemoryBroker) -> None:
    stats = await broker.stats("never-used")
    assert (stats.ready, stats.delayed, stats.in_flight, stats.oldest_age, stats.dead_letters) == (
        0,
        0,
        0,
        None,
        0,
    )


# -- leases -----------------------------------------------------------------------


async def test_close_leaves_deliveries_leased_for_exactly_the_visibility_timeout(
    clock: FakeClock, name: str
) -> None:
    first = await open_broker(f"memory://{name}?visibility_timeout=10s", clock=clock)
    message_id = await first.publish("q", {"n": 1})
    held = await take(first.consume("q"))
    await first.close()
    with pytest.raises(DeliveryError, match="broker was closed"):
        await held.ack()
    with pytest.raises(DeliveryError):
        await held.extend()
    assert not held.settled

    second = await open_broker(f"memory://{name}", clock=clock)
    assert (await second.stats("q")).in_flight == 1
    waiting = await nothing_now(second.consume("q"), clock)
    await clock.advance(9.99)
    assert not waiting.done()
    await clock.advance(0.01)
    assert waiting.done()
    again = waiting.result()
    assert (again.message.id, again.message.delivery_count) == (message_id, 2)
    await again.ack()
    await second.close()


async def test_stats_see_a_lease_that_ran_out(clock: FakeClock, name: str) -> None:
    first = await open_broker(f"memory://{name}?visibility_timeout=5s", clock=clock)
    await first.publish("q", {"n": 1})
    await take(first.consume("q"))
    await first.close()
    second = await open_broker(f"memory://{name}", clock=clock)
    await clock.advance(5.0)
    stats = await second.stats("q")
    assert (stats.ready, stats.in_flight) == (1, 0)
    await second.close()


async def test_expire_leases_simulates_a_consumer_crash(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    a_id = await broker.publish("a", {"n": 1})
    await broker.publish("b", {"n": 2})
    consumer_a = broker.consume("a", prefetch=1)
    held_a = await take(consumer_a)
    held_b = await take(broker.consume("b"))

    assert broker.expire_leases("a") == 1
    assert broker.expire_leases("no-such-queue") == 0
    with pytest.raises(DeliveryError, match="lease expired"):
        await held_a.ack()
    assert not held_a.settled
    again = await take(consumer_a)  # the prefetch slot was freed with the lease
    assert (again.message.id, again.message.attempt, again.message.delivery_count) == (a_id, 1, 2)
    await held_b.extend()  # still held
    assert broker.expire_leases() == 2
    with pytest.raises(DeliveryError):
        await held_b.retry(0)
    assert (await broker.stats("b")).ready == 1


async def test_expire_leases_after_a_close_makes_them_available_at_once(
    clock: FakeClock, name: str
) -> None:
    first = await open_broker(f"memory://{name}", clock=clock)
    await first.publish("q", {"n": 1})
    await take(first.consume("q"))
    await first.close()
    second = await open_broker(f"memory://{name}", clock=clock)
    assert isinstance(second, MemoryBroker)
    assert second.expire_leases() == 1
    again = await take(second.consume("q"))
    await again.ack()
    await clock.advance(60.0)  # the old lease running out changes nothing now
    stats = await second.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 0)
    await second.close()


async def test_a_settled_delivery_can_still_be_extended(broker: MemoryBroker) -> None:
    await broker.publish("q", {"n": 1})
    delivery = await take(broker.consume("q"))
    await delivery.extend()
    await delivery.ack()
    await delivery.extend()


# -- fault injection ----------------------------------------------------------------


async def test_refused_publishes_say_refused_until_accepted(broker: MemoryBroker) -> None:
    broker.refuse_publishes("q")
    with pytest.raises(PublishError, match="refuses writes") as caught:
        await broker.publish("q", {"n": 1}, message_id="m1")
    assert (caught.value.reason, caught.value.message_id, caught.value.queue) == (
        "refused",
        "m1",
        "q",
    )
    await broker.publish("other", {"n": 1})  # only that queue
    broker.accept_publishes("q")
    assert await broker.publish("q", {"n": 1}, message_id="m1") == "m1"


async def test_refusal_is_shared_by_brokers_on_one_store(clock: FakeClock, name: str) -> None:
    first = MemoryBroker.from_url(f"memory://{name}", clock=clock)
    second = MemoryBroker.from_url(f"memory://{name}", clock=clock)
    first.refuse_publishes("q")
    with pytest.raises(PublishError):
        await second.publish("q", {"n": 1})


async def test_replay_into_a_refusing_queue_moves_nothing(broker: MemoryBroker) -> None:
    await broker.publish("q", {"n": 1})
    await (await take(broker.consume("q"))).dead_letter(failure())
    (record,) = await broker.dead_letters.list()
    broker.refuse_publishes("q")
    with pytest.raises(PublishError):
        await broker.dead_letters.replay([record.id])
    assert await broker.dead_letters.get(record.id) == record
    assert (await broker.stats("q")).ready == 0
    broker.accept_publishes("q")
    assert await broker.dead_letters.replay([record.id, record.id]) == [record.message.id]
    assert (await broker.stats("q")).ready == 1


async def test_ack_and_release_still_work_on_a_refusing_queue(broker: MemoryBroker) -> None:
    await broker.publish("q", {"n": 1})
    consumer = broker.consume("q")
    delivery = await take(consumer)
    broker.refuse_publishes("q")
    await delivery.release()
    await (await take(consumer)).ack()


def test_fault_injection_checks_the_queue_name() -> None:
    broker = MemoryBroker()
    with pytest.raises(ConfigError):
        broker.refuse_publishes(" ")
    with pytest.raises(ConfigError):
        broker.accept_publishes("")


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"message_id": ""}, {"message_id": 7}, {"key": ""}, {"delay": True}],
    ids=["empty id", "id not a string", "empty key", "bool delay"],
)
async def test_bad_publish_arguments(broker: MemoryBroker, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        await broker.publish("q", {"n": 1}, **kwargs)
    assert (await broker.stats("q")).ready == 0


@pytest.mark.parametrize("prefetch", [0, -1, 1.5, True])
def test_bad_prefetch_is_a_config_error(prefetch: Any) -> None:
    with pytest.raises(ConfigError, match="prefetch"):
        MemoryBroker().consume("q", prefetch=prefetch)


async def test_bad_settle_arguments_leave_the_delivery_unsettled(broker: MemoryBroker) -> None:
    await broker.publish("q", {"n": 1})
    delivery = await take(broker.consume("q"))
    with pytest.raises(ConfigError):
        await delivery.retry(math.nan)
    with pytest.raises(ConfigError):
        await delivery.retry(1.0, headers={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        await delivery.release(math.inf)
    with pytest.raises(ConfigError):
        await delivery.dead_letter(failure(), dead_letter_queue="has space")
    assert not delivery.settled
    await delivery.ack()


async def test_bad_dead_letter_queries(broker: MemoryBroker) -> None:
    letters = broker.dead_letters
    with pytest.raises(ConfigError):
        await letters.list(limit=-1)
    with pytest.raises(ConfigError):
        await letters.replay("one-id")
    with pytest.raises(ConfigError):
        await letters.purge("one-id")
    with pytest.raises(DeadLetterNotFoundError):
        await letters.replay(["missing"])
    assert await letters.list(limit=0) == []


async def test_purge_without_arguments_empties_every_dead_letter_queue(
    broker: MemoryBroker,
) -> None:
    for queue in ("a", "b"):
        await broker.publish(queue, {"n": 1})
        await (await take(broker.consume(queue))).dead_letter(failure())
    assert await broker.dead_letters.purge() == 2
    assert await broker.dead_letters.count() == 0


# -- closing ----------------------------------------------------------------------------


async def test_a_closed_broker_refuses_work(broker: MemoryBroker) -> None:
    await broker.close()
    await broker.close()  # idempotent
    with pytest.raises(PublishError) as caught:
        await broker.publish("q", {"n": 1})
    assert caught.value.reason == "disconnected"
    with pytest.raises(MessagingError, match="closed"):
        broker.consume("q")
    for call in (
        broker.ping,
        lambda: broker.stats("q"),
        broker.dead_letters.count,
        lambda: broker.dead_letters.get("x"),
    ):
        with pytest.raises(MessagingError, match="closed"):
            await call()
    await broker.start()
    assert await broker.ping() == 0.0
    await broker.start()  # idempotent


async def test_close_ends_every_consumer(broker: MemoryBroker, clock: FakeClock) -> None:
    await broker.publish("full", {"n": 1})
    full = broker.consume("full", prefetch=1)
    await take(full)
    waiting_slot = await nothing_now(full, clock)
    waiting_message = await nothing_now(broker.consume("empty"), clock)
    await broker.close()
    await clock.settle()
    for task in (waiting_slot, waiting_message):
        with pytest.raises(StopAsyncIteration):
            task.result()


async def test_cancel_ends_the_iteration(broker: MemoryBroker, clock: FakeClock) -> None:
    await broker.publish("q", {"n": 1})
    async with broker.consume("q") as consumer:
        seen = [delivery async for delivery in _first(consumer)]
    assert len(seen) == 1
    with pytest.raises(StopAsyncIteration):
        await anext(aiter(consumer))


async def _first(consumer: Consumer) -> AsyncIterator[Delivery]:
    async for delivery in consumer:
        yield delivery
        await consumer.cancel()


def test_a_waiter_left_on_a_closed_event_loop_is_skipped(name: str) -> None:
    """A test that ends with a consumer still waiting must not break the next one."""
    loop = asyncio.new_event_loop()
    abandoned: asyncio.Future[None] = loop.create_future()
    loop.close()
    broker = MemoryBroker.from_url(f"memory://{name}", clock=FakeClock())
    broker._store.queue("q").waiters.add(abandoned)  # as a consumer on that loop left it

    async def publish() -> int | None:
        await broker.publish("q", {"n": 1})
        return (await broker.stats("q")).ready

    assert asyncio.run(publish()) == 1
    assert not abandoned.done()
