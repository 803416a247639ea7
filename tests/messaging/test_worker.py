"""The worker on every backend: retries, backoff, dead letters, permanent errors, replay.

Research behaviours (research/messaging.md (e)) covered here: 3 (key released
on failure), 5 (backoff schedule, across a restart), 7 (exhaustion to the
DLQ), 8 (a refused DLQ/retry publish is not an ack), 9 (permanent errors and
invalid payloads), 10 (replay, twice), 11 (no hot loop), 21 (trace headers).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from interlink.messaging import (
    HEADER_REPLAYED_FROM,
    MemoryInbox,
    MessageContext,
    Reject,
    RetryLater,
    RetrySchedule,
    Worker,
)
from interlink.messaging._message import HEADER_FIRST_FAILED_AT, HEADER_LAST_ERROR
from tests.messaging import worker_helpers
from tests.messaging.harness import Harness
from tests.messaging.worker_helpers import (
    TRACEPARENT,
    TRACESTATE,
    Recorder,
    depth,
    scaled,
    settled,
)

workers = worker_helpers.workers  # the fixture
Workers = Callable[..., Worker]


async def test_a_message_is_handled_once_and_acked(harness: Harness, workers: Workers) -> None:
    q = harness.queue()
    worker = workers()
    record = Recorder(harness)
    worker.add_handler(q, record, name="record")
    await worker.start()
    message_id = await harness.broker.publish(q, {"order": 7}, headers={"x-custom": "yes"})
    await harness.run_until(lambda: worker.stats()[(q, "record")].acked == 1, within=5)
    assert [(c.body, c.attempt, c.message_id) for c in record.calls] == [
        ({"order": 7}, 1, message_id)
    ]
    assert record.calls[0].key == f"record:{message_id}"
    assert record.calls[0].headers["x-custom"] == "yes"
    await harness.run_until(lambda: settled(harness, q), within=5)
    stats = worker.stats()[(q, "record")]
    assert (stats.received, stats.acked, stats.in_flight, stats.processed) == (1, 1, 0, 1)


async def test_a_failed_attempt_releases_its_inbox_key_and_the_retry_does_the_work(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 3: never "deduped but never done" (the Redpanda dedupe trap)."""
    q = harness.queue()
    inbox = MemoryInbox(clock=harness.clock)
    worker = workers(inbox=inbox)
    seen_after_failure: list[str | None] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        seen_after_failure.append(inbox.state("h", ctx.message_id))

    worker.add_handler(q, handle, name="h", retry=[scaled(harness, 5, 0.2)])
    await worker.start()
    message_id = await harness.broker.publish(q, {"n": 1})
    await harness.run_until(lambda: worker.stats()[(q, "h")].retried == 1, within=5)
    assert inbox.state("h", message_id) is None  # released, not done
    await harness.run_until(lambda: worker.stats()[(q, "h")].acked == 1, within=10)
    assert seen_after_failure == ["claimed"]  # the retry claimed it again and ran
    assert inbox.state("h", message_id) == "done"


async def test_backoff_follows_the_schedule_and_survives_a_restart(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 5: attempt n+1 starts base*2^(n-1) after attempt n, jittered, capped."""
    q = harness.queue()
    base = scaled(harness, 10.0, 0.2)
    schedule = RetrySchedule.exponential(base, 2.0, 4 * base, "equal", random=random.Random(5))
    record = Recorder(harness, fail_until=5)
    first = workers()
    first.add_handler(q, record, name="h", retry=schedule, max_attempts=6)
    await first.start()
    await harness.broker.publish(q, {"n": 1})
    step = scaled(harness, 0.25, 0.05)
    await harness.run_until(
        lambda: len(record.calls) == 2, within=scaled(harness, 30, 5), step=step
    )
    await harness.run_until(lambda: first.stats()[(q, "h")].retried == 2, within=5)
    # Restart: the worker stops, the broker closes and opens again; the delay
    # before attempt 3 was stored by the broker, not held by the old worker.
    await first.stop()
    await harness.reopen()
    second = workers()
    second.add_handler(q, record, name="h", retry=schedule, max_attempts=6)
    await second.start()
    await harness.run_until(
        lambda: second.stats()[(q, "h")].acked == 1, within=scaled(harness, 200, 10), step=step
    )
    assert [c.attempt for c in record.calls] == [1, 2, 3, 4, 5]
    # A backend with a storage thread (SQLite) may answer a step of fake time late;
    # on real time (RabbitMQ) scheduling and delay-level rounding add up to ~5 %.
    slack = 2 * step if harness.fake_time else 1.0
    for n in range(1, 5):
        gap = record.calls[n].at - record.calls[n - 1].at
        low, high = schedule.window(n)
        assert high == min(base * 2 ** (n - 1), 4 * base)
        assert low - 0.01 <= gap <= high + slack, (n, gap, low, high)
    first_failed = float(record.calls[4].headers[HEADER_FIRST_FAILED_AT])
    assert first_failed == pytest.approx(record.calls[0].at, abs=0.01)
    assert record.calls[4].headers[HEADER_LAST_ERROR] == "RuntimeError: downstream is down"


async def test_exhausted_attempts_dead_letter_the_original_with_why(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 7: the dead letter holds all a replay or a person needs; one ack."""
    q = harness.queue()
    worker = workers()

    async def handle(body: Any, ctx: MessageContext) -> None:
        raise ValueError(f"cannot ship order {body['order']}")

    worker.add_handler(q, handle, name="ship", retry=[scaled(harness, 1, 0.05)], max_attempts=3)
    await worker.start()
    headers = {"x-tenant": "acme", "traceparent": TRACEPARENT}
    message_id = await harness.broker.publish(q, {"order": 42}, headers=headers)
    start = harness.clock.wall()
    await harness.run_until(
        lambda: worker.stats()[(q, "ship")].dead_lettered == 1, within=scaled(harness, 10, 5)
    )
    [dead] = await harness.broker.dead_letters.list(queue=q)
    assert dead.message.id == message_id
    assert dead.message.decode() == {"order": 42}
    assert {k: dead.message.headers[k] for k in headers} == headers
    failure = dead.failure
    assert failure.error_type == "ValueError"
    assert failure.error_message == "cannot ship order 42"
    assert "raise ValueError" in failure.traceback
    assert (failure.attempts, failure.handler, failure.reason) == (3, "ship", "exhausted")
    assert failure.first_failed_at == pytest.approx(start, abs=0.5)
    assert failure.last_failed_at - failure.first_failed_at >= 2 * scaled(harness, 1, 0.05) - 0.01
    assert dead.source_queue == q
    assert dead.dead_letter_queue == f"{q}.dlq"
    await harness.run_until(lambda: settled(harness, q), within=5)
    stats = worker.stats()[(q, "ship")]
    assert (stats.received, stats.retried, stats.dead_lettered, stats.acked) == (3, 2, 1, 0)


async def test_a_refused_dead_letter_is_not_an_ack(harness: Harness, workers: Workers) -> None:
    """Behaviour 8 (dramatiq PR#545): the DLQ refuses the write, the message stays."""
    q = harness.queue()
    dlq = harness.queue("dlq")
    await harness.refuse_publishes(dlq)
    worker = workers()
    record = Recorder(harness, fail_until=99)
    delay = scaled(harness, 1, 0.1)
    worker.add_handler(q, record, name="h", max_attempts=1, dead_letter_queue=dlq, retry=[delay])
    await worker.start()
    await harness.broker.publish(q, {"n": 1})
    await harness.run_until(
        lambda: worker.stats()[(q, "h")].failed_to_settle >= 2, within=scaled(harness, 10, 5)
    )
    assert len(record.calls) >= 2  # it came back, not lost
    assert min(_gaps(record)) >= delay - 0.01  # after the delay its retry would have had
    await worker.stop()
    await harness.run_until(lambda: _depth_is(harness, q, 1), within=scaled(harness, 5, 5))
    assert await harness.broker.dead_letters.count() == 0
    assert worker.stats()[(q, "h")].acked == 0


async def test_a_refused_retry_is_not_an_ack(harness: Harness, workers: Workers) -> None:
    """Behaviour 8: the retry publish is refused, the message is given back, not lost."""
    q = harness.queue()
    worker = workers()
    record = Recorder(harness, fail_until=99)
    delay = scaled(harness, 1, 0.1)
    worker.add_handler(q, record, name="h", retry=[delay])
    await harness.broker.publish(q, {"n": 1})
    await harness.refuse_publishes(q)  # the retry, a write into q, will be refused
    await worker.start()
    await harness.run_until(
        lambda: worker.stats()[(q, "h")].failed_to_settle >= 1, within=scaled(harness, 10, 5)
    )
    await harness.run_until(lambda: len(record.calls) >= 2, within=scaled(harness, 10, 5))
    assert {c.attempt for c in record.calls[1:]} == {1}  # given back, not counted
    # ... and back after the retry's delay, even where the give back itself is refused
    # (RabbitMQ: a nack, not a republish): no hot loop, which on RabbitMQ before 4.3
    # would burn the queue's delivery limit and have RabbitMQ dead-letter it.
    assert min(_gaps(record)) >= delay - 0.01
    await worker.stop()
    await harness.run_until(lambda: _depth_is(harness, q, 1), within=scaled(harness, 5, 5))
    assert worker.stats()[(q, "h")].acked == 0


async def _depth_is(harness: Harness, queue: str, expected: int) -> bool:
    return await depth(harness, queue) == expected


def _gaps(record: Recorder) -> list[float]:
    """Seconds between one call and the next."""
    return [b.at - a.at for a, b in itertools.pairwise(record.calls)]


class Order(pydantic.BaseModel):
    id: int
    qty: int = pydantic.Field(gt=0)


async def test_permanent_errors_and_invalid_payloads_go_straight_to_the_dlq(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 9: zero retries; the handler never sees an invalid payload."""
    q_perm, q_model, q_reject = harness.queue("perm"), harness.queue("model"), harness.queue("rej")
    worker = workers()
    perm = Recorder(harness, fail_until=99, error=lambda: PermissionError("no access"))
    seen: list[Order] = []

    async def take_order(order: Order, ctx: MessageContext) -> None:
        seen.append(order)

    async def refuse(body: Any, ctx: MessageContext) -> None:
        raise Reject("customer is blocked")

    worker.add_handler(q_perm, perm, name="perm", permanent=(PermissionError,))
    worker.add_handler(q_model, take_order, name="orders", model=Order)
    worker.add_handler(q_reject, refuse, name="refuse")
    await worker.start()
    await harness.broker.publish(q_perm, {"n": 1})
    await harness.broker.publish(q_model, {"id": 1, "qty": 0})
    await harness.broker.publish(q_model, b"\x00 raw bytes")
    await harness.broker.publish(q_model, {"id": "2", "qty": 3})
    await harness.broker.publish(q_reject, {"n": 1})
    await harness.run_until(
        lambda: sum(s.dead_lettered for s in worker.stats().values()) == 4, within=5
    )
    await harness.run_until(lambda: worker.stats()[(q_model, "orders")].acked == 1, within=5)
    assert len(perm.calls) == 1
    assert seen == [Order(id=2, qty=3)]  # validated and converted
    assert sum(s.retried for s in worker.stats().values()) == 0
    [denied] = await harness.broker.dead_letters.list(queue=q_perm)
    assert (denied.failure.reason, denied.failure.error_type) == ("permanent", "PermissionError")
    invalid = await harness.broker.dead_letters.list(queue=q_model)
    assert [d.failure.reason for d in invalid] == ["permanent", "permanent"]
    assert {d.failure.error_type for d in invalid} == {"interlink.messaging.InvalidPayloadError"}
    assert "qty: Input should be greater than 0" in invalid[0].failure.error_message
    assert "does not validate as Order" in invalid[1].failure.error_message
    [rejected] = await harness.broker.dead_letters.list(queue=q_reject)
    assert rejected.failure.reason == "rejected"
    assert rejected.failure.error_type == "interlink.messaging.Reject"
    assert rejected.failure.error_message == "customer is blocked"


async def test_retry_later_overrides_the_delay_and_still_counts_an_attempt(
    harness: Harness, workers: Workers
) -> None:
    q = harness.queue()
    worker = workers()
    wait = scaled(harness, 30.0, 0.3)
    times: list[float] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        times.append(ctx.clock.wall())
        raise RetryLater("rate limited", delay=wait)

    worker.add_handler(q, handle, name="h", max_attempts=2, retry=[scaled(harness, 1, 0.05)])
    await worker.start()
    await harness.broker.publish(q, {"n": 1})
    await harness.run_until(
        lambda: worker.stats()[(q, "h")].dead_lettered == 1,
        within=scaled(harness, 60, 5),
        step=scaled(harness, 0.5, 0.05),
    )
    assert len(times) == 2
    assert times[1] - times[0] >= wait - 0.01
    [dead] = await harness.broker.dead_letters.list(queue=q)
    assert (dead.failure.reason, dead.failure.error_type) == (
        "exhausted",
        "interlink.messaging.RetryLater",
    )


async def test_replay_runs_it_again_with_a_fresh_budget_and_twice_is_once(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 10: lineage header, attempt 1 again; a second copy is a duplicate."""
    q = harness.queue()
    inbox = MemoryInbox(clock=harness.clock)
    worker = workers(inbox=inbox)
    effects: list[str] = []
    broken = True
    attempts: list[tuple[int, str | None]] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        attempts.append((ctx.attempt, ctx.headers.get(HEADER_REPLAYED_FROM)))
        if broken:
            raise RuntimeError("bug in the handler")
        effects.append(ctx.idempotency_key)

    worker.add_handler(q, handle, name="h", max_attempts=2, retry=[scaled(harness, 1, 0.05)])
    await worker.start()
    message_id = await harness.broker.publish(q, {"n": 1})
    await harness.run_until(lambda: worker.stats()[(q, "h")].dead_lettered == 1, within=5)
    [dead] = await harness.broker.dead_letters.list(queue=q)
    broken = False  # the bug is fixed
    assert await harness.broker.dead_letters.replay([dead.id]) == [message_id]
    await harness.run_until(lambda: worker.stats()[(q, "h")].acked == 1, within=5)
    assert attempts == [(1, None), (2, None), (1, dead.id)]
    # A replay whose record survived (a crash between its publish and its
    # delete) sends the same message again: the inbox absorbs it.
    await harness.broker.publish(
        q, {"n": 1}, message_id=message_id, headers={HEADER_REPLAYED_FROM: dead.id}
    )
    await harness.run_until(lambda: worker.stats()[(q, "h")].duplicates == 1, within=5)
    assert effects == [f"h:{message_id}"]
    assert await harness.broker.dead_letters.count(queue=q) == 0


async def test_a_poison_message_runs_at_most_max_attempts_times_with_backoff(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 11: no hot loop; bounded calls, growing waits, then the DLQ."""
    q = harness.queue()
    worker = workers()
    record = Recorder(harness, fail_until=99, error=lambda: KeyError("poison"))
    base = scaled(harness, 1.0, 0.1)
    worker.add_handler(
        q,
        record,
        name="h",
        max_attempts=4,
        retry=RetrySchedule.exponential(base, 2, 60, "none"),
    )
    await worker.start()
    await harness.broker.publish(q, {"n": 1})
    await harness.run_until(
        lambda: worker.stats()[(q, "h")].dead_lettered == 1, within=scaled(harness, 30, 5)
    )
    assert len(record.calls) == 4
    gaps = [b.at - a.at for a, b in zip(record.calls, record.calls[1:], strict=False)]
    assert [round(g / base) for g in gaps] == [1, 2, 4] if harness.fake_time else True
    assert all(g >= base * 2**i - 0.01 for i, g in enumerate(gaps))
    span = record.calls[-1].at - record.calls[0].at
    assert len(record.calls) / span <= 4 / (7 * base) + 1e-6  # calls per second, bounded


async def test_trace_headers_pass_unchanged_through_retry_dead_letter_and_replay(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 21: the same traceparent/tracestate and message id at every step."""
    q = harness.queue()
    worker = workers()
    record = Recorder(harness, fail_until=3)
    worker.add_handler(q, record, name="h", max_attempts=2, retry=[scaled(harness, 1, 0.05)])
    await worker.start()
    headers = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    message_id = await harness.broker.publish(q, {"n": 1}, headers=headers)
    await harness.run_until(lambda: worker.stats()[(q, "h")].dead_lettered == 1, within=5)
    [dead] = await harness.broker.dead_letters.list(queue=q)
    assert {k: dead.message.headers[k] for k in headers} == headers
    await harness.broker.dead_letters.replay([dead.id])
    await harness.run_until(lambda: len(record.calls) == 3, within=5)
    await harness.run_until(lambda: worker.stats()[(q, "h")].retried == 2, within=5)
    for call in record.calls:
        assert call.message_id == message_id
        assert {k: call.headers[k] for k in headers} == headers
