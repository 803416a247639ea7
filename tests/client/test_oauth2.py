"""``OAuth2ClientCredentials`` against a real token endpoint and API on ``FakeUpstream``.

Token lifetimes run on a ``FakeClock``; the requests cross a real socket.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest

from interlink.client import OAuth2ClientCredentials
from interlink.client._models import Request, Response, Send
from interlink.core import (
    ClientTimeoutError,
    HttpStatusError,
    Secret,
)
from interlink.testing import FakeClock, FakeUpstream, Received, Reply
from tests.client.client_support import answering

CLIENT_ID = "svc-orders"
SECRET = "cs-8c1d/very:secret"


@pytest.fixture
def upstream(upstream: FakeUpstream) -> FakeUpstream:
    """The shared upstream, with /api answering 200 unless a test scripts it."""
    return answering(upstream, "/api")


def token(access: str, expires_in: object = 3600, **fields: Any) -> Reply:
    body = {"access_token": access, "token_type": "Bearer", **fields}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return Reply(json=body)


def accepts(access: str) -> Callable[[Received], int]:
    """The API's side: 200 only for ``Authorization: Bearer <access>``."""
    return lambda received: (
        200 if received.headers.get("Authorization") == f"Bearer {access}" else 401
    )


def oauth(upstream: FakeUpstream, clock: FakeClock, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        upstream.url + "/oauth/token", CLIENT_ID, Secret(SECRET), clock=clock, **kwargs
    )


async def call(auth: OAuth2ClientCredentials, send: Send, upstream: FakeUpstream) -> Response:
    """One API call as the client makes it: apply, send, and on a 401 refresh and send once more."""
    request = Request("GET", upstream.url + "/api")
    await auth.apply(request, send)
    response = await send(request)
    if response.status == 401 and await auth.refresh(request, response, send):
        response = await send(request)
    return response


def form(received: Received) -> dict[str, str]:
    return dict(parse_qsl(received.body.decode(), strict_parsing=True))


# -- the token request -------------------------------------------------------------------------


async def test_token_request_is_a_form_post_with_basic_client_credentials(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("t1"))
    upstream.route("GET", "/api").reply(accepts("t1"))
    auth = oauth(upstream, clock, scope=["orders:read", "orders:write"], audience="https://api")
    assert (await call(auth, send, upstream)).status == 200
    (received,) = route.requests
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert received.headers["Accept"] == "application/json"
    scheme, _, encoded = received.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    # RFC 6749 §2.3.1: each part is form-encoded before the Basic encoding.
    assert base64.b64decode(encoded).decode() == "svc-orders:cs-8c1d%2Fvery%3Asecret"
    assert form(received) == {
        "grant_type": "client_credentials",
        "scope": "orders:read orders:write",
        "audience": "https://api",
    }


async def test_body_auth_method_sends_the_client_credentials_as_form_fields(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("t1"))
    auth = oauth(upstream, clock, auth_method="body", scope="read", extra_params={"resource": "x"})
    await call(auth, send, upstream)
    (received,) = route.requests
    assert "Authorization" not in received.headers
    assert form(received) == {
        "grant_type": "client_credentials",
        "scope": "read",
        "resource": "x",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }


@pytest.mark.parametrize(
    "reply",
    [
        Reply(json={"access_token": "t1", "token_type": "BEARER", "expires_in": 60}),
        Reply(json={"access_token": "t1", "token_type": "bearer", "expires_in": "60"}),
        Reply(json={"access_token": "t1", "expires_in": 60.5}),
    ],
    ids=["upper-case-type", "expires-in-as-string", "no-token-type"],
)
async def test_token_responses_in_common_shapes_are_accepted(
    upstream: FakeUpstream, send: Send, clock: FakeClock, reply: Reply
) -> None:
    upstream.route("POST", "/oauth/token").reply(reply)
    upstream.route("GET", "/api").reply(accepts("t1"))
    assert (await call(oauth(upstream, clock), send, upstream)).status == 200


# -- one token request shared ------------------------------------------------------------------


async def test_fifty_concurrent_first_requests_cause_exactly_one_token_request(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def slow_token(received: Received) -> Reply:
        await release.wait()
        return token("t1")

    route = upstream.route("POST", "/oauth/token").reply(slow_token)
    api = upstream.route("GET", "/api").reply(accepts("t1"))
    auth = oauth(upstream, clock)
    calls = [asyncio.create_task(call(auth, send, upstream)) for _ in range(50)]
    await upstream.wait_for_requests(1, path="/oauth/token")
    release.set()
    responses = await asyncio.gather(*calls)
    assert [r.status for r in responses] == [200] * 50
    assert route.calls == 1
    assert api.calls == 50


async def test_token_is_reused_until_refresh_margin_before_expiry(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("t1", 3600), token("t2", 3600))
    auth = oauth(upstream, clock, refresh_margin=30)
    await call(auth, send, upstream)
    await clock.advance(3569.9)
    await call(auth, send, upstream)
    assert route.calls == 1
    await clock.advance(0.1)
    await call(auth, send, upstream)
    assert route.calls == 2
    sent = [r.headers["Authorization"] for r in upstream.received("GET", "/api")]
    assert sent == ["Bearer t1", "Bearer t1", "Bearer t2"]


async def test_a_token_shorter_lived_than_twice_the_margin_is_renewed_at_half_life(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("t1", 40), token("t2", 40))
    auth = oauth(upstream, clock, refresh_margin=30)
    await call(auth, send, upstream)
    await clock.advance(19.9)
    await call(auth, send, upstream)
    assert route.calls == 1
    await clock.advance(0.1)
    await call(auth, send, upstream)
    assert route.calls == 2


async def test_a_token_without_expires_in_is_kept_until_a_401(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("t1", None), token("t2", None))
    api = upstream.route("GET", "/api").reply(accepts("t1"))
    auth = oauth(upstream, clock)
    await call(auth, send, upstream)
    await clock.advance(10 * 365 * 86400)
    assert (await call(auth, send, upstream)).status == 200
    assert route.calls == 1
    api.reply(accepts("t2"))
    assert (await call(auth, send, upstream)).status == 200
    assert route.calls == 2


# -- refresh after a 401 -----------------------------------------------------------------------


async def test_a_401_refreshes_the_token_once_and_the_request_succeeds(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("revoked"), token("t2"))
    upstream.route("GET", "/api").reply(accepts("t2"))
    auth = oauth(upstream, clock)
    assert (await call(auth, send, upstream)).status == 200
    assert route.calls == 2
    assert (await call(auth, send, upstream)).status == 200  # the new token is cached
    assert route.calls == 2


async def test_concurrent_401s_cause_one_refresh(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("revoked"), token("t2"))
    upstream.route("GET", "/api").reply(accepts("t2"))
    auth = oauth(upstream, clock)
    stale = Request("GET", upstream.url + "/api")
    await auth.apply(stale, send)  # fetches "revoked" and caches it
    requests = [Request("GET", upstream.url + "/api") for _ in range(10)]
    for request in requests:
        await auth.apply(request, send)
    responses = await asyncio.gather(*(send(r) for r in requests))
    assert {r.status for r in responses} == {401}
    refreshed = await asyncio.gather(
        *(auth.refresh(r, answer, send) for r, answer in zip(requests, responses, strict=True))
    )
    assert refreshed == [True] * 10
    assert route.calls == 2
    again = await asyncio.gather(*(send(r) for r in requests))
    assert {r.status for r in again} == {200}


async def test_a_401_for_a_token_already_replaced_keeps_the_new_token(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    route = upstream.route("POST", "/oauth/token").reply(token("revoked"), token("t2"))
    upstream.route("GET", "/api").reply(accepts("t2"))
    auth = oauth(upstream, clock)
    late, early = Request("GET", upstream.url + "/api"), Request("GET", upstream.url + "/api")
    await auth.apply(late, send)
    await auth.apply(early, send)
    early_answer = await send(early)
    assert await auth.refresh(early, early_answer, send) is True  # fetches t2
    late_answer = await send(late)  # still carries the revoked token
    assert late_answer.status == 401
    assert await auth.refresh(late, late_answer, send) is True
    assert route.calls == 2  # t2 was not thrown away
    assert late.headers["Authorization"] == "Bearer t2"


async def test_refresh_is_false_when_the_endpoint_gives_the_same_token_again(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    upstream.route("POST", "/oauth/token").reply(token("t1"))
    upstream.route("GET", "/api").reply(401)
    auth = oauth(upstream, clock)
    request = Request("GET", upstream.url + "/api")
    await auth.apply(request, send)
    assert await auth.refresh(request, await send(request), send) is False


# -- when the token request fails --------------------------------------------------------------


async def test_a_failed_token_request_reaches_every_waiter_and_the_next_call_tries_again(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def failing(received: Received) -> Reply:
        await release.wait()
        return Reply(503, json={"error": "temporarily_unavailable"})

    route = upstream.route("POST", "/oauth/token").reply(failing, token("t1"))
    auth = oauth(upstream, clock)
    calls = [asyncio.create_task(call(auth, send, upstream)) for _ in range(5)]
    await upstream.wait_for_requests(1, path="/oauth/token")
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, HttpStatusError) and r.status == 503 for r in results)
    assert (await call(auth, send, upstream)).status == 200
    assert route.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_token_request(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def slow_token(received: Received) -> Reply:
        await release.wait()
        return token("t1")

    route = upstream.route("POST", "/oauth/token").reply(slow_token)
    auth = oauth(upstream, clock)
    first = asyncio.create_task(call(auth, send, upstream))
    second = asyncio.create_task(call(auth, send, upstream))
    await upstream.wait_for_requests(1, path="/oauth/token")
    first.cancel()
    release.set()
    assert (await second).status == 200
    assert first.cancelled()
    assert route.calls == 1


async def test_a_token_request_without_an_answer_times_out(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    never = asyncio.Event()

    async def hang(received: Received) -> Reply:
        await never.wait()
        return token("t1")

    upstream.route("POST", "/oauth/token").reply(hang, token("t1"))
    auth = oauth(upstream, clock, timeout=5)
    waiting = asyncio.create_task(call(auth, send, upstream))
    await upstream.wait_for_requests(1, path="/oauth/token")
    await clock.advance(5)
    with pytest.raises(ClientTimeoutError) as caught:
        await waiting
    assert str(caught.value) == (
        f"OAuth2 token request to {upstream.url}/oauth/token got no answer within 5 s"
    )
    assert (await call(auth, send, upstream)).status == 200  # the next call tries again
