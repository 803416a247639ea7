"""Observability: structured logs with correlation ids and redaction, traces, metrics.

Each part lives in its own module and exports its names here. ``LeanTracerProvider``
is imported when first asked for: it needs the OpenTelemetry SDK, the rest does not.
"""

from typing import Any

from interlink.observability._logging import (
    CORRELATION_HEADER,
    REDACTED,
    REDACTOR,
    REQUEST_ID_HEADER,
    Redactor,
    RequestIdMiddleware,
    bind_message,
    bound,
    config_secrets,
    configure_logging,
    current_correlation_id,
    current_message_id,
    unbind_message,
)
from interlink.observability._metrics import (
    BREAKER_STATES,
    DURATION_BUCKETS,
    MESSAGE_OUTCOMES,
    MetricsRecorder,
    QueueSnapshot,
    status_class,
)
from interlink.observability._tracing import (
    TRACEPARENT,
    configure_tracing,
    set_message_traces,
    tracing_enabled,
)

__all__ = [
    "BREAKER_STATES",
    "CORRELATION_HEADER",
    "DURATION_BUCKETS",
    "MESSAGE_OUTCOMES",
    "REDACTED",
    "REDACTOR",
    "REQUEST_ID_HEADER",
    "TRACEPARENT",
    "LeanTracerProvider",
    "MetricsRecorder",
    "QueueSnapshot",
    "Redactor",
    "RequestIdMiddleware",
    "bind_message",
    "bound",
    "config_secrets",
    "configure_logging",
    "configure_tracing",
    "current_correlation_id",
    "current_message_id",
    "set_message_traces",
    "status_class",
    "tracing_enabled",
    "unbind_message",
]


def __getattr__(name: str) -> Any:
    if name == "LeanTracerProvider":
        from interlink.observability._lean import LeanTracerProvider

        return LeanTracerProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
