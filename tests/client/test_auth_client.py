"""Auth strategies inside ``ApiClient``: per-attempt credentials, 401 refresh, no secret in errors.

Everything crosses a real socket to ``FakeUpstream``; retries use tiny delays.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest

from interlink.client import ApiKey, OAuth2ClientCredentials, SigningAuth
from interlink.client._client import ApiClient
from interlink.client._models import Request
from interlink.core import HttpStatusError, Secret
from interlink.testing import FakeUpstream, Received, Reply

SECRET = "cs-77a1-very-secret"
FAST_RETRY: dict[str, Any] = {"retry": {"max_attempts": 3, "initial_delay": 0.001}}


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def token(access: str) -> Reply:
    return Reply(json={"access_token": access, "token_type": "Bearer", "expires_in": 3600})


def accepts(access: str) -> Any:
    def check(received: Received) -> Reply:
        if received.headers.get("Authorization") != f"Bearer {access}":
            return Reply(401, json={"error": "invalid_token"})
        return Reply(json={"ok": True})

    return check


def oauth(upstream: FakeUpstream, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(upstream.url + "/oauth/token", "svc", Secret(SECRET), **kwargs)


async def test_a_401_gets_a_fresh_oauth2_token_and_the_call_succeeds(
    upstream: FakeUpstream, transport: str
) -> None:
    tokens = upstream.route("POST", "/oauth/token").reply(token("revoked"), token("t2"))
    api = upstream.route("GET", "/orders").reply(accepts("t2"))
    async with ApiClient(upstream.url, auth=oauth(upstream), transport=transport) as client:
        assert await client.get("/orders") == {"ok": True}
        assert await client.get("/orders") == {"ok": True}
    assert tokens.calls == 2
    assert [r.headers["Authorization"] for r in api.requests] == [
        "Bearer revoked",
        "Bearer t2",
        "Bearer t2",
    ]


async def test_a_second_401_after_the_refresh_is_raised_not_refreshed_again(
    upstream: FakeUpstream, transport: str
) -> None:
    tokens = upstream.route("POST", "/oauth/token").reply(token("t1"), token("t2"), token("t3"))
    upstream.route("GET", "/orders").reply(401)
    async with ApiClient(upstream.url, auth=oauth(upstream), transport=transport) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/orders")
    assert caught.value.status == 401
    assert tokens.calls == 2


async def test_fifty_concurrent_calls_through_the_client_share_one_token_request(
    upstream: FakeUpstream, transport: str
) -> None:
    release = asyncio.Event()

    async def slow_token(received: Received) -> Reply:
        await release.wait()
        return token("t1")

    tokens = upstream.route("POST", "/oauth/token").reply(slow_token)
    upstream.route("GET", "/orders").reply(accepts("t1"))
    async with ApiClient(upstream.url, auth=oauth(upstream), transport=transport) as client:
        calls = [asyncio.create_task(client.get("/orders")) for _ in range(50)]
        await upstream.wait_for_requests(1, path="/oauth/token")
        release.set()
        assert await asyncio.gather(*calls) == [{"ok": True}] * 50
    assert tokens.calls == 1


async def test_a_failing_token_endpoint_is_retried_by_the_pipeline_when_it_may_help(
    upstream: FakeUpstream, transport: str
) -> None:
    tokens = upstream.route("POST", "/oauth/token").reply(503, token("t1"))
    upstream.route("GET", "/orders").reply(accepts("t1"))
    auth = oauth(upstream)
    async with ApiClient(upstream.url, auth=auth, resilience=FAST_RETRY, transport=transport) as c:
        assert await c.get("/orders") == {"ok": True}
    assert tokens.calls == 2


async def test_rejected_client_credentials_fail_the_call_at_once_naming_the_token_url(
    upstream: FakeUpstream, transport: str
) -> None:
    reply = Reply(401, json={"error": "invalid_client", "error_description": "unknown client"})
    tokens = upstream.route("POST", "/oauth/token").reply(reply)
    api = upstream.route("GET", "/orders")
    auth = oauth(upstream, auth_method="body")
    async with ApiClient(upstream.url, auth=auth, resilience=FAST_RETRY, transport=transport) as c:
        with pytest.raises(HttpStatusError) as caught:
            await c.get("/orders")
    assert str(caught.value) == (
        f"OAuth2 token request to {upstream.url}/oauth/token failed with HTTP 401: "
        "invalid_client (unknown client)"
    )
    assert SECRET not in repr(caught.value)
    assert (tokens.calls, api.calls) == (1, 0)


async def test_signing_runs_on_every_attempt_so_each_retry_is_signed_afresh(
    upstream: FakeUpstream, transport: str
) -> None:
    key = b"signing-key"
    nonces = iter(range(1, 100))

    def sign(request: Request) -> None:
        nonce = str(next(nonces))
        message = b"\n".join([request.method.encode(), nonce.encode(), request.content or b""])
        request.headers["X-Nonce"] = nonce
        request.headers["X-Signature"] = hmac.new(key, message, hashlib.sha256).hexdigest()

    api = upstream.route("PUT", "/orders/1").reply(503, 503, 200)
    async with ApiClient(
        upstream.url, auth=SigningAuth(sign), resilience=FAST_RETRY, transport=transport
    ) as client:
        await client.put("/orders/1", json={"qty": 2})
    nonces_sent = [r.headers["X-Nonce"] for r in api.requests]
    assert nonces_sent == ["1", "2", "3"]
    for received in api.requests:
        message = b"\n".join([b"PUT", received.headers["X-Nonce"].encode(), received.body])
        expected = hmac.new(key, message, hashlib.sha256).hexdigest()
        assert received.headers["X-Signature"] == expected


async def test_an_api_key_in_the_query_never_shows_in_the_error(
    upstream: FakeUpstream, transport: str
) -> None:
    api = upstream.route("GET", "/orders").reply(404)
    auth = ApiKey(Secret(SECRET), query="k")  # a name redact_url would not recognise
    async with ApiClient(upstream.url, auth=auth, transport=transport) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/orders", params={"page": "2"})
    assert api.requests[0].query["k"] == SECRET
    for shown in (str(caught.value), caught.value.url, repr(caught.value)):
        assert SECRET not in shown


async def test_credentials_are_not_sent_to_another_origin(
    upstream: FakeUpstream, transport: str
) -> None:
    async with FakeUpstream() as elsewhere:
        elsewhere.route("GET", "/public")
        async with ApiClient(upstream.url, auth=ApiKey(SECRET), transport=transport) as client:
            await client.get(elsewhere.url + "/public")
        (received,) = elsewhere.requests
    assert "X-API-Key" not in received.headers
