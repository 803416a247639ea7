"""The OpenTelemetry API's global tracer provider, reset between tests that set one."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.util._once import Once


def reset_tracer_provider() -> None:
    """No global provider, as at start-up (what opentelemetry's own test utilities do).

    The API lets a process set its provider once; tests that set one (or run
    something that does, such as the demo) reset it before and after.
    """
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
