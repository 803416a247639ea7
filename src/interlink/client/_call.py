"""One call through the pipeline: attempts, auth, classification, and the error the caller sees.

``CallRunner`` is the engine behind ``ApiClient``: ``run`` sends a prepared
``Request`` through a ``Pipeline``, one attempt being "apply the auth, send,
classify". Only answers that mean "trying again may help" (408, 429, 500,
502, 503, 504) raise inside the pipeline, so the retry and the breaker see
them; every other answer comes back through it, and ``ApiClient`` raises an
error status after it, so a 404 is never counted as an outage.

POST and PATCH run under ``idempotent(False)`` (retried only when the request
certainly never left) unless they carry an ``Idempotency-Key``. When the
retry gives up, the caller gets the last ``ClientError`` itself with its
``attempts`` set, not a ``RetryExhaustedError``; a pipeline timeout becomes a
``ClientTimeoutError``. After a 401, ``Auth.refresh`` runs once per call.

Kept lean, because ``make bench`` holds the client to 50 us over raw aiohttp:
no closure per call, events built only while someone listens, quota headers
looked up before being parsed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from interlink.client._failures import client_error, relabel, status_error
from interlink.client._health import HealthTracker, is_upstream_failure
from interlink.client._models import Auth, Request, Response, Send, StreamingResponse, Transport
from interlink.client._quota import _NAMES as _QUOTA_NAMES
from interlink.client._quota import Quota, parse_quota
from interlink.client._redact import redact_url
from interlink.core.clock import Clock
from interlink.core.errors import (
    AttemptTimeoutError,
    ClientError,
    ClientTimeoutError,
    DeadlineExceededError,
    RetryExhaustedError,
)
from interlink.observability import _tracing as tracing
from interlink.resilience import (
    EventHub,
    Pipeline,
    ResilienceEvent,
    current_deadline,
    idempotent,
    parse_retry_after,
)
from interlink.resilience._timeout import _DEADLINE

__all__ = ["IDEMPOTENT_METHODS", "RETRYABLE_STATUSES", "CallRunner", "public_url"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses that raise inside the pipeline: the retry may retry them, the breaker counts them."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods retried after any retryable failure; others only with an ``Idempotency-Key``."""

_QUOTA_HEADERS = tuple(_QUOTA_NAMES)
_current_deadline = _DEADLINE.get  # current_deadline() without its Python frame
_REFRESHED = "auth_refreshed"
_MAX_DRAIN = 3600.0  # seconds: a rate limiter is never held longer, whatever Retry-After says
Attempt = Callable[[Request, Pipeline, bool, Any], Awaitable[Any]]


def public_url(request: Request) -> str:
    """The URL of ``request`` as errors and events show it: its query included, secrets redacted."""
    return redact_url(request.full_url())


def _copy(template: Request) -> Request:
    return Request(
        template.method,
        template.url,
        template.headers.copy(),
        list(template.params),
        template.content,
        dict(template.extensions),
        template.timeout,
    )


async def excerpt(stream: StreamingResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes (plus one, to tell a cut) of a streamed error body; then close it."""
    taken = b""
    with contextlib.suppress(ClientError):
        async for chunk in stream.aiter_bytes():
            taken += chunk
            if len(taken) > limit:
                break
    await stream.aclose()
    return taken


class CallRunner:
    """Runs calls for one ``ApiClient``; holds what every call shares.

    ``quota`` is the latest ``Quota`` seen; ``health`` counts outcomes.
    """

    __slots__ = (
        "_auth",
        "_clock",
        "_max_error_body",
        "_name",
        "_send",
        "_stream",
        "_timeout",
        "events",
        "has_auth",
        "health",
        "quota",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        auth: Auth | None,
        clock: Clock,
        events: EventHub,
        name: str,
        max_error_body: int,
        timeout: float,
    ) -> None:
        self._timeout = timeout
        self._send: Send = transport.send
        self._stream = transport.stream
        self._auth = auth
        self.has_auth = auth is not None
        """Whether the client has an auth strategy (an attribute: read on every call)."""
        self._clock = clock
        self._name = name
        self._max_error_body = max_error_body
        self.events = events
        self.health = HealthTracker()
        self.quota: Quota | None = None

    async def run(
        self, attempt: Attempt, request: Request, pipeline: Pipeline, authed: bool, extra: Any
    ) -> Any:
        """Run ``attempt`` for ``request`` through ``pipeline``; ``authed``: apply the auth.

        ``ApiClient.request`` inlines this (one coroutine less on the hot path).
        """
        try:
            if tracing.enabled():  # observability (tracing): the call span
                result = await self.traced_call(attempt, request, pipeline, authed, extra)
            elif request.method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers:
                result = await pipeline.call(attempt, request, pipeline, authed, extra)
            else:
                with idempotent(False):
                    result = await pipeline.call(attempt, request, pipeline, authed, extra)
        except Exception as exc:
            error = self.failed(exc, request)
            if error is exc:
                raise
            raise error from error.__cause__
        self.health.success()
        return result

    async def traced_call(
        self, attempt: Attempt, request: Request, pipeline: Pipeline, authed: bool, extra: Any
    ) -> Any:
        """``pipeline.call`` inside the call's INTERNAL span (only while tracing)."""
        with tracing.client_call_span(self._name, request.method) as span:
            if request.method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers:
                result = await pipeline.call(attempt, request, pipeline, authed, extra)
            else:
                with idempotent(False):
                    result = await pipeline.call(attempt, request, pipeline, authed, extra)
            status = getattr(result, "status", None)
            if isinstance(status, int):
                tracing.call_status(span, status)
            return result

    def failed(self, exc: Exception, request: Request) -> Exception:
        """Count a failed call and return what its caller should see (see ``_final_error``)."""
        error = self._final_error(exc, request)
        if is_upstream_failure(error):
            self.health.failure()
        else:
            self.health.success()
        return error

    def _final_error(self, exc: Exception, request: Request) -> Exception:
        """What the caller sees: the last ``ClientError`` itself, timeouts as ``ClientTimeoutError``."""
        cause = exc.__cause__
        if isinstance(exc, RetryExhaustedError) and isinstance(cause, Exception):
            exc = cause
        attempts = max(request.extensions["attempt"], 1)
        if isinstance(exc, ClientError):
            relabel(exc, attempts=attempts)
            return exc
        if isinstance(exc, AttemptTimeoutError | DeadlineExceededError):
            error = client_error(
                ClientTimeoutError,
                request.method,
                public_url(request),
                "timed out",
                f": {exc}",
                attempts=attempts,
            )
            error.__cause__ = exc
            return error
        return exc

    def _bound(self, request: Request) -> None:
        """Give ``request`` this attempt's time: the client's timeout, cut to a running deadline."""
        deadline = current_deadline()
        if deadline is None:
            request.timeout = self._timeout
            return
        left = deadline - self._clock.monotonic()
        if left <= 0:
            raise DeadlineExceededError(
                f"{request.method} {public_url(request)}: the deadline passed before the attempt"
            )
        request.timeout = left if left < self._timeout else self._timeout

    async def attempt(
        self, request: Request, pipeline: Pipeline, authed: bool, _: None
    ) -> Response:
        extensions = request.extensions
        attempt = extensions["attempt"] = extensions["attempt"] + 1
        if _current_deadline() is None:  # _bound's common case, inlined
            request.timeout = self._timeout
        else:
            self._bound(request)
        observed = self.events.active
        started = self._clock.monotonic() if observed else 0.0
        # observability (tracing): the CLIENT span of this attempt
        span = self._span(request, pipeline, attempt) if tracing.enabled() else None
        try:
            if authed:
                response: Response = await self._authed(request, self._send, None)
            else:
                response = await self._send(request)
        except BaseException as exc:
            self._attempt_failed(request, exc, authed, observed, started, attempt, span)
            raise
        if span is not None:
            tracing.end_attempt(span, response.status, None)
        # _observe inlined: this runs for every request.
        headers = response.headers
        for name in _QUOTA_HEADERS:
            if name in headers:
                self._observe_quota(headers)
                break
        if observed:
            self._emit_request(request, response.status, started, attempt, None)
        if response.status in RETRYABLE_STATUSES:
            raise await self._retryable(response, request, pipeline)
        return response

    async def stream_attempt(
        self, request: Request, pipeline: Pipeline, authed: bool, opened: list[StreamingResponse]
    ) -> StreamingResponse:
        extensions = request.extensions
        attempt = extensions["attempt"] = extensions["attempt"] + 1
        self._bound(request)
        observed = self.events.active
        started = self._clock.monotonic() if observed else 0.0
        # observability (tracing): the CLIENT span of this attempt (until the headers)
        span = self._span(request, pipeline, attempt) if tracing.enabled() else None
        try:
            if authed:
                response: StreamingResponse = await self._authed(request, self._stream, opened)
            else:
                response = await self._stream(request)
                opened.append(response)
        except BaseException as exc:
            self._attempt_failed(request, exc, authed, observed, started, attempt, span)
            raise
        if span is not None:
            tracing.end_attempt(span, response.status, None)
        if self._observe(response, request, observed, started, attempt):
            raise await self._retryable(response, request, pipeline)
        return response

    def _attempt_failed(
        self,
        request: Request,
        exc: BaseException,
        authed: bool,
        observed: bool,
        started: float,
        attempt: int,
        span: Any,
    ) -> None:
        """An attempt raised ``exc``: a client error gets the public URL and is reported; the
        attempt's span (if any) ends with it. The caller re-raises."""
        if isinstance(exc, ClientError):
            if not authed:
                relabel(exc, url=public_url(request))
            if observed:
                self._emit_request(request, None, started, attempt, exc)
        if span is not None:
            tracing.end_attempt(span, None, exc)

    def _span(self, request: Request, pipeline: Pipeline, attempt: int) -> Any:
        breaker = pipeline.breaker
        return tracing.start_attempt(
            self._name,
            request.method,
            request.url,
            public_url(request),
            attempt,
            None if breaker is None else breaker.state.value,
            request.headers,
        )

    async def _authed(
        self, template: Request, send: Callable[[Request], Awaitable[Any]], opened: Any
    ) -> Any:
        """Apply the auth and send; after a 401, refresh once per call and send again."""
        auth = self._auth
        assert auth is not None  # only called with an auth
        response = None
        while True:  # at most twice: the second pass follows a successful refresh
            if response is not None and opened is not None:
                await response.aclose()
            request = _copy(template)
            await auth.apply(request, self._send)
            try:
                response = await send(request)
            except ClientError as exc:
                relabel(exc, url=public_url(template))
                raise
            if opened is not None:
                opened.append(response)
            if response.status != 401 or template.extensions.get(_REFRESHED):
                break
            template.extensions[_REFRESHED] = True
            if not await auth.refresh(
                request,
                response if opened is None else _as_response(response, request),
                self._send,
            ):
                break
        return response

    def _observe(
        self,
        response: Response | StreamingResponse,
        request: Request,
        observed: bool,
        started: float,
        attempt: int,
    ) -> bool:
        """Record the quota and the event of an answered attempt; True when it should raise."""
        headers = response.headers
        for name in _QUOTA_HEADERS:
            if name in headers:
                self._observe_quota(headers)
                break
        status = response.status
        if observed:
            self._emit_request(request, status, started, attempt, None)
        return status in RETRYABLE_STATUSES

    async def _retryable(
        self, response: Response | StreamingResponse, request: Request, pipeline: Pipeline
    ) -> ClientError:
        """The error for a retryable status (the rate limiter drained on a 429)."""
        if not isinstance(response, Response):
            body = await excerpt(response, self._max_error_body)
            response = Response(response.status, response.headers, body, response.url, request)
        error = self.status_error(response, request, retryable=True)
        limiter = pipeline.rate_limiter
        if response.status == 429 and limiter is not None:
            await limiter.drain(min(error.retry_after or 0.0, _MAX_DRAIN))
        return error

    def status_error(self, response: Response, request: Request, *, retryable: bool) -> ClientError:
        """The ``HttpStatusError`` for ``response``, with its Retry-After read on the client's clock."""
        value = response.headers.get("Retry-After")
        return status_error(
            response,
            method=request.method,
            url=public_url(request),
            retryable=retryable,
            retry_after=parse_retry_after(value, now=self._clock.wall()) if value else None,
            max_body=self._max_error_body,
            attempts=max(request.extensions["attempt"], 1),
        )

    # -- observing --------------------------------------------------------------
    def _observe_quota(self, headers: Any) -> None:
        quota = parse_quota(headers, now=self._clock.wall())
        if quota is None:
            return
        self.quota = quota
        if self.events.active:
            self._emit(
                "client.quota",
                limit=quota.limit,
                remaining=quota.remaining,
                reset=quota.reset,
                policy=quota.policy,
            )

    def _emit_request(
        self,
        request: Request,
        status: int | None,
        started: float,
        attempt: int,
        error: BaseException | None,
    ) -> None:
        self._emit(
            "client.request",
            method=request.method,
            url=public_url(request),
            status=status,
            duration=self._clock.monotonic() - started,
            attempt=attempt,
            error=None if error is None else type(error).__name__,
        )

    def _emit(self, kind: str, **attributes: Any) -> None:
        self.events.emit(ResilienceEvent(kind, self._name, self._clock.monotonic(), attributes))


def _as_response(stream: StreamingResponse, request: Request) -> Response:
    """A body-less ``Response`` view of a streamed 401, for ``Auth.refresh``."""
    return Response(stream.status, stream.headers, b"", stream.url, request)
