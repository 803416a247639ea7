"""RabbitMQ specifics: confirms, the queue layout, delay levels, options, bad input.

The shared contract runs on RabbitMQ through ``test_broker_contract.py``;
this file covers what only the RabbitMQ backend has. Everything runs against
the real broker on loopback (``tests.services``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from typing import Any

import aiormq
import pytest
from pamqp.commands import Basic

from interlink.core.errors import ConfigError, DeliveryError, MessagingError, PublishError
from interlink.messaging import Failure, RabbitBroker, open_broker
from interlink.messaging._amqp import server_version
from interlink.messaging._amqp_topology import (
    H_ATTEMPT,
    H_DUE_AT,
    MAX_DELAY_MS,
    check_delay,
    delay_level_ms,
    delay_queue,
    text_header,
)
from tests.messaging.harness_amqp import (
    AmqpHarness,
    amqp_url,
    delete_queues,
    rabbitmqctl,
    until,
)
from tests.services import RABBITMQ_URL


def broker_of(harness: AmqpHarness) -> RabbitBroker:
    assert isinstance(harness.broker, RabbitBroker)
    return harness.broker


async def queue_table(*names: str) -> dict[str, dict[str, str]]:
    """``rabbitmqctl list_queues`` for ``names``: name -> column -> value."""
    columns = ["name", "type", "messages_ready", "messages_unacknowledged", "arguments"]
    out = await rabbitmqctl("-q", "list_queues", "--no-table-headers", *columns)
    table: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        if cells[0] in names:
            table[cells[0]] = dict(zip(columns, cells, strict=False))
    return table


# -- delay levels -----------------------------------------------------------------


def test_delay_levels_are_never_early_and_at_most_five_percent_late() -> None:
    for ms in [1.5, 7, 10, 99, 100, 250, 1000, 1001, 30_000, 45 * 60_000, 86_400_000, 1e9]:
        level = delay_level_ms(ms / 1000)
        assert ms <= level <= math.ceil(ms * 1.05), ms
    assert delay_level_ms(1.0) == 1000  # powers of two seconds are exact
    assert delay_level_ms(64.0) == 64_000


def test_header_values_of_other_types_are_read_as_text() -> None:
    assert (text_header(b"\xffok"), text_header(7), text_header("s")) == ("\ufffdok", "7", "s")


def test_delay_levels_are_a_bounded_set() -> None:
    levels = {delay_level_ms(10 ** (k / 400)) for k in range(-1200, 2600)}  # 1 ms .. 3 years
    assert len(levels) <= 470
    assert max(levels) == MAX_DELAY_MS
    assert delay_level_ms(0.0) == 0
    assert delay_level_ms(0.0004) == 1
    assert delay_level_ms(10 * 365 * 86_400) == MAX_DELAY_MS


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "5s", True, None])
def test_a_bad_delay_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError):
        check_delay(bad)


# -- options ----------------------------------------------------------------------


def test_url_options_are_read_and_the_password_redacted() -> None:
    broker = RabbitBroker.from_url(
        "amqps://app:s3cret@mq.example:5671/prod?delivery_limit=5&publish_timeout=250ms"
        "&confirm_timeout=3s&reconnect_interval=2s&connect_timeout=1s&browse_limit=50"
        "&heartbeat=15&name=billing"
    )
    assert broker.url == (
        "amqps://app:***@mq.example:5671/prod?delivery_limit=5&publish_timeout=250ms"
        "&confirm_timeout=3s&reconnect_interval=2s&connect_timeout=1s&browse_limit=50"
        "&heartbeat=15&name=billing"
    )
    assert (broker.delivery_limit, broker.browse_limit) == (5, 50)
    assert (broker.publish_timeout, broker.confirm_timeout) == (0.25, 3.0)
    assert (broker.reconnect_interval, broker.connect_timeout) == (2.0, 1.0)
    assert broker.connection_name == "billing"
    assert "s3cret" not in repr(broker)


@pytest.mark.parametrize(
    "url",
    [
        "amqp://localhost/?colour=blue",
        "amqp://localhost/?delivery_limit=0",
        "amqp://localhost/?delivery_limit=ten",
        "amqp://localhost/?publish_timeout=5",
        "amqp://localhost/?confirm_timeout=-1s",
        "amqp://localhost/?browse_limit=1.5",
        "amqp://localhost/?name=a&name=b",
        "memory://",
    ],
)
def test_bad_url_options_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        RabbitBroker.from_url(url)


async def test_a_wrong_port_fails_at_open_within_the_connect_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(MessagingError, match="cannot connect"):
        await open_broker("amqp://guest:guest@127.0.0.1:1/?connect_timeout=2s")
    assert time.monotonic() - start < 3.0


# -- the queue layout ---------------------------------------------------------------


async def test_queues_are_quorum_with_a_delivery_limit_a_dlq_and_ttl_delay_queues(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    broker = await amqp.another("delivery_limit=7")
    await broker.publish(q, {"n": 1})
    await broker.publish(q, {"n": 2}, delay=30.0)
    delayed = delay_queue(q, delay_level_ms(30.0))
    table = await queue_table(q, f"{q}.dlq", delayed)
    counts = await broker._counts([q, delayed])
    assert {name: row["type"] for name, row in table.items()} == {
        q: "quorum",
        f"{q}.dlq": "quorum",
        delayed: "quorum",
    }
    source = table[q]["arguments"]
    for argument in (
        '{"x-delivery-limit",7}',
        f'{{"x-dead-letter-routing-key","{q}.dlq"}}',
        '{"x-dead-letter-strategy","at-least-once"}',
        '{"x-overflow","reject-publish"}',
    ):
        assert argument in source
    delay_arguments = table[delayed]["arguments"]
    assert f'{{"x-message-ttl",{delay_level_ms(30.0)}}}' in delay_arguments
    assert f'{{"x-dead-letter-routing-key","{q}"}}' in delay_arguments
    assert '"x-expires"' in delay_arguments
    assert counts == {q: 1, delayed: 1}


async def test_a_delay_queue_is_declared_again_before_it_could_expire(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    broker = broker_of(amqp)
    await broker.publish(q, b"a", delay=0.5)
    name = delay_queue(q, 500)
    first = broker._declared[name]
    await broker.publish(q, b"b", delay=0.5)
    assert broker._declared[name] == first  # cached
    broker._declared[name] = first - 301.0  # as if declared 5 minutes ago
    await broker.publish(q, b"c", delay=0.5)
    assert broker._declared[name] >= first  # declared again: its x-expires starts over


# -- publisher confirms -------------------------------------------------------------


async def test_a_broker_nack_is_a_publish_error_never_sent(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    await amqp.refuse_publishes(q)
    with pytest.raises(PublishError) as caught:
        await amqp.broker.publish(q, {"n": 1}, message_id="m-1")
    assert (caught.value.reason, caught.value.queue, caught.value.message_id) == (
        "nack",
        q,
        "m-1",
    )
    with pytest.raises(PublishError) as delayed:
        await amqp.broker.publish(q, {"n": 2}, delay=0.2)
    assert delayed.value.reason == "nack"  # through its delay queue too


async def test_a_queue_that_exists_with_other_arguments_is_used_as_it_is(
    amqp: AmqpHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone declared it first as a classic queue that is full (x-max-length 0, reject-publish)."""
    q = amqp.queue()
    amqp.created.add(q)
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.queue_declare(
        q, durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await connection.close()
    with (
        caplog.at_level(logging.WARNING, "interlink.messaging.amqp"),
        pytest.raises(PublishError) as caught,
    ):
        await amqp.broker.publish(q, b"x")
    assert caught.value.reason == "nack"
    assert "exists with other arguments" in caplog.text
    await amqp.broker.ping()  # the publish channel survived the refused declare


async def test_an_unroutable_publish_is_a_publish_error(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_of(amqp)

    async def declare_nothing(*_: object) -> None:
        return None

    monkeypatch.setattr(broker, "_declare_source", declare_nothing)
    monkeypatch.setattr(broker, "_ensure", declare_nothing)
    q = amqp.queue()
    broker._arguments[q] = {}  # known, so it is "declared again" once, to no avail
    with pytest.raises(PublishError) as caught:
        await broker.publish(q, b"x")
    assert caught.value.reason == "unroutable"


async def test_a_deleted_queue_is_declared_again_by_the_next_publish(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    await amqp.broker.publish(q, b"first")
    await delete_queues({q})
    message_id = await amqp.broker.publish(q, b"second")
    async with amqp.broker.consume(q) as consumer:
        delivery = await anext(aiter(consumer))
        assert (delivery.message.id, delivery.message.body) == (message_id, b"second")
        await delivery.ack()


async def test_no_confirm_within_the_confirm_timeout_is_a_publish_error(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    await amqp.broker.publish(q, b"declare")
    broker = await amqp.another("confirm_timeout=1us")
    broker._declared[q] = time.monotonic()  # declared already: publish at once
    with pytest.raises(PublishError) as caught:
        await broker.publish(q, b"x" * 100_000)
    assert caught.value.reason == "timeout"


async def test_a_refused_declare_is_a_publish_error(amqp: AmqpHarness) -> None:
    with pytest.raises(PublishError) as caught:
        await amqp.broker.publish("amq.reserved-name", b"x")  # ACCESS_REFUSED
    assert caught.value.reason == "refused"
    await amqp.broker.publish(amqp.queue(), b"fine")  # nothing else broke


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        {"message_id": ""},
        {"message_id": "x" * 256},
        {"message_id": 7},
        {"key": ""},
        {"headers": {"h" * 129: "x"}},
    ],
    ids=["empty id", "id too long", "id not a string", "empty key", "header name too long"],
)
async def test_bad_publish_arguments_are_config_errors(
    amqp: AmqpHarness, call: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        await amqp.broker.publish(amqp.queue(), b"x", **call)


async def test_a_queue_name_too_long_for_rabbitmq_is_a_config_error(amqp: AmqpHarness) -> None:
    with pytest.raises(ConfigError, match="too long for RabbitMQ"):
        await amqp.broker.publish("ż" * 150, b"x")


@pytest.mark.parametrize("prefetch", [0, -1, 1.5, True])
async def test_a_bad_prefetch_is_a_config_error(amqp: AmqpHarness, prefetch: Any) -> None:
    with pytest.raises(ConfigError):
        amqp.broker.consume(amqp.queue(), prefetch=prefetch)


async def test_a_closed_broker_refuses_work_with_clear_errors(amqp: AmqpHarness) -> None:
    broker = await amqp.another()
    await broker.close()
    await broker.close()  # idempotent
    with pytest.raises(PublishError) as caught:
        await broker.publish(amqp.queue(), b"x")
    assert caught.value.reason == "disconnected"
    with pytest.raises(MessagingError):
        broker.consume(amqp.queue())
    with pytest.raises(MessagingError):
        await broker.ping()
    with pytest.raises(MessagingError):
        await broker.stats(amqp.queue())
    with pytest.raises(MessagingError, match="was closed"):
        await broker.start()


async def test_start_is_idempotent_and_repr_says_the_state(amqp: AmqpHarness) -> None:
    broker = broker_of(amqp)
    await broker.start()
    assert "open" in repr(broker)
    assert "new" in repr(RabbitBroker(amqp_url()))


# -- what consumers see -------------------------------------------------------------


async def test_a_foreign_message_is_delivered_with_defaults(amqp: AmqpHarness) -> None:
    """Published by another client: no interlink headers, odd header types, no content type."""
    q = amqp.queue()
    await amqp.broker.publish(q, b"declare")
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.basic_publish(
        b"raw",
        routing_key=q,
        properties=Basic.Properties(
            message_id="foreign-1", headers={"n": 5, "flag": True, "empty": None}
        ),
    )
    await connection.close()
    async with amqp.broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        await (await anext(deliveries)).ack()
        delivery = await anext(deliveries)
    message = delivery.message
    assert (message.id, message.body, message.content_type) == (
        "foreign-1",
        b"raw",
        "application/octet-stream",
    )
    assert (message.attempt, message.delivery_count, message.published_at) == (1, 1, 0.0)
    assert message.headers == {"n": "5", "flag": "True", "empty": "None"}
    await delivery.ack()


async def test_stats_of_a_queue_nobody_declared_are_zero(amqp: AmqpHarness) -> None:
    stats = await amqp.broker.stats(amqp.queue())
    assert (stats.ready, stats.dead_letters, stats.delayed, stats.in_flight) == (0, 0, None, None)


async def test_release_with_a_delay_waits_in_a_delay_queue(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    await amqp.broker.publish(q, b"x")
    async with amqp.broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        first = await anext(deliveries)
        start = time.monotonic()
        await first.release(0.3)
        again = await asyncio.wait_for(anext(deliveries), 5)
        assert time.monotonic() - start >= 0.3
        assert (again.message.attempt, again.message.delivery_count) == (1, 2)
        await again.ack()


def test_the_constructor_wants_an_amqp_url() -> None:
    with pytest.raises(ConfigError, match="amqp"):
        RabbitBroker("http://localhost/")


async def test_a_foreign_timestamp_is_the_published_time(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    await amqp.broker.publish(q, b"declare")
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.basic_publish(
        b"raw", routing_key=q, properties=Basic.Properties(message_id="f", timestamp=when)
    )
    await connection.close()
    async with amqp.broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        await (await anext(deliveries)).ack()
        delivery = await anext(deliveries)
        assert delivery.message.published_at == when.timestamp()
        await delivery.ack()


@pytest.mark.parametrize(
    "name", ["amq.reserved-name", "ż" * 150], ids=["refused by RabbitMQ", "too long"]
)
async def test_a_queue_that_cannot_be_consumed_ends_the_iteration_with_an_error(
    amqp: AmqpHarness, name: str
) -> None:
    consumer = amqp.broker.consume(name)
    with pytest.raises(MessagingError, match="cannot consume"):
        await asyncio.wait_for(anext(aiter(consumer)), 5)
    await consumer.cancel()


async def test_a_consumer_never_iterated_cancels_cleanly(amqp: AmqpHarness) -> None:
    consumer = amqp.broker.consume(amqp.queue(), prefetch=3)
    assert "prefetch=3" in repr(consumer)
    await consumer.cancel()
    assert "stopped" in repr(consumer)
    with pytest.raises(StopAsyncIteration):
        await anext(aiter(consumer))


async def test_a_consumer_subscribes_again_after_a_failed_attempt(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from interlink.messaging._amqp_link import Unavailable as _Unavailable

    broker = broker_of(amqp)
    q = amqp.queue()
    message_id = await broker.publish(q, b"x")
    real = broker._declare_source
    failures: list[BaseException] = [RuntimeError("flaky"), _Unavailable("down for a moment")]

    async def flaky(queue: str) -> None:
        if failures:
            raise failures.pop(0)
        await real(queue)

    monkeypatch.setattr(broker, "_declare_source", flaky)
    with caplog.at_level(logging.WARNING, "interlink.messaging.amqp"):
        async with broker.consume(q) as consumer:
            delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
            assert delivery.message.id == message_id
            await delivery.ack()
    assert "flaky" in caplog.text
    assert "down for a moment" in caplog.text


async def test_a_second_broker_cancel_notice_is_harmless(amqp: AmqpHarness) -> None:
    consumer = amqp.broker.consume(amqp.queue())
    consumer._on_cancel(None)  # type: ignore[attr-defined]  # before any subscription
    await consumer.cancel()


async def test_a_dead_letter_into_a_queue_rabbitmq_refuses_leaves_the_delivery(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    await amqp.broker.publish(q, b"x")
    async with amqp.broker.consume(q) as consumer:
        delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
        with pytest.raises(DeliveryError):
            await delivery.dead_letter(
                Failure("E", "m", "", "h", 1, 0.0, 0.0), dead_letter_queue="amq.parked"
            )
        assert not delivery.settled
        await delivery.ack()


async def test_a_release_that_cannot_be_published_falls_back_to_a_nack(
    amqp: AmqpHarness, caplog: pytest.LogCaptureFixture
) -> None:
    q = amqp.queue()
    message_id = await amqp.broker.publish(q, b"x")
    async with amqp.broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        delivery = await asyncio.wait_for(anext(deliveries), 5)
        await amqp.refuse_publishes(q)
        with caplog.at_level(logging.WARNING, "interlink.messaging.amqp"):
            await delivery.release()
        assert "falls back to a nack" in caplog.text
        again = await asyncio.wait_for(anext(deliveries), 5)
        assert (again.message.id, again.message.delivery_count) == (message_id, 2)
        await again.ack()


async def test_a_release_that_falls_back_to_a_nack_keeps_its_delay_until_a_cancel(
    amqp: AmqpHarness,
) -> None:
    """A nack at once would bring it straight back (a hot loop); a cancel gives it back now."""
    q = amqp.queue()
    message_id = await amqp.broker.publish(q, b"x")
    consumer = amqp.broker.consume(q)
    deliveries = aiter(consumer)
    delivery = await asyncio.wait_for(anext(deliveries), 5)
    await amqp.refuse_publishes(q)
    released = time.monotonic()
    await delivery.release(0.3)  # returns at once; the nack waits
    again = await asyncio.wait_for(anext(deliveries), 5)
    assert time.monotonic() - released >= 0.3 - 0.01
    assert (again.message.id, again.message.attempt) == (message_id, 1)
    await again.release(3600.0)
    await consumer.cancel()  # does not wait for the hour: the message is back at once
    await until(lambda: _ready_is(amqp, q, 1), within=5)


async def _ready_is(amqp: AmqpHarness, queue: str, expected: int) -> bool:
    return (await amqp.broker.stats(queue)).ready == expected


async def test_a_retry_longer_than_the_top_level_carries_its_due_time(amqp: AmqpHarness) -> None:
    broker = broker_of(amqp)
    q = amqp.queue()
    await broker.publish(q, b"x")
    async with broker.consume(q) as consumer:
        delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
        await delivery.retry(30 * 86_400.0)
    top = delay_queue(q, MAX_DELAY_MS)
    assert await broker._counts([q, top]) == {q: 0, top: 1}
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    waiting = await channel.basic_get(top)
    await connection.close()
    headers = waiting.header.properties.headers or {}
    assert float(headers[H_DUE_AT]) == pytest.approx(time.time() + 30 * 86_400.0, abs=60)
    assert headers[H_ATTEMPT] == 2


async def test_a_long_delay_that_cannot_go_round_is_given_back(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_of(amqp)
    q = amqp.queue()
    await broker.publish(q, b"far", delay=30 * 86_400.0)
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.basic_publish(
        b"x",
        routing_key=q,
        properties=Basic.Properties(
            message_id="later", headers={H_DUE_AT: repr(time.time() + 100.0)}
        ),
    )
    await connection.close()
    real = broker._send
    calls: list[str] = []

    async def refuse_once(queue: str, target: str, body: bytes, properties: Any) -> None:
        calls.append(target)
        if len(calls) == 1:
            raise PublishError("no", queue=queue, reason="nack")
        await real(queue, target, body, properties)

    monkeypatch.setattr(broker, "_send", refuse_once)
    with caplog.at_level(logging.WARNING, "interlink.messaging.amqp"):
        consumer = broker.consume(q)
        waiting = asyncio.ensure_future(anext(aiter(consumer)))
        await until(lambda: len(calls) >= 2, within=5)  # given back, delivered, sent round
        await consumer.cancel()
        with pytest.raises(StopAsyncIteration):
            await waiting
    assert "could not delay later" in caplog.text


async def test_a_delay_for_a_queue_not_declared_yet_declares_it(amqp: AmqpHarness) -> None:
    broker = broker_of(amqp)
    q = amqp.queue()
    target, due = await broker._delay_target(q, 2.0)
    assert (target, due) == (delay_queue(q, 2000), None)
    assert {q, f"{q}.dlq", target} <= broker._declared.keys()


async def test_where_a_nack_keeps_the_delivery_count_release_is_a_plain_nack(
    amqp: AmqpHarness,
) -> None:
    """RabbitMQ 4.3+ (PR#15387): ``basic.nack`` no longer counts against the delivery limit."""
    broker = broker_of(amqp)
    broker.nack_keeps_delivery_count = True  # what start() reads from a 4.3 server
    q = amqp.queue()
    message_id = await broker.publish(q, b"x")
    async with broker.consume(q) as consumer:
        deliveries = aiter(consumer)
        await (await asyncio.wait_for(anext(deliveries), 5)).release()
        again = await asyncio.wait_for(anext(deliveries), 5)
        assert (again.message.id, again.message.attempt) == (message_id, 1)
        await again.ack()


async def test_closing_the_broker_ends_its_consumers(amqp: AmqpHarness) -> None:
    broker = await amqp.another()
    consumer = broker.consume(amqp.queue())
    waiting = asyncio.ensure_future(anext(aiter(consumer)))
    await until(lambda: consumer.subscriptions == 1, within=5)  # type: ignore[attr-defined]
    await broker.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    await consumer._close_channel()  # type: ignore[attr-defined]  # nothing left to close


async def test_a_cancel_while_a_message_goes_round_ends_the_iteration(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_of(amqp)
    q = amqp.queue()
    await broker.publish(q, b"declare", delay=1.0)  # nothing ready in q itself
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.basic_publish(
        b"x",
        routing_key=q,
        properties=Basic.Properties(message_id="later", headers={H_DUE_AT: repr(time.time() + 99)}),
    )
    await connection.close()
    sending, go_on = asyncio.Event(), asyncio.Event()
    real = broker._send

    async def slow(queue: str, target: str, body: bytes, properties: Any) -> None:
        sending.set()
        await go_on.wait()
        await real(queue, target, body, properties)

    monkeypatch.setattr(broker, "_send", slow)
    consumer = broker.consume(q)
    waiting = asyncio.ensure_future(anext(aiter(consumer)))
    await asyncio.wait_for(sending.wait(), 5)
    cancelling = asyncio.ensure_future(consumer.cancel())
    await until(lambda: consumer._stopped, within=5)  # type: ignore[attr-defined]
    go_on.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(cancelling, 5)


@pytest.mark.parametrize(
    ("properties", "version"),
    [
        ({"version": "3.10.8"}, (3, 10)),
        ({"version": b"4.3.0"}, (4, 3)),
        ({"version": "4.3.0-rc.1"}, (4, 3)),
        ({"version": "custom"}, ()),
        ({}, ()),
    ],
)
def test_the_server_version_decides_how_release_works(
    properties: dict[str, Any], version: tuple[int, ...]
) -> None:
    assert server_version(properties) == version


async def test_a_declare_cancelled_half_way_does_not_fail_the_callers_waiting_for_it(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_of(amqp)
    q = amqp.queue()
    real = broker._declare_now
    started = asyncio.Event()
    calls: list[str] = []

    async def first_one_hangs(name: str, arguments: dict[str, Any]) -> None:
        calls.append(name)
        if len(calls) == 1:
            started.set()
            await asyncio.Event().wait()  # until cancelled
        await real(name, arguments)

    monkeypatch.setattr(broker, "_declare_now", first_one_hangs)
    arguments = {"x-queue-type": "quorum"}
    owner = asyncio.ensure_future(broker._ensure(q, arguments))
    await asyncio.wait_for(started.wait(), 5)
    waiter = asyncio.ensure_future(broker._ensure(q, arguments))
    for _ in range(3):
        await asyncio.sleep(0)  # let the waiter start waiting for the owner's declare
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    await asyncio.wait_for(waiter, 5)
    assert q in broker._declared
    assert len(calls) == 2

    cancelled_waiter = asyncio.ensure_future(broker._ensure(q, arguments))
    broker._declaring[q] = asyncio.get_running_loop().create_future()  # someone declaring
    await asyncio.sleep(0)
    cancelled_waiter.cancel()  # the waiter itself is cancelled: it says so
    with pytest.raises(asyncio.CancelledError):
        await cancelled_waiter
    del broker._declaring[q]
