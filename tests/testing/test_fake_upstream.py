"""FakeUpstream over real sockets, seen from aiohttp and httpx clients.

Timing assertions are lower bounds only (a delay is at least what was asked);
``asyncio.timeout`` guards only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from interlink.core import ConfigError
from interlink.testing import FakeUpstream, Received, Reply

HANG_GUARD = 30.0  # seconds; never reached unless the code under test hangs


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def statuses(session: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    found = []
    for _ in range(count):
        async with session.get(url) as response:
            found.append(response.status)
    return found


# -- replies -------------------------------------------------------------------
async def test_replies_are_used_in_order_and_the_last_one_repeats(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    route = upstream.route("GET", "/status").reply(503, Reply(502), 200)
    assert await statuses(session, f"{upstream.url}/status", 5) == [503, 502, 200, 200, 200]
    assert route.calls == 5


async def test_httpx_sees_the_same_status_sequence(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/jobs").reply(429, 201)
    async with httpx.AsyncClient(base_url=upstream.url) as client:
        found = [(await client.post("/jobs")).status_code for _ in range(3)]
    assert found == [429, 201, 201]


async def test_a_json_reply_sends_its_body_content_type_and_headers(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/me").reply(
        Reply(json={"id": 7, "tags": ["a"]}, headers={"X-Request-Id": "req-1"})
    )
    async with session.get(f"{upstream.url}/me") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Request-Id"] == "req-1"
        assert await response.json() == {"id": 7, "tags": ["a"]}


async def test_a_str_body_is_utf8_text_and_given_headers_win_and_may_repeat(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    links = [("Link", '</p2>; rel="next"'), ("Link", '</p9>; rel="last"')]
    upstream.route("GET", "/text").reply(Reply(body="grüße"))
    upstream.route("GET", "/csv").reply(
        Reply(body="a,b", headers=[("Content-Type", "text/csv"), *links])
    )
    async with session.get(f"{upstream.url}/text") as response:
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == "grüße"
    async with session.get(f"{upstream.url}/csv") as response:
        assert response.headers["Content-Type"] == "text/csv"
        assert response.headers.getall("Link") == [value for _, value in links]


async def test_retry_after_is_sent_as_seconds_or_as_the_given_date(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    date = "Thu, 01 Jan 2026 00:00:30 GMT"
    upstream.route("GET", "/busy").reply(
        Reply(429, retry_after=2), Reply(503, retry_after=1.5), Reply(503, retry_after=date)
    )
    found = []
    for _ in range(3):
        async with session.get(f"{upstream.url}/busy") as response:
            found.append((response.status, response.headers["Retry-After"]))
    assert found == [(429, "2"), (503, "1.5"), (503, date)]


async def test_a_head_request_gets_the_headers_without_the_body(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("HEAD", "/file").reply(Reply(body=b"12345", truncate=2))
    async with session.head(f"{upstream.url}/file") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "5"
        assert await response.read() == b""


# -- faults ----------------------------------------------------------------------
async def test_reset_closes_the_connection_without_an_answer(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    route = upstream.route("POST", "/pay").reply(Reply(reset=True), 201)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await session.post(f"{upstream.url}/pay", json={"amount": 1})
    async with session.post(f"{upstream.url}/pay", json={"amount": 1}) as response:
        assert response.status == 201
    assert route.calls == 2


async def test_aiohttp_itself_resends_a_reset_get_once(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    # aiohttp retries idempotent methods once after a disconnect (RFC 9112 9.3.1):
    # tests that count attempts of a GET must expect the upstream to see two.
    route = upstream.route("GET", "/flaky").reply(Reply(reset=True))
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await session.get(f"{upstream.url}/flaky")
    assert route.calls == 2


async def test_httpx_sees_a_reset_as_a_transport_error(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/flaky").reply(Reply(reset=True))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{upstream.url}/flaky")


@pytest.mark.parametrize("cut", [0, 3])
async def test_truncate_declares_the_full_length_then_closes_early(
    upstream: FakeUpstream, session: aiohttp.ClientSession, cut: int
) -> None:
    upstream.route("GET", "/report").reply(Reply(body=b"0123456789", truncate=cut))
    async with session.get(f"{upstream.url}/report") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "10"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_httpx_sees_a_truncated_body_as_a_protocol_error(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/report").reply(Reply(json={"rows": list(range(50))}, truncate=20))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{upstream.url}/report")


async def test_a_truncated_chunked_body_never_sends_its_last_chunk(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/feed").reply(Reply(chunks=[b"ab", b"cd", b"ef"], truncate=3))
    async with session.get(f"{upstream.url}/feed") as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_chunks_arrive_as_the_chunks_of_a_chunked_body(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/feed").reply(Reply(chunks=[b'{"n": 1}\n', b'{"n": 2}\n']))
    chunks, current = [], b""
    async with session.get(f"{upstream.url}/feed") as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        async for data, end_of_chunk in response.content.iter_chunks():
            current += data
            if end_of_chunk:
                chunks.append(current)
                current = b""
    assert chunks == [b'{"n": 1}\n', b'{"n": 2}\n']


async def test_httpx_streams_the_chunks_with_at_least_chunk_delay_between_them(
    upstream: FakeUpstream,
) -> None:
    upstream.route("GET", "/feed").reply(Reply(chunks=[b"a", b"b", b"c"], chunk_delay=0.05))
    started = time.monotonic()
    async with httpx.AsyncClient() as client, client.stream("GET", f"{upstream.url}/feed") as r:
        body = b"".join([part async for part in r.aiter_raw()])
    assert time.monotonic() - started >= 0.1
    assert body == b"abc"


async def test_delay_holds_the_headers_back_at_least_that_long(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/slow").reply(Reply(delay=0.2, json={"ok": True}))
    started = time.monotonic()
    async with session.get(f"{upstream.url}/slow") as response:
        assert time.monotonic() - started >= 0.2
        assert await response.json() == {"ok": True}


async def test_body_delay_sends_the_headers_first_and_the_body_later(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/stalls").reply(Reply(body=b"payload", body_delay=3600))
    upstream.route("GET", "/slow-body").reply(Reply(body=b"payload", body_delay=0.2))
    async with asyncio.timeout(HANG_GUARD), session.get(f"{upstream.url}/stalls") as response:
        # The headers are here although the body is an hour away.
        assert (response.status, response.headers["Content-Length"]) == (200, "7")
        response.close()
    started = time.monotonic()
    async with session.get(f"{upstream.url}/slow-body") as response:
        assert await response.read() == b"payload"
    assert time.monotonic() - started >= 0.2


# -- recording -------------------------------------------------------------------
async def test_requests_record_method_path_query_headers_body_and_time(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("POST", "/orders").reply(201)
    before = time.monotonic()
    url = f"{upstream.url}/orders?tag=a&tag=b&q=x%20y"
    headers = {"Authorization": "Bearer t0k", "Idempotency-Key": "key-1"}
    async with session.post(url, json={"sku": "A1"}, headers=headers) as response:
        assert response.status == 201
    [received] = upstream.requests
    assert (received.method, received.path) == ("POST", "/orders")
    assert received.query.getall("tag") == ["a", "b"]
    assert received.query["q"] == "x y"
    assert received.raw_path == "/orders?tag=a&tag=b&q=x%20y"
    assert received.headers["authorization"] == "Bearer t0k"
    assert received.idempotency_key == "key-1"
    assert received.json() == {"sku": "A1"}
    assert received.text() == '{"sku": "A1"}'
    assert received.at >= before
    assert repr(received) == "Received(POST /orders?tag=a&tag=b&q=x%20y, 13 bytes)"


async def test_a_request_without_the_header_has_no_idempotency_key(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("POST", "/orders").reply(201)
    for key in ["k-1", None, "k-1"]:
        headers = {"Idempotency-Key": key} if key else {}
        async with session.post(f"{upstream.url}/orders", data=b"raw", headers=headers):
            pass
    assert [r.idempotency_key for r in upstream.requests] == ["k-1", None, "k-1"]
    assert [r.body for r in upstream.requests] == [b"raw"] * 3


async def test_received_filters_by_method_and_path_or_template(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("*", "/items/{id}").reply(200)
    for method, path in [("GET", "/items/1"), ("DELETE", "/items/2"), ("GET", "/other")]:
        async with session.request(method, f"{upstream.url}{path}"):
            pass
    assert len(upstream.received()) == 3
    assert [r.path for r in upstream.received(method="get")] == ["/items/1", "/other"]
    assert [r.path for r in upstream.received(path="/items/{id}")] == ["/items/1", "/items/2"]
    assert [r.path for r in upstream.received("DELETE", "/items/{id}")] == ["/items/2"]
    assert upstream.received(path="/items/3") == []


# -- routing ---------------------------------------------------------------------
async def test_path_parameters_match_one_segment_and_are_recorded(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    route = upstream.route("GET", "/users/{user}/orders/{order}").reply(
        lambda r: Reply(json=r.path_params)
    )
    async with session.get(f"{upstream.url}/users/ann/orders/42") as response:
        assert await response.json() == {"user": "ann", "order": "42"}
    async with session.get(f"{upstream.url}/users/ann/orders/42/lines") as response:
        assert response.status == 404
    assert route.requests[0].path_params == {"user": "ann", "order": "42"}
    assert route.calls == 1


async def test_the_most_specific_route_answers(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/items/special").reply(Reply(body="get the special item"))
    upstream.route("*", "/items/{id}").reply(Reply(body="any method, any item"))
    upstream.route("GET", "/items/{id}").reply(Reply(body="get any item"))
    found = []
    for method, path in [("PUT", "/items/1"), ("GET", "/items/1"), ("GET", "/items/special")]:
        async with session.request(method, f"{upstream.url}{path}") as response:
            found.append(await response.text())
    assert found == ["any method, any item", "get any item", "get the special item"]


async def test_an_unscripted_request_gets_a_404_naming_what_to_script(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/known").reply(200)
    async with session.post(f"{upstream.url}/known?x=1") as response:
        assert response.status == 404
        body = await response.json()
    assert body["method"] == "POST"
    assert body["path"] == "/known"
    assert body["routes"] == ["GET /known"]
    assert "no route for POST /known" in body["error"]
    assert len(upstream.requests) == 1  # recorded all the same


async def test_the_same_route_twice_is_one_route_and_reply_replaces_its_script(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    first = upstream.route("get", "/health")
    assert await statuses(session, f"{upstream.url}/health", 1) == [200]  # not scripted yet
    first.reply(503, 503)
    again = upstream.route("GET", "/health").reply(204)
    assert again is first
    assert await statuses(session, f"{upstream.url}/health", 2) == [204, 204]
    assert first.calls == 3
    assert repr(first) == "Route(GET /health, calls=3, replies=1)"


# -- reply functions ---------------------------------------------------------------
async def test_a_reply_function_answers_from_the_request(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    def page(received: Received) -> Reply:
        number = int(received.query.get("page", "1"))
        return Reply(json={"data": [number * 10, number * 10 + 1], "last": number == 2})

    upstream.route("GET", "/things").reply(page)
    async with session.get(f"{upstream.url}/things", params={"page": "2"}) as response:
        assert await response.json() == {"data": [20, 21], "last": True}


async def test_an_async_reply_function_is_awaited_and_may_answer_an_int(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    issued: list[str] = []

    async def token(received: Received) -> Reply | int:
        await asyncio.sleep(0)
        if received.headers.get("Authorization") != "Basic Y2xpZW50OnNlY3JldA==":
            return 401
        issued.append(f"tok-{len(issued) + 1}")
        return Reply(json={"access_token": issued[-1], "expires_in": 3600})

    upstream.route("POST", "/token").reply(token)
    auth = {"Authorization": "Basic Y2xpZW50OnNlY3JldA=="}
    async with session.post(f"{upstream.url}/token", headers=auth) as response:
        assert (await response.json())["access_token"] == "tok-1"
    async with session.post(f"{upstream.url}/token") as response:
        assert response.status == 401


async def test_a_failing_reply_function_answers_500_and_fails_the_test_on_exit() -> None:
    def broken(received: Received) -> Reply:
        raise ZeroDivisionError("the script is wrong")

    async def scenario() -> None:
        async with FakeUpstream() as upstream, aiohttp.ClientSession() as session:
            upstream.route("GET", "/x").reply(broken)
            async with session.get(f"{upstream.url}/x") as response:
                assert response.status == 500
                assert "ZeroDivisionError" in (await response.json())["error"]
            assert len(upstream.errors) == 1

    with pytest.raises(ZeroDivisionError, match="the script is wrong"):
        await scenario()


async def test_a_reply_function_returning_something_else_is_reported() -> None:
    upstream = FakeUpstream()
    await upstream.start()
    try:
        upstream.route("GET", "/x").reply(lambda received: "200")  # type: ignore[arg-type,return-value]
        async with aiohttp.ClientSession() as session, session.get(f"{upstream.url}/x") as r:
            assert r.status == 500
    finally:
        await upstream.stop()
    [error] = upstream.errors
    assert isinstance(error, ConfigError)
    assert "a reply must be a Reply, an int status or a callable, got '200'" in str(error)


async def test_the_test_s_own_error_wins_over_a_reply_function_error() -> None:
    async def scenario() -> None:
        async with FakeUpstream() as upstream, aiohttp.ClientSession() as session:
            upstream.route("GET", "/x").reply(lambda received: 1 // 0)
            async with session.get(f"{upstream.url}/x"):
                pass
            raise KeyError("the test's own failure")

    with pytest.raises(KeyError, match="the test's own failure"):
        await scenario()


# -- waiting -----------------------------------------------------------------------
async def test_wait_for_requests_returns_once_they_have_arrived(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("POST", "/events").reply(Reply(202, delay=60))
    tasks = [
        asyncio.create_task(session.post(f"{upstream.url}/events", data=str(i))) for i in range(3)
    ]
    arrived = await upstream.wait_for_requests(3, method="POST", path="/events")
    assert sorted(r.body for r in arrived) == [b"0", b"1", b"2"]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_wait_for_requests_times_out_listing_what_did_arrive(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 request\(s\) within 0.01 s.*\n  nothing"):
        await upstream.wait_for_requests(1, timeout=0.01)
    async with session.get(f"{upstream.url}/a?x=1"):
        pass
    with pytest.raises(AssertionError) as failure:
        await upstream.wait_for_requests(2, timeout=0.05, method="POST", path="/b")
    assert str(failure.value) == (
        "FakeUpstream expected 2 request(s) POST /b within 0.05 s; received:\n  GET /a?x=1"
    )


# -- connections -------------------------------------------------------------------
async def test_sequential_requests_on_one_aiohttp_session_share_one_connection(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/ping").reply(200)
    assert await statuses(session, f"{upstream.url}/ping", 2) == [200, 200]
    assert upstream.connections == 1
    assert upstream.open_connections == 1
    assert [r.connection for r in upstream.requests] == [1, 1]


async def test_closed_clients_are_seen_closing_their_connections(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/ping").reply(200)
    for _ in range(2):
        async with aiohttp.ClientSession() as session:
            assert await statuses(session, f"{upstream.url}/ping", 1) == [200]
    await upstream.wait_for_open_connections(0)
    assert upstream.connections == 2
    assert [r.connection for r in upstream.requests] == [1, 2]


async def test_a_request_cancelled_mid_delay_leaves_no_open_connection(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/slow").reply(Reply(delay=3600))
    task = asyncio.create_task(session.get(f"{upstream.url}/slow"))
    await upstream.wait_for_requests(1)
    assert upstream.open_connections == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await upstream.wait_for_open_connections(0)


async def test_wait_for_open_connections_times_out_naming_the_count(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.route("GET", "/ping").reply(200)
    await statuses(session, f"{upstream.url}/ping", 1)  # the session keeps it alive
    with pytest.raises(AssertionError, match="expected 0 open connection\\(s\\), 1 still open"):
        await upstream.wait_for_open_connections(0, timeout=0.01)


# -- lifecycle ---------------------------------------------------------------------
async def test_stop_closes_a_connection_stuck_in_a_long_delay_at_once(
    session: aiohttp.ClientSession,
) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    upstream.route("POST", "/slow").reply(Reply(delay=3600))
    request = asyncio.create_task(session.post(f"{upstream.url}/slow"))
    await upstream.wait_for_requests(1)
    async with asyncio.timeout(HANG_GUARD):
        await upstream.stop()
        assert upstream.open_connections == 0
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_url_and_port_need_a_started_upstream_and_start_twice_is_an_error() -> None:
    upstream = FakeUpstream()
    with pytest.raises(RuntimeError, match="not started"):
        _ = upstream.url
    await upstream.stop()  # stopping a stopped upstream does nothing
    async with upstream:
        assert upstream.url == f"http://127.0.0.1:{upstream.port}"
        with pytest.raises(RuntimeError, match="already started"):
            await upstream.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = upstream.port


def this_machine_s_outbound_address() -> str | None:
    """The address this machine would use to leave loopback (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
        return str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()


async def test_it_listens_on_loopback_only(upstream: FakeUpstream) -> None:
    assert upstream.url.startswith("http://127.0.0.1:")
    address = this_machine_s_outbound_address()
    if address is None or address.startswith("127."):
        pytest.skip("this machine has no address outside loopback to try")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(address, upstream.port)


async def test_a_restarted_upstream_keeps_its_port_routes_and_records(
    session: aiohttp.ClientSession,
) -> None:
    upstream = FakeUpstream()
    async with upstream:
        upstream.route("GET", "/ping").reply(503, 200)
        url = f"{upstream.url}/ping"
        assert await statuses(session, url, 1) == [503]
    with pytest.raises(aiohttp.ClientConnectorError):
        await session.get(url)
    async with upstream:
        assert await statuses(session, url, 1) == [200]
    assert len(upstream.requests) == 2


# -- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": 99}, "status must be an int from 200 to 599, got 99"),
        ({"status": 600}, "status must be an int from 200 to 599"),
        ({"status": True}, "status must be an int"),
        ({"status": "200"}, "status must be an int"),
        ({"json": {}, "body": "x"}, "one of json, body and chunks, got json and body"),
        ({"body": b"x", "chunks": [b"y"]}, "got body and chunks"),
        ({"chunks": [b"a", b""]}, "chunks must be a list of non-empty bytes"),
        ({"chunks": b"abc"}, "chunks must be a list of non-empty bytes"),
        ({"body": 5}, "body must be bytes or str, got 5"),
        ({"json": {1, 2}}, "json is not JSON-serializable"),
        ({"delay": -1}, "delay must be seconds as a finite number >= 0, got -1"),
        ({"body_delay": float("nan")}, "body_delay must be seconds"),
        ({"chunk_delay": "1s"}, "chunk_delay must be seconds"),
        ({"retry_after": -2}, "retry_after must be seconds"),
        ({"body": b"abc", "truncate": 3}, "an int from 0 to 2 for a body of 3 bytes, got 3"),
        ({"body": b"abc", "truncate": -1}, "got -1"),
        ({"truncate": 0}, "an int from 0 to -1 for a body of 0 bytes"),
        ({"chunks": [b"ab"], "truncate": 3}, "an int from 0 to 2 for a body of 2 bytes"),
        ({"reset": True, "body": "x"}, "closes the connection without answering"),
        ({"status": 204, "json": {}}, "Reply status 204 cannot have a body"),
        ({"headers": {"X-A": 1}}, "headers must be a mapping or pairs of str"),
        ({"headers": ["X-A"]}, "headers must be a mapping or pairs of str"),
    ],
)
def test_a_bad_reply_is_a_config_error_naming_the_argument(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Reply(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GE T", "/a", "method must be an HTTP method such as 'GET', or '*', got 'GE T'"),
        ("", "/a", "method must be an HTTP method"),
        (None, "/a", "method must be an HTTP method"),
        ("GET", "a", "path must be a str starting with '/' and without a query, got 'a'"),
        ("GET", "/a?x=1", "without a query"),
        ("GET", 7, "path must be a str"),
        ("GET", "/{id}/{id}", "uses a {name} twice"),
        ("GET", "/{1st}", "has a malformed {name}"),
        ("GET", "/{id", "has a malformed {name}"),
    ],
)
def test_a_bad_route_is_a_config_error(method: object, path: object, message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        FakeUpstream().route(method, path)  # type: ignore[arg-type]
    assert message in str(failure.value)


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ((), "GET /a: reply() needs at least one reply"),
        (("ok",), "a reply must be a Reply, an int status or a callable, got 'ok'"),
        ((True,), "got True"),
    ],
)
def test_a_bad_script_is_a_config_error(replies: tuple[object, ...], message: str) -> None:
    route = FakeUpstream().route("GET", "/a")
    with pytest.raises(ConfigError) as failure:
        route.reply(*replies)  # type: ignore[arg-type]
    assert message in str(failure.value)


@pytest.mark.parametrize("port", [-1, 65536, "8080", True])
def test_a_bad_port_is_a_config_error(port: object) -> None:
    with pytest.raises(ConfigError, match="port must be an int from 0 to 65535"):
        FakeUpstream(port=port)  # type: ignore[arg-type]
