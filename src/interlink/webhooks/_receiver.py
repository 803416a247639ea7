"""``WebhookReceiver``: an ASGI app that answers 2xx only once a webhook is durably stored.

Order on each request, per source: method (405), size (413, checked on
``Content-Length`` before reading and again while reading), verification
(401 with an RFC 9457 problem body that does not say which check failed; the
reason goes to the log and the source's stats), the provider's handshake if
it is one (answered, not stored), a repeat of a webhook stored recently
(2xx, ``duplicate: true``, not stored again), then the durable publish to the
source's queue with message id ``"<source>:<webhook id>"`` and only after it
the 2xx with the receipt. A publish that fails or cannot be confirmed answers
503 with ``Retry-After``: the provider retries and nothing is lost.

It is plain ASGI, without a framework's routing, because this path is
measured against a bare verify-only endpoint (``bench/webhooks.py``): the
receiver does one dictionary lookup per request to find its source. It
mounts in Starlette or FastAPI (``routes()``, or ``app.mount``) and runs
alone under uvicorn (it speaks the lifespan protocol).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.errors import ConfigError, SignatureError
from interlink.core.listeners import Listeners
from interlink.messaging._broker import Broker, open_broker
from interlink.messaging._message import new_message_id
from interlink.observability import _tracing as tracing
from interlink.observability._logging import (
    CORRELATION_HEADER,
    adopt_trace_id,
    current_correlation_id,
    made_up_request_id,
    restore_correlation_id,
)
from interlink.webhooks._receipts import ReceiptLog
from interlink.webhooks._received import HEADER_WEBHOOK, receipt_header
from interlink.webhooks._source import WebhookSource

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "RECENT_WEBHOOKS",
    "AnsweredListener",
    "RecentWebhook",
    "SourceStats",
    "WebhookReceiver",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

AnsweredListener = Callable[[str, str, float, "Span | None"], object]
"""``listener(source, outcome, seconds, span)``: one of ``WebhookReceiver.answered``."""

_log = logging.getLogger("interlink.webhooks")

_JSON: Final = b"application/json"
_PROBLEM: Final = b"application/problem+json"
_TITLES: Final = {
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    503: "Service Unavailable",
}


RECENT_WEBHOOKS: Final = 50
"""How many of a source's latest requests ``SourceStats.recent`` keeps."""


class RecentWebhook(NamedTuple):
    """One of a source's latest requests, as ``SourceStats.recent`` keeps it.

    ``outcome`` is ``"accepted"`` (stored: ``receipt`` is its receipt),
    ``"duplicate"`` (a repeat, answered with the first ``receipt``),
    ``"rejected"`` (``reason`` is the ``SignatureError.reason``),
    ``"too_large"`` or ``"unavailable"`` (not stored, answered 503).
    ``webhook_id`` is the provider's id once the signature was verified.
    ``client`` is the sender's address, kept for what was turned away
    (``"rejected"``, ``"too_large"``): who sends forged or oversized webhooks.
    """

    at: float
    """Wall time (unix seconds) it was received."""
    outcome: str
    webhook_id: str | None = None
    receipt: str | None = None
    reason: str | None = None
    client: str | None = None


def _recent() -> deque[RecentWebhook]:
    return deque(maxlen=RECENT_WEBHOOKS)


@dataclass(slots=True)
class SourceStats:
    """What one source received since the receiver started (for health and the admin API)."""

    accepted: int = 0
    duplicates: int = 0
    handshakes: int = 0
    too_large: int = 0
    unavailable: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Rejections by ``SignatureError.reason``."""
    last_received_at: float | None = None
    """Wall time (unix seconds) of the last request, whatever its outcome."""
    last_accepted_at: float | None = None
    """Wall time of the last webhook stored."""
    recent: deque[RecentWebhook] = field(default_factory=_recent)
    """The latest ``RECENT_WEBHOOKS`` requests verified or refused, newest last."""


class WebhookReceiver:
    """Receive the ``sources``' webhooks and publish each, durably, to its queue.

    ``broker`` is a ``Broker`` (the caller owns it: it is started, not closed,
    here) or a URL (``sqlite:///./interlink.db``: opened on ``start`` and
    closed on ``close``). ``retry_after`` (seconds) is sent with a 503.
    ``trust_forwarded``: rebuild the URL of a URL-signing scheme from
    ``X-Forwarded-Proto``/``X-Forwarded-Host``, and take the sender's
    address (for a turned-away sender's log line and the SERVER span's
    ``client.address``) from the last ``X-Forwarded-For`` entry (the one the
    proxy added), only behind a proxy that sets them. ``receipts``: the
    ``ReceiptLog`` of recent webhooks (default: a day, 100,000 entries).
    ``stats`` holds a ``SourceStats`` per source name.

    Start it with ``async with receiver:`` (or ``start``/``close``), with
    ``lifespan=receiver.lifespan`` in FastAPI/Starlette, or let uvicorn send
    the lifespan events when it runs the receiver alone.
    """

    def __init__(
        self,
        sources: Sequence[WebhookSource],
        *,
        broker: Broker | str,
        clock: Clock = SYSTEM_CLOCK,
        retry_after: int = 5,
        trust_forwarded: bool = False,
        receipts: ReceiptLog | None = None,
    ) -> None:
        if isinstance(sources, WebhookSource) or not sources:
            raise ConfigError("WebhookReceiver needs a list of at least one WebhookSource")
        by_path: dict[str, WebhookSource] = {}
        names: set[str] = set()
        for source in sources:
            if not isinstance(source, WebhookSource):
                raise ConfigError(f"not a WebhookSource: {source!r}")
            if source.path in by_path:
                raise ConfigError(
                    f"webhook sources {by_path[source.path].name!r} and {source.name!r}"
                    f" share the path {source.path!r}"
                )
            if source.name in names:
                raise ConfigError(f"two webhook sources are named {source.name!r}")
            by_path[source.path] = source
            names.add(source.name)
        if not isinstance(broker, Broker | str):
            raise ConfigError(f"broker must be a Broker or a broker URL, got {broker!r}")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 1:
            raise ConfigError(
                f"retry_after must be a positive number of seconds, got {retry_after!r}"
            )
        self.sources: dict[str, WebhookSource] = {s.name: s for s in sources}
        """The sources by name."""
        self._by_path = by_path
        self._broker_url = broker if isinstance(broker, str) else None
        self._broker: Broker | None = broker if isinstance(broker, Broker) else None
        self.clock = clock
        self.retry_after = retry_after
        self.trust_forwarded = trust_forwarded
        self.receipts = receipts if receipts is not None else ReceiptLog(clock)
        self.stats: dict[str, SourceStats] = {name: SourceStats() for name in self.sources}
        self._started = False
        self.answered: Listeners[[str, str, float, Span | None]] = Listeners("webhook answer", _log)
        """Listeners of each answered request: ``answered.subscribe(listener)``.

        ``listener(source, outcome, seconds, span)``, for the request-duration
        histogram (``MetricsRecorder.watch_receiver``): the source's name, the
        outcome (``accepted``, ``duplicate``, ``handshake``, ``rejected``,
        ``too_large``, ``unavailable``, ``method_not_allowed``), the seconds
        from the request reaching the receiver to its answer sent (the
        receiver's ``clock``), and the request's SERVER span (``None``
        untraced). A request that was not answered (the sender went away, or
        the receiver raised) is not reported. A listener runs on the request's
        path, so it must be quick; one that raises is logged and skipped.
        """
        self._untraced_publish: Callable[..., Awaitable[str]] | None = None
        self._publish_url: str = ""  # the broker's URL, for its publish spans
        # Receipt ids: random per receiver, then counted (unique, and cheaper than 16 random bytes).
        self._receipt_prefix = new_message_id()[:22]
        self._receipt_seq = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------
    @property
    def broker(self) -> Broker:
        """The broker webhooks are published to (``ConfigError`` before ``start`` for a URL)."""
        if self._broker is None:
            raise ConfigError("the receiver opens its broker URL on start(): start it first")
        return self._broker

    @property
    def started(self) -> bool:
        """Between ``start`` and ``close``."""
        return self._started

    async def start(self) -> None:
        """Open (URL) or start (instance) the broker. Idempotent."""
        if self._started:
            return
        if self._broker is None:
            assert self._broker_url is not None
            self._broker = await open_broker(self._broker_url, clock=self.clock)
        else:
            await self._broker.start()
        # Observability (tracing): the broker's publish without its span, for _serve to make
        # the span itself when the SERVER span is there (None: publish traces itself).
        self._untraced_publish = tracing.untraced_publish(self._broker)
        self._publish_url = getattr(self._broker, "url", "")  # for its publish spans
        self._started = True

    async def close(self) -> None:
        """Close the broker if the receiver opened it. Idempotent."""
        if not self._started:
            return
        self._started = False
        if self._broker_url is not None and self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.close()

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """``FastAPI(lifespan=receiver.lifespan)``; chain it inside your own with ``async with``."""
        async with self:
            yield

    def routes(self) -> list[Any]:
        """One Starlette ``Route`` per source, for ``app.router.routes.extend(...)`` (needs starlette)."""
        try:
            from starlette.routing import Route
        except ImportError as exc:  # pragma: no cover - depends on what is installed
            raise ConfigError("routes() needs starlette; or mount the receiver itself") from exc
        return [
            Route(path, endpoint=self, methods=None, name=f"webhook:{source.name}")
            for path, source in self._by_path.items()
        ]

    # -- ASGI ----------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ConfigError(f"the webhook receiver serves HTTP, not {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        source = self._by_path.get(path)
        if source is None and root and path.startswith(root):
            source = self._by_path.get(path[len(root) :] or "/")
        if source is None:
            await _respond(send, *_NOT_FOUND)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        answered = self.answered
        started = self.clock.monotonic() if answered.active else 0.0
        if not tracing.enabled():
            outcome, _, status = await self._serve(source, scope, headers, receive, send, False)
            if answered.active and status is not None:
                answered.emit(source.name, outcome, self.clock.monotonic() - started, None)
            return
        # Observability (tracing): the SERVER span of this request, here rather than in a
        # coroutine of its own (this is the ingest path).
        proxied = _proxied(headers) if self.trust_forwarded else tracing.NOT_PROXIED
        span, token = tracing.start_webhook(source.name, source.path, scope, headers, proxied)
        # Observability (logs): an id RequestIdMiddleware made up gives way to the trace id.
        adopted = (
            None
            if made_up_request_id() is None
            else adopt_trace_id(span.get_span_context().trace_id)
        )
        try:
            outcome, reason, status = await self._serve(source, scope, headers, receive, send, True)
        except BaseException as exc:
            tracing.end_webhook(span, token, None, "error", None, exc)
            raise
        finally:
            if adopted is not None:
                restore_correlation_id(adopted)
        if answered.active and status is not None:
            answered.emit(source.name, outcome, self.clock.monotonic() - started, span)
        tracing.end_webhook(span, token, status, outcome, reason, None)

    async def _serve(
        self,
        source: WebhookSource,
        scope: Scope,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        traced: bool,
    ) -> tuple[str, str | None, int | None]:
        """Answer one request for ``source``: its outcome, a rejection's reason, the status.

        ``headers``: the request's, names in lower case (as ASGI gives them), decoded.
        ``traced``: inside the request's SERVER span.
        """
        stats = self.stats[source.name]
        stats.last_received_at = received_at = self.clock.wall()
        if scope["method"] != "POST":
            await _respond(send, *_NOT_POST, ((b"allow", b"POST"),))
            return "method_not_allowed", None, 405
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > source.max_body:
            return await self._refuse_too_large(source, stats, received_at, scope, headers, send)
        read = await _read_body(receive, source.max_body)
        if read is None:  # the client went away: nothing was answered, nothing stored
            return "disconnected", None, None
        body = read
        if body is _TOO_LARGE:
            return await self._refuse_too_large(source, stats, received_at, scope, headers, send)
        verifier = source.verifier
        url = self._url(scope, headers, source) if verifier.needs_url else None
        try:
            webhook = verifier.check(headers, body, url, received_at)
        except SignatureError as exc:
            stats.rejected[exc.reason] = stats.rejected.get(exc.reason, 0) + 1
            client = self._client(scope, headers)
            stats.recent.append(
                RecentWebhook(received_at, "rejected", reason=exc.reason, client=client)
            )
            _log.warning(
                "webhook rejected: source=%s reason=%s client=%s detail=%s",
                source.name,
                exc.reason,
                client,
                exc,
            )
            await _respond(send, *_UNVERIFIED)
            return "rejected", exc.reason, 401
        handshake = verifier.handshake(webhook, headers)
        if handshake is not None:
            stats.handshakes += 1
            await _respond(
                send, handshake.status, handshake.content_type.encode("latin-1"), handshake.body
            )
            return "handshake", None, handshake.status
        key = f"{source.name}:{webhook.id}"
        receipts = self.receipts
        receipt = receipts.get(key)
        if receipt is None and not receipts.try_claim(key):
            receipt = await receipts.claim(key)  # another copy is being stored: wait for it
        if receipt is not None:
            stats.duplicates += 1
            stats.recent.append(RecentWebhook(received_at, "duplicate", webhook.id, receipt))
            await _respond(send, 200, _JSON, _receipt_body(receipt, True))
            return "duplicate", None, 200
        receipt = f"{self._receipt_prefix}{next(self._receipt_seq):010x}"
        forwarded = source.forwarded
        message_headers = {name: value for name, value in headers.items() if name in forwarded}
        message_headers[HEADER_WEBHOOK] = receipt_header(
            webhook.scheme, webhook.timestamp, received_at, receipt
        )
        correlation = current_correlation_id()  # observability: the handler logs under it too
        if correlation is not None:
            message_headers[CORRELATION_HEADER] = correlation
        broker = self.broker
        # Observability (tracing): the publish span made here when it can be (start_publish),
        # which saves the traced publish's own coroutine; else publish traces itself.
        untraced = self._untraced_publish if traced else None
        span = (
            None
            if untraced is None
            else tracing.start_publish(self._publish_url, source.queue, key, message_headers)
        )
        try:
            if untraced is None or span is None:
                await broker.publish(source.queue, body, message_id=key, headers=message_headers)
            else:
                try:
                    await untraced(source.queue, body, message_id=key, headers=message_headers)
                except BaseException as exc:
                    tracing.end_publish(span, exc)
                    raise
                span.end()
        except Exception as exc:
            receipts.done(key, None)
            stats.unavailable += 1
            stats.recent.append(RecentWebhook(received_at, "unavailable", webhook.id))
            _log.error(
                "webhook not stored, answering 503: source=%s id=%s error=%s: %s",
                source.name,
                webhook.id,
                type(exc).__name__,
                exc,
            )
            status, ctype, problem = _UNAVAILABLE
            retry = str(self.retry_after).encode()
            await _respond(send, status, ctype, problem, ((b"retry-after", retry),))
            return "unavailable", None, status
        except BaseException:
            receipts.done(key, None)
            raise
        receipts.done(key, receipt)
        stats.accepted += 1
        stats.last_accepted_at = received_at
        stats.recent.append(RecentWebhook(received_at, "accepted", webhook.id, receipt))
        await _respond(send, 200, _JSON, _receipt_body(receipt, False))
        return "accepted", None, 200

    async def _refuse_too_large(
        self,
        source: WebhookSource,
        stats: SourceStats,
        received_at: float,
        scope: Scope,
        headers: dict[str, str],
        send: Send,
    ) -> tuple[str, None, int]:
        """Answer 413 to a body over ``source.max_body`` (declared or read): counted, kept."""
        stats.too_large += 1
        client = self._client(scope, headers)
        stats.recent.append(RecentWebhook(received_at, "too_large", client=client))
        await _respond(send, *_too_large(source))
        return "too_large", None, 413

    def _client(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """The sender's address: the peer's, or behind a trusted proxy the one it forwarded."""
        if self.trust_forwarded:
            forwarded = _proxied(headers)[0]
            if forwarded:
                return forwarded
        peer = scope.get("client")
        return None if not peer else str(peer[0])

    def _url(self, scope: Scope, headers: dict[str, str], source: WebhookSource) -> str:
        query = scope.get("query_string", b"")
        suffix = "?" + query.decode("latin-1") if query else ""
        if source.public_url is not None:
            return source.public_url + suffix
        scheme: str = scope.get("scheme", "http")
        host = headers.get("host")
        if self.trust_forwarded:
            _, forwarded_scheme, forwarded_host = _proxied(headers)
            scheme = forwarded_scheme or scheme
            host = forwarded_host or host
        if not host:
            server = scope.get("server") or ("localhost", None)
            host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and not path.startswith(root):
            path = root + path
        return f"{scheme}://{host}{path}{suffix}"


def _proxied(headers: dict[str, str]) -> tracing.Proxied:
    """What a proxy forwarded: the sender's address, and the scheme and host the sender used.

    The address is the last ``X-Forwarded-For`` entry (the one the proxy
    added: the ones before it are the sender's own say); the scheme and host
    are the first ``X-Forwarded-Proto``/``X-Forwarded-Host`` entries. ``None``
    for each the request does not carry. Believed only with
    ``trust_forwarded``.
    """
    client = headers.get("x-forwarded-for", "").rsplit(",", 1)[-1].strip()
    scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip()
    host = headers.get("x-forwarded-host", "").split(",")[0].strip()
    return client or None, scheme or None, host or None


_TOO_LARGE: Final = b"\0too large\0"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body; ``_TOO_LARGE`` past ``limit`` bytes; ``None`` if the client left."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else _TOO_LARGE
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            return _TOO_LARGE
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else _TOO_LARGE


def _problem(status: int, detail: str) -> tuple[int, bytes, bytes]:
    body = {"type": "about:blank", "title": _TITLES[status], "status": status, "detail": detail}
    return status, _PROBLEM, json.dumps(body).encode()


# The answers that never change, built once (a flood of bad requests must stay cheap).
_NOT_FOUND: Final = _problem(404, "no webhook source at this path")
_NOT_POST: Final = _problem(405, "webhooks are POSTed")
_UNVERIFIED: Final = _problem(401, "the webhook's signature could not be verified")
_UNAVAILABLE: Final = _problem(503, "the webhook could not be stored; retry later")


def _too_large(source: WebhookSource) -> tuple[int, bytes, bytes]:
    return _problem(413, f"the body is larger than {source.max_body} bytes")


def _receipt_body(receipt: str, duplicate: bool) -> bytes:
    return b'{"receipt_id":"%s","duplicate":%s}' % (
        receipt.encode(),
        b"true" if duplicate else b"false",
    )


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
