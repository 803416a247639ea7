"""Prometheus metrics of interlink's parts: ``MetricsRecorder``, a collector fed by the hooks.

Two kinds of figures, so that the hot paths pay as little as possible:

- **read at scrape time** from where the parts already keep them: a webhook
  receiver's ``SourceStats``, a worker's ``HandlerStats`` and transformers'
  ``TransformStats``, a client's ``ClientHealth`` (calls, failures, breaker
  state) and ``quota`` (remaining and limit until the window it describes
  resets); queue depth, oldest message age and dead letters are
  read from the broker by ``refresh_queues`` (async: the caller awaits it just
  before a scrape, within a timeout);
- **kept from the event hooks** (what no part counts by itself): each client
  attempt's duration and status class (``client.request`` events of
  ``ApiClient.events``), retries, retry-budget exhaustion, breaker
  transitions and rejections, bulkhead and rate-limit rejections (the
  ``ResilienceEvent``s of the client's pipeline), handler durations
  (``handler.finished`` ``WorkerEvent``s), and each webhook request's time to
  its answer (``WebhookReceiver.answered``: one call per request,
  with the values at hand, rather than an event object).

Names follow the Prometheus and OpenTelemetry conventions: prefix
``interlink_``, base units in the name (``_seconds``), counters ending in
``_total``; the duration histograms use the buckets OTel recommends
(``DURATION_BUCKETS``). Labels are names from the config (client, source,
queue, handler, transformer, field) and fixed words (outcome, reason, state,
status class, HTTP method): never ids or URLs, so the number of series stays
bounded.

``prometheus_client`` (the ``service`` extra) is imported only by
``collect``: watching parts costs nothing without it.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from interlink import __version__
from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.observability._tracing import KNOWN_METHODS, lean_provider, sampled_ids
from interlink.resilience import CircuitState
from interlink.resilience._bulkhead import REJECTION_REASONS as BULKHEAD_REASONS

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from prometheus_client.core import Metric
    from prometheus_client.samples import Exemplar

    from interlink.client import ApiClient
    from interlink.messaging import Broker, Worker
    from interlink.messaging._observe import WorkerEvent
    from interlink.resilience import ResilienceEvent
    from interlink.webhooks import WebhookReceiver

__all__ = [
    "BREAKER_STATES",
    "DURATION_BUCKETS",
    "MESSAGE_OUTCOMES",
    "MetricsRecorder",
    "QueueSnapshot",
    "status_class",
]

DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""Upper bounds (seconds) of the duration histograms: OTel's recommended HTTP buckets."""

BREAKER_STATES: tuple[str, ...] = tuple(state.value for state in CircuitState)
"""Every value of ``interlink_client_breaker_state``'s ``state`` label."""

MESSAGE_OUTCOMES = (
    "acked",
    "retried",
    "dead_lettered",
    "duplicates",
    "released",
    "failed_to_settle",
)
"""Every value of ``interlink_messages_total``'s ``outcome`` label."""

_CLASSES = ("error", "1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int | None) -> str:
    """``"2xx"``... for an HTTP status, ``"error"`` when there is none (no answer came)."""
    if status is None or not 100 <= status < 600:
        return "error"
    return _CLASSES[status // 100]


# The exemplar of a bucket: the trace and span ids of its latest sampled observation, the
# value and the wall time it was observed at (the ids made hex at scrape time, not per request).
_Exemplar = tuple[int, int, float, float]


class _Histogram:
    """Bucket counts of one series (not cumulative: made so when exported), with exemplars.

    A bucket's exemplar is its latest observation made inside a sampled span:
    served in the OpenMetrics format, it links a latency to its trace.
    """

    __slots__ = ("bounds", "buckets", "count", "exemplars", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0
        self.exemplars: list[_Exemplar | None] | None = None  # made with the first one

    def observe(self, value: float, clock: Clock | None = None, span: Span | None = None) -> None:
        """Count ``value``; with ``clock``, inside a sampled span, keep it as the exemplar.

        ``span``: the span it was observed in (default: the current one).
        """
        index = bisect_left(self.bounds, value)  # le is inclusive
        self.buckets[index] += 1
        self.count += 1
        self.sum += value
        if clock is not None:
            ids = sampled_ids(span)
            if ids is not None:
                if self.exemplars is None:
                    self.exemplars = [None] * len(self.buckets)
                self.exemplars[index] = (ids[0], ids[1], value, clock.wall())

    def cumulative(self) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        from prometheus_client.samples import Exemplar

        running = 0
        out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        bounds = [repr(bound) for bound in self.bounds]  # 0.005, 1.0: as prometheus_client does
        exemplars = self.exemplars
        for index, (bound, seen) in enumerate(zip([*bounds, "+Inf"], self.buckets, strict=True)):
            running += seen
            kept = None if exemplars is None else exemplars[index]
            if kept is None:
                out.append((bound, running))
            else:
                trace_id, span_id, value, at = kept
                labels = {"trace_id": f"{trace_id:032x}", "span_id": f"{span_id:016x}"}
                out.append((bound, running, Exemplar(labels, value, at)))
        return out


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What ``refresh_queues`` read of one queue; ``None`` where the backend cannot know."""

    queue: str
    ready: int | None
    delayed: int | None
    in_flight: int | None
    oldest_age: float | None
    dead_letters: int | None
    read_at: float


Counts = dict[tuple[str, ...], int]
_Key = TypeVar("_Key", bound=tuple[str, ...])  # a histogram series' label values


class MetricsRecorder:
    """Watches clients, workers and a webhook receiver; a ``prometheus_client`` collector.

    ``watch_client``, ``watch_worker`` and ``watch_receiver`` subscribe to the
    part's hooks (and remember it, for what is read at scrape time);
    ``refresh_queues`` reads the broker's queue figures; ``close`` unsubscribes
    everything. Register it on a ``CollectorRegistry`` and serve it::

        recorder = MetricsRecorder()
        recorder.watch_client(client)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(recorder)
        ...
        await recorder.refresh_queues(broker, ["orders"], within=1.0)
        body = generate_latest(registry)

    ``clock`` (default: the system clock) gives the wall time a client's
    quota is compared with: once its ``resets_at`` has passed, its remaining
    and limit are no longer exported (see ``_client_families``).

    Everything runs on the event loop: no locks.
    """

    def __init__(
        self, *, buckets: Sequence[float] = DURATION_BUCKETS, clock: Clock | None = None
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("buckets must be increasing upper bounds, at least one")
        self.buckets = bounds
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self.clients: dict[str, ApiClient] = {}
        self.workers: list[Worker] = []
        self.receivers: list[WebhookReceiver] = []
        self.queues: dict[str, QueueSnapshot] = {}
        """The latest ``QueueSnapshot`` of each queue ``refresh_queues`` could read."""
        self._unsubscribe: list[Callable[[], None]] = []
        self._client_durations: dict[tuple[str, str, str], _Histogram] = {}
        self._handler_durations: dict[tuple[str, str, str], _Histogram] = {}
        self._webhook_durations: dict[tuple[str, str], _Histogram] = {}
        self._retries: Counts = {}
        self._gave_up: Counts = {}
        self._budget_exhausted: Counts = {}
        self._transitions: Counts = {}
        self._breaker_rejections: Counts = {}
        self._bulkhead_rejections: Counts = {}
        self._rate_limit_rejections: Counts = {}
        self._queue_read_errors: Counts = {}

    # -- watching -----------------------------------------------------------------------
    def watch_client(self, client: ApiClient) -> None:
        """Record ``client``'s attempts and its pipeline's decisions, labelled ``client.name``."""
        name = client.name
        self.clients[name] = client
        for counts in (
            self._budget_exhausted,
            self._breaker_rejections,
            self._rate_limit_rejections,
        ):
            counts.setdefault((name,), 0)
        for reason in BULKHEAD_REASONS:  # every reason, so rate() sees the first rejection
            self._bulkhead_rejections.setdefault((name, reason), 0)
        self._unsubscribe.append(client.events.subscribe(self._client_listener(name)))
        pipeline = client.pipeline
        parts: list[Any] = [*pipeline.policies]
        if pipeline.budget is not None:
            parts.append(pipeline.budget)
        hubs = {id(part.events): part.events for part in parts}  # a copy shares its hub
        listener = self._policy_listener(name)
        for hub in hubs.values():
            self._unsubscribe.append(hub.subscribe(listener))

    def watch_worker(self, worker: Worker) -> None:
        """Record ``worker``'s handler durations; read its ``HandlerStats`` at scrape time."""
        self.workers.append(worker)
        self._unsubscribe.append(worker.events.subscribe(self._on_worker_event))

    def watch_receiver(self, receiver: WebhookReceiver) -> None:
        """Record ``receiver``'s request durations; read its ``SourceStats`` at scrape time."""
        self.receivers.append(receiver)
        self._unsubscribe.append(receiver.answered.subscribe(self._on_webhook_answered))

    def _on_webhook_answered(
        self, source: str, outcome: str, seconds: float, span: Span | None
    ) -> None:
        key = (source, outcome)
        series = self._webhook_durations.get(key)
        if series is None:
            series = self._webhook_durations[key] = _Histogram(self.buckets)
        series.observe(seconds, None if span is None else self.clock, span)

    def close(self) -> None:
        """Unsubscribe from every hook (what was counted stays readable)."""
        while self._unsubscribe:
            self._unsubscribe.pop()()

    async def refresh_queues(self, broker: Broker, queues: Iterable[str], *, within: float) -> None:
        """Read depth, oldest age and dead letters of each of ``queues``, concurrently.

        Each queue within ``within`` seconds; one that fails or is late counts in
        ``interlink_queue_stats_errors_total`` and its gauges are left out of the
        scrape (a stale figure shown as fresh would hide a stuck broker). That
        counter starts at 0 for every queue read, so that ``increase()`` (the
        ``InterlinkQueueFiguresUnreadable`` alert) sees the first failure too.
        """
        names = list(dict.fromkeys(queues))
        results = await asyncio.gather(
            *(self._read_queue(broker, name, within) for name in names), return_exceptions=True
        )
        errors = self._queue_read_errors
        for name, result in zip(names, results, strict=True):
            if isinstance(result, QueueSnapshot):
                self.queues[name] = result
                errors.setdefault((name,), 0)
            else:
                self.queues.pop(name, None)
                _add(errors, (name,))

    @staticmethod
    async def _read_queue(broker: Broker, queue: str, within: float) -> QueueSnapshot:
        async with asyncio.timeout(within):
            stats, dead = await asyncio.gather(
                broker.stats(queue), broker.dead_letters.count(queue=queue)
            )
        return QueueSnapshot(
            queue,
            stats.ready,
            stats.delayed,
            stats.in_flight,
            stats.oldest_age,
            dead,
            time.time(),
        )

    # -- the listeners ------------------------------------------------------------------
    def _client_listener(self, client: str) -> Callable[[ResilienceEvent], None]:
        durations = self._client_durations
        bounds = self.buckets
        clock = self.clock

        def listener(event: ResilienceEvent) -> None:
            if event.kind != "client.request":
                return  # client.quota: read at scrape time from client.quota
            attributes = event.attributes
            method = attributes["method"]
            key = (
                client,
                method if method in KNOWN_METHODS else "_OTHER",
                status_class(attributes["status"]),
            )
            series = durations.get(key)
            if series is None:
                series = durations[key] = _Histogram(bounds)
            series.observe(attributes["duration"], clock)

        return listener

    def _policy_listener(self, client: str) -> Callable[[ResilienceEvent], None]:
        def listener(event: ResilienceEvent) -> None:
            kind = event.kind
            attributes = event.attributes
            if kind == "retry.delay":
                _add(self._retries, (client, str(attributes.get("reason", ""))))
            elif kind == "retry.gave_up":
                _add(self._gave_up, (client, str(attributes.get("reason", ""))))
            elif kind == "retry_budget.exhausted":
                _add(self._budget_exhausted, (client,))
            elif kind == "circuit_breaker.transition":
                key = (client, _state(attributes.get("from")), _state(attributes.get("to")))
                _add(self._transitions, key)
            elif kind == "circuit_breaker.rejected":
                _add(self._breaker_rejections, (client,))
            elif kind == "bulkhead.rejected":
                _add(self._bulkhead_rejections, (client, str(attributes.get("reason", ""))))
            elif kind == "rate_limiter.rejected":
                _add(self._rate_limit_rejections, (client,))

        return listener

    def _on_worker_event(self, event: WorkerEvent) -> None:
        if event.kind != "handler.finished":
            return
        result = "success" if event.attributes.get("error") is None else "error"
        key = (event.queue, event.handler, result)
        series = self._handler_durations.get(key)
        if series is None:
            series = self._handler_durations[key] = _Histogram(self.buckets)
        series.observe(event.attributes["duration"], self.clock)

    # -- the collector ------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """Every family, for ``prometheus_client`` (families with no series yet included)."""
        from prometheus_client.core import GaugeMetricFamily

        info = GaugeMetricFamily(
            "interlink_build_info",
            "The interlink version serving these metrics.",
            labels=["version"],
        )
        info.add_metric([__version__], 1.0)
        yield info
        yield from self._webhook_families()
        yield from self._message_families()
        yield from self._queue_families()
        yield from self._client_families()
        yield self._tracing_family()

    def _webhook_families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        received = CounterMetricFamily(
            "interlink_webhooks_received",
            "Webhook requests received, by source and outcome (rejected ones by reason).",
            labels=["source", "outcome", "reason"],
        )
        for receiver in self.receivers:
            for name, stats in receiver.stats.items():
                received.add_metric([name, "accepted", ""], stats.accepted)
                received.add_metric([name, "duplicate", ""], stats.duplicates)
                received.add_metric([name, "handshake", ""], stats.handshakes)
                received.add_metric([name, "too_large", ""], stats.too_large)
                received.add_metric([name, "unavailable", ""], stats.unavailable)
                for reason, count in sorted(stats.rejected.items()):
                    received.add_metric([name, "rejected", reason], count)
        yield received
        yield self._histogram_family(
            "interlink_webhook_request_duration_seconds",
            "Time from a webhook request reaching the receiver to its answer sent (verify, "
            "deduplicate, store durably, respond), by source and outcome.",
            ["source", "outcome"],
            self._webhook_durations,
        )

    def _message_families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        processed = CounterMetricFamily(
            "interlink_messages",
            "Deliveries finished, by queue, handler and outcome.",
            labels=["queue", "handler", "outcome"],
        )
        received = CounterMetricFamily(
            "interlink_messages_received",
            "Deliveries handed to a handler's worker, by queue and handler.",
            labels=["queue", "handler"],
        )
        in_flight = GaugeMetricFamily(
            "interlink_messages_in_flight",
            "Deliveries being handled now.",
            labels=["queue", "handler"],
        )
        failures = CounterMetricFamily(
            "interlink_transform_failures",
            "Records a transformer refused, by transformer and field ((record): the whole record).",
            labels=["transformer", "field"],
        )
        seen: set[int] = set()
        # The service builds one transformer per queue: queues sharing a mapping have
        # instances of the same name, whose counts add up to one series.
        by_field: Counts = {}
        for worker in self.workers:
            for (queue, handler), stats in worker.stats().items():
                for outcome in MESSAGE_OUTCOMES:
                    processed.add_metric([queue, handler, outcome], getattr(stats, outcome))
                received.add_metric([queue, handler], stats.received)
                in_flight.add_metric([queue, handler], stats.in_flight)
            for setup in worker.handlers:
                transform: Any = getattr(setup.transform, "inner", setup.transform)
                stats_of = getattr(transform, "stats", None)
                if stats_of is None or id(transform) in seen:
                    continue
                seen.add(id(transform))
                for field, count in stats_of.failures_by_field.items():
                    series = (str(stats_of.name), str(field or "(record)"))
                    by_field[series] = by_field.get(series, 0) + count
        for (transformer, field), count in sorted(by_field.items()):
            failures.add_metric([transformer, field], count)
        yield processed
        yield received
        yield in_flight
        yield self._histogram_family(
            "interlink_message_processing_duration_seconds",
            "Run time of the handler function per delivery (only the call: not the decode, "
            "transform or settle), by queue, handler and result (success or error).",
            ["queue", "handler", "result"],
            self._handler_durations,
        )
        yield failures

    def _queue_families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        depth = GaugeMetricFamily(
            "interlink_queue_messages",
            "Messages in a queue now: ready (deliverable), delayed (waiting for a retry "
            "delay) and in_flight (delivered, not settled).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "interlink_queue_oldest_message_age_seconds",
            "Seconds since the oldest ready message of a queue was published (0: none ready).",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            "interlink_queue_dead_letters",
            "Dead letters of a queue (in its dead-letter queue), not yet replayed or purged.",
            labels=["queue"],
        )
        errors = CounterMetricFamily(
            "interlink_queue_stats_errors",
            "Scrapes that could not read a queue's figures within the timeout.",
            labels=["queue"],
        )
        for name, snap in sorted(self.queues.items()):
            for state, value in (
                ("ready", snap.ready),
                ("delayed", snap.delayed),
                ("in_flight", snap.in_flight),
            ):
                if value is not None:
                    depth.add_metric([name, state], value)
            if snap.oldest_age is not None:
                oldest.add_metric([name], snap.oldest_age)
            elif snap.ready == 0:
                oldest.add_metric([name], 0.0)
            if snap.dead_letters is not None:
                dead.add_metric([name], snap.dead_letters)
        for (name,), count in sorted(self._queue_read_errors.items()):
            errors.add_metric([name], count)
        yield depth
        yield oldest
        yield dead
        yield errors

    def _client_families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        calls = CounterMetricFamily(
            "interlink_client_calls",
            "Calls made by each API client (one per call, however many attempts).",
            labels=["client"],
        )
        failed = CounterMetricFamily(
            "interlink_client_failures",
            "Calls that failed because of the upstream (after every attempt), by client.",
            labels=["client"],
        )
        state = GaugeMetricFamily(
            "interlink_client_breaker_state",
            "1 for the current state of each client's circuit breaker, 0 for the others.",
            labels=["client", "state"],
        )
        remaining = GaugeMetricFamily(
            "interlink_client_quota_remaining",
            "Requests left in the upstream's rate-limit window (its latest RateLimit headers; "
            "absent once that window has reset).",
            labels=["client"],
        )
        limit = GaugeMetricFamily(
            "interlink_client_quota_limit",
            "Requests the upstream allows per window (its latest RateLimit headers; "
            "absent once that window has reset).",
            labels=["client"],
        )
        resets = GaugeMetricFamily(
            "interlink_client_quota_reset_timestamp_seconds",
            "Unix time the upstream's rate-limit window resets.",
            labels=["client"],
        )
        now = self.clock.wall()
        for name, client in sorted(self.clients.items()):
            health = client.health()
            calls.add_metric([name], health.requests)
            failed.add_metric([name], health.failures)
            if health.breaker_state is not None:
                for known in BREAKER_STATES:
                    state.add_metric([name, known], 1.0 if health.breaker_state == known else 0.0)
            quota = client.quota
            if quota is not None:
                resets_at = quota.resets_at
                # Past the reset, the window the figures describe is over: what is left
                # of the new one is unknown until a response says (an idle process would
                # otherwise report the old, low figure for ever).
                if resets_at is None or now < resets_at:
                    if quota.remaining is not None:
                        remaining.add_metric([name], quota.remaining)
                    if quota.limit is not None:
                        limit.add_metric([name], quota.limit)
                if resets_at is not None:
                    resets.add_metric([name], resets_at)
        yield self._histogram_family(
            "interlink_client_request_duration_seconds",
            "Duration of each HTTP request (attempt) a client sent, by client, method and "
            "status class (error: no answer).",
            ["client", "method", "status_class"],
            self._client_durations,
        )
        yield calls
        yield failed
        yield self._counter(
            "interlink_client_retries",
            "Retries scheduled, by client and why the delay was chosen "
            "(backoff, retry_after, rejection).",
            ["client", "reason"],
            self._retries,
        )
        yield self._counter(
            "interlink_client_retry_gave_up",
            "Calls the retry stopped retrying, by client and reason "
            "(max_attempts, deadline, retry_after_too_long, not_retryable, budget).",
            ["client", "reason"],
            self._gave_up,
        )
        yield self._counter(
            "interlink_client_retry_budget_exhausted",
            "Retries refused because the client's retry budget was spent.",
            ["client"],
            self._budget_exhausted,
        )
        yield state
        yield self._counter(
            "interlink_client_breaker_transitions",
            "Circuit-breaker state changes, by client, from_state and to_state.",
            ["client", "from_state", "to_state"],
            self._transitions,
        )
        yield self._counter(
            "interlink_client_breaker_rejections",
            "Calls refused at once because the client's breaker was open.",
            ["client"],
            self._breaker_rejections,
        )
        yield self._counter(
            "interlink_client_bulkhead_rejections",
            "Calls refused by the client's bulkhead, by reason (full, queue_full, timeout).",
            ["client", "reason"],
            self._bulkhead_rejections,
        )
        yield self._counter(
            "interlink_client_rate_limit_rejections",
            "Calls refused by the client's rate limiter (no token within max_wait).",
            ["client"],
            self._rate_limit_rejections,
        )
        yield remaining
        yield limit
        yield resets

    @staticmethod
    def _tracing_family() -> Metric:
        """What became of the finished spans of interlink's tracer provider, when it is set.

        Read at scrape time from the provider's counts; no series while the
        global provider is another (the API's no-op one, or an SDK provider an
        application set itself, which keeps its own figures).
        """
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "interlink_tracing_spans",
            "Finished sampled spans, by what became of them: exported, failed (the exporter"
            " refused or raised: lost) or dropped (the export queue was full: lost).",
            labels=["outcome"],
        )
        provider = lean_provider()
        if provider is not None:
            family.add_metric(["exported"], provider.exported_spans)
            family.add_metric(["failed"], provider.failed_spans)
            family.add_metric(["dropped"], provider.dropped_spans)
        return family

    @staticmethod
    def _counter(name: str, documentation: str, labels: list[str], counts: Counts) -> Metric:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(name, documentation, labels=labels)
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count)
        return family

    @staticmethod
    def _histogram_family(
        name: str,
        documentation: str,
        labels: list[str],
        series: Mapping[_Key, _Histogram],
    ) -> Metric:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(name, documentation, labels=labels)
        for key, histogram in sorted(series.items()):
            family.add_metric(list(key), histogram.cumulative(), histogram.sum)
        return family


def _add(counts: Counts, key: tuple[str, ...]) -> None:
    counts[key] = counts.get(key, 0) + 1


def _state(value: object) -> str:
    """A ``CircuitState`` (or its value) as the label word."""
    return str(getattr(value, "value", value))
