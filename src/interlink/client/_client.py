"""``ApiClient``: one upstream's calls, each through a resilience pipeline, over a pooled transport.

Anchor: issue 3. The parts, each in its own module: ``_build`` turns the
arguments into a ``Request`` (base URL, header template, bodies), ``_call``
runs it through the pipeline (auth, classification, retries' final error),
``_defaults`` holds the default pipeline and its anchor (Microsoft's
standard HTTP resilience handler), ``_encode`` decodes and validates bodies,
``_transport`` and ``_httpx`` reach the network. This module is the surface
users see: construction with its checks, the call methods, streaming,
pagination, health and the lifecycle.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, cast

from pydantic_core import from_json

from interlink.client import _encode as enc
from interlink.client._build import RequestBuilder
from interlink.client._call import IDEMPOTENT_METHODS, CallRunner, excerpt, public_url
from interlink.client._defaults import PipelineFactory
from interlink.client._failures import client_error, relabel
from interlink.client._health import ClientHealth
from interlink.client._httpx import HttpxTransport
from interlink.client._models import Auth, Response, StreamingResponse, Transport
from interlink.client._pagination import LinkHeader, PaginationStyle, paginate
from interlink.client._quota import Quota
from interlink.client._redact import redact_url
from interlink.client._transport import AiohttpTransport
from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.errors import ClientError, ConfigError, ResponseValidationError
from interlink.observability import _tracing as tracing
from interlink.resilience import EVENTS, EventHub, Pipeline, RateLimiter, idempotent
from interlink.resilience import _validate as check

__all__ = ["ApiClient"]

_Params = Mapping[str, Any] | list[tuple[str, Any]] | None


def _open_transport(transport: object, headers: Mapping[str, str]) -> tuple[Transport, bool]:
    """The transport to use, and whether the client created it (and so closes it).

    A transport the client creates gets ``headers`` (the ones every request
    carries) as its defaults, which spares aiohttp a merge per request.
    """
    if transport is None or transport == "aiohttp":
        return AiohttpTransport(default_headers=headers), True
    if transport == "httpx":
        return HttpxTransport(), True
    if not all(callable(getattr(transport, m, None)) for m in ("send", "stream", "aclose")):
        check.fail("ApiClient", "transport", "'aiohttp', 'httpx', a Transport or None", transport)
    return cast(Transport, transport), False


class ApiClient:
    """A resilient client for one HTTP API; use it as ``async with ApiClient(...) as client:``.

    Arguments (docs/client.md gives each default's anchor):

    - ``base_url``: an absolute http(s) URL; relative paths are appended to
      it, and its query (if any) is sent with each of them.
    - ``auth`` (None): an ``Auth`` strategy. Credentials go only to URLs on
      the base URL's origin (scheme, host, port).
    - ``timeout`` (10.0 s, or a string like ``"10s"``): per attempt.
    - ``resilience`` (None = the default pipeline): a ``Pipeline`` used as
      it is, or a mapping for ``Pipeline.from_dict`` whose ``timeout``
      defaults to ``timeout``.
    - ``headers`` (None): sent with every request. ``user_agent`` (None =
      ``interlink/<version>``).
    - ``name`` (None = the base URL's host): in events, errors, health.
    - ``transport`` (None = ``"aiohttp"``): ``"aiohttp"``, ``"httpx"``, or a
      ``Transport`` of yours (which ``aclose`` leaves open).
    - ``rate_limiter`` (None): a ``RateLimiter`` put in the pipeline and
      drained whenever the upstream answers 429.
    - ``breaker_per_host`` (False): a pipeline (so a breaker) per host of
      absolute URLs instead of one for the client.
    - ``max_error_body`` (2048 bytes): how much of an error body errors quote.
    - ``clock`` (None = the system clock): for the default pipeline,
      Retry-After dates, quotas and events.

    A bad argument raises ``ConfigError`` naming it.
    """

    __slots__ = (
        "_attempt",
        "_builder",
        "_closed",
        "_factory",
        "_max_error_body",
        "_owns_transport",
        "_runner",
        "_transport",
        "base_url",
        "events",
        "name",
        "timeout",
    )

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float | str = 10.0,
        resilience: Pipeline | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: Transport | str | None = None,
        rate_limiter: RateLimiter | None = None,
        breaker_per_host: bool = False,
        user_agent: str | None = None,
        max_error_body: int = 2048,
        clock: Clock | None = None,
    ) -> None:
        owner = "ApiClient"
        if not isinstance(base_url, str):
            check.fail(owner, "base_url", "an absolute http(s) URL as a str", base_url)
        origin = enc.origin_of(base_url, "ApiClient base_url")
        self.base_url = base_url
        if name is not None and (not isinstance(name, str) or not name):
            check.fail(owner, "name", "a non-empty str or None", name)
        self.name: str = name or origin[1]
        self.timeout = check.seconds(owner, "timeout", timeout, allow_zero=False, strings=True)
        if auth is not None and not (
            callable(getattr(auth, "apply", None)) and callable(getattr(auth, "refresh", None))
        ):
            check.fail(owner, "auth", "an Auth (with apply and refresh methods) or None", auth)
        check.instance_or_none(owner, "rate_limiter", rate_limiter, RateLimiter)
        if not isinstance(breaker_per_host, bool):
            check.fail(owner, "breaker_per_host", "True or False", breaker_per_host)
        self._max_error_body = check.count(owner, "max_error_body", max_error_body, minimum=0)
        if clock is not None and not isinstance(clock, Clock):
            what = "a Clock (such as interlink.testing.FakeClock) or None"
            check.fail(owner, "clock", what, clock)
        self._factory = PipelineFactory(
            resilience,
            timeout=self.timeout,
            name=self.name,
            clock=clock,
            rate_limiter=rate_limiter,
            per_host=breaker_per_host,
        )
        self.timeout = self._factory.timeout  # a resilience mapping's "timeout" wins
        self._builder = RequestBuilder(
            base_url,
            headers=headers,
            user_agent=user_agent,
            factory=self._factory,
            per_host=breaker_per_host,
        )
        self._transport, self._owns_transport = _open_transport(
            transport, self._builder.constant_headers
        )
        self.events = EventHub(EVENTS)
        """Listeners see ``client.request`` (each attempt) and ``client.quota`` events."""
        self._runner = CallRunner(
            self._transport,
            auth=auth,
            clock=clock if clock is not None else SYSTEM_CLOCK,
            events=self.events,
            name=self.name,
            max_error_body=self._max_error_body,
            timeout=self.timeout,
        )
        self._attempt = self._runner.attempt  # bound once, not on every call
        self._closed = False

    # -- properties -------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        """The pipeline of the base URL's host (of every host, unless ``breaker_per_host``)."""
        return self._factory.first

    @property
    def transport(self) -> Transport:
        """The transport requests go through."""
        return self._transport

    @property
    def quota(self) -> Quota | None:
        """The upstream's quota from the latest response that described one, else ``None``."""
        return self._runner.quota

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    # -- calling ----------------------------------------------------------------
    def _closed_error(self, method: object, path_or_url: object) -> ClientError:
        error = client_error(
            ClientError,
            str(method),
            redact_url(str(path_or_url)),
            f"cannot be sent: ApiClient {self.name!r} is closed",
        )
        error.retryable = error.request_sent = False
        return error

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: _Params = None,
        json: Any = None,
        data: _Params = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        response_model: Any = None,
        raw: bool = False,
        idempotency_key: bool | str | None = None,
    ) -> Any:
        """Send one request through the pipeline; return the decoded body.

        The body is JSON-decoded when the response says JSON, text otherwise,
        ``None`` when empty; validated into ``response_model`` when given (any
        type pydantic takes, ``list[Item]`` too); the ``Response`` itself with
        ``raw=True``. An error status raises ``HttpStatusError``, a body that
        does not match ``ResponseValidationError``. ``idempotency_key``:
        ``True`` generates one, a str is sent as it is (``Idempotency-Key``,
        the same on every attempt), and it makes a POST or PATCH retryable.
        """
        if self._closed:
            raise self._closed_error(method, path_or_url)
        if response_model is not None:
            enc.adapter(response_model)  # a bad model fails before anything is sent
        request, pipeline, same_origin = self._builder.build(
            method, path_or_url, params, json, data, content, headers, idempotency_key
        )
        runner = self._runner
        authed = same_origin and runner.has_auth
        # CallRunner.run inlined: one coroutine less per request.
        try:
            if tracing.enabled():  # observability (tracing): the call span
                response = await runner.traced_call(self._attempt, request, pipeline, authed, None)
            elif request.method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers:
                response = await pipeline.call(self._attempt, request, pipeline, authed, None)
            else:
                with idempotent(False):
                    response = await pipeline.call(self._attempt, request, pipeline, authed, None)
        except Exception as exc:
            error = runner.failed(exc, request)
            if error is exc:
                raise
            raise error from error.__cause__
        runner.health.success()
        if type(response) is not Response:
            return response  # a Fallback's value
        if response.status >= 400:
            raise runner.status_error(response, request, retryable=False)
        if raw:
            return response
        if response_model is None:  # decode's usual case, inlined
            content = response.content
            ctype = response.headers.get("Content-Type")
            if content and ctype is not None and ctype.startswith("application/json"):
                try:
                    return from_json(content)
                except ValueError:
                    pass  # decode raises the error
        try:
            return enc.decode(response, response_model, "", 1)
        except ResponseValidationError as exc:
            relabel(exc, url=public_url(request), attempts=request.extensions["attempt"])
            raise

    def get(self, path_or_url: str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``await client.get(path, ...)`` is ``request("GET", ...)``."""
        if not kwargs:  # the usual call, without unpacking an empty mapping
            return self.request("GET", path_or_url)
        return self.request("GET", path_or_url, **kwargs)

    def post(self, path_or_url: str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``await client.post(path, ...)`` is ``request("POST", ...)``.

        Retried only when the request certainly never left, unless it has an
        ``idempotency_key=``.
        """
        return self.request("POST", path_or_url, **kwargs)

    def put(self, path_or_url: str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``await client.put(path, ...)`` is ``request("PUT", ...)``."""
        return self.request("PUT", path_or_url, **kwargs)

    def patch(self, path_or_url: str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``await client.patch(path, ...)`` is ``request("PATCH", ...)``.

        Retried only when the request certainly never left, unless it has an
        ``idempotency_key=``.
        """
        return self.request("PATCH", path_or_url, **kwargs)

    def delete(self, path_or_url: str, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``await client.delete(path, ...)`` is ``request("DELETE", ...)``."""
        return self.request("DELETE", path_or_url, **kwargs)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path_or_url: str,
        *,
        params: _Params = None,
        json: Any = None,
        data: _Params = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: bool | str | None = None,
    ) -> AsyncIterator[StreamingResponse]:
        """``async with client.stream("GET", path) as response:`` read the body as it arrives.

        The pipeline covers sending and the headers (retries, breaker,
        timeout); once the body has started nothing is retried, and a body
        error raises ``ConnectionLostError`` with ``committed = True``. An
        error status raises ``HttpStatusError`` before the block runs. The
        connection is released when the block exits.
        """
        if self._closed:
            raise self._closed_error(method, path_or_url)
        request, pipeline, same_origin = self._builder.build(
            method, path_or_url, params, json, data, content, headers, idempotency_key
        )
        _no_fallback(pipeline, "stream")
        runner = self._runner
        authed = same_origin and runner.has_auth
        opened: list[StreamingResponse] = []
        response = None
        try:
            response = await runner.run(runner.stream_attempt, request, pipeline, authed, opened)
        finally:
            # Every stream but the one handed out: an earlier attempt's, or all on failure.
            for stream in opened:
                if stream is not response:
                    await stream.aclose()
        try:
            if response.status >= 400:
                body = await excerpt(response, self._max_error_body)
                whole = Response(response.status, response.headers, body, response.url, request)
                raise runner.status_error(whole, request, retryable=False)
            yield response
        finally:
            await response.aclose()

    # -- pagination -------------------------------------------------------------
    def paginate(
        self,
        path_or_url: str,
        *,
        style: PaginationStyle | None = None,
        params: _Params = None,
        response_model: Any = None,
        max_pages: int | None = None,
    ) -> AsyncIterator[Any]:
        """Every item of a paged listing: ``async for item in client.paginate("/items"):``.

        ``style`` (default ``LinkHeader()``): ``LinkHeader``, ``Cursor`` or
        ``PageNumber``. Each page is one GET through the pipeline, fetched when
        the previous page's items are used up; each item is validated into
        ``response_model`` when given. ``max_pages`` (None: all) stops early.
        """
        url, _, _, _ = self._builder.target(path_or_url)
        query = enc.encode_params(params) if params is not None else []
        style = LinkHeader() if style is None else style
        pages = paginate(self._fetch_page, url, query, style, max_pages=max_pages)
        if response_model is None:
            return pages
        return enc.validated_items(
            pages, enc.adapter(response_model), response_model, redact_url(url)
        )

    async def _fetch_page(self, url: str, params: list[tuple[str, str]]) -> Response:
        response = await self.request("GET", url, params=params, raw=True)
        if type(response) is not Response:  # only a fallback answers with something else
            raise ConfigError(
                "ApiClient.paginate cannot run through a pipeline with a fallback: the "
                f"fallback answered {type(response).__name__}, not a page; use a client "
                "without one for listings"
            )
        return response

    # -- health and lifecycle ---------------------------------------------------
    def health(self) -> ClientHealth:
        """The breaker's state and the recent error rate (see ``ClientHealth``)."""
        breaker = self._factory.first.breaker
        tracker = self._runner.health
        return ClientHealth(
            name=self.name,
            breaker_state=None if breaker is None else breaker.state.value,
            error_rate=tracker.error_rate,
            requests=tracker.requests,
            failures=tracker.failures,
            breakers={
                host: p.breaker.state.value
                for host, p in self._builder.pipelines.items()
                if p.breaker is not None
            },
        )

    async def __aenter__(self) -> Self:
        if self._closed:
            raise ClientError(f"ApiClient {self.name!r} is closed: create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport if the client created it (idempotent); later calls raise ``ClientError``."""
        if self._closed:
            return
        self._closed = True
        if self._owns_transport:
            await self._transport.aclose()

    def __repr__(self) -> str:
        return f"ApiClient(name={self.name!r}, base_url={redact_url(self.base_url)!r})"


def _no_fallback(pipeline: Pipeline, what: str) -> None:
    """A fallback's value can stand in for a body, not for a stream: say so."""
    if pipeline.fallback is not None:
        raise ConfigError(
            f"ApiClient.{what} cannot run through a pipeline with a fallback: a fallback "
            "value is not a stream; use a client without one for streams"
        )
