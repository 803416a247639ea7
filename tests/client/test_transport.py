"""The transports on their own, against real sockets, and their mapping of library errors.

Every behaviour runs on both ``AiohttpTransport`` and ``HttpxTransport``. The
tables at the end feed library exceptions straight to the mapping functions:
their subject is our own mapping, not the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict

from interlink.client import (
    AiohttpTransport,
    ClientError,
    ClientTimeoutError,
    ConnectError,
    ConnectionLostError,
    HttpxTransport,
)
from interlink.client._httpx import _httpx_error
from interlink.client._models import Request, Transport
from interlink.client._transport import _aiohttp_error
from interlink.core import ConfigError
from interlink.testing import FakeUpstream, Reply
from tests.client.client_support import TRANSPORTS, closed_port


@pytest.fixture(params=TRANSPORTS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made: Transport = AiohttpTransport() if request.param == "aiohttp" else HttpxTransport()
    yield made
    await made.aclose()


def get(url: str, **kwargs: Any) -> Request:
    return Request("GET", url, CIMultiDict({"User-Agent": "test"}), **kwargs)


# -- what a send returns ---------------------------------------------------------------
async def test_send_returns_status_headers_body_and_url(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("POST", "/echo").reply(
        lambda r: Reply(status=201, body=r.body, headers={"X-Id": "7"})
    )
    request = Request("POST", f"{upstream.url}/echo", CIMultiDict(), [("q", "a b")], b"ping")
    response = await transport.send(request)
    assert (response.status, response.content, response.headers["x-id"]) == (201, b"ping", "7")
    assert response.url == f"{upstream.url}/echo?q=a+b"
    assert response.request is request
    assert upstream.requests[0].query["q"] == "a b"


async def test_redirects_are_followed_to_the_final_url(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/old").reply(Reply(status=301, headers={"Location": "/new"}))
    upstream.route("GET", "/new").reply(Reply(body="here"))
    response = await transport.send(get(f"{upstream.url}/old"))
    assert (response.status, response.text, response.url) == (200, "here", f"{upstream.url}/new")


async def test_connections_are_kept_alive_and_reused(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/ok").reply(Reply(body="ok"))
    for _ in range(3):
        await transport.send(get(f"{upstream.url}/ok"))
    async with contextlib.aclosing(_chunks(transport, f"{upstream.url}/ok")) as chunks:
        assert [chunk async for chunk in chunks] == [b"ok"]
    await transport.send(get(f"{upstream.url}/ok"))
    assert upstream.connections == 1


async def _chunks(transport: Transport, url: str) -> AsyncIterator[bytes]:
    stream = await transport.stream(get(url))
    try:
        async for chunk in stream.aiter_bytes():
            yield chunk
    finally:
        await stream.aclose()


async def test_closing_a_stream_early_closes_its_connection(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/slow").reply(Reply(body=b"late", body_delay=30.0))
    stream = await transport.stream(get(f"{upstream.url}/slow"))
    assert stream.status == 200
    assert stream.url == f"{upstream.url}/slow"
    await stream.aclose()
    await stream.aclose()  # idempotent
    await upstream.wait_for_open_connections(0)


# -- failures, mapped -------------------------------------------------------------------
async def test_a_refused_connection_is_a_connect_error_never_sent(transport: Transport) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x?api_key=k"
    with pytest.raises(
        ConnectError, match=r"GET http://127\.0\.0\.1:\d+/x\?api_key=REDACTED could not connect: "
    ) as caught:
        await transport.send(get(url))
    assert caught.value.request_sent is False
    assert caught.value.retryable is True
    assert caught.value.__cause__ is not None


async def test_a_reset_is_a_lost_connection(upstream: FakeUpstream, transport: Transport) -> None:
    upstream.route("GET", "/reset").reply(Reply(reset=True))
    with pytest.raises(ConnectionLostError, match="lost the connection") as caught:
        await transport.send(get(f"{upstream.url}/reset"))
    assert caught.value.request_sent is True


async def test_a_truncated_streamed_body_is_a_committed_lost_connection(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/cut").reply(Reply(body=b"x" * 100, truncate=10))
    stream = await transport.stream(get(f"{upstream.url}/cut"))
    with pytest.raises(ConnectionLostError) as caught:
        await stream.read()
    assert caught.value.__dict__["committed"] is True
    await stream.aclose()


async def test_a_body_cut_while_iterating_is_a_committed_lost_connection(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/cut").reply(Reply(chunks=[b"one", b"two", b"three"], truncate=4))
    stream = await transport.stream(get(f"{upstream.url}/cut"))
    received: list[bytes] = []
    with pytest.raises(ConnectionLostError) as caught:
        await _drain(stream, received)
    assert b"onetwothree".startswith(b"".join(received))
    assert caught.value.__dict__["committed"] is True
    await stream.aclose()
    await upstream.wait_for_open_connections(0)


async def _drain(stream: Any, into: list[bytes]) -> None:
    async for chunk in stream.aiter_bytes():
        into.append(chunk)


async def test_too_many_redirects_is_not_retryable(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/loop").reply(Reply(status=302, headers={"Location": "/loop"}))
    with pytest.raises(ClientError, match="was redirected too many times") as caught:
        await transport.send(get(f"{upstream.url}/loop"))
    assert caught.value.retryable is False
    assert type(caught.value) is ClientError


@pytest.mark.parametrize("url", ["ftp://files.example/x", "http://[::1/", "http:///no-host"])
async def test_a_url_the_library_cannot_send_to_is_a_connect_error_not_retried(
    transport: Transport, url: str
) -> None:
    with pytest.raises(ConnectError, match="cannot be sent to this URL") as caught:
        await transport.send(get(url))
    assert caught.value.retryable is False
    assert caught.value.request_sent is False


async def test_a_malformed_response_is_a_lost_connection(transport: Transport) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionLostError, match=r"malformed response|lost the connection"):
            await transport.send(get(f"http://127.0.0.1:{port}/?token=t"))
    finally:
        server.close()
        await server.wait_closed()


async def test_a_closed_transport_refuses_to_send(
    upstream: FakeUpstream, transport: Transport
) -> None:
    upstream.route("GET", "/ok").reply(200)
    await transport.send(get(f"{upstream.url}/ok"))
    await transport.aclose()
    await transport.aclose()
    for send in (transport.send, transport.stream):
        with pytest.raises(ClientError, match="cannot be sent: the transport is closed") as caught:
            await send(get(f"{upstream.url}/ok"))
        assert caught.value.retryable is False
        assert caught.value.request_sent is False


# -- aiohttp specifics ------------------------------------------------------------------
def test_an_aiohttp_transport_belongs_to_its_event_loop() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    transport = AiohttpTransport()
    upstream = FakeUpstream()
    try:
        first.run_until_complete(upstream.start())
        upstream.route("GET", "/ok").reply(200)
        first.run_until_complete(transport.send(get(f"{upstream.url}/ok")))
        with pytest.raises(ClientError, match="belongs to the event loop it first ran in"):
            second.run_until_complete(transport.send(get(f"{upstream.url}/ok")))
    finally:
        first.run_until_complete(transport.aclose())
        first.run_until_complete(upstream.stop())
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "AiohttpTransport limit must be an integer >= 1"),
        ({"limit_per_host": -1}, "AiohttpTransport limit_per_host must be an integer >= 0"),
        ({"keepalive_timeout": -1}, "AiohttpTransport keepalive_timeout must be"),
        ({"connect_timeout": 0}, "AiohttpTransport connect_timeout must be"),
    ],
)
def test_bad_aiohttp_transport_arguments_raise_config_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AiohttpTransport(**kwargs)


def test_transport_reprs() -> None:
    assert repr(AiohttpTransport(limit=10)) == "AiohttpTransport(limit=10, limit_per_host=0)"
    assert repr(HttpxTransport()) == "HttpxTransport(owned=True)"


# -- httpx specifics --------------------------------------------------------------------
async def test_an_httpx_client_of_yours_is_used_and_left_open(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/slow").reply(Reply(delay=2.0))
    async with httpx.AsyncClient(timeout=0.05) as mine:
        transport = HttpxTransport(mine)
        with pytest.raises(ClientTimeoutError, match="timed out: ReadTimeout"):
            await transport.send(get(f"{upstream.url}/slow"))
        await transport.aclose()
        assert not mine.is_closed
        assert transport.closed
        assert repr(transport) == "HttpxTransport(owned=False)"


async def test_waiting_for_a_pooled_connection_too_long_is_a_timeout_never_sent(
    upstream: FakeUpstream,
) -> None:
    gate = asyncio.Event()

    async def held(received: Any) -> Reply:
        await gate.wait()
        return Reply(body="done")

    upstream.route("GET", "/held").reply(held)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(5.0, pool=0.05)) as mine:
        transport = HttpxTransport(mine)
        first = asyncio.create_task(transport.send(get(f"{upstream.url}/held")))
        await upstream.wait_for_requests(1)
        with pytest.raises(
            ClientTimeoutError, match="timed out waiting for a free connection"
        ) as caught:
            await transport.send(get(f"{upstream.url}/held"))
        assert caught.value.request_sent is False
        gate.set()
        assert (await first).content == b"done"


def test_httpx_missing_is_a_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ConfigError, match=r"install interlink\[httpx\]"):
        HttpxTransport()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": "httpx"}, "HttpxTransport client must be an httpx.AsyncClient or None"),
        ({"limit": 0}, "HttpxTransport limit must be"),
        ({"connect_timeout": -1}, "HttpxTransport connect_timeout must be"),
    ],
)
def test_bad_httpx_transport_arguments_raise_config_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        HttpxTransport(**kwargs)


# -- the mapping, exception by exception ----------------------------------------------
_KEY = ConnectionKey("api.example", 443, True, True, None, None, None, None)
REQUEST = get("https://api.example/x?api_key=SECRET")
URL = REQUEST.full_url()


@pytest.mark.parametrize(
    ("cause", "kind", "what", "sent"),
    [
        (
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
            ConnectError,
            "could not resolve the host",
            False,
        ),
        (
            aiohttp.ServerFingerprintMismatch(b"a", b"b", "api.example", 443),
            ConnectError,
            "could not connect",
            False,
        ),
        (
            aiohttp.ConnectionTimeoutError("Connection timeout"),
            ConnectError,
            "could not connect in time",
            False,
        ),
        (ConnectionRefusedError(111, "refused"), ConnectError, "could not connect", False),
        (
            aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
            ClientTimeoutError,
            "timed out",
            True,
        ),
        (
            asyncio.IncompleteReadError(b"", 10),
            ConnectionLostError,
            "sent a truncated or undecodable body",
            True,
        ),
        (aiohttp.ServerDisconnectedError(), ConnectionLostError, "lost the connection", True),
    ],
)
def test_aiohttp_errors_map_onto_interlinks(
    cause: BaseException, kind: type[ClientError], what: str, sent: bool
) -> None:
    error = _aiohttp_error(cause, REQUEST, URL)
    assert type(error) is kind
    assert error.request_sent is sent
    assert str(error).startswith(
        f"GET https://api.example/x?api_key=REDACTED {what}: {type(cause).__name__}"
    )
    assert error.__cause__ is cause
    assert "SECRET" not in str(error)


def test_aiohttp_errors_that_carry_the_url_are_not_chained() -> None:
    info = aiohttp.RequestInfo(
        aiohttp.client_reqrep.URL(URL), "GET", CIMultiDict(), aiohttp.client_reqrep.URL(URL)
    )
    cause = aiohttp.ClientResponseError(info, (), status=400, message="bad")
    error = _aiohttp_error(cause, REQUEST, URL)
    assert isinstance(error, ConnectionLostError)
    assert error.__cause__ is None
    assert "SECRET" not in str(error)


@pytest.mark.parametrize(
    ("cause", "kind", "what", "sent", "retryable"),
    [
        (httpx.ConnectTimeout("timed out"), ConnectError, "could not connect in time", False, True),
        (httpx.ProxyError("proxy said no"), ConnectError, "could not connect", False, True),
        (httpx.WriteTimeout("slow write"), ClientTimeoutError, "timed out", True, True),
        (
            httpx.LocalProtocolError("bad header"),
            ConnectError,
            "cannot be sent to this URL",
            False,
            False,
        ),
        (
            httpx.DecodingError("bad gzip"),
            ConnectionLostError,
            "sent a truncated or undecodable body",
            True,
            True,
        ),
        (
            httpx.RemoteProtocolError("peer closed"),
            ConnectionLostError,
            "lost the connection",
            True,
            True,
        ),
        (OSError("broken pipe"), ConnectionLostError, "lost the connection", True, True),
    ],
)
def test_httpx_errors_map_onto_interlinks(
    cause: BaseException, kind: type[ClientError], what: str, sent: bool, retryable: bool
) -> None:
    error = _httpx_error(httpx, cause, REQUEST, URL)
    assert type(error) is kind
    assert (error.request_sent, error.retryable) == (sent, retryable)
    assert str(error).startswith(
        f"GET https://api.example/x?api_key=REDACTED {what}: {type(cause).__name__}"
    )


def test_an_error_whose_text_holds_the_url_is_redacted_and_not_chained() -> None:
    error = _httpx_error(httpx, httpx.InvalidURL(f"bad {URL}"), REQUEST, URL)
    assert "SECRET" not in str(error)
    assert error.__cause__ is None
    assert str(error).endswith("InvalidURL: bad https://api.example/x?api_key=REDACTED")


def test_an_error_without_text_is_named_by_its_type() -> None:
    error = _aiohttp_error(aiohttp.ClientPayloadError(), REQUEST, URL, committed=True)
    assert str(error).endswith("truncated or undecodable body: ClientPayloadError")
    assert error.__dict__["committed"] is True


def test_many_distinct_attempt_timeouts_keep_few_timeout_objects() -> None:
    transport = AiohttpTransport()
    for step in range(200):  # as deadlines cut attempts to ever-different times left
        transport._timeout(1.0 + step / 1000, False)
    assert len(transport._timeouts) <= 64
    streaming = transport._timeout(2.0, True)
    assert streaming.total is None
    assert streaming.sock_read == 2.0
    whole = transport._timeout(2.0, False)
    assert whole.total == 2.0
    assert whole.sock_connect == 2.0  # connecting never outlasts the attempt


async def test_aiohttp_default_headers_are_sent_and_a_requests_own_replace_them(
    upstream: FakeUpstream,
) -> None:
    upstream.route("GET", "/").reply(Reply(status=204))
    transport = AiohttpTransport(default_headers={"User-Agent": "app/1", "X-Team": "a"})
    try:
        same = Request(
            "GET", f"{upstream.url}/", CIMultiDict({"User-Agent": "app/1", "X-Team": "a"})
        )
        await transport.send(same)  # exactly the defaults: aiohttp sends its session's
        await transport.send(get(f"{upstream.url}/"))
        stream = await transport.stream(get(f"{upstream.url}/"))
        await stream.aclose()
    finally:
        await transport.aclose()
    seen = [(r.headers["User-Agent"], r.headers.get("X-Team")) for r in upstream.requests]
    assert seen == [("app/1", "a"), ("test", "a"), ("test", "a")]
