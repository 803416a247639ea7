"""``BearerFrom``: a token from the caller's async callable, cached and shared, over a real socket.

Each request goes through the strategy's ``apply`` and a real transport to
``FakeUpstream``; the cache runs on a ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from interlink.client import BearerFrom
from interlink.client._models import Request, Send
from interlink.core import ConfigError, Secret
from interlink.testing import FakeClock, FakeUpstream
from tests.client.client_support import answering, attempt, expect_token, get

TOKEN = "tok-3f9a-very-secret"


@pytest.fixture
def upstream(upstream: FakeUpstream) -> FakeUpstream:
    """The shared upstream, with /things answering 200 unless a test scripts it."""
    return answering(upstream, "/things")


class TokenSource:
    """An async token callable that counts its calls and returns scripted tokens."""

    def __init__(self, *tokens: object) -> None:
        self.tokens = list(tokens)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        token = self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        if isinstance(token, Exception):
            raise token
        return token


async def test_bearer_from_calls_the_callable_for_every_request(
    upstream: FakeUpstream, send: Send
) -> None:
    upstream.route("GET", "/things").reply(expect_token("t1"), expect_token("t2"))
    source = TokenSource("t1", Secret("t2"))
    auth = BearerFrom(source)
    assert (await attempt(auth, send, get(upstream))).status == 200
    assert (await attempt(auth, send, get(upstream))).status == 200
    assert source.calls == 2


async def test_bearer_from_reuses_a_token_for_cache_for_seconds(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    source = TokenSource("t1", "t2")
    auth = BearerFrom(source, cache_for=60, clock=clock)
    await attempt(auth, send, get(upstream))
    await clock.advance(59.9)
    await attempt(auth, send, get(upstream))
    await clock.advance(0.1)
    await attempt(auth, send, get(upstream))
    sent = [r.headers["Authorization"] for r in await upstream.wait_for_requests(3)]
    assert sent == ["Bearer t1", "Bearer t1", "Bearer t2"]
    assert source.calls == 2


async def test_bearer_from_concurrent_requests_share_one_call_when_caching(
    upstream: FakeUpstream, send: Send
) -> None:
    source = TokenSource("t1")
    source.gate = asyncio.Event()
    auth = BearerFrom(source, cache_for=math.inf)
    calls = [asyncio.create_task(attempt(auth, send, get(upstream))) for _ in range(20)]
    await FakeClock().settle()  # every request now waits in apply for the one token call
    assert source.calls == 1
    source.gate.set()
    responses = await asyncio.gather(*calls)
    assert [r.status for r in responses] == [200] * 20
    assert source.calls == 1


async def test_bearer_from_refreshes_once_after_a_401_and_says_the_token_changed(
    upstream: FakeUpstream, send: Send
) -> None:
    upstream.route("GET", "/things").reply(expect_token("t2"))
    source = TokenSource("t1", "t2")
    auth = BearerFrom(source, cache_for=math.inf)
    request = get(upstream)
    response = await attempt(auth, send, request)
    assert response.status == 401
    assert await auth.refresh(request, response, send) is True
    assert source.calls == 2
    assert (await send(request)).status == 200  # the refreshed request carries the new token
    assert (await attempt(auth, send, get(upstream))).status == 200  # and it is cached
    assert source.calls == 2


@pytest.mark.parametrize("cache_for", [None, 30.0])
async def test_bearer_from_refresh_is_false_when_the_callable_gives_the_same_token(
    upstream: FakeUpstream, send: Send, cache_for: float | None
) -> None:
    upstream.route("GET", "/things").reply(401)
    source = TokenSource("t1")
    auth = BearerFrom(source, cache_for=cache_for)
    request = get(upstream)
    assert await auth.refresh(request, await attempt(auth, send, request), send) is False
    assert source.calls == 2


async def test_bearer_from_a_failed_fetch_reaches_every_waiter_and_the_next_call_retries(
    upstream: FakeUpstream, send: Send
) -> None:
    source = TokenSource(OSError("vault down"), "t1")
    source.gate = asyncio.Event()
    auth = BearerFrom(source, cache_for=60)
    calls = [asyncio.create_task(attempt(auth, send, get(upstream))) for _ in range(5)]
    await FakeClock().settle()
    source.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, OSError) and str(r) == "vault down" for r in results)
    assert (await attempt(auth, send, get(upstream))).status == 200
    assert source.calls == 2


async def test_bearer_from_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    upstream: FakeUpstream, send: Send
) -> None:
    source = TokenSource("t1")
    source.gate = asyncio.Event()
    auth = BearerFrom(source, cache_for=60)
    first = asyncio.create_task(attempt(auth, send, get(upstream)))
    second = asyncio.create_task(attempt(auth, send, get(upstream)))
    await FakeClock().settle()
    first.cancel()
    source.gate.set()
    assert (await second).status == 200
    assert first.cancelled()
    assert source.calls == 1


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "got NoneType"),
        (b"bytes-token", "got bytes"),
        ("", "got an empty one"),
        (Secret(""), "got an empty one"),
        (TOKEN + "\n", "must not contain control characters"),
    ],
)
async def test_bearer_from_refuses_a_bad_token_from_the_callable_without_showing_it(
    send: Send, returned: object, message: str
) -> None:
    auth = BearerFrom(TokenSource(returned))
    with pytest.raises(ConfigError, match=message) as caught:
        await auth.apply(Request("GET", "http://127.0.0.1:9/"), send)
    assert "BearerFrom get_token" in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("get_token", "kwargs", "message"),
    [
        (None, {}, "BearerFrom get_token must be an async callable"),
        ("token", {}, "BearerFrom get_token must be an async callable"),
        (TokenSource("t"), {"cache_for": 0}, "BearerFrom cache_for must be"),
        (TokenSource("t"), {"cache_for": -1}, "BearerFrom cache_for must be"),
        (TokenSource("t"), {"cache_for": "1m"}, "BearerFrom cache_for must be"),
        (TokenSource("t"), {"clock": object()}, "BearerFrom clock must be a Clock or None"),
    ],
)
def test_bearer_from_refuses_bad_arguments(
    get_token: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BearerFrom(get_token, **kwargs)
