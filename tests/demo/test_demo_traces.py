"""The demo's trace keeper and the trace its summary draws, on spans made by the SDK."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from interlink.demo._traces import TraceKeeper, webhook_trace


def _tracer(keeper: TraceKeeper) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(keeper))
    return provider.get_tracer("test")


def _webhook(tracer: trace.Tracer, attempts: list[bool], *, calls: bool = True, at: int = 0) -> int:
    """A webhook's trace: receive, publish, then one process span per attempt (True: it failed)."""
    t = at
    with tracer.start_as_current_span(
        "POST /webhooks/shop",
        kind=SpanKind.SERVER,
        start_time=t,
        attributes={"interlink.webhook.outcome": "accepted", "http.response.status_code": 200},
        end_on_exit=False,
    ) as server:
        with tracer.start_as_current_span("publish shop", kind=SpanKind.PRODUCER, start_time=t + 1):
            for n, fails in enumerate(attempts):
                begin = t + 1_000_000_000 * (n + 1)
                process = tracer.start_span(
                    "process shop", kind=SpanKind.CONSUMER, start_time=begin
                )
                with trace.use_span(process, end_on_exit=False):
                    if calls:
                        call = tracer.start_span("GET", kind=SpanKind.CLIENT, start_time=begin + 10)
                        call.set_attribute("http.response.status_code", 503 if fails else 200)
                        call.end(end_time=begin + 2_000_000)
                if fails:
                    process.set_attribute("error.type", "interlink.client.HttpStatusError")
                    process.set_status(Status(StatusCode.ERROR))
                process.end(end_time=begin + 3_000_000)
        server.end(end_time=t + 2_000_000)
        return server.get_span_context().trace_id


def test_the_summary_draws_a_webhook_that_failed_once_then_succeeded_as_a_tree() -> None:
    keeper = TraceKeeper()
    tracer = _tracer(keeper)
    _webhook(tracer, [False])  # handled at once: no retry to show
    wanted = _webhook(tracer, [True, False])  # the story: fails once, then succeeds
    _webhook(tracer, [True, True, True, False])  # the same story, longer
    _webhook(tracer, [True, True])  # retried, never succeeded
    with tracer.start_as_current_span("process other", kind=SpanKind.CONSUMER):
        pass  # a trace that is no webhook's

    lines = webhook_trace(keeper)

    assert lines[0] == f"One webhook, one trace ({wanted:032x}, 6 spans):"
    names = [(len(line) - len(line.lstrip()), line.strip().split("  ")[0]) for line in lines[1:]]
    assert names == [
        (2, "POST /webhooks/shop"),
        (4, "publish shop"),
        (6, "process shop"),
        (8, "GET"),
        (6, "process shop"),
        (8, "GET"),
    ]
    assert lines[1].strip().split("  ")[1:] == [
        "server",
        "+0.0 ms",
        "took 2.0 ms",
        "outcome=accepted",
        "status_code=200",
    ]
    # the class name only: the span keeps the qualified one, the line stays short
    assert lines[3].endswith("+1.00 s  took 3.0 ms  ERROR HttpStatusError")
    assert lines[4].endswith("status_code=503")
    assert lines[5].strip().split("  ")[2] == "+2.00 s"  # the retry, a second later
    assert "ERROR" not in lines[5]
    assert lines[6].endswith("status_code=200")


def test_without_a_webhook_trace_it_draws_nothing_and_a_long_one_is_cut() -> None:
    keeper = TraceKeeper()
    tracer = _tracer(keeper)
    with tracer.start_as_current_span("process other", kind=SpanKind.CONSUMER):
        pass
    assert webhook_trace(keeper) == []
    _webhook(tracer, [True] * 9 + [False])  # 2 + 10 x 2 = 22 spans
    lines = webhook_trace(keeper, max_lines=5)
    assert len(lines) == 7
    assert lines[-1] == "  ... and 17 more spans"


def test_the_keeper_holds_the_latest_active_traces_and_a_bounded_number_of_spans_each() -> None:
    keeper = TraceKeeper(max_traces=2, max_spans=3)
    tracer = _tracer(keeper)
    first = _webhook(tracer, [False], at=0)
    second = _webhook(tracer, [True, False], at=10)  # 6 spans: the first 3 ended are kept
    third = _webhook(tracer, [False], at=20)

    def kept() -> list[int]:
        return [spans[0].context.trace_id for spans in keeper.traces() if spans[0].context]

    assert kept() == [second, third]  # the first went
    assert [len(spans) for spans in keeper.traces()] == [3, 3]
    # A span of the second trace (its message processed again) makes it the latest active:
    # the next new trace pushes out the third instead.
    again = tracer.start_span(
        "process shop",
        kind=SpanKind.CONSUMER,
        context=trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(second, 1, is_remote=True, trace_flags=trace.TraceFlags(1))
            )
        ),
    )
    again.end()
    fourth = _webhook(tracer, [False], at=30)
    assert kept() == [second, fourth]
    assert first not in kept()
