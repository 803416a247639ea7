"""Tracing: OpenTelemetry spans through the OTel API only, and the SDK set up for the service.

The library never needs the SDK. Every helper here first asks ``enabled()``:
without ``opentelemetry-api`` installed, or without a tracer provider set
(the API's default no-op), it answers ``False`` after two attribute reads and
the caller takes its untraced path: no span object, no context switch, no
header written. That is what keeps the webhook ingest path and the client
call as cheap as before when nobody traces.

With a provider set (``configure_tracing``, or the application's own SDK
setup), the spans are (docs/observability.md, "Tracing"):

- ``POST {route}`` SERVER: one webhook received (``webhooks/_receiver``);
- ``publish {queue}`` PRODUCER: one publish, whatever the backend (wrapped
  onto every ``Broker.publish`` by ``Broker.__init_subclass__``); it injects
  its context as ``traceparent``/``tracestate`` into the message headers
  unless the caller set a ``traceparent``. The webhook receiver makes the
  same span itself around its store (``start_publish``/``end_publish``);
- ``receive {queue}`` CLIENT, ``process {queue}`` CONSUMER (one per attempt),
  ``handler {name}`` and ``transform {name}`` INTERNAL, ``send {dlq}``
  PRODUCER for a dead-letter move (``messaging/_runner``, ``_settling``,
  ``_handler``);
- ``{client} {method}`` INTERNAL for a client call and ``{method}`` CLIENT for
  each attempt, which injects ``traceparent`` into the outbound request
  (``client/_client``, ``client/_call``).

The process span's parent is the context in the message's headers, not a
link: a message is handled alone (no batches), so the parent is unambiguous,
and it is what makes one webhook's life one trace (receive, publish, every
attempt, the upstream calls). A message without a ``traceparent`` starts a
new trace at its process span. Retries, dead letters and replays keep the
headers, so later attempts and a replay join the same trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import sys
import time
import traceback
import types
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from interlink import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from interlink.messaging._message import Message
    from interlink.service._config import TracingConfig

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _api
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState
except ImportError:  # pragma: no cover - depends on what is installed
    _api = None  # type: ignore[assignment]
else:
    _SERVER: Final = SpanKind.SERVER  # an enum member read costs a descriptor call
    _PRODUCER: Final = SpanKind.PRODUCER
    EMPTY_STATE: Final = TraceState()
    """The trace state of every lean span without one (``tracestate`` is written only otherwise)."""

__all__ = ["TRACEPARENT", "configure_tracing", "enabled", "trace_publish", "tracing_enabled"]

_log = logging.getLogger("interlink.observability")
_time_ns = time.time_ns

TRACEPARENT: Final = "traceparent"
"""The W3C trace-context header, in HTTP requests and in message headers."""

_SCOPE: Final = "interlink"
_MESSAGING_SYSTEMS: Final = {"amqp": "rabbitmq", "amqps": "rabbitmq"}

# The provider the cached tracer came from (none yet), and that tracer.
_cached_for: object = object()
_cached_tracer: Any = None

if _api is not None and os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):  # pragma: no cover
    _api.get_tracer_provider()  # loads the provider the environment names, once


def _find_span_key() -> str | None:
    """The key the API keeps the current span under in a ``Context``, found by asking it.

    ``set_span_in_context`` on an empty context, and the one key whose value
    is the span: with it, looking the current span up or making one current
    is a dict read or a dict copy instead of four calls through the API
    (``start_webhook``, ``LeanTracer.start_span``). ``None`` if the API ever
    stores it otherwise; then everything goes through the API.
    """
    if _api is None:
        return None
    probe = _api.NonRecordingSpan(_api.INVALID_SPAN_CONTEXT)
    stored = _api.set_span_in_context(probe, _context.Context())
    keys = [key for key, value in stored.items() if value is probe]
    if len(keys) != 1 or _api.get_current_span(_context.Context({keys[0]: probe})) is not probe:
        return None  # pragma: no cover - an API that stores spans differently
    return keys[0]


SPAN_KEY: Final = _find_span_key()


def _find_context_var() -> ContextVar[Context] | None:
    """The ``ContextVar`` the API keeps the current ``Context`` in, found through a token.

    ``context.attach`` returns the token of the ``ContextVar.set`` it made
    (the API's default runtime context), and a token names its variable
    (``Token.var``). With the variable, reading the current context, making
    one current and restoring the previous one are one C call each instead of
    three Python calls through the API (the ingest path does all three per
    webhook). ``None`` when the runtime context is another one
    (``OTEL_PYTHON_CONTEXT``), or the probe does not round-trip; then
    everything goes through the API.
    """
    if _api is None:
        return None
    token = _context.attach(_context.get_current())
    var = getattr(token, "var", None)
    _context.detach(token)
    if not isinstance(var, ContextVar) or var.get() is not _context.get_current():
        return None  # pragma: no cover - another runtime context
    probe = _context.Context({"interlink.probe": True})
    mine = var.set(probe)
    seen = _context.get_current() is probe
    var.reset(mine)
    return var if seen else None


_CURRENT: Final = _find_context_var()

if _CURRENT is not None:
    get_context: Callable[[], Context] = _CURRENT.get
    """The current ``Context`` (``opentelemetry.context.get_current``)."""
elif _api is not None:  # pragma: no cover - another runtime context
    get_context = _context.get_current


def set_current(span: Span, current: Context | None = None) -> object:
    """Make ``span`` the current one (``context.attach(set_span_in_context(span))``); the token.

    ``current`` is the current context, when the caller has it at hand.
    Restore the previous one with ``restore(token)``.
    """
    if SPAN_KEY is None or _CURRENT is None:  # pragma: no cover - see the two probes
        return _context.attach(_api.set_span_in_context(span, current))
    if current is None:
        current = _CURRENT.get()
    return _CURRENT.set(
        _context.Context({**current, SPAN_KEY: span} if current else {SPAN_KEY: span})
    )


def restore(token: object) -> None:
    """Undo ``set_current`` (``context.detach``: a token from another context is logged)."""
    if _CURRENT is None:  # pragma: no cover - see _find_context_var
        _context.detach(token)  # type: ignore[arg-type]
        return
    try:
        _CURRENT.reset(token)  # type: ignore[arg-type]
    except Exception:
        _log.exception("Failed to detach context")  # what the API's detach logs


# The propagator the API loaded when OTEL_PROPAGATORS is unset or says the default
# (W3C trace context, then baggage): while it is still the global one, ``_inject``
# may write a lean span's ``traceparent`` itself.
_DEFAULT_TEXTMAP: object = None
if _api is not None and os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage").replace(
    " ", ""
) in ("tracecontext,baggage", ""):
    _DEFAULT_TEXTMAP = _propagate.get_global_textmap()


# The provider ``enabled`` last looked at, and its answer (an ``isinstance`` against the
# API's abstract classes costs more than the rest of the check).
_enabled_for: tuple[object, bool] = (None, False)


def enabled() -> bool:
    """Whether spans are being made: the OTel API is installed and a real provider is set."""
    global _enabled_for
    if _api is None:
        return False
    provider = _api._TRACER_PROVIDER
    last = _enabled_for
    if last[0] is provider:
        return last[1]
    answer = provider is not None and not isinstance(provider, _api.NoOpTracerProvider)
    _enabled_for = (provider, answer)
    return answer


tracing_enabled = enabled
"""``enabled`` under its public name (``interlink.observability.tracing_enabled``)."""


# ``LeanSpan``, ``_LeanTracer`` and ``UnsampledSpan``, registered by ``_lean`` when it is
# imported (it imports this module, so this one cannot import it): the hot paths below tell a
# lean span or tracer by its type, without a ``getattr`` per call.
_lean_span: type | None = None
_lean_tracer: type | None = None
_lean_unsampled: type | None = None


def register_lean(span: type, tracer: type, unsampled: type) -> None:
    """Called by ``_lean`` at import: its span, tracer and unsampled span classes."""
    global _lean_span, _lean_tracer, _lean_unsampled
    _lean_span, _lean_tracer, _lean_unsampled = span, tracer, unsampled


def lean_provider() -> Any:
    """The global tracer provider when it is interlink's ``LeanTracerProvider``, else ``None``.

    For the metrics of its export pipeline (``MetricsRecorder``); an SDK
    provider an application set itself keeps its own figures.
    """
    if _api is None or _lean_tracer is None:
        return None
    tracer = _tracer()
    return tracer.provider if type(tracer) is _lean_tracer else None  # type: ignore[attr-defined]


def _tracer() -> Tracer:
    global _cached_for, _cached_tracer
    provider = _api._TRACER_PROVIDER
    if provider is _cached_for:
        return _cached_tracer  # type: ignore[no-any-return]
    tracer = _api.get_tracer(_SCOPE, __version__)
    _cached_tracer = tracer  # first: a thread that sees the new provider gets this tracer
    _cached_for = provider
    return tracer


def current_span() -> Span | None:
    """The active span when tracing (``None`` otherwise, or when none is recording)."""
    if not enabled():
        return None
    span = _api.get_current_span()
    return span if span.is_recording() else None


def sampled_ids(span: Span | None = None) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of ``span`` (default: the current one) when its trace is sampled.

    ``None`` without tracing, for an invalid span, or one whose trace is not
    sampled: the metrics' exemplars, where an id no backend keeps links
    nowhere. A lean span's ids are read from its fields, without its
    ``SpanContext`` (the webhook receiver's duration, per request).
    """
    if not enabled():
        return None
    if span is None:
        span = _api.get_current_span()
    if type(span) is _lean_span:
        lean: Any = span
        return (lean.trace_id, lean.span_id) if lean.flags & 0x01 else None  # W3C: sampled
    if type(span) is _lean_unsampled:  # the lean tracer's, in a trace it does not sample
        return None
    context = span.get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return context.trace_id, context.span_id


def _error(span: Span, error_type: str, description: str | None = None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))


_FLAGS_HEX: Final = tuple(f"-{flags:02x}" for flags in range(256))


def traceparent_of(trace_id: int, span_id: int, flags: int) -> str:
    """The W3C ``traceparent`` value of a span context."""
    # bytes.hex is about twice as fast as format(..., "032x") on a 128-bit int, and one
    # %-format a fifth cheaper than concatenating the five parts.
    return "00-%s-%s%s" % (  # noqa: UP031
        trace_id.to_bytes(16, "big").hex(),
        span_id.to_bytes(8, "big").hex(),
        _FLAGS_HEX[flags],
    )


def write_traceparent(
    headers: MutableMapping[str, str], trace_id: int, span_id: int, flags: int, state: TraceState
) -> None:
    """Write a span's ``traceparent`` into ``headers``, and its ``tracestate`` unless empty.

    For a lean span's ids (``_inject``, ``start_publish``, an unsampled
    publish): their state is ``EMPTY_STATE`` when there is none.
    """
    headers[TRACEPARENT] = traceparent_of(trace_id, span_id, flags)
    if state is not EMPTY_STATE:
        headers["tracestate"] = state.to_header()


def _inject(span: Span, carrier: MutableMapping[str, str], current: Context | None = None) -> None:
    """Write ``span``'s context into ``carrier`` as the global propagator would.

    The fast way while the propagator is the default one (W3C trace context
    and baggage) and the context holds nothing but the current span, if that
    (no baggage or anything else to carry): ``traceparent``, and
    ``tracestate`` when there is one, written here; for a lean span without
    making its ``SpanContext``. It saves about 25k instructions per publish or attempt;
    anything else goes through ``opentelemetry.propagate.inject``.
    ``current`` is the current context when the caller has it at hand.
    """
    if current is None:
        current = get_context()
    if _propagate.get_global_textmap() is not _DEFAULT_TEXTMAP or (
        current and (len(current) != 1 or SPAN_KEY not in current)
    ):
        _propagate.inject(carrier, _api.set_span_in_context(span))
        return
    if type(span) is _lean_span:
        lean: Any = span
        write_traceparent(carrier, lean.trace_id, lean.span_id, lean.flags, lean.trace_state)
        return
    context = span.get_span_context()
    if not context.is_valid:
        return  # what the propagator writes for it: nothing
    carrier[TRACEPARENT] = traceparent_of(context.trace_id, context.span_id, context.trace_flags)
    if context.trace_state:
        carrier["tracestate"] = context.trace_state.to_header()


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


# -- HTTP methods --------------------------------------------------------------------------
DEFAULT_KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
KNOWN_METHODS_ENV: Final = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS"


def known_methods(environ: Mapping[str, str]) -> frozenset[str]:
    """The HTTP methods spans and metrics keep as they are; any other is ``_OTHER``.

    ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (a comma-separated,
    case-sensitive list) replaces the default one whole, as the HTTP
    conventions require of an instrumentation that maps methods to ``_OTHER``.
    """
    configured = environ.get(KNOWN_METHODS_ENV)
    if configured is None:
        return DEFAULT_KNOWN_METHODS
    return frozenset(method.strip() for method in configured.split(",") if method.strip())


KNOWN_METHODS: Final = known_methods(os.environ)
"""This process's known methods (read once, at import), for spans and ``_metrics``."""


# -- webhooks ------------------------------------------------------------------------------


def _other_method(attributes: dict[str, Any], method: str) -> str:
    """Record a method outside ``KNOWN_METHODS`` as the HTTP conventions say; the name's method.

    ``http.request.method`` becomes ``_OTHER`` and the method as sent goes in
    ``http.request.method_original``; a span named after the method is named
    after ``HTTP`` instead (``HTTP {route}``, ``HTTP``).
    """
    attributes["http.request.method"] = "_OTHER"
    attributes["http.request.method_original"] = method
    return "HTTP"


Proxied = tuple[str | None, str | None, str | None]
"""What a trusted proxy forwarded: the sender's address, the scheme and the host it used."""
NOT_PROXIED: Final[Proxied] = (None, None, None)


def start_webhook(
    source: str,
    route: str,
    scope: Mapping[str, Any],
    headers: Mapping[str, str],
    proxied: Proxied = NOT_PROXIED,
) -> tuple[Span, object]:
    """Start the SERVER span of one webhook request (``POST {route}``) and make it current.

    ``headers`` are the request's, decoded, names in lower case. ``proxied``:
    what a trusted proxy forwarded (the sender's address, the scheme and the
    host it used), for ``client.address``, ``url.scheme`` and
    ``server.address``/``server.port``, which otherwise come from the peer,
    the scope and the ``Host`` header. An incoming ``traceparent`` (a proxy or
    an internal sender that traces) is its parent, as for any HTTP server
    span. Hand-made rather than ``start_as_current_span``: this is the ingest
    path, where every microsecond shows in ``make bench``. End it with
    ``end_webhook``.
    """
    current = parent = get_context()
    traceparent = headers.get(TRACEPARENT)
    if traceparent is not None:
        carrier = {TRACEPARENT: traceparent}
        state = headers.get("tracestate")
        if state is not None:
            carrier["tracestate"] = state
        parent = _propagate.extract(carrier)
    # The method as sent: ``_webhook_span`` maps one outside the known ones (cache misses only).
    # A provider sends from a few addresses with one User-Agent: the key's values repeat.
    peer = scope.get("client")
    key = (
        source,
        route,
        scope["method"],
        scope["path"],
        scope.get("scheme", "http"),
        scope.get("http_version"),
        headers.get("host"),
        headers.get("user-agent"),
        peer[0] if peer else None,
        proxied,
    )
    made = _webhook_spans.get(key)
    if made is None:
        made = _webhook_span(key)
    name, attributes = made
    query = scope.get("query_string")
    if query:  # conditionally required when there is one; per request, so not cached
        attributes = _with_query(attributes, query)
    tracer = _tracer()
    lean: Any = tracer if type(tracer) is _lean_tracer else None
    if lean is not None and SPAN_KEY is not None and len(attributes) <= lean.limits_attributes:
        # The lean tracer takes our attributes as they are (not checked again).
        if traceparent is None and not current:  # the usual case: a new trace
            span = lean.start_root(name, _SERVER, attributes, _time_ns())
        else:
            span = lean._start(name, parent.get(SPAN_KEY), _SERVER, attributes, _time_ns())
    else:
        span = tracer.start_span(name, parent, _SERVER, attributes)
    return span, set_current(span, current)


def end_webhook(
    span: Span,
    token: object,
    status: int | None,
    outcome: str,
    reason: str | None,
    error: BaseException | None,
) -> None:
    """Record the answer and end the span: status, ``interlink.webhook.outcome`` (``.reason``)."""
    restore(token)
    if type(span) is _lean_unsampled:  # not sampled: nothing to record
        return
    if status is not None:
        if status >= 500:  # server semantics: 4xx is the sender's problem, not an error here
            _error(span, str(status))
    elif error is not None and not isinstance(error, asyncio.CancelledError):
        _error(span, _error_type(error), type(error).__name__)
    if type(span) is _lean_span:
        start = span._attributes  # type: ignore[attr-defined]
        if type(start) is SharedAttributes:  # as start_webhook made them: the two are cached
            ended = start.ends.get((outcome, status, reason))
            if ended is None:
                ended = start.end(outcome, status, reason)
            span.finish_shared(ended[1], ended[0])  # type: ignore[attr-defined]
        else:
            span.finish(_end_attributes(outcome, status, reason))  # type: ignore[attr-defined]
        return
    span.set_attributes(_end_attributes(outcome, status, reason))
    span.end()


def _end_attributes(outcome: str, status: int | None, reason: str | None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"interlink.webhook.outcome": outcome}
    if reason is not None:
        attributes["interlink.webhook.reason"] = reason
    if status is not None:
        attributes["http.response.status_code"] = status
    return attributes


class SharedAttributes(dict[str, Any]):
    """Span attributes shared by every span of a kind (a webhook span's): read-only.

    ``start_webhook`` hands the same one to every SERVER span of a source,
    method and path, and ``end_webhook`` swaps it for the one of the answer
    (``ends``), instead of two dicts built per request. A lean span copies it
    before any change (``set_attribute``, a status >= 500's ``error.type``);
    an exporter only reads it.
    """

    __slots__ = ("ends",)

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        super().__init__(attributes)
        # (outcome, status, reason) -> (the answer's own attributes, all of them)
        self.ends: dict[
            tuple[str, int | None, str | None], tuple[dict[str, str | int], SharedAttributes]
        ] = {}

    def end(
        self, outcome: str, status: int | None, reason: str | None
    ) -> tuple[dict[str, str | int], SharedAttributes]:
        """The answer's attributes, and all of them (cached, bounded)."""
        own = _end_attributes(outcome, status, reason)
        ended = (own, SharedAttributes({**self, **own}))
        if len(self.ends) < _WEBHOOK_SPANS_MAX:
            self.ends[outcome, status, reason] = ended
        return ended

    def _read_only(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("shared span attributes are read-only; a span copies them to change them")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _read_only
    __ior__ = _read_only


# (source, route, method, path, scheme, HTTP version, Host, User-Agent, peer address, proxied)
_WebhookKey = tuple[
    str, str, str, str, str, str | None, str | None, str | None, str | None, Proxied
]

# _WebhookKey -> the SERVER span's name and attributes. Bounded, as the method, path, headers
# and addresses come from requests: when full it starts again, so that the values seen now
# are the ones cached.
_webhook_spans: dict[_WebhookKey, tuple[str, SharedAttributes]] = {}
_WEBHOOK_SPANS_MAX: Final = 4096
# The most characters of the request's own values (method, Host, User-Agent, addresses) an
# entry may hold: a sender, signed or not, can send any; longer ones are made per request,
# so that the cache stays small (a few MB at most) whatever comes.
_CACHED_CHARS_MAX: Final = 512
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _with_query(attributes: SharedAttributes, query: bytes) -> SharedAttributes:
    """``attributes`` plus ``url.query``, its secret-looking values ``REDACTED`` (the conventions)."""
    from interlink.client._redact import redact_query

    return SharedAttributes({**attributes, "url.query": redact_query(query.decode("latin-1"))})


def _webhook_span(key: _WebhookKey) -> tuple[str, SharedAttributes]:
    source, route, method, path, scheme, version, host, agent, peer, proxied = key
    client, forwarded_scheme, forwarded_host = proxied
    sent = (method, host, agent, peer, client, forwarded_scheme, forwarded_host)
    cached = sum(len(value) for value in sent if value) <= _CACHED_CHARS_MAX
    scheme = forwarded_scheme or scheme
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "url.scheme": scheme,
        "http.route": route,
        "interlink.webhook.source": source,
    }
    if method not in KNOWN_METHODS:
        method = _other_method(attributes, method)
    attributes.update(
        _peer_attributes(scheme, version, forwarded_host or host, agent, peer, client)
    )
    made = (f"{method} {route}", SharedAttributes(attributes))
    if cached:
        if len(_webhook_spans) >= _WEBHOOK_SPANS_MAX:
            _webhook_spans.clear()
        _webhook_spans[key] = made
    return made


def _peer_attributes(
    scheme: str,
    version: str | None,
    host: str | None,
    agent: str | None,
    peer: str | None,
    client: str | None,
) -> dict[str, str | int]:
    """The HTTP conventions' recommended attributes of a server span, those the request has.

    ``client.address``: the sender behind a trusted proxy (``client``), else
    the peer. ``server.address`` and ``server.port``: the host the sender
    used (``host``, from the proxy or the ``Host`` header); its port, else
    the scheme's. ``network.peer.port`` is left out: it changes with every
    connection, and the attributes are cached (the ingest path).
    """
    attributes: dict[str, str | int] = {}
    address = client or peer
    if address:
        attributes["client.address"] = address
    if peer:
        attributes["network.peer.address"] = peer
    if version:
        attributes["network.protocol.version"] = version
    if host:
        server, port = _split_host(host)
        if server:
            attributes["server.address"] = server
            if port is None:
                port = _DEFAULT_PORTS.get(scheme)
            if port is not None:
                attributes["server.port"] = port
    if agent:
        attributes["user_agent.original"] = agent
    return attributes


def _split_host(host: str) -> tuple[str, int | None]:
    """``Host`` (or a forwarded host) as address and port: ``[::1]:8000`` is ``::1`` and 8000.

    A port that is not a number (0 to 65535) is no port, and the value then
    stays whole as the address.
    """
    if host.startswith("["):  # an IPv6 literal
        address, bracket, rest = host[1:].partition("]")
        if not bracket:
            return host, None
        if not rest:
            return address, None
        port = rest[1:] if rest[0] == ":" else ""
    else:
        address, colon, port = host.rpartition(":")
        if not colon or ":" in address:  # no port, or an IPv6 address without its brackets
            return host, None
    if port.isdigit() and port.isascii() and int(port) <= 65535:
        return address, int(port)
    return host, None


# -- messaging -----------------------------------------------------------------------------
def messaging_system(url: str) -> str:
    """``messaging.system`` for a broker URL: ``rabbitmq``, ``sqlite`` or ``memory``."""
    scheme = url.split("://", 1)[0].lower()
    return _MESSAGING_SYSTEMS.get(scheme, scheme)


# (broker URL, queue) -> the publish span's name and its attributes but the message id;
# bounded, as queue names come from callers (past the bound they are made per publish).
_publishing: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
_PUBLISHING_MAX: Final = 4096


def _publish_span(url: str, queue: str, message_id: str | None) -> tuple[str, dict[str, str]]:
    """The publish span's name and a fresh dict of its attributes."""
    base = _publishing.get((url, queue))
    if base is None:
        base = _publish_span_base(url, queue)
    name, attributes = base
    attributes = attributes.copy()
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    return name, attributes


def _publish_span_base(url: str, queue: str) -> tuple[str, dict[str, str]]:
    name = str(queue)  # a StrEnum member's value: a plain str in the span
    base = (
        f"publish {name}",
        {
            "messaging.system": messaging_system(url),
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
            "messaging.destination.name": name,
        },
    )
    if len(_publishing) < _PUBLISHING_MAX:
        _publishing[url, queue] = base
    return base


_ID_TYPES: Final = frozenset({str, type(None)})

P = TypeVar("P", bound=Callable[..., Coroutine[Any, Any, str]])


def trace_publish(cls: type) -> None:
    """Wrap ``cls.publish`` in the PRODUCER span, unless a base class's already is.

    ``Broker.__init_subclass__`` calls it for every backend, so a publish is
    traced whatever the backend; an override that calls ``super().publish``
    keeps one span (the base's), and one that does not goes untraced.
    """
    publish = cls.__dict__.get("publish")
    if publish is None or getattr(publish, "__isabstractmethod__", False):
        return
    for base in cls.__mro__[1:]:
        if getattr(base.__dict__.get("publish"), "__interlink_traced__", False):
            return
    cls.publish = traced_publish(publish)  # type: ignore[attr-defined]


def traced_publish(publish: P) -> P:
    """``publish`` inside a ``publish {queue}`` PRODUCER span that injects its context.

    The context goes into the message headers (``traceparent``, and
    ``tracestate``/baggage as the propagators say) unless the caller set a
    ``traceparent``. The wrapper is a plain function that hands back the
    coroutine to await: untraced, it adds one call and ``enabled()`` to a
    publish, not a coroutine of its own (publish is on the webhook and message
    hot paths).
    """

    async def traced(
        self: Any,
        queue: str,
        body: object,
        message_id: str | None,
        headers: Mapping[str, str] | None,
        delay: float | None,
        key: str | None,
    ) -> str:
        name, attributes = _publish_span(getattr(self, "url", ""), queue, message_id)
        current = get_context()
        parent = current.get(SPAN_KEY) if SPAN_KEY is not None else None
        tracer = _tracer()
        # A LeanSpan's, without the tracer's general path, for attributes known to be plain
        # (the arguments' types are the caller's to get right; a wrong one is checked there).
        span = None
        if type(parent) is _lean_span and type(message_id) in _ID_TYPES:
            span = parent.start_child(tracer, name, _PRODUCER, attributes)  # type: ignore[attr-defined]
        if span is None:
            span = tracer.start_span(name, current, _PRODUCER, attributes)
        try:
            if headers is None or TRACEPARENT not in headers:
                carrier: dict[str, str] = dict(headers) if headers is not None else {}
                _inject(span, carrier, current)
                headers = carrier
            sent: str = await publish(
                self, queue, body, message_id=message_id, headers=headers, delay=delay, key=key
            )
        except BaseException as exc:
            end_publish(span, exc)
            raise
        if message_id is None:
            span.set_attribute("messaging.message.id", sent)
        span.end()
        return sent

    @functools.wraps(publish)
    def wrapper(
        self: Any,
        queue: str,
        body: object,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        key: str | None = None,
    ) -> Awaitable[str]:
        if not enabled() or not isinstance(queue, str):  # a wrong queue: the backend's error
            return publish(
                self, queue, body, message_id=message_id, headers=headers, delay=delay, key=key
            )
        return traced(self, queue, body, message_id, headers, delay, key)

    wrapper.__interlink_traced__ = True  # type: ignore[attr-defined]
    wrapper.__interlink_untraced__ = publish  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def untraced_publish(broker: object) -> Callable[..., Awaitable[str]] | None:
    """``broker``'s ``publish`` without its PRODUCER span, for a caller that makes the span.

    ``None`` unless ``broker``'s class publishes through ``traced_publish``'s
    wrapper (an override that does not is left alone). The caller starts the
    span with ``start_publish`` and ends it with ``end_publish``.
    """
    publish = getattr(type(broker), "publish", None)
    untraced = getattr(publish, "__interlink_untraced__", None)
    return None if untraced is None else types.MethodType(untraced, broker)


def start_publish(
    url: str, queue: str, message_id: str, headers: MutableMapping[str, str]
) -> Span | None:
    """The ``publish {queue}`` PRODUCER span of a publish its caller makes, or ``None``.

    The same span the traced ``Broker.publish`` makes, with its
    ``traceparent`` written into ``headers``, for the webhook receiver, which
    publishes every webhook inside its SERVER span and saves the wrapper's
    coroutine and lookups that way. ``url`` is the broker's. ``None`` (publish
    through the traced ``publish`` instead) unless the current span is a
    lean one, the context holds nothing else (no baggage to carry) and the
    propagator is the default one, and ``headers`` has no ``traceparent`` yet.

    When the current span is one the lean tracer did not sample (its
    ``UnsampledSpan``), the publish would not be sampled either (its sampling
    is parent-based): only the publish's ``traceparent`` is written, as the
    traced publish would inject it (``UnsampledSpan.write_child``), and the
    API's invalid span comes back, whose ``end`` does nothing. That keeps an
    unsampled webhook cheaper than a sampled one (at a sampling ratio of 0.1,
    nine webhooks in ten).
    """
    current = get_context()
    parent = current.get(SPAN_KEY) if SPAN_KEY is not None else None
    if (
        len(current) != 1
        or TRACEPARENT in headers  # the caller's own: the traced publish keeps it
        or _propagate.get_global_textmap() is not _DEFAULT_TEXTMAP
    ):
        return None
    if type(parent) is not _lean_span:
        if type(parent) is not _lean_unsampled:
            return None
        parent.write_child(headers)  # type: ignore[attr-defined]
        return _api.INVALID_SPAN
    name, attributes = _publish_span(url, queue, message_id)
    span: Any = parent.start_child(_tracer(), name, _PRODUCER, attributes)  # type: ignore[attr-defined]
    if span is not None:
        write_traceparent(headers, span.trace_id, span.span_id, span.flags, span.trace_state)
    return span  # type: ignore[no-any-return]


def end_publish(span: Span, error: BaseException | None) -> None:
    """End a publish span: ``error`` (not a cancellation) sets ``error.type`` and the status."""
    if error is not None and not isinstance(error, asyncio.CancelledError):
        _error(span, _error_type(error), type(error).__name__)
    span.end()


def _message_attributes(message: Message, system: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": system,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.destination.name": message.queue,
        "messaging.message.id": message.id,
    }


MessageTraces = Literal["continue", "new_trace"]
"""The values of ``observability.tracing.messages`` (``set_message_traces``)."""
MESSAGE_TRACES: Final = get_args(MessageTraces)
_message_traces: MessageTraces = "continue"


def set_message_traces(mode: MessageTraces) -> None:
    """How a message's process spans relate to the publish that made it (process-wide).

    ``"continue"`` (the default): each attempt's ``process`` span is a child
    of the message's ``traceparent``, so one webhook's life is one trace.
    ``"new_trace"``: each attempt starts a trace of its own, with a link to
    that context (the messaging conventions' default), for producers whose
    traces would otherwise grow without end. ``configure_tracing`` sets it
    from ``observability.tracing.messages``.
    """
    global _message_traces
    if mode not in MESSAGE_TRACES:
        from interlink.core.errors import ConfigError

        raise ConfigError(f"message traces must be one of {MESSAGE_TRACES}, got {mode!r}")
    _message_traces = mode


def received(message: Message, system: str) -> None:
    """A ``receive {queue}`` CLIENT span for a delivery handed to the runtime (instant)."""
    parent = _propagate.extract(message.headers) if TRACEPARENT in message.headers else None
    attributes = _message_attributes(message, system, "receive", "receive")
    attributes["interlink.message.delivery_count"] = message.delivery_count
    _tracer().start_span(f"receive {message.queue}", parent, SpanKind.CLIENT, attributes).end()


@contextlib.contextmanager
def process_span(message: Message, handler: str, system: str) -> Iterator[Span]:
    """The ``process {queue}`` CONSUMER span of one attempt.

    A child of the message's context (its ``traceparent``), or, with
    ``observability.tracing.messages: new_trace``, the root of a trace of
    its own with a link to that context (``set_message_traces``).
    """
    parent: Context | None = None
    links: list[Link] = []
    if TRACEPARENT in message.headers:
        parent = _propagate.extract(message.headers)
        if _message_traces == "new_trace":
            created = _api.get_current_span(parent).get_span_context()
            parent = _context.Context()  # no parent, whatever the current context holds
            if created.is_valid:
                links.append(Link(created))
    attributes = _message_attributes(message, system, "process", "process")
    attributes["interlink.message.attempt"] = message.attempt
    attributes["interlink.message.delivery_count"] = message.delivery_count
    attributes["interlink.handler"] = handler
    # (An attempt's own failure is settled, not raised: what leaves it is recorded, redacted.)
    with _own_errors(
        f"process {message.queue}", SpanKind.CONSUMER, attributes, _record_redacted, parent, links
    ) as span:
        yield span


@contextlib.contextmanager
def _own_errors(
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any],
    record: Callable[[Span, BaseException], None],
    parent: Context | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span]:
    """A current span whose escaping exception ``record`` records, not the API's default.

    The API's ``use_span`` would put the exception's text in an event and the
    status description: ``record`` is ``_record_redacted`` (its text through
    the redactor) or ``_record_type`` (the class only).
    """
    with _tracer().start_as_current_span(
        name,
        parent,
        kind,
        attributes,
        links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            record(span, exc)
            raise


def _record_type(span: Span, error: BaseException) -> None:
    """``error.type`` and status Error, the class name as the description; a cancellation is none."""
    if not isinstance(error, asyncio.CancelledError):
        _error(span, _error_type(error), type(error).__name__)


def _record_redacted(span: Span, error: BaseException) -> None:
    """What the API records for an exception leaving a span, with its text redacted.

    An ``exception`` event and status Error, as ``use_span`` records them,
    plus ``error.type``; the message and the stack trace go through the
    logs' ``REDACTOR`` (the config's secrets, credentials, secret-looking
    pairs), as they would in a log line. A cancellation is no error.
    """
    if isinstance(error, asyncio.CancelledError):
        return
    from interlink.observability._logging import REDACTOR

    text = REDACTOR.scrub(str(error))
    stack = REDACTOR.scrub("".join(traceback.format_exception(error)))
    span.record_exception(
        error, attributes={"exception.message": text, "exception.stacktrace": stack}
    )
    span.set_attribute("error.type", _error_type(error))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {text}"))


@contextlib.contextmanager
def handler_span(handler: str) -> Iterator[Span]:
    """``handler {name}`` INTERNAL around the handler function (its error recorded, redacted)."""
    attributes = {"interlink.handler": handler}
    with _own_errors(f"handler {handler}", SpanKind.INTERNAL, attributes, _record_redacted) as span:
        yield span


def transform(transformer: Any, value: Any) -> Any:
    """Run ``transformer.transform(value)`` inside a ``transform {name}`` INTERNAL span.

    A ``TransformError`` sets ``error.type``, ``interlink.transform.field``
    and ``.reason``; the offending value is never recorded (it may be
    personal data).
    """
    name = str(getattr(transformer, "name", type(transformer).__name__))
    with _tracer().start_as_current_span(
        f"transform {name}",
        kind=SpanKind.INTERNAL,
        attributes={"interlink.transform.name": name},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            return transformer.transform(value)
        except Exception as exc:
            path = getattr(exc, "path", None)
            if path is not None:
                span.set_attribute("interlink.transform.field", path or "(record)")
                span.set_attribute("interlink.transform.reason", str(getattr(exc, "reason", "")))
            _error(span, _error_type(exc), type(exc).__name__)
            raise


def settled(outcome: str, attributes: Mapping[str, Any]) -> None:
    """Note how the current process span's delivery was settled (``interlink.outcome``, ...)."""
    span = current_span()
    if span is None or getattr(span, "kind", None) is not SpanKind.CONSUMER:
        return  # settled outside a process span (a release at shutdown)
    span.set_attribute("interlink.outcome", outcome)
    delay = attributes.get("delay")
    if isinstance(delay, int | float):
        span.set_attribute("interlink.retry.delay", float(delay))
    reason = attributes.get("reason")
    if isinstance(reason, str):
        span.set_attribute("interlink.reason", reason)
    error = attributes.get("error")
    if isinstance(error, BaseException):  # a failed attempt (or settle): an error span
        _error(span, _error_type(error), type(error).__name__)


@contextlib.contextmanager
def dead_letter_span(
    message: Message, dead_letter_queue: str, system: str, reason: str, error: BaseException
) -> Iterator[None]:
    """``send {dlq}`` PRODUCER: the move to the dead-letter queue (no convention exists).

    Modelled as a ``send`` with ``error.type`` (``error``, why the message is
    dead-lettered) and so, as the conventions tie the two, an error span: a
    dead letter is a failure an operator looks for. A send that raises
    records its own error instead (type only, never the message text).
    """
    attributes = _message_attributes(message, system, "send", "send")
    attributes["messaging.destination.name"] = dead_letter_queue
    attributes["interlink.dead_letter.source"] = message.queue
    attributes["interlink.reason"] = reason
    name = f"send {dead_letter_queue}"
    with _own_errors(name, SpanKind.PRODUCER, attributes, _record_type) as span:
        _record_type(span, error)
        yield


# -- the client ----------------------------------------------------------------------------
@contextlib.contextmanager
def client_call_span(client: str, method: str) -> Iterator[Span]:
    """``{client} {method}`` INTERNAL: one call with all its attempts, retries and waits."""
    attributes: dict[str, Any] = {"interlink.client.name": client, "http.request.method": method}
    if method not in KNOWN_METHODS:
        _other_method(attributes, method)  # the name keeps the method: the caller's own
    with _own_errors(f"{client} {method}", SpanKind.INTERNAL, attributes, _record_type) as span:
        yield span


def call_status(span: Span, status: int) -> None:
    """The status of the response a call ended with (4xx and 5xx are errors)."""
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        _error(span, str(status))


def start_attempt(
    client: str,
    method: str,
    url: str,
    public_url: str,
    attempt: int,
    breaker_state: str | None,
    headers: MutableMapping[str, str],
) -> Span:
    """Start the CLIENT span of one attempt (``{method}``) and inject its ``traceparent``.

    ``url`` is the request's URL (for ``server.*``), ``public_url`` the one
    recorded as ``url.full``, secrets redacted. The caller ends it with
    ``end_attempt``.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    call = _api.get_current_span()
    if call.is_recording():
        call.set_attribute("interlink.client.attempts", attempt)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "server.port": port,
        "url.full": public_url,
        "interlink.client.name": client,
    }
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    if breaker_state is not None:
        attributes["interlink.breaker.state"] = breaker_state
    if method not in KNOWN_METHODS:
        method = _other_method(attributes, method)  # the span is named HTTP
    span = _tracer().start_span(method, kind=SpanKind.CLIENT, attributes=attributes)
    _inject(span, headers)
    return span


def end_attempt(span: Span, status: int | None, error: BaseException | None) -> None:
    """End an attempt's span: its status code, or the error that stopped it."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            _error(span, str(status))
    elif error is not None and not isinstance(error, asyncio.CancelledError):
        _error(span, _error_type(error), type(error).__name__)  # a cancellation is no error
    span.end()


def retry_delay(attempt: int, delay: float, reason: str) -> None:
    """An ``interlink.retry`` event on the current span: the wait chosen after ``attempt``, and why."""
    span = current_span()
    if span is not None:
        span.add_event(
            "interlink.retry",
            {
                "interlink.retry.attempt": attempt,
                "interlink.retry.delay": delay,
                "interlink.retry.reason": reason,
            },
        )


# -- the SDK, for the service ------------------------------------------------------------------
def _one_line(span: ReadableSpan) -> str:
    text: str = span.to_json(indent=None)  # the SDK leaves it unannotated
    return text + "\n"


SDK_DISABLED_ENV: Final = "OTEL_SDK_DISABLED"
EXPORTER_ENV: Final = "OTEL_TRACES_EXPORTER"
EXPORTERS: Final = ("none", "console", "otlp")  # observability.tracing.exporter's values
# Where the OTLP exporter reads its protocol; interlink's is HTTP with protobuf.
PROTOCOL_ENVS: Final = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SAMPLER_ENV: Final = "OTEL_TRACES_SAMPLER"
SAMPLER_ARG_ENV: Final = "OTEL_TRACES_SAMPLER_ARG"
# The SDK's built-in samplers interlink's provider runs: name -> (ratio, parent-based); a ratio
# of None is OTEL_TRACES_SAMPLER_ARG's.
_SAMPLERS: Final[dict[str, tuple[float | None, bool]]] = {
    "always_on": (1.0, False),
    "always_off": (0.0, False),
    "traceidratio": (None, False),
    "parentbased_always_on": (1.0, True),
    "parentbased_always_off": (0.0, True),
    "parentbased_traceidratio": (None, True),
}


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED`` is ``true`` (any case): the OTel SDK is off, so tracing is.

    Any other value but ``false`` or an empty one is ignored with a warning, as
    the OTel specification asks of a boolean variable it cannot read.
    """
    raw = environ.get(SDK_DISABLED_ENV, "")
    value = raw.strip().lower()
    if value not in ("", "true", "false"):
        _log.warning("%s=%r is neither true nor false; ignored", SDK_DISABLED_ENV, raw)
    return value == "true"


def exporter_from_env(environ: Mapping[str, str]) -> str | None:
    """The exporter ``OTEL_TRACES_EXPORTER`` names (``none``, ``console``, ``otlp``); ``None`` if unset.

    The variable is a comma-separated list; interlink sends spans to one
    exporter, the first of the list it knows. The others, and names it does
    not know (``zipkin``...), are ignored with a warning.
    """
    raw = environ.get(EXPORTER_ENV, "")
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    known = [name for name in names if name in EXPORTERS]
    if names != known[:1]:
        chosen = f"uses {known[0]}" if known else "is ignored"
        _log.warning(
            "%s=%r: interlink sends spans to one exporter of %s, so it %s",
            EXPORTER_ENV,
            raw,
            ", ".join(EXPORTERS),
            chosen,
        )
    return known[0] if known else None


def exporter_kind(config: TracingConfig, environ: Mapping[str, str]) -> str:
    """The exporter ``config`` makes: its own ``exporter`` if set, else ``OTEL_TRACES_EXPORTER``'s."""
    if "exporter" in config.model_fields_set:
        return config.exporter
    return exporter_from_env(environ) or config.exporter


def _otlp_protocol_warning(environ: Mapping[str, str]) -> None:
    """Warn when the environment asks for an OTLP protocol other than interlink's."""
    for name in PROTOCOL_ENVS:
        protocol = environ.get(name, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                _log.warning(
                    "%s=%r: interlink sends OTLP over http/protobuf (to port 4318, path "
                    "/v1/traces, by default); point it at the collector's OTLP/HTTP receiver",
                    name,
                    protocol,
                )
            return  # the more specific one decides


def sampler_from_env(environ: Mapping[str, str]) -> tuple[float, bool] | None:
    """``(ratio, parent_based)`` from ``OTEL_TRACES_SAMPLER`` (and ``_ARG``); ``None`` if unset.

    The six built-in samplers the SDK reads from these variables:
    ``always_on``, ``always_off``, ``traceidratio`` and their ``parentbased_``
    forms (the SDK's default is ``parentbased_always_on``). A ratio sampler
    whose ``OTEL_TRACES_SAMPLER_ARG`` is not a number within [0, 1] keeps 1.0,
    and any other sampler name is ignored, each with a warning, as the SDK
    does (a remote sampler, such as Jaeger's, needs the SDK's own provider).
    """
    raw = environ.get(SAMPLER_ENV, "")
    name = raw.strip().lower()
    if not name:
        return None
    known = _SAMPLERS.get(name)
    if known is None:
        _log.warning(
            "%s=%r is not a sampler interlink's tracer provider runs (%s); ignored",
            SAMPLER_ENV,
            raw,
            ", ".join(_SAMPLERS),
        )
        return None
    ratio, parent_based = known
    if ratio is None:
        arg = environ.get(SAMPLER_ARG_ENV, "")
        try:
            ratio = float(arg)
        except ValueError:
            ratio = math.nan
        if not 0.0 <= ratio <= 1.0:  # also NaN
            _log.warning(
                "%s=%r is not a ratio within [0, 1]; %s keeps 1.0", SAMPLER_ARG_ENV, arg, name
            )
            ratio = 1.0
    return ratio, parent_based


def configure_tracing(
    config: TracingConfig,
    *,
    service_name: str = "interlink",
    exporter: SpanExporter | None = None,
) -> Callable[[], None]:
    """Set up the OTel SDK from ``observability.tracing``; return the function that shuts it down.

    ``exporter`` (code only) replaces the configured one, such as an
    in-memory or a discarding exporter. Without one, the configured
    ``exporter``, else ``OTEL_TRACES_EXPORTER`` (``exporter_from_env``), else
    ``none``; ``none`` sets nothing up: the API stays a no-op and tracing
    costs nothing. So does ``OTEL_SDK_DISABLED=true``. A provider set earlier
    (by the application) is kept and left to its owner.

    Sampling: ``sampling_ratio`` when the configuration sets it, else
    ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (``sampler_from_env``),
    else 1.0; parent-based (a sampled parent, an incoming or a message's
    ``traceparent``, is followed) unless the variable names a sampler that is
    not. ``service.name``: ``config.service_name``, else the environment's
    (``OTEL_SERVICE_NAME``, or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``), else ``service_name``. The rest of
    ``OTEL_RESOURCE_ATTRIBUTES`` joins the resource either way.
    """
    from interlink.core.errors import ConfigError

    set_message_traces(config.messages)
    kind = config.exporter if exporter is not None else exporter_kind(config, os.environ)
    if kind == "none" and exporter is None:
        return _nothing
    if sdk_disabled(os.environ):
        _log.info("observability.tracing: off, as %s=true says", SDK_DISABLED_ENV)
        if exporter is not None:
            exporter.shutdown()  # it was handed over, as when a provider is already set
        return _nothing
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        from interlink.observability._lean import LeanTracerProvider
    except ImportError as exc:  # pragma: no cover - depends on what is installed
        raise ConfigError(
            "observability.tracing needs the OpenTelemetry SDK: pip install 'interlink[otel]'"
        ) from exc
    if exporter is None:
        if kind == "console":
            # One line per span (the SDK's default indents over many): stderr also carries
            # the JSON logs, which a shipper reads line by line.
            exporter = ConsoleSpanExporter(out=sys.stderr, formatter=_one_line)
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:  # pragma: no cover - depends on what is installed
                raise ConfigError(
                    "observability.tracing.exporter: otlp needs the otel extra: "
                    "pip install 'interlink[otel]'"
                ) from exc
            _otlp_protocol_warning(os.environ)
            exporter = OTLPSpanExporter(endpoint=config.endpoint)
    if enabled():
        _log.warning(
            "observability.tracing: a tracer provider is already set; keeping it (%s)",
            type(_api.get_tracer_provider()).__name__,
        )
        exporter.shutdown()
        return _nothing
    ratio, parent_based = config.sampling_ratio, True
    sampler_said = ""  # where the sampling came from, for the line below: the file, or the default
    from_env = sampler_from_env(os.environ)
    if from_env is not None:
        if "sampling_ratio" in config.model_fields_set:
            _log.info(
                "observability.tracing: sampling_ratio %s is set, so %s is not applied",
                config.sampling_ratio,
                SAMPLER_ENV,
            )
        else:
            ratio, parent_based = from_env
            sampler_said = f" (from {SAMPLER_ENV})"
    # The SDK's attributes and the environment's (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME),
    # read once. Without a name from the environment the SDK says "unknown_service[:...]".
    resource = Resource.create()
    named = str(resource.attributes.get(SERVICE_NAME, ""))
    if config.service_name is not None or not named or named.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: config.service_name or service_name}))
    provider = LeanTracerProvider(
        exporter, resource=resource, sampling_ratio=ratio, parent_based=parent_based
    )
    _api.set_tracer_provider(provider)
    # One line that says what tracing does: the environment can decide much of it (above), so
    # an operator reads it here rather than guessing why no trace arrives.
    _log.info(
        "observability.tracing: on: %s%s; %s sampling at ratio %s%s; service.name %r",
        type(exporter).__name__,
        _destination(exporter),
        "parent-based" if parent_based else "trace-id",
        ratio,
        sampler_said,
        resource.attributes.get(SERVICE_NAME),
    )

    def shutdown() -> None:
        provider.shutdown()  # flushes what is batched
        set_message_traces("continue")

    return shutdown


def _destination(exporter: SpanExporter) -> str:
    """`` to <url>`` for an exporter that sends to one (OTLP's, after its environment), else ``""``.

    Redacted as the client redacts the URLs it logs (``redact_url``: a password
    in the userinfo, secret-looking query values).
    """
    # Here, not at import: interlink.client imports this module.
    from interlink.client._redact import redact_url

    endpoint = getattr(exporter, "_endpoint", None)  # the OTLP exporters keep it there
    if not isinstance(endpoint, str) or not endpoint:
        return ""
    return f" to {redact_url(endpoint)}"


def _nothing() -> None:
    return None
