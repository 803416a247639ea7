"""The OpenTelemetry environment variables tracing honours, as the SDK's own provider does.

``OTEL_SDK_DISABLED`` (the kill switch), ``OTEL_TRACES_EXPORTER``,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (what an operator, or
the OTel Operator on Kubernetes, sets per deployment), ``OTEL_TRACES_SAMPLER``
and ``OTEL_TRACES_SAMPLER_ARG``, and a warning for an OTLP protocol interlink
does not speak; the configuration file wins where it says something, the
environment wins over a default, and one line at start says what came of it.
The sampling decisions are checked against the SDK's own samplers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from interlink.observability import _tracing, configure_tracing, tracing_enabled
from interlink.observability._lean import LeanTracerProvider
from interlink.service._config import TracingConfig
from interlink.service._load import load_config
from interlink.service._runtime import Service

LOGGER = "interlink.observability"


def _provider() -> LeanTracerProvider:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, LeanTracerProvider)
    return provider


def _setenv(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def _expect_warning(caplog: pytest.LogCaptureFixture, starts: str | None, ends: str = "") -> None:
    """One warning of interlink's tracing, starting and ending so; or none when ``starts`` is."""
    said = _warnings(caplog)
    if starts is None:
        assert said == []
    else:
        [line] = said
        assert line.startswith(starts), line
        assert line.endswith(ends), line


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]


# -- OTEL_SDK_DISABLED ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_otel_sdk_disabled_turns_tracing_off_and_the_exporter_handed_over_is_shut_down(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", value)
    exporter = InMemorySpanExporter()
    with caplog.at_level(logging.INFO, LOGGER):
        shutdown = configure_tracing(TracingConfig(exporter="console"), exporter=exporter)
    assert not tracing_enabled()
    assert "OTEL_SDK_DISABLED=true" in caplog.text
    trace.get_tracer("off").start_span("nothing").end()
    assert exporter.get_finished_spans() == ()
    assert exporter.export([]).name == "FAILURE"  # shut down: it takes nothing any more
    shutdown()


@pytest.mark.parametrize(("value", "warned"), [("false", False), ("", False), ("yes", True)])
def test_otel_sdk_disabled_other_than_true_leaves_tracing_on(
    value: str, warned: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", value)
    with caplog.at_level(logging.WARNING, LOGGER):
        shutdown = configure_tracing(TracingConfig(), exporter=InMemorySpanExporter())
    assert tracing_enabled()
    shutdown()
    said = _warnings(caplog)
    assert said == (
        ["OTEL_SDK_DISABLED='yes' is neither true nor false; ignored"] if warned else []
    )


def test_exporter_none_stays_silent_whatever_otel_sdk_disabled_says(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "maybe")
    with caplog.at_level(logging.DEBUG, LOGGER):
        configure_tracing(TracingConfig())()
    assert not tracing_enabled()
    assert caplog.records == []


# -- OTEL_TRACES_EXPORTER -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected", "warning"),
    [
        ("otlp", "otlp", None),
        (" Console ", "console", None),
        ("none", "none", None),
        ("", None, None),
        ("otlp,console", "otlp", "so it uses otlp"),
        ("zipkin, otlp", "otlp", "so it uses otlp"),
        ("zipkin", None, "so it is ignored"),
    ],
)
def test_the_exporter_is_read_from_the_environment(
    value: str, expected: str | None, warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        assert _tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": value}) == expected
    starts = f"OTEL_TRACES_EXPORTER={value!r}: interlink sends spans to one"
    _expect_warning(caplog, None if warning is None else starts, warning or "")


def test_the_environments_exporter_turns_tracing_on_when_the_file_sets_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    shutdown = configure_tracing(TracingConfig())
    assert tracing_enabled()
    trace.get_tracer("env").start_span("printed").end()
    shutdown()
    assert '"name": "printed"' in capsys.readouterr().err


def test_an_exporter_set_in_the_file_wins_over_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    shutdown = configure_tracing(TracingConfig(exporter="none"))
    assert not tracing_enabled()
    shutdown()


@pytest.mark.parametrize(
    ("environment", "warned"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'",
        ),
        (  # the traces' own variable decides
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            None,
        ),
    ],
)
def test_an_otlp_protocol_other_than_http_protobuf_is_warned_about(
    environment: dict[str, str],
    warned: str | None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _setenv(monkeypatch, environment)
    with caplog.at_level(logging.WARNING, LOGGER):
        shutdown = configure_tracing(
            TracingConfig(exporter="otlp", endpoint="http://127.0.0.1:1/v1/traces")
        )
    shutdown()  # nothing was recorded: nothing is sent
    _expect_warning(
        caplog, None if warned is None else f"{warned}: interlink sends OTLP over http/protobuf"
    )


# -- what tracing does, said once at start ------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "environment", "line"),
    [
        (
            TracingConfig(
                exporter="otlp",
                endpoint="http://collector:4318/v1/traces",
                sampling_ratio=0.5,
                service_name="billing",
            ),
            {"OTEL_TRACES_SAMPLER": "always_off"},  # the file's ratio wins
            "on: OTLPSpanExporter to http://collector:4318/v1/traces; parent-based sampling at "
            "ratio 0.5; service.name 'billing'",
        ),
        (
            TracingConfig(),
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://ingest:s3cr3t-key@otel.example:4318",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
                "OTEL_SERVICE_NAME": "env-svc",
            },
            "on: OTLPSpanExporter to https://ingest:REDACTED@otel.example:4318/v1/traces; "
            "trace-id sampling at "
            "ratio 0.1 (from OTEL_TRACES_SAMPLER); service.name 'env-svc'",
        ),
        (
            TracingConfig(exporter="console"),
            {},
            "on: ConsoleSpanExporter; parent-based sampling at ratio 1.0; "
            "service.name 'fallback-svc'",
        ),
    ],
)
def test_one_line_at_start_says_where_spans_go_how_they_are_sampled_and_under_which_name(
    config: TracingConfig,
    environment: dict[str, str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _setenv(monkeypatch, environment)
    with caplog.at_level(logging.INFO, LOGGER):
        shutdown = configure_tracing(config, service_name="fallback-svc")
    shutdown()
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert f"observability.tracing: {line}" in said
    assert "s3cr3t" not in caplog.text  # an endpoint's password stays out of the logs


# -- service.name --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("configured", "environment", "expected"),
    [
        (None, {}, "fallback-svc"),
        (None, {"OTEL_SERVICE_NAME": "env-svc"}, "env-svc"),
        (None, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=attr-svc"}, "attr-svc"),
        (
            None,
            {"OTEL_SERVICE_NAME": "env-svc", "OTEL_RESOURCE_ATTRIBUTES": "service.name=attr-svc"},
            "env-svc",  # the specification's precedence
        ),
        ("file-svc", {"OTEL_SERVICE_NAME": "env-svc"}, "file-svc"),
        ("file-svc", {"OTEL_RESOURCE_ATTRIBUTES": "service.name=attr-svc"}, "file-svc"),
    ],
)
def test_the_service_name_is_the_files_else_the_environments_else_the_default(
    configured: str | None,
    environment: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setenv(monkeypatch, environment)
    exporter = InMemorySpanExporter()
    shutdown = configure_tracing(
        TracingConfig(service_name=configured), service_name="fallback-svc", exporter=exporter
    )
    trace.get_tracer("named").start_span("one").end()
    shutdown()
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == expected


def test_the_other_resource_attributes_of_the_environment_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,k8s.pod.name=web-7f9c"
    )
    shutdown = configure_tracing(
        TracingConfig(service_name="billing"), exporter=InMemorySpanExporter()
    )
    attributes = _provider().resource.attributes
    shutdown()
    assert attributes["service.name"] == "billing"
    assert attributes["deployment.environment.name"] == "prod"
    assert attributes["k8s.pod.name"] == "web-7f9c"


# -- OTEL_TRACES_SAMPLER -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sampler", "arg", "expected"),
    [
        ("always_on", None, (1.0, False)),
        ("always_off", None, (0.0, False)),
        ("traceidratio", "0.25", (0.25, False)),
        ("parentbased_always_on", None, (1.0, True)),
        ("parentbased_always_off", "0.5", (0.0, True)),  # an argument it takes none of
        ("parentbased_traceidratio", "0.1", (0.1, True)),
        (" ParentBased_TraceIdRatio ", "1", (1.0, True)),
        ("traceidratio", "0", (0.0, False)),
    ],
)
def test_the_sdks_samplers_are_read_from_the_environment(
    sampler: str,
    arg: str | None,
    expected: tuple[float, bool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"OTEL_TRACES_SAMPLER": sampler}
    if arg is not None:
        environ["OTEL_TRACES_SAMPLER_ARG"] = arg
    with caplog.at_level(logging.WARNING, LOGGER):
        assert _tracing.sampler_from_env(environ) == expected
    assert _warnings(caplog) == []


@pytest.mark.parametrize("arg", [None, "", "a quarter", "1.5", "-0.1", "nan", "inf"])
def test_a_ratio_sampler_without_a_ratio_within_0_1_keeps_1_with_a_warning(
    arg: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"OTEL_TRACES_SAMPLER": "traceidratio"}
    if arg is not None:
        environ["OTEL_TRACES_SAMPLER_ARG"] = arg
    with caplog.at_level(logging.WARNING, LOGGER):
        assert _tracing.sampler_from_env(environ) == (1.0, False)
    assert _warnings(caplog) == [
        f"OTEL_TRACES_SAMPLER_ARG={arg or ''!r} is not a ratio within [0, 1]; "
        "traceidratio keeps 1.0"
    ]


@pytest.mark.parametrize(
    "sampler", ["jaeger_remote", "parentbased_jaeger_remote", "xray", "sometimes"]
)
def test_a_sampler_interlink_does_not_run_is_ignored_with_a_warning(
    sampler: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        assert _tracing.sampler_from_env({"OTEL_TRACES_SAMPLER": sampler}) is None
    [said] = _warnings(caplog)
    assert said.startswith(f"OTEL_TRACES_SAMPLER={sampler!r} is not a sampler interlink's")
    assert "parentbased_traceidratio" in said  # the ones it does run are named


def test_no_sampler_in_the_environment_is_none_and_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert _tracing.sampler_from_env({}) is None
        assert _tracing.sampler_from_env({"OTEL_TRACES_SAMPLER": " "}) is None
    assert caplog.records == []


def test_the_environments_sampler_applies_when_the_file_sets_no_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    shutdown = configure_tracing(TracingConfig(), exporter=InMemorySpanExporter())
    provider = _provider()
    shutdown()
    assert (provider.sampling_ratio, provider.parent_based) == (0.25, False)


def test_a_ratio_set_in_the_file_wins_over_the_environments_sampler(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    with caplog.at_level(logging.INFO, LOGGER):
        shutdown = configure_tracing(
            TracingConfig(sampling_ratio=1.0), exporter=InMemorySpanExporter()
        )
    provider = _provider()
    shutdown()
    assert (provider.sampling_ratio, provider.parent_based) == (1.0, True)
    assert "sampling_ratio 1.0 is set, so OTEL_TRACES_SAMPLER is not applied" in caplog.text


# -- the decisions, against the SDK's samplers ---------------------------------------------------
TRACE_IDS = [
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x0AF7651916CD43DD0000000000000001,  # lower half near 0: kept by any ratio above 0
    0x0AF7651916CD43DDFFFFFFFFFFFFFFFF,  # lower half at the top: dropped by any ratio below 1
    0x00000000000000013FFFFFFFFFFFFFFF,
]


@pytest.mark.parametrize(
    ("ratio", "parent_based", "sdk"),
    [
        (1.0, False, ALWAYS_ON),
        (0.0, False, ALWAYS_OFF),
        (0.25, False, TraceIdRatioBased(0.25)),
        (0.5, False, TraceIdRatioBased(0.5)),
        (1.0, True, ParentBased(ALWAYS_ON)),
        (0.0, True, ParentBased(ALWAYS_OFF)),
        (0.25, True, ParentBased(TraceIdRatioBased(0.25))),
    ],
)
@pytest.mark.parametrize("trace_id", TRACE_IDS)
@pytest.mark.parametrize("remote_sampled", [True, False])
def test_a_span_under_a_remote_parent_is_sampled_as_the_sdks_sampler_decides(
    ratio: float, parent_based: bool, sdk: Sampler, trace_id: int, remote_sampled: bool
) -> None:
    exporter = InMemorySpanExporter()
    provider = LeanTracerProvider(
        exporter, sampling_ratio=ratio, parent_based=parent_based, batch=False
    )
    tracer = provider.get_tracer("decisions")
    flags = TraceFlags(TraceFlags.SAMPLED if remote_sampled else TraceFlags.DEFAULT)
    remote = SpanContext(trace_id, 0x00F067AA0BA902B7, is_remote=True, trace_flags=flags)
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    expected = sdk.should_sample(parent, trace_id, "child").decision.is_sampled()

    span = tracer.start_span("child", parent)
    context = span.get_span_context()
    assert span.is_recording() is expected
    assert context.trace_id == trace_id
    assert context.trace_flags.sampled is expected  # what it propagates says the same
    grandchild = tracer.start_span("grandchild", trace.set_span_in_context(span))
    assert grandchild.is_recording() is expected  # a local child agrees with its parent
    grandchild.end()
    span.end()
    provider.shutdown()
    assert len(exporter.get_finished_spans()) == (2 if expected else 0)


@pytest.mark.parametrize("parent_based", [True, False])
def test_the_unsampled_webhook_publish_carries_the_decision_on(parent_based: bool) -> None:
    """An incoming sampled ``traceparent`` under ``always_off``: the stored one says not sampled."""
    provider = LeanTracerProvider(
        InMemorySpanExporter(), sampling_ratio=0.0, parent_based=parent_based, batch=False
    )
    trace.set_tracer_provider(provider)
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    scope = {"type": "http", "method": "POST", "path": "/w", "headers": []}
    span, token = _tracing.start_webhook("s", "/w", scope, {"traceparent": incoming})
    headers: dict[str, str] = {}
    publish = _tracing.start_publish("memory://", "q", "s:1", headers)
    assert publish is not None
    publish.end()
    _tracing.end_webhook(span, token, 200, "accepted", None, None)
    provider.shutdown()
    assert headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert headers["traceparent"].endswith("-01" if parent_based else "-00")


# -- through the service's file --------------------------------------------------------------------
async def test_the_service_traces_as_the_environment_says_when_its_file_is_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-prod")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.05")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
    path = tmp_path / "interlink.yaml"
    path.write_text(  # nothing about tracing: the environment turns it on
        f"""
service: {{name: billing, listen: "127.0.0.1:0"}}
broker: {{url: "sqlite:///{tmp_path / "b.db"}"}}
"""
    )
    async with Service(load_config(path), http=False):
        provider = _provider()
        assert provider.resource.attributes["service.name"] == "billing-prod"
        assert provider.resource.attributes["deployment.environment.name"] == "prod"
        assert (provider.sampling_ratio, provider.parent_based) == (0.05, True)
