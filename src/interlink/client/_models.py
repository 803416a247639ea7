"""What travels through the client: ``Request``, ``Response``, ``StreamingResponse``,
and the two small protocols that plug into it, ``Transport`` and ``Auth``.

Headers are ``multidict.CIMultiDict`` (case-insensitive, repeatable; it comes
with aiohttp), so ``request.headers["authorization"]`` and
``["Authorization"]`` are the same header whichever transport runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Auth", "Headers", "Request", "Response", "Send", "StreamingResponse", "Transport"]

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


@dataclass(slots=True)
class Request:
    """One HTTP request as the transport will send it.

    ``url`` is absolute and carries no query of its own making: ``params``
    are appended by ``full_url()`` (auth strategies may add one, such as an
    API key). ``content`` is the encoded body. ``extensions`` holds per-call
    data for auth and hooks (``"attempt"``: the attempt number, from 1;
    ``"auth_refreshed"`` once a 401 led to fresh credentials).
    ``timeout`` bounds the whole attempt in seconds (connecting, sending, the
    headers and, for ``send``, the body); ``None`` means no bound. The
    transport enforces it, so an attempt needs no timer of its own.
    """

    method: str
    url: str
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def full_url(self) -> str:
        """``url`` with ``params`` appended as a query string."""
        if not self.params:
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}{urlencode(self.params)}"


def _charset(headers: Headers) -> str:
    content_type = headers.get("Content-Type", "")
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


@dataclass(slots=True)
class Response:
    """A complete response: status, headers and the whole body."""

    status: int
    headers: Headers
    content: bytes
    url: str
    request: Request

    @property
    def ok(self) -> bool:
        """True for 1xx-3xx statuses."""
        return self.status < 400

    @property
    def text(self) -> str:
        """The body decoded with the charset the upstream named (UTF-8 if none); bad bytes replaced."""
        try:
            return self.content.decode(_charset(self.headers), errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``json.JSONDecodeError`` if it is not)."""
        return json.loads(self.content)


class StreamingResponse(Protocol):
    """A response whose body is read as it arrives (``ApiClient.stream``).

    Once its body has started, nothing is retried: the call is committed.
    """

    status: int
    headers: Headers
    url: str

    def aiter_bytes(self, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The body, chunk by chunk."""
        ...

    async def read(self) -> bytes:
        """The rest of the body, at once."""
        ...

    async def aclose(self) -> None:
        """Release the connection (idempotent)."""
        ...


class Transport(Protocol):
    """How requests reach the network: aiohttp by default, httpx as an option.

    ``send`` reads the whole body; ``stream`` returns once the headers are
    in. Both bound the attempt by ``request.timeout`` (for a stream: the
    headers, and then each wait for more of the body). Both map network failures onto interlink's errors:
    ``ConnectError`` (the request never left), ``ConnectionLostError``
    (it broke after sending), ``ClientTimeoutError``. ``aclose`` closes the
    connection pool.
    """

    async def send(self, request: Request) -> Response: ...

    async def stream(self, request: Request) -> StreamingResponse: ...

    async def aclose(self) -> None: ...


Send = Callable[[Request], Awaitable[Response]]
"""Sends a request straight through the transport: no pipeline, no auth."""


class Auth(Protocol):
    """An authentication strategy.

    ``apply`` adds credentials to each attempt's request (a header, a query
    parameter, a signature); it may use ``send`` to fetch a token.
    ``refresh`` is called once when an attempt was answered 401: return True
    when fresh credentials were obtained and the request should be sent once
    more, False to let the 401 stand.
    """

    async def apply(self, request: Request, send: Send) -> None: ...

    async def refresh(self, request: Request, response: Response, send: Send) -> bool: ...
