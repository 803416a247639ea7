"""The client's default transport, ``AiohttpTransport``, and the error mapping transports share.

Both implement ``interlink.client.Transport``: ``send`` returns a whole
``Response``, ``stream`` returns once the headers are in, ``aclose`` closes
the pool. Measured on loopback (docs/performance.md), aiohttp serves 2.8x
httpx's requests per second sequentially and 12x at 64 concurrent tasks, so
it is the default; httpx is there for callers who already hold an
``httpx.AsyncClient`` or mock with respx.

Every network failure is mapped onto interlink's errors, the same way on both:

- ``ConnectError`` (``request_sent`` False): refused, DNS, TLS, connect
  timeout, proxy; also an URL the library cannot send to (not retryable);
- ``ConnectionLostError``: reset, server disconnected, truncated or
  undecodable body, malformed response: the request may have been processed;
- ``ClientTimeoutError``: the attempt outlived ``request.timeout`` (the
  client's per-attempt timeout, enforced here: aiohttp keeps a timer per
  request anyway, so a second one in the pipeline would be paid twice), or
  the library's own pool timeout;
- ``ClientError`` (not retryable): too many redirects.

A body error on a streamed response also says ``committed = True``: once a
body has started, nobody retries. The original exception is the
``__cause__``, except for the library errors whose text embeds the full URL
(which may hold a credential): their text is reduced to what is safe.

A response is always released: a whole-body ``send`` reads under
``async with`` and a cancelled or failed read closes the connection rather
than returning it to the pool half-read.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict

from interlink.client._encode import merge_headers
from interlink.client._failures import timed_out, transport_error, unusable
from interlink.client._models import Headers, Request, Response, StreamingResponse
from interlink.core.errors import (
    ClientError,
    ClientTimeoutError,
    ConnectError,
    ConnectionLostError,
)
from interlink.resilience import _validate as check

__all__ = ["AiohttpTransport", "HttpxTransport"]

_AIOHTTP_ERRORS = (aiohttp.ClientError, OSError, EOFError)
_running_loop = asyncio.get_running_loop


# Their text or request_info carries the full URL, which may hold a credential.
_LEAKY = (aiohttp.ClientResponseError, aiohttp.InvalidURL)


def _aiohttp_error(
    cause: BaseException, request: Request, url: str, *, committed: bool = False
) -> ClientError:
    """Map an aiohttp (or socket) failure onto interlink's errors."""
    fail = functools.partial(transport_error, hide_cause=isinstance(cause, _LEAKY))
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return fail(ConnectError, request, url, "could not resolve the host", cause)
    if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        return fail(ConnectError, request, url, "could not connect", cause)
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return fail(ConnectError, request, url, "could not connect in time", cause)
    if isinstance(cause, ConnectionRefusedError):
        return fail(ConnectError, request, url, "could not connect", cause)
    if isinstance(cause, TimeoutError):
        return fail(
            ClientTimeoutError, request, url, timed_out(request), cause, committed=committed
        )
    if isinstance(cause, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return fail(
            ConnectError, request, url, "cannot be sent to this URL", cause, retryable=False
        )
    if isinstance(cause, aiohttp.TooManyRedirects):
        return fail(
            ClientError, request, url, "was redirected too many times", cause, retryable=False
        )
    if isinstance(cause, aiohttp.ClientResponseError):
        what = "answered with a malformed response"
        return fail(ConnectionLostError, request, url, what, cause, committed=committed)
    if isinstance(cause, aiohttp.ClientPayloadError | EOFError):
        what = "sent a truncated or undecodable body"
        return fail(ConnectionLostError, request, url, what, cause, committed=committed)
    return fail(
        ConnectionLostError, request, url, "lost the connection", cause, committed=committed
    )


class AiohttpTransport:
    """The default transport: one pooled ``aiohttp.ClientSession`` with keep-alive.

    Arguments:

    - ``limit`` (100, aiohttp's default): connections open at once, all hosts.
    - ``limit_per_host`` (0 = no limit of its own; ``limit`` still holds):
      an ``ApiClient`` usually talks to one host, so a per-host cap would be
      a second, easily forgotten ``limit``.
    - ``keepalive_timeout`` (4.0 s; aiohttp's own default is 15 s): how long
      an idle connection stays in the pool. Shorter than the 5 s after which
      uvicorn and Node.js servers close idle connections, so that the client
      drops an idle connection before the server does: otherwise a request
      written just as the server closes it fails with a reset (httpx keeps
      idle connections 5 s).
    - ``connect_timeout`` (30.0 s): bound on opening one socket. Deliberately
      generous: the pipeline's ``Timeout`` bounds each attempt; this only
      stops a connect from outliving a pipeline without one.
    - ``ssl`` (True): verify certificates; an ``ssl.SSLContext`` to
      customise, False to skip verification (tests only).
    - ``default_headers`` (None): headers sent with every request; a
      request's own header of the same name replaces one. ``ApiClient``
      passes its constant headers (``User-Agent``, ``headers=``) to the
      transport it creates, and still puts them in each ``Request``: a request
      whose headers are exactly these is handed to aiohttp without headers of
      its own, which skips aiohttp's per-request merge (measurable under
      concurrency). Such a transport therefore also sends these headers when
      an ``Auth`` removes one from a request.

    The session is created lazily, inside the running event loop, on the
    first request, and belongs to that loop. Redirects are followed (up to
    10); responses are decompressed; cookies are not kept (an API client is
    stateless); no aiohttp-level total or read timeout applies, and aiohttp's
    own silent re-send of a request whose reused connection broke is off:
    retrying belongs to the pipeline, where it is counted and observed.
    """

    __slots__ = (
        "_closed",
        "_connect_timeout",
        "_defaults",
        "_keepalive",
        "_last_seconds",
        "_last_timeout",
        "_limit",
        "_loop",
        "_per_host",
        "_session",
        "_ssl",
        "_timeouts",
    )

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int = 0,
        keepalive_timeout: float = 4.0,
        connect_timeout: float = 30.0,
        ssl: Any = True,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        owner = "AiohttpTransport"
        self._limit = check.count(owner, "limit", limit)
        self._per_host = check.count(owner, "limit_per_host", limit_per_host, minimum=0)
        self._keepalive = check.seconds(
            owner, "keepalive_timeout", keepalive_timeout, allow_zero=True
        )
        self._connect_timeout = check.seconds(
            owner, "connect_timeout", connect_timeout, allow_zero=False
        )
        self._ssl = ssl
        self._defaults: CIMultiDict[str] | None = None
        if default_headers is not None:
            self._defaults = CIMultiDict()
            merge_headers(self._defaults, default_headers, "AiohttpTransport default_headers")
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[float | None, bool], aiohttp.ClientTimeout] = {}
        # send's last timeout, reused while request.timeout stays the same.
        self._last_seconds: float | None = None
        self._last_timeout = aiohttp.ClientTimeout()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    def _open(self, request: Request) -> aiohttp.ClientSession:
        if self._closed:
            raise unusable(request, "the transport is closed")
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._per_host,
            keepalive_timeout=self._keepalive,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            headers=self._defaults,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            raise_for_status=False,
            trust_env=False,
        )
        # aiohttp >= 3.10 silently re-sends an idempotent request once when a
        # reused connection breaks. The pipeline's Retry owns retrying: a
        # hidden extra attempt would be invisible to the breaker, the counts
        # and the events, and httpx does not do it. (Private, as aiohttp's own
        # test_utils sets it; absent in older versions.)
        if hasattr(self._session, "_retry_connection"):  # pragma: no branch
            self._session._retry_connection = False
        self._loop = asyncio.get_running_loop()
        return self._session

    def _session_for(self, request: Request) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            return self._open(request)
        if self._loop is not _running_loop():
            raise unusable(
                request,
                "this AiohttpTransport belongs to the event loop it first ran in;"
                " create the client inside the event loop that uses it",
            )
        return session

    def _timeout(self, seconds: float | None, streaming: bool) -> aiohttp.ClientTimeout:
        """aiohttp's timer for ``request.timeout``, one object per distinct value.

        ``send``: ``total`` (the whole attempt, body included). ``stream``:
        ``sock_read`` (the headers, then each wait for more body), so a long
        download is not cut while data keeps arriving.
        """
        key = (seconds, streaming)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= 64:  # deadlines make many values: keep few
                self._timeouts.clear()
            connect = self._connect_timeout
            if seconds is not None:
                connect = min(connect, seconds)
            if streaming:
                timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=seconds)
            else:
                timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=connect)
            self._timeouts[key] = timeout
        return timeout

    async def send(self, request: Request) -> Response:
        session = self._session
        # The event loop is checked only when aiohttp fails: asking for the
        # running loop costs a getpid() system call per request on Python 3.11.
        if session is None or session.closed:
            session = self._session_for(request)  # opens it, or raises
        url = request.url if not request.params else request.full_url()
        headers = request.headers
        seconds = request.timeout
        if seconds is not None and seconds == self._last_seconds:
            timeout = self._last_timeout  # the usual case: the same value as last time
        else:
            timeout = self._timeout(seconds, False)
            self._last_seconds, self._last_timeout = seconds, timeout
        try:
            # Awaited, not entered with ``async with``: the context manager's
            # __aenter__ would be one more frame re-entered on every resume.
            resp = await session.request(
                request.method,
                url,
                headers=None if headers == self._defaults else headers,
                data=request.content,
                timeout=timeout,
            )
            try:
                content = await resp.read()
            finally:  # what ``async with`` does: a half-read connection is closed, not pooled
                resp.release()
                await resp.wait_for_close()
            return Response(
                resp.status,
                resp.headers,
                content,
                str(resp.url) if resp.history else url,
                request,
            )
        except _AIOHTTP_ERRORS as exc:
            error = _aiohttp_error(exc, request, url)
            raise error from error.__cause__
        except RuntimeError:  # aiohttp's own complaint when driven from another event loop
            self._session_for(request)  # raises the clear error if that is what happened
            raise

    async def stream(self, request: Request) -> StreamingResponse:
        session = self._session_for(request)
        url = request.full_url()
        try:
            resp = await session.request(
                request.method,
                url,
                headers=None if request.headers == self._defaults else request.headers,
                data=request.content,
                timeout=self._timeout(request.timeout, True),
            )
        except _AIOHTTP_ERRORS as exc:
            error = _aiohttp_error(exc, request, url)
            raise error from error.__cause__
        return _AiohttpStream(resp, request, str(resp.url) if resp.history else url)

    async def aclose(self) -> None:
        """Close the pool (idempotent); later requests raise a ``ClientError``."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def __repr__(self) -> str:
        return f"AiohttpTransport(limit={self._limit}, limit_per_host={self._per_host})"


class _AiohttpStream:
    """A streamed aiohttp response: status and headers in, body read on demand."""

    __slots__ = ("_request", "_resp", "headers", "status", "url")

    def __init__(self, resp: aiohttp.ClientResponse, request: Request, url: str) -> None:
        self._resp = resp
        self._request = request
        self.status: int = resp.status
        self.headers: Headers = resp.headers
        self.url = url

    async def aiter_bytes(self, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``chunk_size`` bytes, as they arrive."""
        try:
            async for chunk in self._resp.content.iter_chunked(chunk_size):
                yield chunk
        except _AIOHTTP_ERRORS as exc:
            self._resp.close()
            error = _aiohttp_error(exc, self._request, self.url, committed=True)
            raise error from error.__cause__

    async def read(self) -> bytes:
        """The rest of the body."""
        try:
            return await self._resp.read()
        except _AIOHTTP_ERRORS as exc:
            error = _aiohttp_error(exc, self._request, self.url, committed=True)
            raise error from error.__cause__

    async def aclose(self) -> None:
        """Release the connection: back to the pool if the body was read, else closed."""
        resp = self._resp
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


# Defined in its own module (httpx is optional); importable from here too.
from interlink.client._httpx import HttpxTransport  # noqa: E402
