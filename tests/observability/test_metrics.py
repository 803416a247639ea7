"""/metrics after a scripted run, asserted by value; the recorder's parts on their own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from interlink.messaging import QueueStats
from interlink.observability import DURATION_BUCKETS, MetricsRecorder, status_class
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.observability.metrics_support import (
    key,
    samples,
    scripted_run,
    total,
    write_config,
)

DURATION = "interlink_client_request_duration_seconds"
PROCESSING = "interlink_message_processing_duration_seconds"


async def test_a_scripted_run_shows_in_every_metric_by_value(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            found = await scripted_run(service, upstream, session)

    def value(name: str, **labels: str) -> float:
        assert key(name, **labels) in found, (name, labels)
        return found[key(name, **labels)]

    # Webhooks, by source and outcome.
    webhooks = "interlink_webhooks_received_total"
    assert value(webhooks, source="shop", outcome="accepted", reason="") == 2
    assert value(webhooks, source="shop", outcome="rejected", reason="no_matching_signature") == 1
    assert value(webhooks, source="shop", outcome="duplicate", reason="") == 0

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
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(recorder)
    found = samples(generate_latest(registry).decode())
    assert found[key("interlink_queue_messages", queue="shop", state="ready")] == 3
    assert found[key("interlink_queue_messages", queue="shop", state="delayed")] == 1
    assert found[key("interlink_queue_oldest_message_age_seconds", queue="shop")] == 12.5
    assert found[key("interlink_queue_dead_letters", queue="shop")] == 2
    assert total(found, "interlink_queue_messages", queue="orders") == 0
    assert key("interlink_queue_dead_letters", queue="orders") not in found
    assert found[key("interlink_queue_stats_errors_total", queue="orders")] == 1
    assert key("interlink_queue_stats_errors_total", queue="shop") not in found
