"""The service file's shape: pydantic models, one per section, every key documented.

These models are the one definition of ``interlink.yaml``: the loader validates
against them, ``interlink config-schema`` prints their JSON Schema, and
docs/configuration.md is checked against them by a test. Sections whose
settings belong to a component that already validates its own (a client's
resilience parts, a webhook source's scheme options) are typed as far as the
file goes and handed to that component's builder, which names the dotted key
of anything wrong; ``check`` runs those builders too, so ``check-config``
finds every mistake without starting anything.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interlink.core.durations import parse_duration
from interlink.observability._tracing import MessageTraces

__all__ = [
    "AuthConfig",
    "BrokerConfig",
    "ClientConfig",
    "ForwardConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ObservabilityConfig",
    "QueueConfig",
    "ServiceConfig",
    "ServiceSection",
    "StateConfig",
    "StorageConfig",
    "TracingConfig",
    "WebhookConfig",
]

Duration = Annotated[
    str | float,
    Field(description='a duration: "250ms", "30s", "5m", "1h", or a number of seconds'),
]
_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(?P<port>\d{1,5})$")


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) as the host and the port; ``ValueError`` if not."""
    match = _LISTEN.match(value)
    if match is None or not 0 <= int(match["port"]) < 65536:
        raise ValueError(f"expected host:port such as 127.0.0.1:8080, found {value!r}")
    return match["host"].strip("[]"), int(match["port"])


_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _duration(value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'expected a duration such as "30s", found {value!r}')
    return parse_duration(value, allow_zero=allow_zero)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an absolute http(s) URL, found {value!r}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSection(_Section):
    """``service:``: what the process is called, where it listens, how it stops."""

    name: str = Field(
        "interlink", min_length=1, description="The service's name in logs, health and metrics."
    )
    listen: str = Field(
        "127.0.0.1:8080",
        description="host:port the HTTP side (webhooks, health, metrics, admin) listens on; "
        "port 0 picks a free port (logged at start).",
    )
    worker_listen: str | None = Field(
        None,
        description="host:port `interlink worker` serves /livez, /readyz, /health and /metrics "
        "on (no webhooks, no admin; port 0 picks a free port, logged at start); `--listen` "
        "overrides it. Unset: a worker process has no HTTP side, and counts no metrics (nothing "
        "could scrape them).",
    )
    admin_token: str | None = Field(
        None,
        description="Bearer token of the admin API under /admin. Unset or empty: the admin API "
        "is off (404), never open.",
    )
    shutdown_timeout: Duration = Field(
        30.0,
        description="On SIGTERM: how long in-flight messages may take to finish before they "
        "are given back to the broker.",
    )
    readiness_timeout: Duration = Field(
        2.0, description="How long each /readyz and /health check may take before it fails."
    )

    @field_validator("listen", "worker_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @field_validator("shutdown_timeout", "readiness_timeout")
    @classmethod
    def _seconds(cls, value: object) -> float:
        return _duration(value)


class BrokerConfig(_Section):
    """``broker:``: where messages live."""

    url: str = Field(
        "sqlite:///./interlink.db",
        description="sqlite:///path.db (embedded, the default), amqp://user:pass@host:5672/vhost "
        "(RabbitMQ) or memory:// (tests: lost on exit).",
    )


class StateConfig(_Section):
    """``state:``: shared state for breakers and rate limiters (memory: per process)."""

    url: str = Field("memory://", description="memory:// (per process).")


class StorageConfig(_Section):
    """``storage:``: where the inbox keeps which messages were handled (effects once)."""

    url: str | None = Field(
        None,
        description="sqlite:///path.db for the inbox; unset: no inbox (at-least-once handlers).",
    )


class AuthConfig(_Section):
    """A client's ``auth:``, by ``type``."""

    type: Literal["bearer", "api_key", "basic", "oauth2"] = Field(
        description="bearer (token), api_key (key, header or query), basic (username, "
        "password), oauth2 (client credentials: token_url, client_id, client_secret, scope)."
    )
    token: str | None = Field(None, description="bearer: the token.")
    key: str | None = Field(None, description="api_key: the key.")
    header: str | None = Field(None, description="api_key: the header it goes in (X-API-Key).")
    query: str | None = Field(None, description="api_key: the query parameter it goes in instead.")
    username: str | None = Field(None, description="basic: the user name.")
    password: str | None = Field(None, description="basic: the password.")
    token_url: str | None = Field(None, description="oauth2: the token endpoint.")
    client_id: str | None = Field(None, description="oauth2: the client id.")
    client_secret: str | None = Field(None, description="oauth2: the client secret.")
    scope: str | list[str] | None = Field(None, description="oauth2: the scope(s) asked for.")

    @model_validator(mode="after")
    def _needs(self) -> AuthConfig:
        needs = {
            "bearer": ("token",),
            "api_key": ("key",),
            "basic": ("username", "password"),
            "oauth2": ("token_url", "client_id", "client_secret"),
        }[self.type]
        missing = [name for name in needs if getattr(self, name) in (None, "")]
        if missing:
            raise ValueError(f"auth type {self.type} needs {', '.join(missing)}")
        if self.type == "api_key" and self.header and self.query:
            raise ValueError("api_key goes in a header or a query parameter, not both")
        return self


_RESILIENCE = (
    "deadline",
    "retry",
    "retry_budget",
    "circuit_breaker",
    "bulkhead",
    "rate_limit",
    "hedge",
    "adaptive_throttle",
    "fallback",
)


class ClientConfig(_Section):
    """One of ``clients:``: an ``ApiClient`` and its resilience pipeline."""

    base_url: str = Field(description="The API's absolute http(s) URL.")
    auth: AuthConfig | None = Field(None, description="How requests authenticate.")
    timeout: Duration = Field(10.0, description="Per-attempt timeout.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers on every request.")
    transport: Literal["aiohttp", "httpx"] = Field("aiohttp", description="The HTTP library.")
    deadline: Any = Field(None, description="Overall deadline of a call, retries included.")
    retry: dict[str, Any] | None = Field(
        None, description="Retry arguments: max_attempts, initial_delay, max_delay, jitter..."
    )
    retry_budget: dict[str, Any] | None = Field(None, description="Retry budget arguments.")
    circuit_breaker: dict[str, Any] | None = Field(
        None, description="Breaker arguments: failure_rate, window, min_calls, open_for..."
    )
    bulkhead: dict[str, Any] | None = Field(None, description="Bulkhead arguments.")
    rate_limit: dict[str, Any] | None = Field(None, description="Rate limiter arguments.")
    hedge: dict[str, Any] | None = Field(None, description="Hedging arguments.")
    adaptive_throttle: dict[str, Any] | None = Field(None, description="Adaptive throttling.")
    fallback: Any = Field(None, description="The value answered when everything else failed.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: object) -> float:
        return _duration(value)

    def resilience(self) -> dict[str, Any] | None:
        """The pipeline parts given, for ``Pipeline.from_dict``; ``None``: the client default."""
        parts = {name: getattr(self, name) for name in _RESILIENCE}
        given = {name: value for name, value in parts.items() if value is not None}
        return given or None


class WebhookConfig(_Section):
    """One of ``webhooks:``: a source of signed webhooks (see docs/webhooks.md)."""

    path: str = Field(description="The URL path the provider posts to: /webhooks/stripe.")
    scheme: str = Field(description="The signature scheme: stripe, github, standard, hmac...")
    secrets: list[str] = Field(min_length=1, description="Signing secrets; several: rotation.")
    publish_to: str = Field(description="The queue each verified webhook is stored in.")
    tolerance: Duration | None = Field(None, description="Timestamp tolerance (scheme default).")
    options: dict[str, Any] = Field(default_factory=dict, description="The scheme's options.")
    max_body: int | None = Field(None, gt=0, description="Largest body accepted, in bytes.")
    public_url: str | None = Field(
        None, description="The URL the provider signs, for schemes that sign it (twilio, square)."
    )
    forward_headers: list[str] | None = Field(
        None, description="Request headers kept with the stored webhook."
    )

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: object) -> float | None:
        return None if value is None else _duration(value)

    def settings(self) -> dict[str, Any]:
        """The mapping ``WebhookSource.from_config`` takes."""
        return self.model_dump(exclude_none=True)


class ForwardConfig(_Section):
    """A queue's ``forward:``: send each message through a named client."""

    client: str = Field(description="The name of one of clients:.")
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = Field(
        "POST", description="The HTTP method of the forwarded request."
    )
    path: str = Field(description="The path on the client's base_url: /events.")


class QueueConfig(_Section):
    """One of ``queues:``: what processes the messages of a queue."""

    handler: str | None = Field(
        None, description="module:function, an async function (message, ctx)."
    )
    forward: ForwardConfig | None = Field(
        None, description="Instead of handler: forward each message through a client."
    )
    transform: str | None = Field(
        None,
        description="module:Transformer (a ModelTransformer subclass or a Mapping) or a mapping "
        "file (.yaml/.yml, relative to this file) run on each message first.",
    )
    model: str | None = Field(None, description="module:Model validating the (transformed) body.")
    concurrency: int = Field(1, ge=1, description="Messages handled at once.")
    prefetch: int | None = Field(None, ge=1, description="Unsettled deliveries held at once.")
    max_attempts: int = Field(5, ge=1, description="Attempts including the first; then the DLQ.")
    retry_delays: list[Duration] | None = Field(
        None, description="Delays between attempts; the last repeats: [1s, 10s, 1m]."
    )
    dead_letter_queue: str | None = Field(None, description="Default: <queue>.dlq.")
    permanent: list[str] = Field(
        default_factory=list, description="Exception names that go to the DLQ without retry."
    )
    ordering: Literal["block", "continue"] = Field(
        "block",
        description="Messages sharing a key: block (later ones wait while one is in retry) or "
        "continue (they pass it).",
    )
    delivery_limit: int = Field(
        10,
        ge=1,
        description="Deliveries of one attempt that ended without a settle (the process died) "
        "before the message is dead-lettered.",
    )

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, value: list[object] | None) -> list[float] | None:
        return None if value is None else [_duration(delay, allow_zero=True) for delay in value]

    @model_validator(mode="after")
    def _one_way(self) -> QueueConfig:
        if (self.handler is None) == (self.forward is None):
            raise ValueError("give a queue either handler or forward (one of them)")
        for name in ("handler", "model"):
            value = getattr(self, name)
            if value is not None and not _DOTTED.match(value):
                raise ValueError(f"{name} must be module:attribute, found {value!r}")
        return self


class TracingConfig(_Section):
    """``observability.tracing:``: OpenTelemetry traces."""

    exporter: Literal["none", "console", "otlp"] = Field(
        "none",
        description="none (no spans exported), console (one JSON line per span on stderr) or otlp "
        "(OTLP over HTTP to endpoint; needs the otel extra). When unset, OTEL_TRACES_EXPORTER "
        "applies if set.",
    )
    endpoint: str | None = Field(
        None,
        description="otlp: the collector's traces URL, absolute http(s) (default: the OTel SDK's).",
    )
    sampling_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces sampled (parent-based). When unset, "
        "OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG apply if set (see observability.md).",
    )
    service_name: str | None = Field(
        None,
        min_length=1,
        description="service.name of the spans (default: OTEL_SERVICE_NAME, or service.name "
        "in OTEL_RESOURCE_ATTRIBUTES, else the service's name).",
    )
    messages: MessageTraces = Field(
        "continue",
        description="continue: each attempt's process span continues the trace of the "
        "publish that made the message (one trace per webhook); new_trace: each attempt "
        "starts a trace of its own, linked to that publish.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _endpoint_is_otlp(self) -> TracingConfig:
        # An endpoint with another exporter would be ignored: no span would go there.
        if self.endpoint is not None and self.exporter != "otlp":
            raise ValueError(
                f"endpoint is where exporter otlp sends spans; exporter is {self.exporter!r}, "
                "so nothing would go there (set exporter: otlp)"
            )
        return self


class LoggingConfig(_Section):
    """``observability.logging:``: structured logs on stderr."""

    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json, console, or auto: console on a terminal, else json."
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )
    redact: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="More field and header names whose values are replaced by [REDACTED] "
        "(Authorization, cookies, tokens, secrets and passwords always are).",
    )


class MetricsConfig(_Section):
    """``observability.metrics:``: the Prometheus endpoint."""

    enabled: bool = Field(True, description="Serve /metrics and keep the histograms.")


class ObservabilityConfig(_Section):
    """``observability:``: traces, logs and metrics."""

    tracing: TracingConfig = Field(TracingConfig(), description="OpenTelemetry traces.")
    logging: LoggingConfig = Field(LoggingConfig(), description="Structured logs.")
    metrics: MetricsConfig = Field(MetricsConfig(), description="Prometheus metrics.")


class ServiceConfig(_Section):
    """The whole ``interlink.yaml``."""

    # Frozen models: one default instance can be shared safely.
    service: ServiceSection = Field(ServiceSection(), description="The process itself.")
    broker: BrokerConfig = Field(BrokerConfig(), description="Where messages live.")
    state: StateConfig = Field(StateConfig(), description="Shared state for policies.")
    storage: StorageConfig = Field(StorageConfig(), description="The inbox's storage.")
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    observability: ObservabilityConfig = Field(
        ObservabilityConfig(), description="Traces, logs and metrics."
    )
