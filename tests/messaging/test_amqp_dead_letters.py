"""Dead letters on RabbitMQ: browsing the dead-letter queues, ids that name their queue, bounds.

The shared suite (``test_broker_contract.py``) covers list/get/replay/purge
on every backend; this covers what browsing RabbitMQ queues adds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiormq
import pytest
from pamqp.commands import Basic

from interlink.core.errors import (
    ConfigError,
    DeadLetterNotFoundError,
    MessagingError,
    PublishError,
)
from interlink.messaging import Failure, RabbitBroker
from tests.messaging.harness_amqp import AmqpHarness, delete_queues
from tests.services import RABBITMQ_URL


def failure(error_type: str = "ValueError") -> Failure:
    return Failure(
        error_type=error_type,
        error_message="bad",
        traceback="Traceback ...",
        handler="tests.handler",
        attempts=3,
        first_failed_at=1_767_225_000.25,
        last_failed_at=1_767_225_500.5,
    )


async def dead_letter(
    broker: RabbitBroker,
    queue: str,
    *,
    body: Any = None,
    dead_letter_queue: str | None = None,
    error_type: str = "ValueError",
) -> str:
    """Publish one message to ``queue``, take it and dead-letter it; its message id."""
    message_id = await broker.publish(queue, {"n": 1} if body is None else body)
    async with broker.consume(queue) as consumer:
        delivery = await asyncio.wait_for(anext(aiter(consumer)), 5)
        await delivery.dead_letter(failure(error_type), dead_letter_queue=dead_letter_queue)
    return message_id


async def own_and_parked(amqp: AmqpHarness) -> tuple[str, str]:
    """A queue with one dead letter in its own DLQ and one in a named DLQ: (queue, named DLQ)."""
    assert isinstance(amqp.broker, RabbitBroker)
    q, parked = amqp.queue(), amqp.queue("parked")
    await dead_letter(amqp.broker, q)
    await dead_letter(amqp.broker, q, dead_letter_queue=parked)
    return q, parked


async def test_a_dead_letter_id_names_its_queue(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    await dead_letter(amqp.broker, q)
    (record,) = await amqp.broker.dead_letters.list(queue=q)
    assert record.id.startswith(f"{q}.dlq:")
    assert record.failure == failure()


@pytest.mark.parametrize("bad_id", ["no-colon", ":key", "queue:", "has space:key", 42], ids=repr)
async def test_a_malformed_id_is_not_found(amqp: AmqpHarness, bad_id: Any) -> None:
    with pytest.raises(DeadLetterNotFoundError):
        await amqp.broker.dead_letters.get(bad_id)
    with pytest.raises(DeadLetterNotFoundError):
        await amqp.broker.dead_letters.replay([bad_id])
    assert await amqp.broker.dead_letters.purge([bad_id]) == 0


async def test_an_id_in_a_queue_that_does_not_exist_is_not_found(amqp: AmqpHarness) -> None:
    missing = f"{amqp.queue()}.dlq"
    with pytest.raises(DeadLetterNotFoundError):
        await amqp.broker.dead_letters.get(f"{missing}:{'0' * 32}")
    assert await amqp.broker.dead_letters.list(dead_letter_queue=missing) == []
    assert await amqp.broker.dead_letters.count(dead_letter_queue=missing) == 0
    assert await amqp.broker.dead_letters.purge(dead_letter_queue=missing) == 0


async def test_browsing_is_bounded_by_browse_limit(amqp: AmqpHarness) -> None:
    broker = await amqp.another("browse_limit=2")
    q = amqp.queue()
    for _ in range(3):
        await dead_letter(broker, q)
    assert len(await broker.dead_letters.list(queue=q)) == 2
    assert await broker.dead_letters.count(queue=q) == 3  # a passive declare: not browsed
    assert len(await broker.dead_letters.list(queue=q)) == 2  # browsing gave them back


async def test_list_without_filters_covers_every_dead_letter_queue_it_knows(
    amqp: AmqpHarness,
) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q, other, parked = amqp.queue(), amqp.queue("other"), amqp.queue("parked")
    first = await dead_letter(amqp.broker, q)
    second = await dead_letter(amqp.broker, other, dead_letter_queue=parked)
    letters = amqp.broker.dead_letters
    listed = {r.message.id for r in await letters.list()}
    assert {first, second} <= listed
    assert await letters.list(limit=0) == []
    assert [r.message.id for r in await letters.list(queue=q, error_type="KeyError")] == []
    assert await letters.count(queue=other) == 1  # found in the named queue by browsing


@pytest.mark.parametrize("limit", [-1, 1.5, True])
async def test_a_bad_limit_is_a_config_error(amqp: AmqpHarness, limit: Any) -> None:
    with pytest.raises(ConfigError):
        await amqp.broker.dead_letters.list(limit=limit)


async def test_one_string_instead_of_a_list_is_a_config_error(amqp: AmqpHarness) -> None:
    with pytest.raises(ConfigError):
        await amqp.broker.dead_letters.replay("q.dlq:abc")
    with pytest.raises(ConfigError):
        await amqp.broker.dead_letters.purge("q.dlq:abc")


async def test_purge_by_id_respects_the_filters_and_whole_queue_purges(
    amqp: AmqpHarness,
) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q, parked = await own_and_parked(amqp)
    letters = amqp.broker.dead_letters
    (own,) = await letters.list(dead_letter_queue=f"{q}.dlq")
    (named,) = await letters.list(dead_letter_queue=parked)
    assert await letters.purge([own.id], dead_letter_queue=parked) == 0  # not in parked
    assert await letters.purge([named.id], queue="someone-else") == 0  # not from there
    assert await letters.purge([own.id, named.id, own.id]) == 2
    await dead_letter(amqp.broker, q)
    await dead_letter(amqp.broker, q, dead_letter_queue=parked)
    assert await letters.purge(dead_letter_queue=parked) == 1  # the whole queue
    assert await letters.purge() == 1  # every queue it knows
    assert await letters.count() == 0


async def test_a_replay_into_a_refusing_queue_keeps_the_dead_letter(amqp: AmqpHarness) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q = amqp.queue()
    await dead_letter(amqp.broker, q)
    (record,) = await amqp.broker.dead_letters.list(queue=q)
    await amqp.refuse_publishes(q)
    with pytest.raises(PublishError):
        await amqp.broker.dead_letters.replay([record.id])
    assert await amqp.broker.dead_letters.get(record.id) == record


async def test_a_replay_declares_a_source_queue_this_broker_never_saw(amqp: AmqpHarness) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q = amqp.queue()
    message_id = await dead_letter(amqp.broker, q, body=b"\x00bytes")
    (record,) = await amqp.broker.dead_letters.list(queue=q)
    stranger = await amqp.another()
    assert await stranger.dead_letters.replay([record.id]) == [message_id]
    assert q in stranger._declared
    async with stranger.consume(q) as consumer:
        again = await asyncio.wait_for(anext(aiter(consumer)), 5)
        assert (again.message.id, again.message.body) == (message_id, b"\x00bytes")
        await again.ack()


async def test_a_message_put_into_a_dead_letter_queue_by_hand_is_listed(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    await dead_letter(amqp.broker, q)  # declares q.dlq
    connection = await aiormq.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await channel.basic_publish(
        b"by hand", routing_key=f"{q}.dlq", properties=Basic.Properties(message_id="manual")
    )
    await connection.close()
    records = await amqp.broker.dead_letters.list(dead_letter_queue=f"{q}.dlq")
    manual = next(r for r in records if r.message.id == "manual")
    assert (manual.source_queue, manual.failure.reason) == (q, "rejected")
    assert manual.failure.error_type == "rabbitmq.rejected"
    assert manual.message.body == b"by hand"


async def test_dead_letters_of_a_closed_or_unanswering_broker_raise_messaging_error(
    amqp: AmqpHarness,
) -> None:
    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    await dead_letter(amqp.broker, q)
    slow = await amqp.another("confirm_timeout=1us")
    with pytest.raises(MessagingError, match="reading dead letters failed"):
        await slow.dead_letters.list(queue=q)
    closed = await amqp.another()
    await closed.close()
    with pytest.raises(MessagingError):
        await closed.dead_letters.list(queue=q)
    with pytest.raises(MessagingError):
        await closed.dead_letters.count(queue=q)


async def test_replay_of_an_unknown_id_in_a_real_queue_replays_nothing(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    await dead_letter(amqp.broker, q)
    await dead_letter(amqp.broker, q)
    first, second = await amqp.broker.dead_letters.list(queue=q)
    unknown = f"{q}.dlq:{'f' * 32}"
    with pytest.raises(DeadLetterNotFoundError) as caught:
        await amqp.broker.dead_letters.replay([first.id, unknown])
    assert caught.value.dead_letter_id == unknown
    with pytest.raises(DeadLetterNotFoundError):
        await amqp.broker.dead_letters.get(unknown)
    assert await amqp.broker.dead_letters.count(queue=q) == 2
    assert await amqp.broker.dead_letters.replay([second.id]) == [second.message.id]
    assert [r.id for r in await amqp.broker.dead_letters.list(queue=q)] == [first.id]


async def test_a_replay_whose_dead_letter_cannot_be_removed_says_so(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlink.messaging._amqp_dead_letters import _Browser

    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    await dead_letter(amqp.broker, q)
    (record,) = await amqp.broker.dead_letters.list(queue=q)

    async def cannot(self: _Browser, raw: object) -> None:
        raise ConnectionError("gone")

    monkeypatch.setattr(_Browser, "remove", cannot)
    with pytest.raises(MessagingError, match="could not remove dead letter"):
        await amqp.broker.dead_letters.replay([record.id])
    monkeypatch.undo()
    assert await amqp.broker.dead_letters.get(record.id) == record  # both: a duplicate, never none


async def test_purge_by_ids_stops_at_what_it_found(amqp: AmqpHarness) -> None:
    q = amqp.queue()
    assert isinstance(amqp.broker, RabbitBroker)
    for _ in range(3):
        await dead_letter(amqp.broker, q)
    first, *_ = await amqp.broker.dead_letters.list(queue=q)
    missing = f"{q}.dlq:{'e' * 32}"
    assert await amqp.broker.dead_letters.purge([first.id, missing]) == 1
    assert await amqp.broker.dead_letters.count(queue=q) == 2
    fresh = await amqp.another()
    assert await fresh.dead_letters.purge() == 0  # it knows no dead-letter queue yet


async def test_browsing_while_someone_else_holds_dead_letters_ends_in_bounded_time(
    amqp: AmqpHarness,
) -> None:
    broker = await amqp.another("confirm_timeout=300ms")
    q = amqp.queue()
    first = await dead_letter(broker, q)
    second = await dead_letter(broker, q)
    connection = await aiormq.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        held = await channel.basic_get(f"{q}.dlq")  # another browser, holding the first
        assert held.header.properties.message_id == first
        start = time.monotonic()
        assert [r.message.id for r in await broker.dead_letters.list(queue=q)] == [second]
        assert time.monotonic() - start < 2.0
    finally:
        await connection.close()


async def test_purge_by_source_in_a_named_queue_leaves_the_own_queue_alone(
    amqp: AmqpHarness,
) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q, parked = await own_and_parked(amqp)
    letters = amqp.broker.dead_letters
    assert await letters.purge(queue=q, dead_letter_queue=parked) == 1
    assert await letters.count(dead_letter_queue=f"{q}.dlq") == 1
    assert await letters.purge(queue=q) == 1


async def test_giving_browsed_letters_back_waits_a_bounded_time(
    amqp: AmqpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = await amqp.another("confirm_timeout=200ms")
    q = amqp.queue()
    await dead_letter(broker, q)

    async def never_back(names: list[str]) -> dict[str, int | None]:
        return dict.fromkeys(names, 0)  # as if someone else kept taking them

    monkeypatch.setattr(broker, "_counts", never_back)
    start = time.monotonic()
    assert len(await broker.dead_letters.list(queue=q)) == 1
    assert 0.2 <= time.monotonic() - start < 2.0


async def test_purge_of_everything_skips_a_dead_letter_queue_deleted_meanwhile(
    amqp: AmqpHarness,
) -> None:
    assert isinstance(amqp.broker, RabbitBroker)
    q, other = amqp.queue("a"), amqp.queue("b")
    await dead_letter(amqp.broker, q)
    await dead_letter(amqp.broker, other)
    first_of_them = min(f"{q}.dlq", f"{other}.dlq")  # purged in name order
    await delete_queues({first_of_them})
    assert await amqp.broker.dead_letters.purge() == 1
