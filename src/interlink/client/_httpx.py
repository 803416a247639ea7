"""``HttpxTransport``: the client's transport over ``httpx.AsyncClient``, for callers who use httpx.

aiohttp is the default (``_transport``: 2.8x httpx's requests per second
sequentially, 12x at 64 concurrent tasks here, docs/performance.md); this
transport is for callers who already hold an ``httpx.AsyncClient`` (its
mounts, proxies, limits) or who mock with respx. httpx is imported when the
transport is created, so it stays an optional extra: without it the
constructor raises a ``ConfigError`` naming ``interlink[httpx]``. Failures
map onto the same errors as aiohttp's (see ``_transport``); the same test
suite runs on both.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from interlink.client._failures import timed_out, transport_error, unusable
from interlink.client._models import Headers, Request, Response, StreamingResponse
from interlink.core.errors import (
    ClientError,
    ClientTimeoutError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
)
from interlink.resilience import _validate as check

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpxTransport"]


def _import_httpx() -> Any:
    try:
        return importlib.import_module("httpx")
    except ImportError:
        raise ConfigError(
            "HttpxTransport needs httpx: install interlink[httpx] (httpx and sniffio)"
        ) from None


def _httpx_error(
    httpx: Any, cause: BaseException, request: Request, url: str, *, committed: bool = False
) -> ClientError:
    """Map an httpx (or socket) failure onto interlink's errors."""
    fail = transport_error
    if isinstance(cause, httpx.ConnectTimeout):
        return fail(ConnectError, request, url, "could not connect in time", cause)
    if isinstance(cause, httpx.ConnectError | httpx.ProxyError | ConnectionRefusedError):
        return fail(ConnectError, request, url, "could not connect", cause)
    if isinstance(cause, httpx.PoolTimeout):
        what = "timed out waiting for a free connection"
        return fail(ClientTimeoutError, request, url, what, cause, request_sent=False)
    if isinstance(cause, httpx.TimeoutException | TimeoutError):
        return fail(
            ClientTimeoutError, request, url, timed_out(request), cause, committed=committed
        )
    if isinstance(cause, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.LocalProtocolError):
        return fail(
            ConnectError, request, url, "cannot be sent to this URL", cause, retryable=False
        )
    if isinstance(cause, httpx.TooManyRedirects):
        return fail(
            ClientError, request, url, "was redirected too many times", cause, retryable=False
        )
    if isinstance(cause, httpx.DecodingError):
        what = "sent a truncated or undecodable body"
        return fail(ConnectionLostError, request, url, what, cause, committed=committed)
    return fail(
        ConnectionLostError, request, url, "lost the connection", cause, committed=committed
    )


class HttpxTransport:
    """A transport over ``httpx.AsyncClient``, for callers who already use httpx.

    ``client``: an ``httpx.AsyncClient`` of yours (its timeouts, redirects,
    limits and mounts apply, and ``aclose`` leaves it open: it is yours to
    close), or ``None`` to create one like ``AiohttpTransport``'s session:
    ``limit`` (100) connections, ``connect_timeout`` (30.0 s) and no other
    httpx timeout, redirects followed, no cookies kept. httpx is imported
    here; without it this raises a ``ConfigError`` naming ``interlink[httpx]``.
    """

    __slots__ = ("_client", "_closed", "_httpx", "_owned")

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        limit: int = 100,
        connect_timeout: float = 30.0,
    ) -> None:
        self._httpx = _import_httpx()
        owner = "HttpxTransport"
        if client is not None and not isinstance(client, self._httpx.AsyncClient):
            check.fail(owner, "client", "an httpx.AsyncClient or None", client)
        limit = check.count(owner, "limit", limit)
        connect = check.seconds(owner, "connect_timeout", connect_timeout, allow_zero=False)
        self._owned = client is None
        if client is None:
            hx = self._httpx
            client = hx.AsyncClient(
                limits=hx.Limits(max_connections=limit, max_keepalive_connections=limit),
                timeout=hx.Timeout(None, connect=connect),
                follow_redirects=True,
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                trust_env=False,
            )
        self._client: httpx.AsyncClient = client
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    async def _open(self, request: Request, *, stream: bool) -> tuple[httpx.Response, str]:
        if self._closed:
            raise unusable(request, "the transport is closed")
        url = request.full_url()
        hx = self._httpx
        seconds = request.timeout
        try:
            built = self._client.build_request(
                request.method, url, headers=list(request.headers.items()), content=request.content
            )
            if seconds is None:
                resp = await self._client.send(built, stream=stream)
            else:
                if stream:  # after the headers, each wait for more body is bounded
                    built.extensions["timeout"] = {**built.extensions["timeout"], "read": seconds}
                # httpx bounds each step, not the whole attempt: asyncio does that.
                async with asyncio.timeout(seconds):
                    resp = await self._client.send(built, stream=stream)
        except (hx.HTTPError, hx.InvalidURL, OSError) as exc:
            error = _httpx_error(hx, exc, request, url)
            raise error from error.__cause__
        return resp, str(resp.url) if resp.history else url

    async def send(self, request: Request) -> Response:
        resp, url = await self._open(request, stream=False)
        return Response(resp.status_code, _headers(resp), resp.content, url, request)

    async def stream(self, request: Request) -> StreamingResponse:
        resp, url = await self._open(request, stream=True)
        return _HttpxStream(self._httpx, resp, request, url)

    async def aclose(self) -> None:
        """Close the httpx client if this transport created it (idempotent)."""
        self._closed = True
        if self._owned:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpxTransport(owned={self._owned})"


def _headers(resp: httpx.Response) -> Headers:
    return CIMultiDictProxy(CIMultiDict(resp.headers.multi_items()))


class _HttpxStream:
    """A streamed httpx response."""

    __slots__ = ("_httpx", "_request", "_resp", "headers", "status", "url")

    def __init__(self, hx: Any, resp: httpx.Response, request: Request, url: str) -> None:
        self._httpx = hx
        self._resp = resp
        self._request = request
        self.status: int = resp.status_code
        self.headers: Headers = _headers(resp)
        self.url = url

    async def aiter_bytes(self, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``chunk_size`` bytes, as they arrive."""
        hx = self._httpx
        try:
            async for chunk in self._resp.aiter_bytes():
                for start in range(0, len(chunk), chunk_size):
                    yield chunk[start : start + chunk_size]
        except (hx.HTTPError, OSError) as exc:
            await self._resp.aclose()
            error = _httpx_error(hx, exc, self._request, self.url, committed=True)
            raise error from error.__cause__

    async def read(self) -> bytes:
        """The rest of the body."""
        hx = self._httpx
        try:
            return await self._resp.aread()
        except (hx.HTTPError, OSError) as exc:
            await self._resp.aclose()
            error = _httpx_error(hx, exc, self._request, self.url, committed=True)
            raise error from error.__cause__

    async def aclose(self) -> None:
        """Release the connection (idempotent)."""
        await self._resp.aclose()
