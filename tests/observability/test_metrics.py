"""/metrics after a scripted run, asserted by value; the recorder's parts on their own."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from interlink.client import ApiClient
from interlink.core.errors import TransformError
from interlink.messaging import MemoryBroker, QueueStats, Worker
from interlink.observability import DURATION_BUCKETS, MetricsRecorder, status_class
from interlink.observability._lean import LeanTracerProvider
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeClock, FakeUpstream, Reply
from interlink.transform import Mapping
from interlink.webhooks import WebhookReceiver, WebhookSource
from tests.observability.metrics_support import (
    exposition,
    exposition_text,
    key,
    scripted_run,
    total,
    write_config,
)
from tests.webhooks.signing import SECRET, standard_headers

DURATION = "interlink_client_request_duration_seconds"
PROCESSING = "interlink_message_processing_duration_seconds"
WEBHOOK_DURATION = "interlink_webhook_request_duration_seconds"
WEBHOOK_NOW = 1_800_000_000


async def test_a_scripted_run_shows_in_every_metric_by_value(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            found = await scripted_run(service, upstream, session)
            async with session.get(f"{service.url}/metrics") as response:
                content_type = response.headers["Content-Type"]

    # The text format by default, as docs/observability.md says (OpenMetrics when asked for).
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"

    def value(name: str, **labels: str) -> float:
        assert key(name, **labels) in found, (name, labels)
        return found[key(name, **labels)]

    # Webhooks, by source and outcome.
    webhooks = "interlink_webhooks_received_total"
    assert value(webhooks, source="shop", outcome="accepted", reason="") == 2
    assert value(webhooks, source="shop", outcome="rejected", reason="no_matching_signature") == 1
    assert value(webhooks, source="shop", outcome="duplicate", reason="") == 0
    assert value(f"{WEBHOOK_DURATION}_count", source="shop", outcome="accepted") == 2
    assert value(f"{WEBHOOK_DURATION}_count", source="shop", outcome="rejected") == 1
    assert key(f"{WEBHOOK_DURATION}_count", source="shop", outcome="duplicate") not in found
    assert 0 < value(f"{WEBHOOK_DURATION}_sum", source="shop", outcome="accepted") < 5

    # Messages, by queue and outcome; handler durations; transform errors.
    messages = "interlink_messages_total"
    orders = {"queue": "orders", "handler": "orders:handle"}
    pay = {"queue": "pay", "handler": "pay:forward"}
    assert value(messages, **orders, outcome="acked") == 2
    assert value(messages, **orders, outcome="dead_lettered") == 1
    assert value(messages, **orders, outcome="retried") == 0
    assert value(messages, **pay, outcome="acked") == 1
    assert value(messages, **pay, outcome="dead_lettered") == 1
    assert value("interlink_messages_received_total", **orders) == 3
    assert value("interlink_messages_in_flight", **orders) == 0
    assert value(f"{PROCESSING}_count", **orders, result="success") == 2
    assert value(f"{PROCESSING}_count", **orders, result="error") == 1
    # The untransformable record never reached the handler: one run, successful.
    assert value(f"{PROCESSING}_count", **pay, result="success") == 1
    assert key(f"{PROCESSING}_count", **pay, result="error") not in found
    assert value(f"{PROCESSING}_bucket", **orders, result="success", le="+Inf") == 2
    assert 0 < value(f"{PROCESSING}_sum", **orders, result="success") < 5
    assert value("interlink_transform_failures_total", transformer="pay", field="amount") == 1

    # Queues: depth, oldest age, dead letters (read from the broker at scrape time).
    assert value("interlink_queue_messages", queue="inbound", state="ready") == 2
    assert value("interlink_queue_messages", queue="inbound", state="in_flight") == 0
    assert value("interlink_queue_messages", queue="orders", state="ready") == 0
    assert 0 < value("interlink_queue_oldest_message_age_seconds", queue="inbound") < 60
    assert value("interlink_queue_oldest_message_age_seconds", queue="orders") == 0
    assert value("interlink_queue_dead_letters", queue="orders") == 1
    assert value("interlink_queue_dead_letters", queue="pay") == 1
    assert value("interlink_queue_dead_letters", queue="inbound") == 0
    assert total(found, "interlink_queue_stats_errors_total") == 0

    # Client attempts by client, method and status class (one per attempt).
    count = f"{DURATION}_count"
    assert value(count, client="api", method="GET", status_class="5xx") == 1
    assert value(count, client="api", method="GET", status_class="2xx") == 1
    assert value(count, client="api", method="GET", status_class="4xx") == 1
    assert value(count, client="api", method="POST", status_class="2xx") == 1  # the forward
    assert value(count, client="stingy", method="GET", status_class="5xx") == 1
    assert value(count, client="dead", method="GET", status_class="error") == 1
    assert value(count, client="narrow", method="GET", status_class="2xx") == 1
    assert total(found, count, client="guarded") == 0  # refused before sending
    slow = {"client": "narrow", "method": "GET", "status_class": "2xx"}
    assert value(f"{DURATION}_bucket", **slow, le="0.25") == 0  # the reply took 0.3 s
    assert value(f"{DURATION}_bucket", **slow, le="+Inf") == 1
    assert 0.3 <= value(f"{DURATION}_sum", **slow) < 5
    assert value("interlink_client_calls_total", client="api") == 3
    assert value("interlink_client_failures_total", client="api") == 0  # a 404 is an answer
    assert value("interlink_client_failures_total", client="dead") == 1

    # Resilience decisions.
    assert value("interlink_client_retries_total", client="api", reason="backoff") == 1
    assert total(found, "interlink_client_retries_total") == 1
    assert value("interlink_client_retry_budget_exhausted_total", client="stingy") == 1
    assert value("interlink_client_retry_budget_exhausted_total", client="api") == 0
    assert value("interlink_client_retry_gave_up_total", client="stingy", reason="budget") == 1
    assert value("interlink_client_breaker_state", client="guarded", state="forced_open") == 1
    assert value("interlink_client_breaker_state", client="guarded", state="closed") == 0
    assert (
        value(
            "interlink_client_breaker_transitions_total",
            client="guarded",
            from_state="closed",
            to_state="forced_open",
        )
        == 1
    )
    assert value("interlink_client_breaker_rejections_total", client="guarded") == 1
    assert value("interlink_client_bulkhead_rejections_total", client="narrow", reason="full") == 1
    bulkhead = "interlink_client_bulkhead_rejections_total"
    assert value(bulkhead, client="narrow", reason="queue_full") == 0  # seeded, as the others
    for client in ("api", "dead"):  # no bulkhead: every reason at 0 all the same
        for reason in ("full", "queue_full", "timeout"):
            assert value(bulkhead, client=client, reason=reason) == 0
    assert value("interlink_client_rate_limit_rejections_total", client="limited") == 1
    assert value("interlink_client_rate_limit_rejections_total", client="api") == 0

    # Upstream quota, from the RateLimit-* headers of the forward's answer.
    assert value("interlink_client_quota_remaining", client="api") == 7
    assert value("interlink_client_quota_limit", client="api") == 100
    assert key("interlink_client_quota_remaining", client="stingy") not in found

    # Bounded labels: names from the config and fixed words, never ids or URLs.
    for _, labels in found:
        for label, text in labels:
            assert "/" not in text, (label, text)
            assert "127.0.0.1" not in text, (label, text)
            assert not text.startswith("wh"), (label, text)  # webhook ids


async def test_every_webhook_outcome_is_counted_by_value() -> None:
    # Each outcome a different number of times, so that no count can pass for another.
    accepted, duplicates, too_large, forged, unsigned, unavailable = 2, 3, 4, 1, 5, 6
    clock = FakeClock(wall=WEBHOOK_NOW)
    broker = MemoryBroker(clock=clock)
    await broker.start()
    shop = WebhookSource(
        "shop",
        path="/webhooks/shop",
        scheme="standard",
        secrets=[SECRET],
        queue="inbound",
        max_body=64,
    )
    recorder = MetricsRecorder(clock=clock)
    body = b'{"n": 1}'

    async def post(webhook_id: str, content: bytes = body, *, key: bytes | None = None) -> Any:
        headers = (
            {}
            if webhook_id == ""
            else standard_headers(webhook_id, WEBHOOK_NOW, content, *([key] if key else []))
        )
        return await http.post("/webhooks/shop", content=content, headers=headers)

    async with WebhookReceiver([shop], broker=broker, clock=clock) as receiver:
        recorder.watch_receiver(receiver)
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:
            for n in range(accepted):
                assert (await post(f"ok{n}")).status_code == 200
            for n in range(duplicates):
                again = await post(f"ok{n % accepted}")
                assert (again.status_code, again.json()["duplicate"]) == (200, True)
            for n in range(too_large):
                assert (await post(f"big{n}", b"x" * 65)).status_code == 413
            for n in range(forged):
                assert (await post(f"bad{n}", key=b"wrong-key-wrong-key")).status_code == 401
            for _ in range(unsigned):
                assert (await post("")).status_code == 401
            broker.refuse_publishes("inbound")  # the broker refuses to store: 503
            for n in range(unavailable):
                assert (await post(f"down{n}")).status_code == 503
        found = exposition(recorder)
    await broker.close()

    webhooks = "interlink_webhooks_received_total"
    expected = {
        ("accepted", ""): accepted,
        ("duplicate", ""): duplicates,
        ("handshake", ""): 0,
        ("too_large", ""): too_large,
        ("unavailable", ""): unavailable,
        ("rejected", "no_matching_signature"): forged,
        ("rejected", "missing_header"): unsigned,
    }
    served = {
        (dict(labels)["outcome"], dict(labels)["reason"]): value
        for (name, labels), value in found.items()
        if name == webhooks and dict(labels)["source"] == "shop"
    }
    assert served == expected


class _SlowPublishBroker(MemoryBroker):
    """A memory broker whose publish takes ``seconds`` of its fake clock (then stores, or not)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__(clock=clock)
        self.fake = clock
        self.seconds = seconds

    async def publish(self, queue: str, body: Any, **kwargs: Any) -> str:
        await self.fake.advance(self.seconds)
        return await super().publish(queue, body, **kwargs)


async def test_the_webhook_request_duration_is_observed_by_source_and_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(wall=WEBHOOK_NOW)
    broker = _SlowPublishBroker(clock, 0.03)  # each publish takes 30 ms of the fake clock
    await broker.start()
    shop = WebhookSource(
        "shop", path="/webhooks/shop", scheme="standard", secrets=[SECRET], queue="inbound"
    )
    recorder = MetricsRecorder(clock=clock)
    body = b'{"n": 1}'
    seen: list[tuple[str, str, float]] = []

    def broken(source: str, outcome: str, seconds: float, span: object) -> None:
        seen.append((source, outcome, seconds))
        raise RuntimeError("a listener that fails")

    async def disconnected() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def ignore(message: Any) -> None:
        pass

    async with WebhookReceiver([shop], broker=broker, clock=clock) as receiver:
        recorder.watch_receiver(receiver)
        unsubscribe_broken = receiver.answered.subscribe(broken)
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:

            async def post(webhook_id: str, **kwargs: Any) -> int:
                headers = standard_headers(webhook_id, WEBHOOK_NOW, body, **kwargs)
                response = await http.post("/webhooks/shop", content=body, headers=headers)
                return response.status_code

            assert [await post("a"), await post("b"), await post("a")] == [200, 200, 200]
            assert await post("forged", key=b"wrong-key-wrong-key") == 401
            assert (await http.get("/webhooks/shop")).status_code == 405
            assert (await http.post("/elsewhere", content=body)).status_code == 404  # no source
            broker.refuse_publishes(shop.queue)
            assert await post("down") == 503
            # The sender goes away before its body came: nothing answered, nothing observed.
            scope = {"type": "http", "method": "POST", "path": "/webhooks/shop", "headers": []}
            await receiver(scope, disconnected, ignore)
            unsubscribe_broken()
            recorder.close()  # unsubscribes: what follows is not observed
            broker.accept_publishes(shop.queue)
            assert await post("late") == 200
    await broker.close()

    found = exposition(recorder)

    def value(suffix: str, outcome: str, **labels: str) -> float:
        return found[key(f"{WEBHOOK_DURATION}_{suffix}", source="shop", outcome=outcome, **labels)]

    counts = {
        dict(labels)["outcome"]: count
        for (name, labels), count in found.items()
        if name == f"{WEBHOOK_DURATION}_count"
    }
    assert counts == {
        "accepted": 2,
        "duplicate": 1,
        "rejected": 1,
        "method_not_allowed": 1,
        "unavailable": 1,
    }
    assert value("sum", "accepted") == pytest.approx(0.06)  # two publishes of 30 ms
    assert value("bucket", "accepted", le="0.025") == 0
    assert value("bucket", "accepted", le="0.05") == 2
    assert value("sum", "unavailable") == pytest.approx(0.03)  # the refused publish took its time
    for outcome in ("duplicate", "rejected", "method_not_allowed"):  # answered without storing
        assert value("sum", outcome) == 0
        assert value("bucket", outcome, le="0.005") == 1
    # The failing listener saw the same requests, was logged each time, and broke none of them.
    assert [outcome for _, outcome, _ in seen] == [
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
        "method_not_allowed",
        "unavailable",
    ]
    assert [seconds for _, _, seconds in seen][:2] == [pytest.approx(0.03)] * 2
    failures = [r for r in caplog.records if "answer listener" in r.getMessage()]
    assert len(failures) == len(seen)


@pytest.mark.parametrize("provider", ["sdk", "lean"])
@pytest.mark.parametrize("sampled", [True, False])
async def test_a_webhook_duration_keeps_its_server_span_as_exemplar_only_when_sampled(
    provider: str, sampled: bool
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    from interlink.observability._metrics import _Histogram

    exporter = InMemorySpanExporter()
    tracer_provider: TracerProvider | LeanTracerProvider
    if provider == "sdk":
        tracer_provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF)
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        ratio = 1.0 if sampled else 0.0
        tracer_provider = LeanTracerProvider(exporter, batch=False, sampling_ratio=ratio)
    trace.set_tracer_provider(tracer_provider)
    clock = FakeClock(wall=WEBHOOK_NOW)
    broker = MemoryBroker(clock=clock)
    await broker.start()
    shop = WebhookSource(
        "shop", path="/webhooks/shop", scheme="standard", secrets=[SECRET], queue="inbound"
    )
    recorder = MetricsRecorder(clock=clock)
    body = b"{}"
    try:
        async with WebhookReceiver([shop], broker=broker, clock=clock) as receiver:
            recorder.watch_receiver(receiver)
            transport = httpx.ASGITransport(app=receiver)
            async with httpx.AsyncClient(transport=transport, base_url="http://h.test") as http:
                headers = standard_headers("w1", WEBHOOK_NOW, body)
                response = await http.post("/webhooks/shop", content=body, headers=headers)
                assert response.status_code == 200
    finally:
        await broker.close()
        tracer_provider.shutdown()
    histogram: _Histogram = recorder._webhook_durations[("shop", "accepted")]
    assert histogram.count == 1
    if not sampled:
        assert exporter.get_finished_spans() == ()
        assert histogram.exemplars is None  # an id no backend keeps would link nowhere
        return
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert server.context is not None
    assert histogram.exemplars is not None
    kept = [exemplar for exemplar in histogram.exemplars if exemplar is not None]
    assert kept == [(server.context.trace_id, server.context.span_id, 0.0, float(WEBHOOK_NOW))]


async def test_metrics_disabled_serves_no_endpoint_and_watches_nothing(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url, metrics=False))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            assert service.metrics is None
            assert not service.clients["api"].events.active
            assert service.worker is not None
            assert not service.worker.events.active
            async with session.get(f"{service.url}/metrics") as response:
                assert response.status == 404


async def test_stop_unsubscribes_the_recorder(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service:
            client = service.clients["api"]
            assert client.events.active
            worker = service.worker
            assert worker is not None
            assert worker.events.active
        assert not client.events.active
        assert not worker.events.active


def test_status_class_is_bounded() -> None:
    assert [status_class(s) for s in (101, 200, 204, 302, 404, 429, 503)] == [
        "1xx",
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
    ]
    assert status_class(None) == "error"
    assert status_class(999) == "error"


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    from interlink.observability._metrics import _Histogram

    histogram = _Histogram(DURATION_BUCKETS)
    for seconds in (0.005, 0.0051, 0.3, 11.0):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets["0.005"] == 1  # le is inclusive
    assert buckets["0.01"] == 2
    assert buckets["0.25"] == 2
    assert buckets["0.5"] == 3
    assert buckets["10.0"] == 3
    assert buckets["+Inf"] == 4
    assert histogram.count == 4
    assert histogram.sum == pytest.approx(11.3101)


def test_transformers_sharing_a_name_add_up_to_one_series_per_field() -> None:
    # The service builds one transformer per queue: two queues on one mapping file.
    mapping = "name: pay\nfields:\n  amount: {convert: int}\n  qty: {convert: int}\n"
    first, second = Mapping.from_yaml(mapping), Mapping.from_yaml(mapping)
    worker = Worker(MemoryBroker())

    async def handle(body: Any, ctx: Any) -> None:
        pass

    worker.add_handler("card", handle, name="card:h", transform=first)
    worker.add_handler("bank", handle, name="bank:h", transform=second)
    worker.add_handler("cash", handle, name="cash:h", transform=first)  # the same instance
    for transformer, bad in ((first, 2), (second, 3)):
        for _ in range(bad):
            with pytest.raises(TransformError):
                transformer.transform({"amount": "x", "qty": 1})
    with pytest.raises(TransformError):
        second.transform({"amount": 1, "qty": "y"})
    recorder = MetricsRecorder()
    recorder.watch_worker(worker)
    found = exposition(recorder)
    failures = {
        labels: value
        for (name, labels), value in found.items()
        if name == "interlink_transform_failures_total"
    }
    # One sample per label set, the sum of both instances (the shared one counted once).
    assert failures == {
        (("field", "amount"), ("transformer", "pay")): 5,
        (("field", "qty"), ("transformer", "pay")): 1,
    }
    families = text_string_to_metric_families(exposition_text(recorder))
    [family] = [f for f in families if f.name == "interlink_transform_failures"]
    assert len(family.samples) == 2  # no duplicate series in the exposition


async def test_a_quota_whose_window_has_reset_is_no_longer_exported() -> None:
    clock = FakeClock(wall=1_800_000_000.0)
    window = {"RateLimit-Limit": "100", "RateLimit-Remaining": "3", "RateLimit-Reset": "30"}
    no_reset = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "2"}
    resilience: dict[str, Any] = {"retry": {"max_attempts": 1}}
    async with FakeUpstream() as upstream:
        upstream.route("GET", "/window").reply(Reply(200, headers=window))
        upstream.route("GET", "/forever").reply(Reply(200, headers=no_reset))
        windowed = ApiClient(upstream.url, name="windowed", clock=clock, resilience=resilience)
        forever = ApiClient(upstream.url, name="forever", clock=clock, resilience=resilience)
        async with windowed, forever:
            await windowed.get("/window")
            await forever.get("/forever")
    recorder = MetricsRecorder(clock=clock)
    recorder.watch_client(windowed)
    recorder.watch_client(forever)

    def quota(client: str) -> dict[str, float]:
        found = exposition(recorder)
        return {
            part: found[key(f"interlink_client_quota_{part}", client=client)]
            for part in ("remaining", "limit", "reset_timestamp_seconds")
            if key(f"interlink_client_quota_{part}", client=client) in found
        }

    resets_at = 1_800_000_000.0 + 30
    assert quota("windowed") == {"remaining": 3, "limit": 100, "reset_timestamp_seconds": resets_at}
    assert quota("forever") == {"remaining": 2, "limit": 50}
    await clock.advance(29.5)
    assert quota("windowed")["remaining"] == 3  # the window is still on
    await clock.advance(0.5)
    # Reset: the old remaining is unknown now; when the window ended stays readable.
    assert quota("windowed") == {"reset_timestamp_seconds": resets_at}
    assert quota("forever") == {"remaining": 2, "limit": 50}  # no reset time: kept
    recorder.close()


class _SlowBroker:
    """A broker whose ``orders`` figures never come, and whose ``shop`` ones do."""

    def __init__(self) -> None:
        self.never = asyncio.Event()
        self.dead_letters = self

    async def stats(self, queue: str) -> QueueStats:
        if queue == "orders":
            await self.never.wait()
        return QueueStats(queue, 3, 1, 0, 12.5, 2)

    async def count(self, **_: Any) -> int:
        return 2


async def test_a_queue_that_cannot_be_read_in_time_is_left_out_and_counted() -> None:
    recorder = MetricsRecorder()
    broker: Any = _SlowBroker()
    await recorder.refresh_queues(broker, ["shop", "orders"], within=0.05)
    found = exposition(recorder)
    assert found[key("interlink_queue_messages", queue="shop", state="ready")] == 3
    assert found[key("interlink_queue_messages", queue="shop", state="delayed")] == 1
    assert found[key("interlink_queue_oldest_message_age_seconds", queue="shop")] == 12.5
    assert found[key("interlink_queue_dead_letters", queue="shop")] == 2
    assert total(found, "interlink_queue_messages", queue="orders") == 0
    assert key("interlink_queue_dead_letters", queue="orders") not in found
    assert found[key("interlink_queue_stats_errors_total", queue="orders")] == 1
    # Read, so at 0: the alert's increase() sees its first failure (0 -> 1) too.
    assert found[key("interlink_queue_stats_errors_total", queue="shop")] == 0


def _documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/observability.md's "Every metric" table: name -> (type, label names)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    table = text.split("### Every metric", 1)[1].split("\n### ", 1)[0]
    found: dict[str, tuple[str, set[str]]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`interlink_"):
            labels = set(re.findall(r"`([a-z_]+)`", cells[3]))
            found[cells[0].strip("`")] = (cells[1], labels)
    return found


async def test_the_docs_list_every_served_metric_with_its_type_and_labels(
    tmp_path: Path, lean_provider: LeanTracerProvider
) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            await scripted_run(service, upstream, session)
            async with session.get(f"{service.url}/metrics") as response:
                text = await response.text()
    served: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("interlink_"):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = {label for s in family.samples for label in s.labels if label != "le"}
        served[name] = (family.type, labels)
    documented = _documented_metrics()
    assert len(documented) >= 25  # the table was found and read
    assert sorted(served) == sorted(documented)
    for name, (kind, labels) in served.items():
        assert documented[name][0] == kind, name
        assert documented[name][1] == labels, name


async def test_openmetrics_scrapes_carry_exemplars_naming_the_spans(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            await scripted_run(service, upstream, session)
            openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with session.get(f"{service.url}/metrics", headers=openmetrics) as response:
                content_type = response.headers["Content-Type"]
                text = await response.text()
            async with session.get(f"{service.url}/metrics") as response:
                plain = await response.text()
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    recorded = {
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
        for s in spans.get_finished_spans()
        if s.context is not None
    }
    found: dict[str, list[Any]] = {}
    for family in openmetrics_families(text):  # the strict parser: valid OpenMetrics
        found[family.name] = [s.exemplar for s in family.samples if s.exemplar is not None]
    for name in (DURATION, PROCESSING, WEBHOOK_DURATION):
        assert found[name], name
        for exemplar in found[name]:
            assert (exemplar.labels["trace_id"], exemplar.labels["span_id"]) in recorded
            assert exemplar.timestamp is not None
    # A webhook's duration names its SERVER span.
    servers = {
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
        for s in spans.get_finished_spans()
        if s.context is not None and s.name.startswith("POST /webhooks/")
    }
    assert {(e.labels["trace_id"], e.labels["span_id"]) for e in found[WEBHOOK_DURATION]} <= servers
    assert found["interlink_webhooks_received"] == []  # counters carry none
    assert "# {" not in plain  # the text format has no exemplars


def test_without_tracing_a_histogram_keeps_no_exemplar() -> None:
    from interlink.observability._metrics import _Histogram

    histogram = _Histogram(DURATION_BUCKETS)
    histogram.observe(0.2, FakeClock(wall=1_800_000_000.0))  # no tracer provider is set
    assert histogram.exemplars is None
    assert all(len(bucket) == 2 for bucket in histogram.cumulative())
