"""Structured logs: structlog over the stdlib, correlation ids, and one redaction processor.

``configure_logging`` installs one handler on the root logger whose
formatter is structlog's ``ProcessorFormatter``: the library's existing
``logging.getLogger(...).warning(...)`` lines and any ``structlog`` logger
come out the same way, as JSON lines (one object per line) or, on a
terminal, rendered for people. Every line carries ``timestamp``, ``level``,
``logger`` and ``event``, plus, when they are known:

- ``correlation_id``: the request's id inside an HTTP request (the incoming
  ``X-Request-ID``, else the trace id of its ``traceparent`` or of the active
  span, else a new one; set by ``RequestIdMiddleware``, and for a webhook the
  receiver's SERVER span's trace id replaces a new one), or the id the
  message was published with inside a message handler
  (``x-interlink-correlation-id`` header, else the trace id of its
  ``traceparent``, else the message id);
- ``message_id`` inside a message handler;
- ``trace_id`` and ``span_id`` when an OpenTelemetry span is active.

The ids live in ``contextvars``, so they follow ``await`` and stay apart
between concurrent requests and handlers. ``ApiClient`` sends the bound
correlation id as ``X-Request-ID`` on its calls, and the webhook receiver
stores it in the message it publishes, so one webhook's lines share an id
from the request to the handler to the upstream.

``REDACTOR`` is the one redaction processor, the last step before rendering:
values of keys named ``Authorization``, ``Proxy-Authorization``,
``Cookie``, ``Set-Cookie``, ``X-Api-Key``, or containing ``token``,
``secret``, ``password``, ``signature`` or ``api_key`` (any case, ``-`` or
``_``), plus configured names, are replaced by ``[REDACTED]`` in mappings at
any depth and in header lists; in free text (messages, error texts,
tracebacks) every registered secret value (a ``Service`` registers those of
its config), ``Bearer``/``Basic`` credentials and ``name=value`` pairs with a
secret-looking name are replaced too.

This module imports structlog only inside ``configure_logging``: the
library's hot modules import the context helpers from here at no cost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import IO, Any, Final

__all__ = [
    "CORRELATION_HEADER",
    "REDACTED",
    "REDACTOR",
    "REQUEST_ID_HEADER",
    "Redactor",
    "RequestIdMiddleware",
    "adopt_trace_id",
    "bind_message",
    "bound",
    "config_secrets",
    "configure_logging",
    "current_correlation_id",
    "current_message_id",
    "current_span_ids",
    "made_up_request_id",
    "restore_correlation_id",
    "unbind_message",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
"""The HTTP header read on requests, echoed on responses and sent on outbound calls."""
CORRELATION_HEADER: Final = "x-interlink-correlation-id"
"""The message header carrying the correlation id from the publisher to the handler."""
REDACTED: Final = "[REDACTED]"

_CORRELATION_ID: ContextVar[str | None] = ContextVar("interlink_correlation_id", default=None)
_MESSAGE_ID: ContextVar[str | None] = ContextVar("interlink_message_id", default=None)

current_correlation_id = _CORRELATION_ID.get
"""The correlation id bound in this context (request or message), or ``None``."""
# The id RequestIdMiddleware made up for this request (it brought no usable X-Request-ID and
# no traceparent), in a one-element list the middleware echoes from: the webhook receiver
# swaps it for the trace id of the SERVER span it starts (adopt_trace_id).
_MADE_UP_ID: ContextVar[list[str] | None] = ContextVar("interlink_made_up_id", default=None)
made_up_request_id = _MADE_UP_ID.get
"""``[id]`` when ``RequestIdMiddleware`` made this request's correlation id up, else ``None``."""
current_message_id = _MESSAGE_ID.get
"""The id of the message being handled in this context, or ``None``."""

try:  # the OTel API is optional: without it there is no trace id to read
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on what is installed
    _otel_trace = None  # type: ignore[assignment]


def current_span_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the active, valid OTel span, else ``None``.

    Log lines carry any valid one, sampled or not (the metrics' exemplars take
    only sampled ones: ``_tracing.sampled_ids``).
    """
    if _otel_trace is None:  # pragma: no cover - depends on what is installed
        return None
    context = _otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# -- binding ids ---------------------------------------------------------------------------
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def _usable_id(value: str | None) -> str | None:
    """An incoming id, if it is safe to log and echo (short, no spaces or control chars)."""
    if value is None:
        return None
    value = value.strip()
    return value if _ID_PATTERN.fullmatch(value) else None


_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def _trace_id_of(traceparent: bytes) -> str | None:
    """The trace id of a W3C ``traceparent`` (the trace this request's span continues)."""
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None or match[1] == b"0" * 32:
        return None
    return match[1].decode()


def _new_id() -> str:
    ids = current_span_ids()
    return ids[0] if ids is not None else os.urandom(16).hex()


@contextlib.contextmanager
def bound(*, correlation_id: str | None = None, message_id: str | None = None) -> Iterator[None]:
    """``with bound(correlation_id=...):`` every log line inside carries the ids given."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    if correlation_id is not None:
        tokens.append((_CORRELATION_ID, _CORRELATION_ID.set(correlation_id)))
    if message_id is not None:
        tokens.append((_MESSAGE_ID, _MESSAGE_ID.set(message_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


MessageTokens = tuple[Token[str | None], Token[str | None]]


def bind_message(message_id: str, headers: Mapping[str, str]) -> MessageTokens:
    """Bind a message's id and correlation id while it is handled.

    The correlation id is the message's ``x-interlink-correlation-id`` header,
    else the trace id of its ``traceparent``, else the message id. Returns
    what ``unbind_message`` needs; the worker calls the pair around each
    delivery.
    """
    correlation = _usable_id(headers.get(CORRELATION_HEADER))
    if correlation is None:
        traceparent = headers.get("traceparent")
        if traceparent is not None:
            correlation = _trace_id_of(traceparent.encode("latin-1", "replace"))
    return _MESSAGE_ID.set(message_id), _CORRELATION_ID.set(correlation or message_id)


def adopt_trace_id(trace_id: int) -> Token[str | None] | None:
    """Make ``trace_id`` this request's correlation id, if ``RequestIdMiddleware`` made one up.

    For the webhook receiver, which starts the request's SERVER span after
    the middleware bound an id: a request that brought neither a usable
    ``X-Request-ID`` nor a ``traceparent`` then logs, echoes and passes on
    its trace id, as one that brought a ``traceparent`` does. ``None`` (nothing
    changed) outside such a request, for an invalid ``trace_id``, or when
    something bound an id of its own since; else the token for
    ``restore_correlation_id``.
    """
    holder = _MADE_UP_ID.get()
    if holder is None or not trace_id or _CORRELATION_ID.get() != holder[0]:
        return None
    holder[0] = rid = format(trace_id, "032x")
    return _CORRELATION_ID.set(rid)


def restore_correlation_id(token: Token[str | None]) -> None:
    """Undo ``adopt_trace_id`` (the response keeps echoing the trace id)."""
    _CORRELATION_ID.reset(token)


def unbind_message(tokens: MessageTokens) -> None:
    """Undo ``bind_message``."""
    _MESSAGE_ID.reset(tokens[0])
    _CORRELATION_ID.reset(tokens[1])


# -- the ASGI middleware -------------------------------------------------------------------
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]
_HEADER_KEY: Final = b"x-request-id"


class RequestIdMiddleware:
    """ASGI middleware: bind each HTTP request's correlation id and echo it as ``X-Request-ID``.

    The id is the request's ``X-Request-ID`` when it is usable (1 to 128
    characters of ``A-Za-z0-9._:/+=@-``), else the trace id (of its
    ``traceparent``, or of the active span), else a new random one, which the
    app may swap for the trace id of a span it starts (``adopt_trace_id``: the
    webhook receiver does); the response echoes the id in force when it
    starts. Plain ASGI (no per-request objects) because the webhook ingest
    path is measured.
    """

    __slots__ = ("app",)

    def __init__(self, app: _ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = parent = None
        for name, value in scope["headers"]:
            if name == _HEADER_KEY:
                rid = _usable_id(value.decode("latin-1"))
            elif name == b"traceparent":
                parent = value
        made_up: list[str] | None = None
        if rid is None:
            rid = _trace_id_of(parent) if parent is not None else None
            if rid is None:
                rid = _new_id()
                made_up = [rid]  # the app may swap it for its span's trace id (adopt_trace_id)

        async def send_with_id(message: _Message) -> None:
            if message["type"] == "http.response.start":
                echo = rid if made_up is None else made_up[0]
                message["headers"] = [
                    *message.get("headers", ()),
                    (_HEADER_KEY, echo.encode("latin-1")),
                ]
            await send(message)

        token = _CORRELATION_ID.set(rid)
        made_up_token = None if made_up is None else _MADE_UP_ID.set(made_up)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if made_up_token is not None:
                _MADE_UP_ID.reset(made_up_token)
            _CORRELATION_ID.reset(token)


# -- redaction -----------------------------------------------------------------------------
ALWAYS_REDACTED: Final = frozenset(
    {"authorization", "proxy_authorization", "cookie", "set_cookie", "x_api_key"}
)
"""Key and header names (lower case, ``-`` as ``_``) whose values are always redacted."""
SECRET_WORDS: Final = ("token", "secret", "password", "passwd", "signature", "api_key", "apikey")
"""A key or header name containing one of these (lower case, ``-`` as ``_``) is redacted."""

_SCHEME_CREDENTIALS = re.compile(r"\b(Bearer|Basic|Digest|bearer)(\s+)[A-Za-z0-9._~+/=-]+")


class Redactor:
    """The redaction processor (see the module docstring); ``REDACTOR`` is the one in use.

    ``redact(value)`` gives a copy of any value with secrets replaced;
    called as a structlog processor it redacts a whole event dict.
    """

    def __init__(self, names: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._secrets: set[str] = set()
        self._key_cache: dict[str, bool] = {}
        self._secret_pattern: re.Pattern[str] | None = None
        self._pair_pattern = self._pairs()
        self.add_names(names)
        self.add_secrets(secrets)

    # -- configuration --------------------------------------------------------------
    def add_names(self, names: Iterable[str]) -> None:
        """Redact the values of these keys and headers too (case-insensitive)."""
        new = {_norm(name) for name in names if name} - self._names
        if new:
            with self._lock:
                self._names |= new
                self._key_cache = {}
                self._pair_pattern = self._pairs()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Replace these values wherever they appear in text (4 characters or more)."""
        new = {value for value in values if isinstance(value, str) and len(value) >= 4}
        new -= self._secrets
        if new:
            with self._lock:
                self._secrets |= new
                alternatives = sorted(self._secrets, key=len, reverse=True)
                self._secret_pattern = re.compile("|".join(map(re.escape, alternatives)))

    def _pairs(self) -> re.Pattern[str]:
        words = [*SECRET_WORDS, *ALWAYS_REDACTED, *self._names]
        names = "|".join(re.escape(w).replace("_", "[-_]?") for w in sorted(set(words)))
        return re.compile(
            rf"(?i)([\w.-]*(?:{names})[\w.-]*[\"']?\s*[:=]\s*[\"']?)"
            r"(?!\[REDACTED\])((?:(?:bearer|basic|digest)\s+)?[^\s\"'&,;})\[\]]+)"
        )

    # -- deciding -------------------------------------------------------------------
    def is_secret_key(self, name: str) -> bool:
        """True when the value of a key or header called ``name`` is redacted."""
        known = self._key_cache.get(name)
        if known is None:
            key = _norm(name)
            known = (
                key in ALWAYS_REDACTED
                or key in self._names
                or any(word in key for word in SECRET_WORDS)
            )
            if len(self._key_cache) < 4096:
                self._key_cache[name] = known
        return known

    def scrub(self, text: str) -> str:
        """``text`` with registered secrets, credentials and ``secret=value`` pairs replaced."""
        pattern = self._secret_pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _SCHEME_CREDENTIALS.sub(rf"\1\2{REDACTED}", text)
        return self._pair_pattern.sub(rf"\1{REDACTED}", text)

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with every secret replaced by ``[REDACTED]``."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, bytes | bytearray):
            return self.scrub(bytes(value).decode("utf-8", errors="replace"))
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if self.is_secret_key(str(k)) else self.redact(v)
                for k, v in _items(value)
            }
        if isinstance(value, list | tuple | set | frozenset):
            if _is_header_list(value):
                return [
                    (name, REDACTED if self.is_secret_key(name) else self.redact(item))
                    for name, item in ((_text(n), v) for n, v in value)
                ]
            return [self.redact(item) for item in value]
        return self.scrub(str(value))  # exceptions, secrets, anything else: as text

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """The structlog processor: redact every entry of ``event_dict`` (not ``_``-private ones)."""
        for key, value in event_dict.items():
            if key[:1] == "_":
                continue
            if self.is_secret_key(key):
                event_dict[key] = REDACTED
            elif key != "level" and key != "timestamp":
                event_dict[key] = self.redact(value)
        return event_dict


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _items(mapping: Mapping[Any, Any]) -> Iterable[tuple[Any, Any]]:
    items = getattr(mapping, "items", None)
    return items() if items is not None else ((k, mapping[k]) for k in mapping)


def _is_header_list(value: Iterable[Any]) -> bool:
    """A list of ``(name, value)`` pairs whose names are text (HTTP or ASGI headers)."""
    seen = False
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str | bytes)):
            return False
        seen = True
    return seen


REDACTOR = Redactor()
"""The one redaction processor every log line goes through."""

_SECRET_VALUE_KEYS = frozenset({"key", "secrets", "client_secret", "admin_token"})


def config_secrets(config: Any) -> list[str]:
    """Every secret value in a service config (a pydantic model or plain data), for ``REDACTOR``.

    Values of secret-looking keys (``token``, ``password``, webhook
    ``secrets``, an api ``key``, headers like ``X-Api-Key``...), the base64
    part of ``whsec_`` secrets, and passwords in URLs; not ``*_url`` values.
    """
    data = config.model_dump() if hasattr(config, "model_dump") else config
    found: list[str] = []

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from strings(item)

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                name = _norm(str(key))
                if name.endswith("url"):
                    if isinstance(item, str):
                        found.extend(_url_password(item))
                elif name in _SECRET_VALUE_KEYS or REDACTOR.is_secret_key(name):
                    found.extend(strings(item))
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(data)
    extra = [s.split("_", 1)[1] for s in found if s.startswith("whsec_")]
    return found + extra


def _url_password(url: str) -> list[str]:
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if not (sep and at):
        return []
    user, colon, password = userinfo.partition(":")
    return [password] if colon and password else [user] if user else []


# -- configuration -------------------------------------------------------------------------
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _add_ids(logger: object, method_name: str, event_dict: Any) -> Any:
    correlation = _CORRELATION_ID.get()
    spans = current_span_ids()
    if correlation is None and spans is not None:
        correlation = spans[0]
    if correlation is not None:
        event_dict.setdefault("correlation_id", correlation)
    message = _MESSAGE_ID.get()
    if message is not None:
        event_dict.setdefault("message_id", message)
    if spans is not None:
        event_dict.setdefault("trace_id", spans[0])
        event_dict.setdefault("span_id", spans[1])
    return event_dict


class _InterlinkHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (so a second call replaces it)."""


def configure_logging(
    config: Any = None,
    *,
    level: str | None = None,
    format: str | None = None,
    redact: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log line (stdlib and structlog) through structlog to ``stream`` (stderr).

    ``config``: a ``LoggingConfig`` (``observability.logging``) or ``None``;
    ``level``, ``format`` (``auto``, ``json``, ``console``) and ``redact``
    given here win over it (``--log-level``). ``auto`` renders for people
    when ``stream`` is a terminal, JSON lines otherwise. Calling it again
    replaces the handler it installed; returns the handler.
    """
    import structlog

    level = (level or getattr(config, "level", None) or "info").lower()
    fmt = format or getattr(config, "format", None) or "auto"
    REDACTOR.add_names([*getattr(config, "redact", ()), *redact])
    out = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "console" if _isatty(out) else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    elif fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_ids,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            REDACTOR,  # last before rendering: sees the message, the fields and the traceback
            renderer,
        ],
    )
    handler = _InterlinkHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _InterlinkHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    return handler


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
