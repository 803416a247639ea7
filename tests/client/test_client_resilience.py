"""ApiClient's resilience against a real FakeUpstream, on both transports: retries per method and
status, idempotency keys, Retry-After, the breaker, the bulkhead, the rate limiter, timeouts,
broken connections, streaming and cancellation.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time
from typing import Any

import pytest

from interlink.client import (
    ApiClient,
    ClientTimeoutError,
    ConnectError,
    ConnectionLostError,
    HttpStatusError,
)
from interlink.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitOpenError,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    ResilienceEvent,
    Retry,
)
from interlink.testing import FakeUpstream, Reply
from tests.client.client_support import FAST, CountingToken, closed_port, make_client
from tests.polling import eventually


def _gaps(upstream: FakeUpstream) -> list[float]:
    times = [r.at for r in upstream.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# -- which calls are retried ---------------------------------------------------------
async def test_get_is_retried_on_503_up_to_max_attempts_with_growing_waits(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/down").reply(503)
    retry = {"max_attempts": 4, "initial_delay": 0.02, "multiplier": 2, "jitter": "none"}
    async with make_client(upstream, transport, resilience={"retry": retry}) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/down")
    assert caught.value.attempts == 4
    assert len(upstream.requests) == 4
    first, second, third = _gaps(upstream)
    assert first >= 0.02
    assert second >= 0.04
    assert third >= 0.08


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_statuses_that_may_pass_on_a_retry_are_retried(
    upstream: FakeUpstream, transport: str, status: int
) -> None:
    upstream.route("PUT", "/items/1").reply(status, 200)
    async with make_client(upstream, transport) as client:
        await client.put("/items/1", json={})
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 501, 505])
async def test_other_error_statuses_are_not_retried(
    upstream: FakeUpstream, transport: str, status: int
) -> None:
    upstream.route("GET", "/x").reply(status, 200)
    async with make_client(upstream, transport) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/x")
    assert caught.value.status == status
    assert caught.value.retryable is False
    assert len(upstream.requests) == 1


async def test_post_without_key_is_not_retried_after_a_503(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("POST", "/charges").reply(503, 201)
    async with make_client(upstream, transport) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.post("/charges", json={"cents": 100})
    assert caught.value.attempts == 1
    assert len(upstream.requests) == 1


async def test_patch_without_key_is_not_retried_after_a_reset(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("PATCH", "/items/1").reply(Reply(reset=True), 200)
    async with make_client(upstream, transport) as client:
        with pytest.raises(ConnectionLostError) as caught:
            await client.patch("/items/1", json={})
    assert caught.value.request_sent is True
    assert len(upstream.requests) == 1


async def test_post_is_retried_when_the_connection_is_refused(transport: str) -> None:
    port = closed_port()
    async with ApiClient(
        f"http://127.0.0.1:{port}", transport=transport, resilience=FAST
    ) as client:
        with pytest.raises(ConnectError) as caught:
            await client.post("/charges", json={})
    error = caught.value
    assert (error.attempts, error.request_sent, error.method) == (3, False, "POST")
    assert str(error).startswith(
        f"POST http://127.0.0.1:{port}/charges could not connect after 3 attempts: "
    )


async def test_post_with_idempotency_key_is_retried_with_the_same_key(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("POST", "/charges").reply(
        503, Reply(reset=True), Reply(status=201, json={"id": 1})
    )
    async with make_client(upstream, transport) as client:
        assert await client.post("/charges", json={}, idempotency_key=True) == {"id": 1}
        await client.post("/charges", json={}, idempotency_key=True)
    keys = [r.idempotency_key for r in upstream.requests]
    assert len(keys) == 4
    assert keys[0]
    assert keys[0] == keys[1] == keys[2] != keys[3]


async def test_a_404_is_not_retried_nor_counted_by_the_breaker(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/missing").reply(404)
    resilience = {"retry": {"max_attempts": 3}, "circuit_breaker": {"window": 5, "min_calls": 2}}
    async with make_client(upstream, transport, resilience=resilience) as client:
        for _ in range(5):
            with pytest.raises(HttpStatusError):
                await client.get("/missing")
        assert client.pipeline.breaker is not None
        metrics = client.pipeline.breaker.metrics()
    assert len(upstream.requests) == 5
    assert (metrics.failed_calls, metrics.buffered_calls, metrics.state.value) == (0, 5, "closed")


# -- Retry-After -----------------------------------------------------------------------
async def test_retry_after_is_honoured(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/busy").reply(Reply(status=503, retry_after=1), 200)
    async with make_client(upstream, transport) as client:
        await client.get("/busy")
    assert _gaps(upstream)[0] >= 1.0


@pytest.mark.parametrize("header", ["120", "date"])
async def test_retry_after_beyond_the_maximum_gives_up_at_once(
    upstream: FakeUpstream, transport: str, header: str
) -> None:
    value = email.utils.formatdate(time.time() + 120, usegmt=True) if header == "date" else header
    upstream.route("GET", "/busy").reply(Reply(status=429, retry_after=value), 200)
    events: list[ResilienceEvent] = []
    async with make_client(upstream, transport) as client:
        assert client.pipeline.retry is not None
        client.pipeline.retry.events.subscribe(events.append)
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/busy")
    assert len(upstream.requests) == 1
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120
    gave_up = [dict(e.attributes) for e in events if e.kind == "retry.gave_up"]
    assert [g["reason"] for g in gave_up] == ["retry_after_too_long"]


# -- breaker, bulkhead, rate limiter ---------------------------------------------------
async def test_breaker_opens_on_a_5xx_storm_then_recovers(
    upstream: FakeUpstream, transport: str
) -> None:
    route = upstream.route("GET", "/storm").reply(500)
    breaker = {"window": 4, "min_calls": 4, "open_for": 0.2, "half_open_calls": 1}
    resilience = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker}
    async with make_client(upstream, transport, resilience=resilience) as client:
        for _ in range(4):
            with pytest.raises(HttpStatusError):
                await client.get("/storm")
        with pytest.raises(CircuitOpenError):
            await client.get("/storm")
        assert route.calls == 4
        assert client.health().breaker_state == "open"
        assert not client.health().healthy
        route.reply(200)

        async def probe_passes() -> bool:
            try:
                await client.get("/storm")
            except CircuitOpenError:
                return False
            return True

        await eventually(probe_passes, "a probe let through by the breaker", 5.0, step=0.02)
        assert client.health().breaker_state == "closed"
    assert route.calls == 5


async def test_breaker_per_host_gives_each_host_its_own_breaker(transport: str) -> None:
    resilience = {"retry": {"max_attempts": 1}, "circuit_breaker": {"window": 2, "min_calls": 2}}
    async with FakeUpstream() as home, FakeUpstream() as broken:
        home.route("GET", "/ok").reply(200)
        broken.route("GET", "/down").reply(503)
        client = make_client(
            home, transport, resilience=resilience, breaker_per_host=True, name="api"
        )
        async with client:
            for _ in range(2):
                with pytest.raises(HttpStatusError):
                    await client.get(f"{broken.url}/down")
            with pytest.raises(CircuitOpenError, match=r"'api@127\.0\.0\.1:\d+\.circuit_breaker'"):
                await client.get(f"{broken.url}/down")
            await client.get("/ok")
            await client.get(f"{home.url}/ok")
            health = client.health()
    assert health.breaker_state == "closed"
    assert list(health.breakers.values()) == ["open"]
    assert not health.healthy


async def test_a_full_bulkhead_rejects_the_extra_call(
    upstream: FakeUpstream, transport: str
) -> None:
    gate = asyncio.Event()

    async def held(received: Any) -> Reply:
        await gate.wait()
        return Reply(json="done")

    upstream.route("GET", "/slow").reply(held)
    pipeline = Pipeline(bulkhead=Bulkhead(max_concurrent=1), timeout=5.0)
    async with make_client(upstream, transport, resilience=pipeline) as client:
        first = asyncio.create_task(client.get("/slow"))
        await upstream.wait_for_requests(1)
        with pytest.raises(BulkheadFullError):
            await client.get("/slow")
        gate.set()
        assert await first == "done"
        assert client.health().failures == 1
    assert len(upstream.requests) == 1


async def test_the_rate_limiter_drains_on_a_429(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/limited").reply(Reply(status=429, retry_after=2))
    limiter = RateLimiter(rate=100, burst=100, initial_tokens=100)
    resilience = {"retry": {"max_attempts": 1}}
    async with make_client(
        upstream, transport, resilience=resilience, rate_limiter=limiter
    ) as client:
        assert client.pipeline.rate_limiter is limiter
        with pytest.raises(HttpStatusError):
            await client.get("/limited")
        assert limiter.available == 0
        with pytest.raises(RateLimitedError) as caught:
            await client.get("/limited")
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 1.5
    assert len(upstream.requests) == 1


# -- time and broken connections ------------------------------------------------------
async def test_slow_headers_beyond_the_attempt_timeout_are_a_client_timeout(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/slow").reply(Reply(delay=2.0))
    resilience = {"retry": {"max_attempts": 2, "initial_delay": 0.001}}
    async with make_client(upstream, transport, resilience=resilience, timeout=0.1) as client:
        with pytest.raises(ClientTimeoutError) as caught:
            await client.get("/slow", params={"token": "t"})
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.attempts == 2
    assert str(error).startswith(
        f"GET {upstream.url}/slow?token=REDACTED timed out at 0.1s after 2 attempts: "
    )
    assert len(upstream.requests) == 2


async def test_a_deadline_is_reported_as_a_client_timeout(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("POST", "/slow").reply(Reply(delay=2.0))
    async with make_client(upstream, transport, resilience={"deadline": 0.1}) as client:
        with pytest.raises(ClientTimeoutError, match=r"POST .*/slow timed out: .*deadline"):
            await client.post("/slow")


async def test_a_connection_reset_is_a_lost_connection(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/reset").reply(Reply(reset=True))
    async with make_client(upstream, transport) as client:
        with pytest.raises(
            ConnectionLostError, match=r"/reset lost the connection after 3 attempts"
        ) as caught:
            await client.get("/reset")
    assert caught.value.request_sent is True
    assert len(upstream.requests) == 3


async def test_a_truncated_body_is_a_lost_connection(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/cut").reply(Reply(json={"items": list(range(100))}, truncate=10))
    async with make_client(upstream, transport) as client:
        with pytest.raises(
            ConnectionLostError, match=r"truncated or undecodable body|lost the connection"
        ):
            await client.get("/cut")
    assert len(upstream.requests) == 3


# -- streaming ------------------------------------------------------------------------
async def test_a_stream_yields_the_chunks_in_order(upstream: FakeUpstream, transport: str) -> None:
    chunks = [b"alpha-", b"beta-", b"gamma"]
    upstream.route("GET", "/feed").reply(Reply(chunks=chunks, chunk_delay=0.01))
    async with (
        make_client(upstream, transport) as client,
        client.stream("GET", "/feed") as response,
    ):
        assert response.status == 200
        received = [chunk async for chunk in response.aiter_bytes(chunk_size=4)]
    assert b"".join(received) == b"alpha-beta-gamma"
    assert all(len(chunk) <= 4 for chunk in received)


async def test_a_stream_retries_before_the_body_and_reads_it_whole(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(503, Reply(body=b"payload"))
    async with make_client(upstream, transport) as client:
        async with client.stream("GET", "/feed") as response:
            assert await response.read() == b"payload"
        async with client.stream("GET", "/feed") as response:
            pass  # left unread: released anyway
    assert len(upstream.requests) == 3


async def test_an_error_after_the_body_started_is_not_retried(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(Reply(chunks=[b"one", b"two", b"three"], truncate=5))
    async with (
        make_client(upstream, transport) as client,
        client.stream("GET", "/feed") as response,
    ):
        with pytest.raises(ConnectionLostError) as caught:
            await response.read()
    assert caught.value.__dict__.get("committed") is True
    assert len(upstream.requests) == 1


async def test_a_streamed_error_status_raises_before_the_block(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(
        Reply(status=404, body="x" * 100), Reply(status=503, body="busy")
    )
    async with make_client(upstream, transport, max_error_body=10) as client:
        with pytest.raises(HttpStatusError, match=r"answered 404 Not Found: x{10}\.\.\.$"):
            async with client.stream("GET", "/feed"):
                pass  # pragma: no cover - never entered
        with pytest.raises(
            HttpStatusError, match="answered 503 Service Unavailable after 3 attempts: busy"
        ):
            async with client.stream("GET", "/feed"):
                pass  # pragma: no cover - never entered


async def test_a_stream_refreshes_the_auth_after_a_401(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(
        lambda r: (
            Reply(body=b"ok")
            if r.headers["Authorization"] == "Bearer token-2"
            else Reply(status=401)
        )
    )
    auth = CountingToken()
    async with (
        make_client(upstream, transport, auth=auth) as client,
        client.stream("GET", "/feed") as response,
    ):
        assert await response.read() == b"ok"
    assert auth.refresh_calls == 1
    assert len(upstream.requests) == 2


async def test_a_stream_reports_quota_and_events_like_any_call(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(Reply(body=b"x", headers={"RateLimit-Remaining": "7"}))
    events: list[ResilienceEvent] = []
    async with make_client(upstream, transport) as client:
        client.events.subscribe(events.append)
        async with client.stream("GET", "/feed") as response:
            assert await response.read() == b"x"
    assert client.quota is not None
    assert client.quota.remaining == 7
    assert [e.kind for e in events] == ["client.quota", "client.request"]


async def test_a_stream_to_an_open_circuit_is_rejected_without_a_request(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/feed").reply(200)
    async with make_client(upstream, transport, resilience={"circuit_breaker": {}}) as client:
        assert client.pipeline.breaker is not None
        client.pipeline.breaker.force_open()
        with pytest.raises(CircuitOpenError):
            async with client.stream("GET", "/feed"):
                pass  # pragma: no cover - never entered
        assert client.health().failures == 1
    assert upstream.requests == []


async def test_a_stream_to_a_closed_port_is_a_connect_error(transport: str) -> None:
    async with ApiClient(
        f"http://127.0.0.1:{closed_port()}", transport=transport, resilience=FAST
    ) as client:
        with pytest.raises(ConnectError, match="after 3 attempts"):
            async with client.stream("POST", "/feed", content=b"x"):
                pass  # pragma: no cover - never entered


# -- cancellation ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["headers", "body"])
async def test_cancelling_mid_request_leaks_no_connection_nor_permit(
    upstream: FakeUpstream, transport: str, where: str
) -> None:
    slow = Reply(delay=30.0) if where == "headers" else Reply(body=b"late", body_delay=30.0)
    upstream.route("GET", "/slow").reply(slow)
    upstream.route("GET", "/fast").reply(Reply(json="ok"))
    resilience = {"retry": {"max_attempts": 3}, "bulkhead": {"max_concurrent": 10}, "timeout": 60}
    async with ApiClient(upstream.url, transport=transport, resilience=resilience) as client:
        bulkhead = client.pipeline.bulkhead
        assert bulkhead is not None
        call = asyncio.create_task(client.get("/slow"))
        await upstream.wait_for_requests(1)
        assert bulkhead.available == bulkhead.max_concurrent - 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert bulkhead.available == bulkhead.max_concurrent
        await upstream.wait_for_open_connections(0)
        assert await client.get("/fast") == "ok"
    assert client.health().requests == 1


async def test_a_retry_wait_is_cut_short_by_cancellation(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/down").reply(503)
    pipeline = Pipeline(
        retry=Retry(max_attempts=3, initial_delay=30.0, max_delay=30.0, jitter="none")
    )
    async with make_client(upstream, transport, resilience=pipeline) as client:
        call = asyncio.create_task(client.get("/down"))
        await upstream.wait_for_requests(1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert len(upstream.requests) == 1


async def test_a_running_deadline_cuts_the_attempt_to_the_time_left(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/slow").reply(Reply(delay=5.0))
    resilience = {"deadline": 0.3, "retry": {"max_attempts": 5, "initial_delay": 0.001}}
    async with make_client(upstream, transport, resilience=resilience, timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.get("/slow")
    # The one attempt got the deadline's 0.3 s, not the client's 10 s, and no
    # time was left for another (lower bound only: timing is never capped).
    assert time.monotonic() - started >= 0.3
    assert len(upstream.requests) == 1
