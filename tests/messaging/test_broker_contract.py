"""The broker contract, on every backend: what a user of ``Broker`` relies on.

Every test takes the ``harness`` fixture, so it runs on memory, SQLite and
RabbitMQ alike. Time passes through ``harness.run_until``: on the fake-clock
backends a delay of N seconds is checked not to fire before N and to fire
soon after (a backend whose storage answers from a thread may see it a few
fake steps late, so the upper bound is loose; ``test_memory`` pins exact
times). RabbitMQ runs on real time, so there the same tests use short delays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import math
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from interlink.core.errors import (
    ConfigError,
    DeadLetterNotFoundError,
    DeliveryError,
    PublishError,
)
from interlink.messaging import (
    HEADER_REPLAYED_FROM,
    Delivery,
    Failure,
    default_dead_letter_queue,
    describe_failure,
    new_message_id,
)
from interlink.messaging._message import HEADER_ORDERING_KEY, JSON, OCTET_STREAM
from tests.messaging.harness import Harness

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def scaled(harness: Harness, fake: float, real: float) -> float:
    """``fake`` seconds on a fake clock, ``real`` seconds on real time."""
    return fake if harness.fake_time else real


async def pass_time(harness: Harness, seconds: float, *, step: float = 0.05) -> None:
    """Let ``seconds`` of (fake or real) time go by."""
    start = harness.clock.monotonic()
    await harness.run_until(
        lambda: harness.clock.monotonic() - start >= seconds - 1e-9,
        within=seconds + 2 * step,
        step=step,
    )


class Reader:
    """One consumer, read one delivery at a time while time passes."""

    def __init__(self, harness: Harness, queue: str, prefetch: int) -> None:
        self.harness = harness
        self.consumer = harness.broker.consume(queue, prefetch=prefetch)
        self._iter = aiter(self.consumer)
        self._task: asyncio.Future[Delivery] | None = None
        self._closed = False

    def _pending(self) -> asyncio.Future[Delivery]:
        if self._task is None:
            self._task = asyncio.ensure_future(anext(self._iter))
        return self._task

    async def next(self, *, within: float = 5.0, step: float = 0.05) -> Delivery:
        """The next delivery, waiting at most ``within`` seconds for it."""
        task = self._pending()
        await self.harness.run_until(task.done, within=within, step=step)
        self._task = None
        return task.result()

    async def nothing_for(self, seconds: float, *, step: float = 0.05) -> None:
        """Assert nothing is delivered while ``seconds`` pass."""
        task = self._pending()
        await pass_time(self.harness, seconds, step=step)
        if task.done():
            self._task = None
            raise AssertionError(f"unexpected delivery: {task.result().message}")

    async def close(self) -> None:
        """Stop reading; idempotent (the fixture closes every reader at the end)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.consumer.cancel()


@pytest.fixture
async def read(harness: Harness) -> AsyncIterator[Callable[..., Reader]]:
    """``read(queue, prefetch=10)``: a ``Reader`` on the harness's current broker."""
    made: list[Reader] = []

    def make(queue: str, prefetch: int = 10) -> Reader:
        reader = Reader(harness, queue, prefetch)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        await reader.close()


def has_headers(actual: Mapping[str, str], expected: Mapping[str, str]) -> bool:
    """Every expected header is there with its value (a backend may add its own)."""
    return all(actual.get(name) == value for name, value in expected.items())


def failure_of(error: BaseException, *, attempts: int = 3) -> Failure:
    try:
        raise error
    except BaseException as exc:
        return describe_failure(
            exc,
            handler="tests.handlers.charge",
            attempts=attempts,
            first_failed_at=1_767_225_000.0,
            last_failed_at=1_767_225_500.0,
        )


async def dead_letter_one(
    harness: Harness,
    read: Callable[..., Reader],
    queue: str,
    error: BaseException,
    *,
    dead_letter_queue: str | None = None,
    body: object = None,
) -> tuple[str, Failure]:
    """Publish to ``queue``, take it and dead-letter it; the message id and failure."""
    message_id = await harness.broker.publish(
        queue, {"n": 1} if body is None else body, headers={"traceparent": TRACEPARENT}
    )
    reader = read(queue)
    delivery = await reader.next()
    assert delivery.message.id == message_id
    failure = failure_of(error)
    await delivery.dead_letter(failure, dead_letter_queue=dead_letter_queue)
    await reader.close()
    return message_id, failure


# -- publish ------------------------------------------------------------------


async def test_publish_returns_a_fresh_id_or_keeps_the_one_given(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    generated = await harness.broker.publish(q, {"n": 1})
    given = new_message_id()
    assert await harness.broker.publish(q, {"n": 2}, message_id=given) == given
    assert generated
    assert generated != given
    reader = read(q)
    first, second = await reader.next(), await reader.next()
    assert (first.message.id, second.message.id) == (generated, given)
    assert (first.message.attempt, first.message.delivery_count) == (1, 1)
    assert first.message.queue == q


async def test_bytes_arrive_unchanged_as_octet_stream(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    raw = bytes(range(256))
    await harness.broker.publish(q, raw)
    await harness.broker.publish(q, bytearray(b"\x00abc"))
    reader = read(q)
    first, second = await reader.next(), await reader.next()
    assert (first.message.body, first.message.content_type) == (raw, OCTET_STREAM)
    assert first.message.decode() == raw
    assert second.message.body == b"\x00abc"


async def test_json_bodies_arrive_parsed_with_their_content_type(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID(int=7)
    await harness.broker.publish(
        q, {"total": decimal.Decimal("12.50"), "at": when, "id": ident, "name": "café"}
    )
    await harness.broker.publish(q, [1, 2, 3])
    await harness.broker.publish(q, "plain text")
    reader = read(q)
    first = await reader.next()
    assert first.message.content_type == JSON
    assert first.message.decode() == {
        "total": "12.50",
        "at": when.isoformat(),
        "id": str(ident),
        "name": "café",
    }
    assert (await reader.next()).message.decode() == [1, 2, 3]
    assert (await reader.next()).message.decode() == "plain text"


async def test_headers_and_ordering_key_round_trip(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    headers = {
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=opaque",
        "tenant": "acme",
        "empty": "",
        "unicode": "żółw",
    }
    await harness.broker.publish(q, {"n": 1}, headers=headers, key="customer-42")
    message = (await read(q).next()).message
    assert has_headers(message.headers, headers)
    assert message.headers[HEADER_ORDERING_KEY] == "customer-42"


async def test_published_at_is_the_wall_time_of_the_publish(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    before = harness.clock.wall()
    await harness.broker.publish(q, {"n": 1})
    message = (await read(q).next()).message
    assert before - 1.0 <= message.published_at <= harness.clock.wall() + 1.0


BAD_PUBLISHES: dict[str, dict[str, Any]] = {
    "empty queue": {"queue": ""},
    "whitespace queue": {"queue": "   "},
    "queue with a space": {"queue": "a b"},
    "queue not a string": {"queue": 42},
    "header value not a string": {"headers": {"retries": 3}},
    "header name not a string": {"headers": {1: "x"}},
    "headers not a mapping": {"headers": [("a", "b")]},
    "negative delay": {"delay": -1.0},
    "NaN delay": {"delay": math.nan},
    "infinite delay": {"delay": math.inf},
    "delay not a number": {"delay": "5s"},
    "key not a string": {"key": 42},
    "unencodable body": {"body": object()},
}


@pytest.mark.parametrize("bad", BAD_PUBLISHES.values(), ids=BAD_PUBLISHES.keys())
async def test_bad_publish_raises_config_error_and_stores_nothing(
    harness: Harness, read: Callable[..., Reader], bad: dict[str, Any]
) -> None:
    q = harness.queue()
    call: dict[str, Any] = {"queue": q, "body": {"n": 1}, **bad}
    queue, body = call.pop("queue"), call.pop("body")
    with pytest.raises(ConfigError):
        await harness.broker.publish(queue, body, **call)
    sentinel = await harness.broker.publish(q, {"sentinel": True})
    reader = read(q)
    assert (await reader.next()).message.id == sentinel
    await reader.nothing_for(scaled(harness, 1.0, 0.2))


async def test_messages_arrive_in_publish_order(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    ids = [await harness.broker.publish(q, {"n": n}) for n in range(20)]
    reader = read(q, prefetch=20)
    got = [(await reader.next()).message.id for _ in ids]
    assert got == ids


async def test_delayed_publish_is_not_delivered_before_its_delay(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    delay = scaled(harness, 10.0, 1.0)
    start = harness.clock.wall()
    message_id = await harness.broker.publish(q, {"n": 1}, delay=delay)
    now_id = await harness.broker.publish(q, {"n": 2})
    reader = read(q)
    assert (await reader.next()).message.id == now_id  # the delayed one does not block it
    await reader.nothing_for(delay * 0.8, step=delay / 40)
    delivery = await reader.next(within=delay * 2, step=delay / 40)
    assert delivery.message.id == message_id
    assert delivery.message.attempt == 1
    assert harness.clock.wall() - start >= delay - 0.01


async def test_one_hour_delay_fires_at_one_hour_and_holds_no_delivery(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    start = harness.clock.wall()
    message_id = await harness.broker.publish(q, {"n": 1}, delay=3600.0)
    reader = read(q)
    if not harness.fake_time:
        # Real time: the message must wait in the broker, not in a held delivery.
        await reader.nothing_for(0.5)
        stats = await harness.broker.stats(q)
        assert stats.in_flight in (0, None)
        assert stats.ready in (0, None)
        return
    await reader.nothing_for(3590.0, step=10.0)
    await reader.nothing_for(9.5, step=0.5)
    stats = await harness.broker.stats(q)
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 1, 0)
    delivery = await reader.next(within=30.0, step=1.0)
    assert delivery.message.id == message_id
    assert harness.clock.wall() - start >= 3600.0


# -- settling -----------------------------------------------------------------


async def test_a_consumer_holds_at_most_prefetch_unsettled_deliveries(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    ids = [await harness.broker.publish(q, {"n": n}) for n in range(3)]
    reader = read(q, prefetch=2)
    first, second = await reader.next(), await reader.next()
    await reader.nothing_for(scaled(harness, 1.0, 0.3))
    await first.ack()
    third = await reader.next()
    assert [d.message.id for d in (first, second, third)] == ids
    await second.ack()
    await third.ack()


async def test_ack_removes_the_message(harness: Harness, read: Callable[..., Reader]) -> None:
    q = harness.queue()
    await harness.broker.publish(q, {"n": 1})
    reader = read(q)
    delivery = await reader.next()
    await delivery.ack()
    assert delivery.settled
    await reader.nothing_for(scaled(harness, 60.0, 0.3), step=scaled(harness, 1.0, 0.05))

    async def empty() -> bool:
        stats = await harness.broker.stats(q)
        return stats.ready == 0 and stats.in_flight in (0, None)

    await harness.run_until(empty, within=scaled(harness, 1.0, 5.0))


async def test_retry_redelivers_after_the_delay_as_the_next_attempt(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    headers = {"traceparent": TRACEPARENT, "tenant": "acme"}
    message_id = await harness.broker.publish(q, {"n": 1}, headers=headers)
    reader = read(q)
    first = await reader.next()
    delay = scaled(harness, 30.0, 1.0)
    await first.retry(delay, headers={"tenant": "globex", "x-note": "second try"})
    assert first.settled
    await reader.nothing_for(delay * 0.8, step=delay / 40)
    again = await reader.next(within=delay * 2, step=delay / 40)
    assert again.message.id == message_id
    assert again.message.body == first.message.body
    assert again.message.content_type == first.message.content_type
    assert again.message.attempt == 2
    assert again.message.delivery_count >= again.message.attempt
    assert has_headers(
        again.message.headers,
        {"traceparent": TRACEPARENT, "tenant": "globex", "x-note": "second try"},
    )
    await again.retry(0)
    third = await reader.next()
    assert (third.message.id, third.message.attempt) == (message_id, 3)
    await third.ack()


async def test_release_gives_it_back_without_counting_an_attempt(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    message_id = await harness.broker.publish(q, {"n": 1}, headers={"traceparent": TRACEPARENT})
    reader = read(q)
    first = await reader.next()
    await first.release()
    again = await reader.next()
    assert (again.message.id, again.message.attempt) == (message_id, 1)
    assert has_headers(again.message.headers, {"traceparent": TRACEPARENT})
    delay = scaled(harness, 20.0, 1.0)
    await again.release(delay)
    await reader.nothing_for(delay * 0.8, step=delay / 40)
    last = await reader.next(within=delay * 2, step=delay / 40)
    assert (last.message.id, last.message.attempt) == (message_id, 1)
    await last.ack()


@pytest.mark.parametrize("second", ["ack", "retry", "dead_letter", "release"])
async def test_a_second_settle_is_a_runtime_error(
    harness: Harness, read: Callable[..., Reader], second: str
) -> None:
    q = harness.queue()
    await harness.broker.publish(q, {"n": 1})
    delivery = await read(q).next()
    await delivery.ack()
    again: dict[str, Callable[[], Any]] = {
        "ack": delivery.ack,
        "retry": lambda: delivery.retry(1.0),
        "dead_letter": lambda: delivery.dead_letter(failure_of(ValueError("x"))),
        "release": delivery.release,
    }
    with pytest.raises(RuntimeError, match="already settled"):
        await again[second]()
    assert await harness.broker.dead_letters.count(queue=q) == 0


# -- dead letters -------------------------------------------------------------


async def test_dead_letter_keeps_the_message_and_why_it_failed(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    headers = {"traceparent": TRACEPARENT, "tenant": "acme"}
    message_id = await harness.broker.publish(q, b"\x00raw", headers=headers, key="k")
    reader = read(q)
    delivery = await reader.next()
    failure = failure_of(ValueError("card declined"))
    await delivery.dead_letter(failure)
    assert delivery.settled

    (record,) = await harness.broker.dead_letters.list(queue=q)
    assert record.message.id == message_id
    assert record.message.body == b"\x00raw"
    assert record.message.content_type == OCTET_STREAM
    assert has_headers(record.message.headers, {**headers, HEADER_ORDERING_KEY: "k"})
    assert record.message.attempt == 1
    assert record.failure == failure
    assert record.failure.error_type == "ValueError"
    assert "card declined" in record.failure.traceback
    assert record.source_queue == q
    assert record.dead_letter_queue == default_dead_letter_queue(q) == f"{q}.dlq"
    assert abs(record.dead_lettered_at - harness.clock.wall()) < 5.0
    assert await harness.broker.dead_letters.get(record.id) == record
    await reader.nothing_for(scaled(harness, 60.0, 0.3), step=scaled(harness, 1.0, 0.05))


async def test_dead_letter_into_a_named_queue(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q, dlq = harness.queue(), harness.queue("parked")
    message_id, _ = await dead_letter_one(harness, read, q, KeyError("sku"), dead_letter_queue=dlq)
    (record,) = await harness.broker.dead_letters.list(dead_letter_queue=dlq)
    assert (record.message.id, record.source_queue, record.dead_letter_queue) == (
        message_id,
        q,
        dlq,
    )
    assert await harness.broker.dead_letters.count(queue=q) == 1
    assert await harness.broker.dead_letters.count(dead_letter_queue=f"{q}.dlq") == 0


async def test_dead_letters_filter_oldest_first_with_a_limit(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q1, q2, parked = harness.queue("a"), harness.queue("b"), harness.queue("parked")
    first, _ = await dead_letter_one(harness, read, q1, ValueError("one"))
    await pass_time(harness, scaled(harness, 1.0, 0.05))
    second, _ = await dead_letter_one(harness, read, q1, KeyError("two"))
    await pass_time(harness, scaled(harness, 1.0, 0.05))
    third, _ = await dead_letter_one(
        harness, read, q2, ValueError("three"), dead_letter_queue=parked
    )
    letters = harness.broker.dead_letters

    assert [r.message.id for r in await letters.list(queue=q1)] == [first, second]
    assert [r.message.id for r in await letters.list(queue=q1, limit=1)] == [first]
    assert [r.message.id for r in await letters.list(queue=q1, error_type="KeyError")] == [second]
    assert [r.message.id for r in await letters.list(queue=q2)] == [third]
    assert [r.message.id for r in await letters.list(dead_letter_queue=parked)] == [third]
    assert await letters.list(queue=q2, error_type="KeyError") == []
    assert await letters.list(queue=q1, dead_letter_queue=parked) == []
    assert await letters.count(queue=q1) == 2
    assert await letters.count(dead_letter_queue=f"{q1}.dlq") == 2
    assert await letters.count(queue=q2, dead_letter_queue=parked) == 1


async def test_get_of_an_unknown_dead_letter_raises_not_found(harness: Harness) -> None:
    with pytest.raises(DeadLetterNotFoundError) as caught:
        await harness.broker.dead_letters.get("no-such-dead-letter")
    assert isinstance(caught.value, KeyError)
    assert caught.value.dead_letter_id == "no-such-dead-letter"


async def test_purge_by_id_and_by_filter(harness: Harness, read: Callable[..., Reader]) -> None:
    q, other = harness.queue(), harness.queue("other")
    for n in range(3):
        await dead_letter_one(harness, read, q, ValueError(f"n{n}"))
    await dead_letter_one(harness, read, other, ValueError("kept"))
    letters = harness.broker.dead_letters
    oldest, *rest = await letters.list(queue=q)

    assert await letters.purge([oldest.id]) == 1
    with pytest.raises(DeadLetterNotFoundError):
        await letters.get(oldest.id)
    assert await letters.purge([oldest.id]) == 0  # already gone
    assert await letters.purge(queue=q) == len(rest) == 2
    assert await letters.count(queue=q) == 0
    assert await letters.count(queue=other) == 1


async def test_replay_sends_it_back_with_lineage_and_a_fresh_attempt_budget(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    message_id = await harness.broker.publish(
        q, {"order": 7}, headers={"traceparent": TRACEPARENT, "tenant": "acme"}
    )
    reader = read(q)
    first = await reader.next()
    await first.retry(0)
    second = await reader.next()
    assert second.message.attempt == 2
    await second.dead_letter(failure_of(RuntimeError("gave up"), attempts=2))
    (record,) = await harness.broker.dead_letters.list(queue=q)

    assert await harness.broker.dead_letters.replay([record.id]) == [message_id]
    replayed = await reader.next()
    assert replayed.message.id == message_id
    assert replayed.message.decode() == {"order": 7}
    assert replayed.message.attempt == 1
    assert has_headers(
        replayed.message.headers,
        {"traceparent": TRACEPARENT, "tenant": "acme", HEADER_REPLAYED_FROM: record.id},
    )
    with pytest.raises(DeadLetterNotFoundError):
        await harness.broker.dead_letters.get(record.id)
    assert await harness.broker.dead_letters.count(queue=q) == 0
    await replayed.ack()


async def test_replay_with_an_unknown_id_replays_nothing(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    await dead_letter_one(harness, read, q, ValueError("bad"))
    (record,) = await harness.broker.dead_letters.list(queue=q)
    with pytest.raises(DeadLetterNotFoundError) as caught:
        await harness.broker.dead_letters.replay([record.id, "no-such-dead-letter"])
    assert caught.value.dead_letter_id == "no-such-dead-letter"
    assert await harness.broker.dead_letters.get(record.id) == record
    await read(q).nothing_for(scaled(harness, 1.0, 0.3))


# -- refused writes -------------------------------------------------------------


async def test_publish_to_a_refusing_queue_raises_publish_error(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    await harness.refuse_publishes(q)
    message_id = new_message_id()
    with pytest.raises(PublishError) as caught:
        await harness.broker.publish(q, {"n": 1}, message_id=message_id)
    assert (caught.value.queue, caught.value.message_id) == (q, message_id)
    await read(q).nothing_for(scaled(harness, 1.0, 0.3))


async def test_dead_letter_into_a_refusing_queue_leaves_the_delivery_unsettled(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    message_id = await harness.broker.publish(q, {"n": 1}, headers={"traceparent": TRACEPARENT})
    reader = read(q)
    delivery = await reader.next()
    await harness.refuse_publishes(default_dead_letter_queue(q))
    with pytest.raises(DeliveryError) as caught:
        await delivery.dead_letter(failure_of(ValueError("bad")))
    assert (caught.value.queue, caught.value.message_id) == (q, message_id)
    assert not delivery.settled
    assert await harness.broker.dead_letters.count(queue=q) == 0
    # the runtime then gives it back: nothing was lost (dramatiq PR#545)
    await delivery.release()
    again = await reader.next()
    assert (again.message.id, again.message.attempt) == (message_id, 1)
    assert has_headers(again.message.headers, {"traceparent": TRACEPARENT})
    await again.ack()


async def test_retry_into_a_refusing_queue_leaves_the_message_to_come_back(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    message_id = await harness.broker.publish(q, {"n": 1})
    reader = read(q)
    delivery = await reader.next()
    await harness.refuse_publishes(q)
    with pytest.raises(DeliveryError) as caught:
        await delivery.retry(0)
    assert (caught.value.queue, caught.value.message_id) == (q, message_id)
    assert not delivery.settled
    # The process dies without settling: the message comes back, not retried.
    await reader.close()
    await harness.reopen()
    again = await read(q).next(within=scaled(harness, 120.0, 10.0), step=scaled(harness, 1.0, 0.05))
    assert (again.message.id, again.message.attempt) == (message_id, 1)
    assert again.message.delivery_count == 2


# -- stats, ping ------------------------------------------------------------------


async def test_stats_count_ready_delayed_in_flight_and_dead_letters(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    await dead_letter_one(harness, read, q, ValueError("bad"))
    for n in range(3):
        await harness.broker.publish(q, {"n": n})
    await harness.broker.publish(q, {"later": True}, delay=3600.0)
    reader = read(q, prefetch=1)
    held = await reader.next()
    await pass_time(harness, scaled(harness, 5.0, 0.1), step=scaled(harness, 1.0, 0.05))

    def figure(actual: int | None, expected: int) -> bool:
        return actual == expected or (not harness.fake_time and actual is None)

    async def settled_figures() -> bool:
        s = await harness.broker.stats(q)
        return (
            s.ready == 2 and s.dead_letters == 1 and figure(s.delayed, 1) and figure(s.in_flight, 1)
        )

    await harness.run_until(settled_figures, within=scaled(harness, 1.0, 5.0))
    stats = await harness.broker.stats(q)
    assert stats.queue == q
    # RabbitMQ cannot see its head message's age without delivering it: None there
    assert stats.oldest_age is not None or harness.name == "amqp"
    if harness.fake_time:
        assert 5.0 <= stats.oldest_age <= 6.0
    await held.ack()


async def test_ping_answers_with_a_round_trip_time(harness: Harness) -> None:
    seconds = await harness.broker.ping()
    assert 0.0 <= seconds < 5.0


# -- crashes and restarts -------------------------------------------------------


async def test_published_delayed_and_dead_lettered_messages_survive_a_restart(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    dead_id, failure = await dead_letter_one(harness, read, q, ValueError("bad"))
    ready_id = await harness.broker.publish(q, {"ready": True}, headers={"tenant": "acme"})
    delay = scaled(harness, 60.0, 1.0)
    delayed_id = await harness.broker.publish(q, {"delayed": True}, delay=delay)

    await harness.reopen()

    reader = read(q)
    ready = await reader.next()
    assert (ready.message.id, ready.message.decode()) == (ready_id, {"ready": True})
    assert has_headers(ready.message.headers, {"tenant": "acme"})
    await ready.ack()
    delayed = await reader.next(within=delay * 2, step=delay / 40)
    assert delayed.message.id == delayed_id
    await delayed.ack()
    (record,) = await harness.broker.dead_letters.list(queue=q)
    assert (record.message.id, record.failure) == (dead_id, failure)


async def test_an_unsettled_delivery_returns_after_its_lease_runs_out(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    if harness.name == "amqp":
        pytest.skip("RabbitMQ has no leases: it returns unacked messages when the channel closes")
    q = harness.queue()
    message_id = await harness.broker.publish(q, {"n": 1})
    reader = read(q)
    delivery = await reader.next()
    assert delivery.message.delivery_count == 1
    # A crash: the broker goes away without settling.
    await reader.close()
    await harness.reopen()
    reader = read(q)
    await reader.nothing_for(1.0, step=0.25)  # leased for visibility_timeout, not released
    again = await reader.next(within=120.0, step=1.0)
    assert (again.message.id, again.message.attempt) == (message_id, 1)
    assert again.message.delivery_count == 2
    await again.ack()
    await reader.nothing_for(60.0, step=1.0)


async def test_a_held_delivery_is_not_delivered_again_while_its_broker_lives(
    harness: Harness, read: Callable[..., Reader]
) -> None:
    q = harness.queue()
    await harness.broker.publish(q, {"n": 1})
    first = await read(q).next()
    other = read(q)
    # Longer than any visibility timeout: a live broker keeps its lease.
    await other.nothing_for(scaled(harness, 120.0, 1.0), step=scaled(harness, 1.0, 0.05))
    await first.ack()
    await other.nothing_for(scaled(harness, 60.0, 0.3), step=scaled(harness, 1.0, 0.05))
