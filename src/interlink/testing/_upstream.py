"""``FakeUpstream``: a real HTTP server on loopback that a test scripts route by route.

Anchor: issue 3, "A fake upstream for tests". Hand-written because the tools
that exist fake the wrong layer: ``respx`` and ``aioresponses`` replace the
client, so a connection reset, a truncated body, slow headers or connection
pooling never happen; ``pytest-httpserver`` runs a threaded werkzeug server that
cannot reset a connection or stall between headers and body. This module keeps
aiohttp's low-level server (``web.Server``: HTTP parsing, keep-alive) and adds
only what a test needs on top: scripted replies, fault injection, a record of
every request and a count of TCP connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, cast

from aiohttp import web
from multidict import CIMultiDict, MultiDict

from interlink.core.errors import ConfigError
from interlink.testing._reply import Received, Reply, send_reply

__all__ = ["FakeUpstream", "Route"]

_HOST = "127.0.0.1"  # loopback only: a test server must never be reachable from elsewhere
_METHOD = re.compile(r"[A-Za-z]+|\*")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

ReplyFunction = Callable[[Received], "Reply | int | Awaitable[Reply | int]"]
ScriptedReply = Reply | int | ReplyFunction


def _path_pattern(path: str) -> tuple[re.Pattern[str], int]:
    """Compile ``/items/{id}`` into a regex; each ``{name}`` matches one non-empty segment."""
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise ConfigError(f"path must be a str starting with '/' and without a query, got {path!r}")
    parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
    names = parts[1::2]
    if len(set(names)) != len(names):
        raise ConfigError(f"path {path!r} uses a {{name}} twice")
    literals = parts[0::2]
    if any("{" in literal or "}" in literal for literal in literals):
        raise ConfigError(f"path {path!r} has a malformed {{name}}: names are Python identifiers")
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex), len(names)


def _method(method: str) -> str:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ConfigError(f"method must be an HTTP method such as 'GET', or '*', got {method!r}")
    return method.upper()


def _as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Reply(status=value)
    raise ConfigError(f"a reply must be a Reply, an int status or a callable, got {value!r}")


class Route:
    """The script of one ``method`` + ``path``, returned by ``FakeUpstream.route``.

    ``reply(*replies)`` sets the answers, used in order; the last one repeats
    once the others are used up. A route that was never given a reply answers
    ``200`` with an empty body. ``calls`` counts the requests it answered and
    ``requests`` holds them.
    """

    __slots__ = ("_pattern", "_replies", "_requests", "method", "params", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method = _method(method)
        self.path = path
        self._pattern, self.params = _path_pattern(path)
        self._replies: list[Reply | ReplyFunction] = []
        self._requests: list[Received] = []

    def reply(self, *replies: ScriptedReply) -> Self:
        """Replace the script: each reply is a ``Reply``, an int status, or ``fn(received)``.

        ``fn`` returns a ``Reply`` or an int, or an awaitable of one, for
        answers that depend on the request (pages, tokens). Returns the route.
        """
        if not replies:
            raise ConfigError(f"{self.method} {self.path}: reply() needs at least one reply")
        script: list[Reply | ReplyFunction] = [
            reply if callable(reply) else _as_reply(reply) for reply in replies
        ]
        self._replies = script
        return self

    @property
    def calls(self) -> int:
        """How many requests this route has answered."""
        return len(self._requests)

    @property
    def requests(self) -> list[Received]:
        """The requests this route answered, oldest first (a copy)."""
        return list(self._requests)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route answers ``method path``, else ``None``."""
        if self.method not in ("*", method):
            return None
        found = self._pattern.fullmatch(path)
        return found.groupdict() if found else None

    async def _next_reply(self, received: Received) -> Reply:
        self._requests.append(received)
        if not self._replies:
            return Reply()
        scripted = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        if not callable(scripted):
            return scripted
        result = scripted(received)
        if isinstance(result, Awaitable):
            result = await result
        return _as_reply(result)

    def __repr__(self) -> str:
        return f"Route({self.method} {self.path}, calls={self.calls}, replies={len(self._replies)})"


class _Connection(web.RequestHandler):
    """aiohttp's per-connection protocol, counted by the upstream that accepted it."""

    def __init__(self, manager: web.Server, upstream: FakeUpstream, number: int) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop())
        self.number = number
        self.upstream = upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.upstream._connection_changed(self.number, cast(asyncio.Transport, transport))
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.upstream._connection_changed(self.number, None)
        super().connection_lost(exc)


class FakeUpstream:
    """A scripted HTTP/1.1 server on 127.0.0.1 for tests; see docs/testing.md.

    ``port=0`` (the default) picks a free port on the first ``start``; a
    later ``start`` after ``stop`` listens on the same port again, so a
    client keeps its URL across an outage. ``errors`` collects exceptions
    raised by reply functions (answered as 500); ``async with`` raises the
    first one on exit so a broken script never passes silently.
    """

    def __init__(self, *, port: int = 0) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int from 0 to 65535, got {port!r}")
        self._port = port
        self._server: asyncio.Server | None = None
        self._routes: list[Route] = []
        self._requests: list[Received] = []
        self._open: dict[int, asyncio.Transport] = {}
        self._accepted = 0
        self._handling: set[asyncio.Task[Any]] = set()
        self._watchers: list[asyncio.Future[None]] = []
        self.errors: list[Exception] = []

    # -- lifecycle ------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc is None and self.errors:
            raise self.errors[0]

    async def start(self) -> None:
        """Listen on 127.0.0.1; ``RuntimeError`` if already started."""
        if self._server is not None:
            raise RuntimeError("FakeUpstream is already started")
        web_server = web.Server(self._handle, handler_cancellation=True)

        def accept() -> _Connection:
            self._accepted += 1
            return _Connection(web_server, self, self._accepted)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(accept, _HOST, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection at once, even one stuck in a delay."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self._open.values()):
            transport.abort()
        handling = list(self._handling)
        for task in handling:
            task.cancel()
        await asyncio.gather(*handling, return_exceptions=True)
        await self._wait_until(lambda: not self._open, 5.0, lambda: "connections did not close")
        await server.wait_closed()

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        self._require_started()
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{_HOST}:{self.port}"

    def _require_started(self) -> None:
        if self._server is None:
            raise RuntimeError("FakeUpstream is not started: use `async with FakeUpstream()`")

    # -- scripting ------------------------------------------------------------
    def route(self, method: str, path: str) -> Route:
        """The route for ``method`` (``"*"`` for any) and ``path`` (``{name}`` for a segment).

        Asking again for the same method and path returns the same route. A
        request goes to the most specific match: an exact method before
        ``"*"``, fewer ``{name}`` segments first, then the order of creation.
        """
        wanted = Route(method, path)
        for existing in self._routes:
            if (existing.method, existing.path) == (wanted.method, wanted.path):
                return existing
        self._routes.append(wanted)
        return wanted

    def _find(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        best: tuple[tuple[bool, int, int], Route, dict[str, str]] | None = None
        for order, route in enumerate(self._routes):
            params = route.match(method, path)
            if params is None:
                continue
            rank = (route.method == "*", route.params, order)
            if best is None or rank < best[0]:
                best = (rank, route, params)
        return (None, {}) if best is None else (best[1], best[2])

    # -- what arrived ---------------------------------------------------------
    @property
    def requests(self) -> list[Received]:
        """Every request received, oldest first (a copy), scripted or not."""
        return list(self._requests)

    def received(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """The requests with this method and path (a ``{name}`` template matches too)."""
        wanted = "*" if method is None else _method(method)
        pattern = None if path is None else _path_pattern(path)[0]
        return [
            r
            for r in self._requests
            if wanted in ("*", r.method) and (pattern is None or pattern.fullmatch(r.path))
        ]

    @property
    def connections(self) -> int:
        """TCP connections accepted since the first start."""
        return self._accepted

    @property
    def open_connections(self) -> int:
        """TCP connections open right now."""
        return len(self._open)

    # timeout= rather than asyncio.timeout(): on expiry the error must say what did arrive.
    async def wait_for_requests(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> list[Received]:
        """Wait until ``n`` matching requests have arrived; return every match.

        ``timeout`` is in seconds; on timeout it raises ``AssertionError``
        listing what did arrive, so a test never sleeps and never hangs.
        """
        wanted = f"{n} request(s)" + (
            f" {method or '*'} {path or ''}".rstrip() if method or path else ""
        )

        def describe() -> str:
            seen = "\n".join(f"  {r.method} {r.raw_path}" for r in self._requests) or "  nothing"
            return f"FakeUpstream expected {wanted} within {timeout} s; received:\n{seen}"

        await self._wait_until(lambda: len(self.received(method, path)) >= n, timeout, describe)
        return self.received(method, path)

    async def wait_for_open_connections(
        self,
        count: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until exactly ``count`` connections are open (``AssertionError`` after ``timeout`` s)."""
        await self._wait_until(
            lambda: len(self._open) == count,
            timeout,
            lambda: (
                f"FakeUpstream expected {count} open connection(s), {len(self._open)} still open"
            ),
        )

    async def _wait_until(
        self, condition: Callable[[], bool], seconds: float, describe: Callable[[], str]
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(describe())
            changed = loop.create_future()
            self._watchers.append(changed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed, remaining)

    def _connection_changed(self, number: int, transport: asyncio.Transport | None) -> None:
        if transport is None:
            self._open.pop(number, None)
        else:
            self._open[number] = transport
        self._notify()

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for changed in watchers:
            if not changed.done():
                changed.set_result(None)

    # -- answering ------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handling.add(task)
        try:
            return await self._answer(request)
        finally:
            self._handling.discard(task)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        route, params = self._find(request.method, request.path)
        received = Received(
            method=request.method,
            path=request.path,
            query=MultiDict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
            at=time.monotonic(),
            path_params=params,
            raw_path=request.raw_path,
            connection=cast(_Connection, request.protocol).number,
        )
        self._requests.append(received)
        self._notify()
        if route is None:
            scripted = [f"{r.method} {r.path}" for r in self._routes]
            message = f"FakeUpstream has no route for {request.method} {request.path}"
            return web.json_response(
                {
                    "error": message,
                    "method": request.method,
                    "path": request.path,
                    "routes": scripted,
                },
                status=404,
            )
        try:
            reply = await route._next_reply(received)
        except Exception as exc:
            self.errors.append(exc)
            return web.json_response({"error": f"the reply function raised {exc!r}"}, status=500)
        return await send_reply(request, reply)
