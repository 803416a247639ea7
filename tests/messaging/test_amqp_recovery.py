"""RabbitMQ failures, for real: cut networks, forced closes, deleted queues, killed consumers.

Research behaviours (research/messaging.md (e)): 2 (crash mid-handler), 6
(long delay holds no delivery), 12 (never "sent" while disconnected), 13
(broker connection lost under load: consumers back, nothing lost, publishes
fail in bounded time), 14 (queue deleted behind the consumer: recreated and
resumed), 15 (cancel gives back what was not started). Nothing sleeps to
wait: every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import aiormq
import pytest
from pamqp.commands import Basic

from interlink.core.errors import DeliveryError, MessagingError, PublishError
from interlink.messaging import HEADER_REPLAYED_FROM, Consumer, Delivery, RabbitBroker
from interlink.messaging._amqp_topology import (
    H_DUE_AT,
    H_PUBLISHED_AT,
    MAX_DELAY_MS,
    delay_level_ms,
    delay_queue,
)
from tests.messaging.harness_amqp import (
    AmqpHarness,
    CuttableProxy,
    close_connections,
    delete_queues,
    until,
)
from tests.services import RABBITMQ_URL

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Collector:
    """Acks everything a consumer yields and remembers the message ids (acks that fail are
    fine: the message comes back)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.ids: list[str] = []
        self.counts: list[int] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for delivery in self.consumer:
            self.ids.append(delivery.message.id)
            self.counts.append(delivery.message.delivery_count)
            with contextlib.suppress(DeliveryError):  # it comes back: fine
                await delivery.ack()

    async def stop(self) -> None:
        await self.consumer.cancel()
        await asyncio.wait_for(self.task, 5)


async def test_a_network_cut_fails_publishes_in_bounded_time_and_consumers_resume(
    amqp: AmqpHarness,
) -> None:
    proxy = CuttableProxy()
    port = await proxy.start()
    try:
        broker = await amqp.another(
            url=f"amqp://guest:guest@127.0.0.1:{port}/"
            "?reconnect_interval=100ms&publish_timeout=300ms&confirm_timeout=2s"
        )
        q = amqp.queue()
        collector = Collector(broker.consume(q))
        first = await broker.publish(q, b"before")
        await until(lambda: first in collector.ids, within=5)

        proxy.cut()
        await until(lambda: broker._live() is None, within=5)
        start = time.monotonic()
        with pytest.raises(PublishError) as caught:
            await broker.publish(q, b"during")
        assert caught.value.reason == "disconnected"
        assert time.monotonic() - start < 1.5  # publish_timeout, not a hang (aio-pika#636)
        with pytest.raises(MessagingError):
            await broker.ping()

        proxy.heal()
        await until(lambda: broker._live() is not None, within=10)
        after = await broker.publish(q, b"after")
        await until(lambda: after in collector.ids, within=10)
        # the delivery can reach the collector before the consumer's task resumes
        # from basic_consume (ConsumeOk and Deliver arrive in one read): wait for it
        await until(lambda: collector.consumer.subscriptions >= 2, within=5)  # type: ignore[attr-defined]
        await collector.stop()
    finally:
        await proxy.close()


async def test_rabbitmq_closing_the_connection_under_load_loses_nothing(amqp: AmqpHarness) -> None:
    broker = await amqp.another("reconnect_interval=100ms&publish_timeout=5s&confirm_timeout=5s")
    q = amqp.queue()
    collector = Collector(broker.consume(q, prefetch=50))
    confirmed: set[str] = set()
    stop = asyncio.Event()

    async def publisher(n: int) -> None:
        i = 0
        while not stop.is_set():
            # not confirmed: it may or may not be there, and need not be
            with contextlib.suppress(PublishError):
                confirmed.add(await broker.publish(q, {"publisher": n, "i": i}))
            i += 1

    publishers = [asyncio.create_task(publisher(n)) for n in range(5)]
    await until(lambda: len(confirmed) >= 100, within=20)
    assert await close_connections(broker.connection_name) == 1  # CONNECTION_FORCED
    before = len(confirmed)
    await until(lambda: len(confirmed) >= before + 200, within=30)
    stop.set()
    await asyncio.gather(*publishers)

    await until(lambda: confirmed <= set(collector.ids), within=30)
    await until(lambda: collector.consumer.subscriptions >= 2, within=5)  # type: ignore[attr-defined]
    await collector.stop()


async def test_a_queue_deleted_behind_the_consumer_is_declared_again_and_consumed(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    collector = Collector(amqp.broker.consume(q))
    first = await amqp.broker.publish(q, b"1")
    await until(lambda: first in collector.ids, within=5)
    await delete_queues({q})
    consumer = collector.consumer
    await until(lambda: consumer.subscriptions >= 2, within=10)  # type: ignore[attr-defined]
    second = await amqp.broker.publish(q, b"2")
    await until(lambda: second in collector.ids, within=10)
    await collector.stop()


_CRASHING_CONSUMER = """
import asyncio, sys
from interlink.messaging import open_broker

async def main():
    broker = await open_broker(sys.argv[1])
    async for delivery in broker.consume(sys.argv[2]):
        print(delivery.message.id, delivery.message.delivery_count, flush=True)
        await asyncio.Event().wait()  # the handler is still running when the process dies

asyncio.run(main())
"""


async def test_a_consumer_killed_mid_handler_leaves_the_message_to_be_delivered_again(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    message_id = await amqp.broker.publish(q, {"order": 1})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_CONSUMER,
        amqp.url,
        q,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.decode().split() == [message_id, "1"]
    finally:
        process.kill()  # SIGKILL: no settle, no goodbye
        await process.wait()
    async with amqp.broker.consume(q) as consumer:
        again = await asyncio.wait_for(anext(aiter(consumer)), 10)
        assert (again.message.id, again.message.attempt) == (message_id, 1)
        assert again.message.delivery_count == 2
        await again.ack()


async def test_a_45_minute_retry_waits_in_rabbitmq_not_in_an_unacked_delivery(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    broker = amqp.broker
    assert isinstance(broker, RabbitBroker)
    await broker.publish(q, {"n": 1})
    consumer = broker.consume(q)
    delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
    await delivery.retry(45 * 60)
    level = delay_level_ms(45 * 60)
    assert 2_700_000 <= level <= 2_700_000 * 1.05
    delayed = delay_queue(q, level)
    assert await broker._counts([q, delayed]) == {q: 0, delayed: 1}
    # Nothing is held: closing the consumer's channel gives nothing back to q,
    # and nobody consumes the delay queue, so consumer_timeout has nothing to fire on.
    await consumer.cancel()
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    source = await channel.queue_declare(q, passive=True)
    waiting = await channel.queue_declare(delayed, passive=True)
    await connection.close()
    assert (source.message_count, source.consumer_count) == (0, 0)
    assert (waiting.message_count, waiting.consumer_count) == (1, 0)


async def test_cancel_gives_back_what_was_fetched_but_not_handed_out(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    ids = [await amqp.broker.publish(q, {"n": n}) for n in range(5)]
    consumer = amqp.broker.consume(q, prefetch=5)
    first = await asyncio.wait_for(anext(aiter(consumer)), 5)
    await until(lambda: len(consumer._buffer) == 4, within=5)  # type: ignore[attr-defined]
    await consumer.cancel()
    await consumer.cancel()  # idempotent
    with pytest.raises(StopAsyncIteration):
        await anext(aiter(consumer))
    await first.ack()  # handed out before the cancel: still settles
    async with amqp.broker.consume(q, prefetch=5) as other:
        rest = [await asyncio.wait_for(anext(aiter(other)), 5) for _ in range(4)]
        assert [d.message.id for d in rest] == ids[1:]
        for delivery in rest:
            await delivery.ack()


async def test_release_does_not_burn_the_delivery_limit(amqp: AmqpHarness) -> None:
    broker = await amqp.another("delivery_limit=1")
    q = amqp.queue()
    message_id = await broker.publish(q, b"busy elsewhere")
    async with broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        for count in range(1, 5):
            delivery = await asyncio.wait_for(anext(deliveries), 5)
            assert (delivery.message.id, delivery.message.delivery_count) == (message_id, count)
            await delivery.release()
        await (await asyncio.wait_for(anext(deliveries), 5)).ack()
    assert await broker.dead_letters.count(queue=q) == 0


async def test_over_the_delivery_limit_rabbitmq_dead_letters_it_and_replay_works(
    amqp: AmqpHarness,
) -> None:
    broker = await amqp.another("delivery_limit=1")
    q = amqp.queue()
    message_id = await broker.publish(q, {"n": 1}, headers={"traceparent": TRACEPARENT})
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    for _ in range(2):  # a consumer that crashes on it, twice
        raw = await channel.basic_get(q)
        await channel.basic_reject(raw.delivery.delivery_tag, requeue=True)  # type: ignore[union-attr]
    await connection.close()
    await until(lambda: broker.dead_letters.count(queue=q), within=10)

    (record,) = await broker.dead_letters.list(queue=q)
    assert (record.message.id, record.message.decode()) == (message_id, {"n": 1})
    assert record.message.headers["traceparent"] == TRACEPARENT
    assert (record.source_queue, record.dead_letter_queue) == (q, f"{q}.dlq")
    assert (record.failure.reason, record.failure.error_type) == (
        "delivery_limit",
        "rabbitmq.delivery_limit",
    )
    assert "x-delivery-limit" in record.failure.error_message
    assert abs(record.dead_lettered_at - time.time()) < 60
    assert record.message.attempt == 1
    stranger = await amqp.another()  # another process knows nothing, but the id names the queue
    assert await stranger.dead_letters.get(record.id) == record

    assert await stranger.dead_letters.replay([record.id]) == [message_id]
    async with broker.consume(q) as consumer:
        again: Delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
        assert (again.message.id, again.message.attempt) == (message_id, 1)
        assert again.message.headers[HEADER_REPLAYED_FROM] == record.id
        await again.ack()
    assert await broker.dead_letters.count(queue=q) == 0


async def test_a_delay_longer_than_the_top_level_goes_round_until_due(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    broker = amqp.broker
    assert isinstance(broker, RabbitBroker)
    await broker.publish(q, b"far", delay=40 * 86_400.0)
    assert await broker._counts([delay_queue(q, MAX_DELAY_MS)]) == {delay_queue(q, MAX_DELAY_MS): 1}
    now = time.time()
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    for message_id, due in (("not-yet", now + 100.0), ("due", now - 1.0)):
        await channel.basic_publish(
            b"x",
            routing_key=q,
            properties=Basic.Properties(
                message_id=message_id,
                headers={H_DUE_AT: repr(due), H_PUBLISHED_AT: repr(now)},
            ),
        )
    await connection.close()
    async with broker.consume(q) as consumer:
        delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
        assert delivery.message.id == "due"  # "not-yet" went round, unseen
        assert H_DUE_AT not in delivery.message.headers
        await delivery.ack()
    rounds = [n for n in broker._declared if n.startswith(f"{q}.delay.")]
    counts = await broker._counts(rounds)
    assert sum(n or 0 for n in counts.values()) == 2  # "far" and "not-yet"


async def test_messages_fetched_on_a_lost_channel_are_not_handed_out_but_come_again(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    ids = [await amqp.broker.publish(q, {"n": n}) for n in range(3)]
    consumer = amqp.broker.consume(q, prefetch=5)
    deliveries = aiter(consumer)
    first = await asyncio.wait_for(anext(deliveries), 5)
    await until(lambda: len(consumer._buffer) == 2, within=5)  # type: ignore[attr-defined]
    await consumer._channel.close()  # type: ignore[attr-defined]  # the channel dies
    with pytest.raises(DeliveryError):
        await first.ack()  # its channel is gone: RabbitMQ gives it back
    again = [await asyncio.wait_for(anext(deliveries), 5) for _ in range(3)]
    assert sorted(d.message.id for d in again) == sorted(ids)
    assert {d.message.delivery_count for d in again} == {2}
    for delivery in again:
        await delivery.ack()
    await consumer.cancel()
