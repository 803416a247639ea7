"""The worker's edges, with a scripted broker: settles that fail, consumers that break,
crash loops, inbox outages, events, configuration and lifecycle.

The backend-independent behaviours run on every backend in the other
``test_worker*`` modules; here a ``ScriptedBroker`` makes each failure happen
exactly where the test needs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
import pytest

from interlink.core.errors import ConfigError, DeliveryError, PublishError
from interlink.messaging import (
    Broker,
    Consumer,
    DeadLetters,
    Delivery,
    Failure,
    InvalidPayloadError,
    MemoryBroker,
    MemoryInbox,
    Message,
    MessageContext,
    QueueStats,
    RetryLater,
    RetrySchedule,
    SqliteInbox,
    Worker,
    WorkerEvent,
    _settling,
    _worker,
)
from interlink.messaging._message import HEADER_FIRST_FAILED_AT, HEADER_ORDERING_KEY, JSON
from interlink.testing import FakeClock

# -- a broker whose every move the test scripts ------------------------------------


class ScriptedDelivery(Delivery):
    """Records how it was settled; ``fail`` names the settles that raise ``DeliveryError``."""

    def __init__(self, message: Message, fail: set[str] | None = None) -> None:
        super().__init__(message)
        self.fail = fail or set()
        self.calls: list[tuple[str, Any]] = []

    def _maybe_fail(self, action: str) -> None:
        if action in self.fail:
            raise DeliveryError(f"{action} refused", queue=self.message.queue)

    async def _ack(self) -> None:
        self.calls.append(("ack", None))
        self._maybe_fail("ack")

    async def _retry(self, delay: float, headers: dict[str, str]) -> None:
        self.calls.append(("retry", (delay, headers)))
        self._maybe_fail("retry")

    async def _dead_letter(self, failure: Failure, dead_letter_queue: str) -> None:
        self.calls.append(("dead_letter", failure))
        self._maybe_fail("dead_letter")

    async def _release(self, delay: float) -> None:
        self.calls.append(("release", delay))
        self._maybe_fail("release")


class ScriptedConsumer(Consumer):
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while self.items and not self.cancelled:
            item = self.items.pop(0)
            if isinstance(item, BaseException):
                raise item
            yield item
        await asyncio.Event().wait()  # then nothing more arrives

    async def cancel(self) -> None:
        self.cancelled = True


class ScriptedBroker(Broker):
    """``script`` is a list per ``consume`` call: deliveries, or an exception to raise."""

    def __init__(self, clock: FakeClock, script: list[Any]) -> None:
        self.clock = clock
        self.url = "scripted://"
        self.script = script
        self.consumes = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(
        self,
        queue: str,
        body: object,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        key: str | None = None,
    ) -> str:
        raise PublishError("scripted", reason="refused")

    def consume(self, queue: str, *, prefetch: int = 10) -> Consumer:
        self.consumes += 1
        step = self.script.pop(0) if self.script else []
        if isinstance(step, BaseException):
            raise step
        return ScriptedConsumer(list(step))

    async def stats(self, queue: str) -> QueueStats:
        return QueueStats(queue, None, None, None, None, None)

    async def ping(self) -> float:
        return 0.0

    @property
    def dead_letters(self) -> DeadLetters:
        raise NotImplementedError


def message(
    n: int = 1,
    *,
    attempt: int = 1,
    delivery_count: int | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b'{"n": 1}',
) -> Message:
    return Message(
        id=f"m{n}",
        queue="q",
        body=body,
        headers=headers or {},
        content_type=JSON,
        attempt=attempt,
        delivery_count=attempt if delivery_count is None else delivery_count,
    )


async def run_script(
    clock: FakeClock,
    script: list[Any],
    handler: Any,
    *,
    until: Any,
    worker_options: dict[str, Any] | None = None,
    **options: Any,
) -> Worker:
    broker = ScriptedBroker(clock, script)
    worker = Worker(broker, **(worker_options or {}))
    worker.add_handler("q", handler, name="h", **options)
    await worker.start()
    for _ in range(2000):
        if until(worker):
            break
        await clock.advance(0.05)
    else:
        raise AssertionError(f"never happened; stats {worker.stats()}")
    await worker.stop(graceful_timeout=0)
    return worker


async def ok(body: Any, ctx: MessageContext) -> None:
    return None


async def boom(body: Any, ctx: MessageContext) -> None:
    raise RuntimeError("boom")


def stat(worker: Worker, field: str) -> Any:
    return getattr(worker.stats()[("q", "h")], field)


# -- settling that fails -------------------------------------------------------------


async def test_a_refused_retry_and_a_refused_release_leave_the_message_unsettled(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    delivery = ScriptedDelivery(message(), fail={"retry", "release"})
    worker = await run_script(
        clock, [[delivery]], boom, until=lambda w: stat(w, "failed_to_settle") == 1
    )
    assert [name for name, _ in delivery.calls] == ["retry", "release"]
    assert not delivery.settled  # the broker will deliver it again
    assert "release of m1 failed too" in caplog.text
    assert (stat(worker, "retried"), stat(worker, "released")) == (0, 0)


async def test_a_refused_ack_is_counted_and_not_retried(clock: FakeClock) -> None:
    delivery = ScriptedDelivery(message(), fail={"ack"})
    worker = await run_script(
        clock, [[delivery]], ok, until=lambda w: stat(w, "failed_to_settle") == 1
    )
    assert [name for name, _ in delivery.calls] == ["ack"]
    assert stat(worker, "acked") == 0


async def test_a_refused_release_is_counted(clock: FakeClock) -> None:
    inbox = MemoryInbox(clock=clock)
    await inbox.claim("h", "m1", lease=30)  # someone else is on it
    delivery = ScriptedDelivery(message(), fail={"release"})
    worker = await run_script(
        clock,
        [[delivery]],
        ok,
        until=lambda w: stat(w, "failed_to_settle") == 1,
        worker_options={"inbox": inbox},
    )
    assert delivery.calls == [("release", 1.0)]
    assert stat(worker, "released") == 0


async def test_a_handler_that_keeps_killing_its_process_is_dead_lettered_unrun(
    clock: FakeClock,
) -> None:
    ran: list[int] = []

    async def handler(body: Any, ctx: MessageContext) -> None:
        ran.append(ctx.delivery_count)

    fine = ScriptedDelivery(message(1, attempt=2, delivery_count=4))
    looping = ScriptedDelivery(message(2, attempt=2, delivery_count=5))
    worker = await run_script(
        clock,
        [[fine, looping]],
        handler,
        until=lambda w: stat(w, "dead_lettered") == 1,
        delivery_limit=3,
    )
    assert ran == [4]
    [(name, failure)] = looping.calls
    assert name == "dead_letter"
    assert failure.reason == "delivery_limit"
    assert failure.error_type == "interlink.messaging.DeliveryLimitError"
    assert "delivered 5 times in attempt 2" in failure.error_message
    assert stat(worker, "acked") == 1


async def test_a_bad_first_failed_at_header_is_replaced_by_now(clock: FakeClock) -> None:
    delivery = ScriptedDelivery(message(headers={HEADER_FIRST_FAILED_AT: "yesterday"}))
    failed_at = clock.wall()
    await run_script(
        clock, [[delivery]], boom, until=lambda w: stat(w, "retried") == 1, retry=["1s"]
    )
    [(name, (delay, headers))] = delivery.calls
    assert (name, delay) == ("retry", 1.0)
    assert float(headers[HEADER_FIRST_FAILED_AT]) == failed_at


async def test_a_refused_dead_letter_is_released_after_the_schedules_delay(
    clock: FakeClock,
) -> None:
    delivery = ScriptedDelivery(message(attempt=2), fail={"dead_letter"})
    worker = await run_script(
        clock,
        [[delivery]],
        boom,
        until=lambda w: stat(w, "failed_to_settle") == 1,
        max_attempts=2,
        retry=["1s", "7s"],
    )
    assert [name for name, _ in delivery.calls] == ["dead_letter", "release"]
    assert delivery.calls[1] == ("release", 7.0)
    assert stat(worker, "dead_lettered") == 0


# -- the consumer breaking -------------------------------------------------------------


async def test_the_worker_keeps_consuming_after_its_consumer_fails(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = ScriptedDelivery(message(1)), ScriptedDelivery(message(2))
    script = [
        ConnectionError("cannot consume now"),
        [first, ConnectionError("connection reset")],
        [second],
    ]
    worker = await run_script(clock, script, ok, until=lambda w: stat(w, "acked") == 2)
    assert "cannot consume 'q' (cannot consume now)" in caplog.text
    assert "consumer of 'q' failed (connection reset)" in caplog.text
    assert worker.broker.consumes == 3  # type: ignore[attr-defined]


# -- the inbox failing --------------------------------------------------------------------


class BrokenInbox(MemoryInbox):
    def __init__(self, clock: FakeClock, broken: set[str]) -> None:
        super().__init__(clock=clock)
        self.broken = broken
        self.extends: list[bool] = []

    async def claim(self, handler: str, message_id: str, *, lease: float) -> Any:
        if "claim" in self.broken:
            raise OSError("inbox database is locked")
        return await super().claim(handler, message_id, lease=lease)

    async def extend(self, handler: str, message_id: str, *, lease: float) -> bool:
        if "extend" in self.broken:
            self.extends.append(False)
            raise OSError("extend failed")
        held = await super().extend(handler, message_id, lease=lease)
        if "lose" in self.broken:
            held = False
        self.extends.append(held)
        return held

    async def complete(self, handler: str, message_id: str) -> None:
        if "complete" in self.broken:
            raise OSError("complete failed")
        await super().complete(handler, message_id)

    async def release(self, handler: str, message_id: str) -> None:
        if "release" in self.broken:
            raise OSError("release failed")
        await super().release(handler, message_id)


async def test_an_inbox_that_cannot_claim_makes_the_attempt_fail_and_retry(
    clock: FakeClock,
) -> None:
    ran: list[str] = []

    async def handler(body: Any, ctx: MessageContext) -> None:
        ran.append(ctx.message_id)

    delivery = ScriptedDelivery(message())
    await run_script(
        clock,
        [[delivery]],
        handler,
        until=lambda w: stat(w, "retried") == 1,
        worker_options={"inbox": BrokenInbox(clock, {"claim"})},
        retry=["5s"],
    )
    assert ran == []
    assert delivery.calls[0][0] == "retry"
    assert "OSError: inbox database is locked" in delivery.calls[0][1][1].values()


async def test_inbox_failures_after_the_handler_never_lose_the_outcome(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = BrokenInbox(clock, {"complete", "release"})
    good, bad = ScriptedDelivery(message(1)), ScriptedDelivery(message(2))

    async def handler(body: Any, ctx: MessageContext) -> None:
        if ctx.message_id == "m2":
            raise RuntimeError("fails")

    await run_script(
        clock,
        [[good, bad]],
        handler,
        until=lambda w: stat(w, "acked") == 1 and stat(w, "retried") == 1,
        worker_options={"inbox": inbox},
    )
    assert good.calls == [("ack", None)]  # handled: acked although the key was not kept
    assert bad.calls[0][0] == "retry"
    assert "could not record h:m1 as done" in caplog.text
    assert "inbox release failed" in caplog.text


async def test_the_claim_is_renewed_while_the_handler_runs_and_a_lost_one_is_reported(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for broken, expected in (({"extend"}, [False, False]), ({"lose"}, [False])):
        inbox = BrokenInbox(clock, broken)

        async def slow(body: Any, ctx: MessageContext) -> None:
            await ctx.clock.sleep(25)

        await run_script(
            clock,
            [[ScriptedDelivery(message())]],
            slow,
            until=lambda w: stat(w, "acked") == 1,
            worker_options={"inbox": inbox, "claim_lease": 30},
        )
        assert inbox.extends == expected  # every 10 s: twice in 25 s unless lost at once
    assert "inbox lease renewal failed: extend failed" in caplog.text
    assert "the inbox claim on h:m1 was lost" in caplog.text


async def test_a_busy_message_waits_longer_each_time_up_to_half_the_lease(
    clock: FakeClock,
) -> None:
    inbox = MemoryInbox(clock=clock)
    await inbox.claim("h", "m1", lease=3600)  # held by a live worker elsewhere
    deliveries = [ScriptedDelivery(message()) for _ in range(5)]
    worker = await run_script(
        clock,
        [deliveries],
        ok,
        until=lambda w: stat(w, "released") == 5,
        worker_options={"inbox": inbox, "claim_lease": 6},
    )
    assert [d.calls[0] for d in deliveries] == [
        ("release", 1.0),
        ("release", 2.0),
        ("release", 3.0),
        ("release", 3.0),
        ("release", 3.0),
    ]
    assert stat(worker, "acked") == 0


async def test_a_key_blocked_by_a_retry_that_never_comes_back_is_freed_after_a_grace(
    clock: FakeClock,
) -> None:
    keyed = {HEADER_ORDERING_KEY: "A"}
    first = ScriptedDelivery(message(1, headers=keyed))
    second = ScriptedDelivery(message(2, headers=keyed))
    third = ScriptedDelivery(message(3, headers=keyed))
    broker = ScriptedBroker(clock, [[first, second]])
    worker = Worker(broker)

    async def handler(body: Any, ctx: MessageContext) -> None:
        if ctx.message_id == "m1":
            raise RuntimeError("m1 fails")

    worker.add_handler("q", handler, name="h", retry=["10s"], concurrency=2)
    await worker.start()
    await clock.advance(0.1)
    assert first.calls[0][0] == "retry"
    assert second.calls == [("release", pytest.approx(10.5))]  # due + 5 % of the delay
    # m1's retry went to another worker; 10 s + the grace later m3 is not held back.
    await clock.advance(10 + worker._runners[0]._holds.grace)
    consumer = worker._runners[0]._consumer
    assert isinstance(consumer, ScriptedConsumer)
    await worker._runners[0]._dispatch(third)
    await clock.advance(0.1)
    assert third.calls == [("ack", None)]
    await worker.stop(graceful_timeout=0)


# -- events -----------------------------------------------------------------------------------


async def test_events_tell_each_deliverys_story_and_a_failing_listener_is_skipped(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker(clock=clock)
    worker = Worker(broker)
    events: list[WorkerEvent] = []
    unsubscribe = worker.events.subscribe(events.append)

    def broken(event: WorkerEvent) -> None:
        raise RuntimeError("listener bug")

    worker.events.subscribe(broken)

    @worker.handler("q", name="h", retry=["1s"])
    async def handle(body: Any, ctx: MessageContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first fails")

    await worker.start()
    await broker.publish("q", {"n": 1}, message_id="m1")
    for _ in range(30):
        await clock.advance(0.1)
    await worker.stop()
    story = [(e.kind, e.attempt, e.attributes.get("outcome")) for e in events]
    assert story == [
        ("delivery.received", 1, None),
        ("handler.started", 1, None),
        ("handler.finished", 1, None),
        ("delivery.settled", 1, "retried"),
        ("delivery.received", 2, None),
        ("handler.started", 2, None),
        ("handler.finished", 2, None),
        ("delivery.settled", 2, "acked"),
    ]
    assert isinstance(events[2].attributes["error"], ValueError)
    assert events[3].attributes["delay"] == 1.0
    assert {(e.queue, e.handler, e.message_id) for e in events} == {("q", "h", "m1")}
    failures = [r.getMessage() for r in caplog.records if "listener" in r.getMessage()]
    assert len(failures) == len(story)  # once per event, each naming its kind
    assert all(f.startswith("worker event listener") for f in failures)
    assert [f.rsplit(" on ", 1)[1] for f in failures] == [kind for kind, _, _ in story]
    unsubscribe()
    assert worker.events.active  # the broken listener is still subscribed


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"concurrency": 0}, "handler concurrency must be an integer >= 1"),
        ({"concurrency": 4, "prefetch": 2}, "handler prefetch must be >= concurrency"),
        ({"max_attempts": 0}, "handler max_attempts must be an integer >= 1"),
        ({"ordering": "strict"}, "handler ordering must be 'block' or 'continue'"),
        ({"delivery_limit": True}, "handler delivery_limit must be an integer >= 1"),
        ({"name": " "}, "handler name must be a non-empty string"),
        ({"dead_letter_queue": "has space"}, "holds whitespace"),
        ({"retry": "10s"}, "handler retry must be a RetrySchedule"),
        ({"retry": [-1]}, r"RetrySchedule delays\[0\] must be"),
        ({"permanent": [42]}, "handler permanent must be exception classes"),
        ({"permanent": 42}, "handler permanent must be exception classes"),
        ({"permanent": "NoSuchError"}, "no builtin exception named 'NoSuchError'"),
        ({"permanent": "no_such_module.Error"}, "cannot import 'no_such_module'"),
        ({"permanent": "json.NoSuchError"}, "'json' has no 'NoSuchError'"),
        ({"permanent": "json.dumps"}, "handler permanent must be exception classes"),
        ({"model": 42}, "is not a type pydantic can validate"),
    ],
)
def test_bad_handler_options_are_config_errors_naming_the_option(
    options: dict[str, Any], words: str
) -> None:
    worker = Worker(MemoryBroker())
    with pytest.raises(ConfigError, match=words):
        worker.add_handler("q", ok, **options)
    assert worker.handlers == ()


def test_handler_options_accept_config_spellings() -> None:
    worker = Worker(MemoryBroker(), graceful_timeout="10s", claim_lease="1m")
    assert (worker.graceful_timeout, worker.claim_lease) == (10.0, 60.0)
    made = worker.add_handler(
        "q",
        ok,
        retry={"initial": "1s", "max_delay": "1m"},
        permanent=["ValueError", "json.JSONDecodeError", KeyError],
        max_attempts=3,
    )
    assert made.name == "q:ok"
    assert made.schedule == RetrySchedule.exponential(1, 2, 60)
    assert made.permanent[0] is ValueError
    assert made.permanent[2] is KeyError
    assert made.prefetch == made.concurrency == 1
    assert made.is_permanent(KeyError("x"))
    single = Worker(MemoryBroker()).add_handler("q", ok, permanent=ValueError)
    assert single.permanent == (ValueError,)
    assert Worker(MemoryBroker()).add_handler("q", ok, permanent=None).permanent == ()


def test_handlers_must_be_async_and_unique_per_queue_and_name() -> None:
    worker = Worker(MemoryBroker())

    def sync(body: Any, ctx: MessageContext) -> None:
        return None

    class AsyncCallable:
        async def __call__(self, body: Any, ctx: MessageContext) -> None:
            return None

    with pytest.raises(ConfigError, match="handler func must be an async function"):
        worker.add_handler("q", sync)  # type: ignore[arg-type]
    made = worker.add_handler("q", AsyncCallable())
    assert made.name == "q:AsyncCallable"
    with pytest.raises(ConfigError, match="queue 'q' already has handler 'q:AsyncCallable'"):
        worker.add_handler("q", ok)
    with pytest.raises(ConfigError, match="a handler is already named 'q:AsyncCallable'"):
        worker.add_handler("other", ok, name="q:AsyncCallable")

    @worker.handler("decorated")
    async def plain(body: Any, ctx: MessageContext) -> None:
        return None

    assert [h.name for h in worker.handlers] == ["q:AsyncCallable", "decorated:plain"]
    assert plain.__name__ == "plain"  # the decorator returns the function itself


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"broker": "memory://"}, "Worker broker must be a Broker"),
        ({"inbox": 42}, "Worker inbox must be an Inbox"),
        ({"graceful_timeout": -1}, "Worker graceful_timeout must be"),
        ({"claim_lease": 0}, "Worker claim_lease must be"),
    ],
)
def test_bad_worker_options_are_config_errors(options: dict[str, Any], words: str) -> None:
    broker = options.pop("broker", MemoryBroker())
    with pytest.raises(ConfigError, match=words):
        Worker(broker, **options)


async def test_lifecycle_rules(clock: FakeClock) -> None:
    broker = MemoryBroker(clock=clock)
    worker = Worker(broker, name="orders-worker")
    assert repr(worker) == "<Worker orders-worker handlers=0 new>"
    await worker.stop()  # stopping a worker that never started is a no-op
    with pytest.raises(ConfigError, match="no handlers registered"):
        await worker.start()
    worker.add_handler("q", ok, name="h")
    assert worker.stats() == {("q", "h"): worker.stats()[("q", "h")]}
    assert stat(worker, "received") == 0
    async with worker:
        await worker.start()  # idempotent
        assert worker.running
        assert repr(worker) == "<Worker orders-worker handlers=1 running>"
        with pytest.raises(ConfigError, match="register handlers before start"):
            worker.add_handler("q2", ok)
    assert repr(worker) == "<Worker orders-worker handlers=1 stopped>"
    with pytest.raises(ConfigError, match="make a new Worker"):
        await worker.start()


async def test_run_until_cancelled_stops_cleanly(clock: FakeClock) -> None:
    broker = MemoryBroker(clock=clock)
    worker = Worker(broker)
    worker.add_handler("q", ok, name="h")
    running = asyncio.ensure_future(worker.run())
    await clock.advance(0.1)
    assert worker.running
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not worker.running


async def test_a_second_signal_while_stopping_changes_nothing(clock: FakeClock) -> None:
    import signal

    broker = MemoryBroker(clock=clock)
    worker = Worker(broker)
    worker.add_handler("q", ok, name="h")
    running = asyncio.ensure_future(worker.run(handle_signals=True))
    await clock.advance(0.1)
    worker._on_signal(signal.SIGTERM)
    await asyncio.sleep(0)  # the stop has begun
    worker._on_signal(signal.SIGTERM)
    await asyncio.wait_for(running, timeout=5)
    assert not worker.running


async def test_a_handler_that_ignores_cancellation_does_not_hang_stop(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_worker, "_CANCEL_WAIT", 0.05)
    stubborn_done = asyncio.Event()

    async def stubborn(body: Any, ctx: MessageContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await stubborn_done.wait()  # ignores the cancellation

    broker = MemoryBroker(clock=clock)
    worker = Worker(broker)
    worker.add_handler("q", stubborn, name="h")
    await worker.start()
    await broker.publish("q", {"n": 1})
    await clock.advance(0.1)
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(worker.stop(graceful_timeout=0), timeout=5)
    assert "1 handlers ignore cancellation" in caplog.text
    stubborn_done.set()
    await asyncio.sleep(0.01)


class GatedAck(ScriptedDelivery):
    """Its ack waits for ``gate``: a settle still under way."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.gate = asyncio.Event()

    async def _ack(self) -> None:
        self.calls.append(("ack", None))
        await self.gate.wait()


async def test_a_settle_under_way_at_the_graceful_deadline_is_finished_not_cut(
    clock: FakeClock,
) -> None:
    delivery = GatedAck(message())
    worker = Worker(ScriptedBroker(clock, [[delivery]]))
    worker.add_handler("q", ok, name="h")
    await worker.start()
    await clock.advance(0.1)
    assert delivery.calls == [("ack", None)]  # the handler returned; the ack is under way
    stopping = asyncio.ensure_future(worker.stop(graceful_timeout=0))
    await asyncio.sleep(0.01)
    assert not stopping.done()  # past the deadline, but only handlers are cancelled
    delivery.gate.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert delivery.calls == [("ack", None)]
    assert (stat(worker, "acked"), stat(worker, "released")) == (1, 0)


class GatedInbox(MemoryInbox):
    """Its claims wait for ``gate``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()
        self.claiming = asyncio.Event()

    async def claim(self, handler: str, message_id: str, *, lease: float) -> Any:
        self.claiming.set()
        await self.gate.wait()
        return await super().claim(handler, message_id, lease=lease)


async def test_a_claim_that_ends_past_the_graceful_deadline_gives_the_message_back_unrun(
    clock: FakeClock,
) -> None:
    inbox = GatedInbox(clock)
    delivery = ScriptedDelivery(message())
    ran: list[str] = []

    async def handler(body: Any, ctx: MessageContext) -> None:
        ran.append(ctx.message_id)

    worker = Worker(ScriptedBroker(clock, [[delivery]]), inbox=inbox)
    worker.add_handler("q", handler, name="h")
    await worker.start()
    await asyncio.wait_for(inbox.claiming.wait(), timeout=5)
    stopping = asyncio.ensure_future(worker.stop(graceful_timeout=0))
    await asyncio.sleep(0.01)
    assert not stopping.done()  # the claim is not cut either
    inbox.gate.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert ran == []
    assert delivery.calls == [("release", 0.0)]
    assert await MemoryInbox.claim(inbox, "h", "m1", lease=30) == "claimed"  # key released


async def test_a_cancelled_error_a_handler_lets_out_gives_the_message_back_and_serving_goes_on(
    clock: FakeClock,
) -> None:
    first, second = ScriptedDelivery(message(1)), ScriptedDelivery(message(2))

    async def handler(body: Any, ctx: MessageContext) -> None:
        if ctx.message_id == "m1":
            raise asyncio.CancelledError  # e.g. from a future someone else cancelled

    await run_script(
        clock,
        [[first, second]],
        handler,
        until=lambda w: stat(w, "acked") == 1,
    )
    assert first.calls == [("release", 0.0)]  # not an attempt: back as it was
    assert second.calls == [("ack", None)]  # handled by the same (only) serving task


async def test_an_unexpected_error_is_logged_and_the_handler_keeps_serving(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from interlink.messaging._runner import _Runner

    process = _Runner._process

    async def buggy(self: _Runner, delivery: Delivery, key: str | None) -> None:
        if delivery.message.id == "m1":
            raise RuntimeError("a bug")
        await process(self, delivery, key)

    monkeypatch.setattr(_Runner, "_process", buggy)
    first, second = ScriptedDelivery(message(1)), ScriptedDelivery(message(2))
    await run_script(clock, [[first, second]], ok, until=lambda w: stat(w, "acked") == 1)
    assert "handling a delivery from 'q' failed unexpectedly" in caplog.text
    assert first.calls == []  # unacknowledged: it comes back after its lease
    assert second.calls == [("ack", None)]


async def test_an_inbox_url_is_opened_at_start_and_closed_at_stop(
    clock: FakeClock, tmp_path: Path
) -> None:
    broker = MemoryBroker(clock=clock)
    worker = Worker(broker, inbox=f"sqlite:///{tmp_path}/inbox.db")
    handled: list[str] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        handled.append(ctx.message_id)

    worker.add_handler("q", handle, name="h")
    assert worker.inbox is None
    await worker.start()
    assert isinstance(worker.inbox, SqliteInbox)
    await broker.publish("q", {"n": 1}, message_id="m1")
    await broker.publish("q", {"n": 1}, message_id="m1")
    for _ in range(100):
        await asyncio.sleep(0.005)  # the inbox thread answers in real time
        await clock.advance(0.01)
        if stat(worker, "duplicates") == 1:
            break
    assert handled == ["m1"]
    await worker.stop()
    assert worker.inbox._conn is None  # closed by the worker that opened it


# -- decoding, signals, context ---------------------------------------------------------------


class Line(pydantic.BaseModel):
    sku: str
    qty: int


def test_a_json_body_that_does_not_parse_is_an_invalid_payload() -> None:
    handler = Worker(MemoryBroker()).add_handler("q", ok, name="h")
    with pytest.raises(InvalidPayloadError, match="message body is not valid JSON: Expecting"):
        handler.decode(message(body=b"{oops"))


def test_validation_errors_name_fields_and_are_capped() -> None:
    handler = Worker(MemoryBroker()).add_handler("q", ok, name="h", model=list[Line])
    lines = [{"sku": 1, "qty": "x" * 100} for _ in range(4)]
    with pytest.raises(InvalidPayloadError) as caught:
        handler.decode(message(body=json.dumps(lines).encode()))
    text = str(caught.value)
    assert text.startswith("message body does not validate as list[Line] (8 errors): 0.sku:")
    assert "and 3 more" in text
    assert "..." in text  # a long input is shortened
    assert len(caught.value.errors) == 8
    whole = Worker(MemoryBroker()).add_handler("q", ok, name="h", model=int)
    with pytest.raises(InvalidPayloadError, match=r"as int \(1 error\): \(body\): Input should"):
        whole.decode(message(body=b'"seven"'))


def test_retry_later_checks_its_delay() -> None:
    assert RetryLater(delay=2).delay == 2.0
    assert RetryLater().delay is None
    for bad in (-1, float("inf"), float("nan"), True, "5s"):
        with pytest.raises(ValueError, match="RetryLater delay must be"):
            RetryLater(delay=bad)  # type: ignore[arg-type]


def test_the_context_exposes_the_delivery() -> None:
    ctx = MessageContext(
        message=message(7, attempt=2, delivery_count=3), handler="h", clock=FakeClock()
    )
    assert (ctx.queue, ctx.message_id, ctx.attempt, ctx.delivery_count) == ("q", "m7", 2, 3)
    assert ctx.idempotency_key == "h:m7"
    assert ctx.headers == {}


async def test_releases_remembered_per_message_are_bounded(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_settling, "_REMEMBERED_RELEASES", 2)
    inbox = MemoryInbox(clock=clock)
    deliveries = [ScriptedDelivery(message(n)) for n in range(4)]
    for n in range(4):
        await inbox.claim("h", f"m{n}", lease=3600)  # all busy elsewhere
    worker = await run_script(
        clock,
        [deliveries],
        ok,
        until=lambda w: stat(w, "released") == 4,
        worker_options={"inbox": inbox},
    )
    assert list(worker._runners[0]._releases) == [("m2", 1), ("m3", 1)]


async def test_signal_handlers_can_be_installed_twice_and_are_removed_once(
    clock: FakeClock,
) -> None:
    import signal

    worker = Worker(MemoryBroker(clock=clock))
    before = signal.getsignal(signal.SIGUSR1)
    worker.install_signal_handlers([signal.SIGUSR1])
    worker.install_signal_handlers([signal.SIGUSR1])
    worker.remove_signal_handlers()
    assert signal.getsignal(signal.SIGUSR1) is before
