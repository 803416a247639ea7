"""The static auth strategies and ``SigningAuth`` over a real socket; no strategy shows a secret.

Each request is built, passed to the strategy's ``apply`` and sent through a
real HTTP client to ``FakeUpstream``, which checks or records what arrived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from interlink.client import (
    ApiKey,
    BasicAuth,
    BearerFrom,
    BearerToken,
    OAuth2ClientCredentials,
    SigningAuth,
)
from interlink.client._models import Auth, Request, Send
from interlink.core import ConfigError, Secret
from interlink.testing import FakeClock, FakeUpstream, Received, Reply
from tests.client.client_support import answering, attempt, expect_token, get

TOKEN = "tok-3f9a-very-secret"


@pytest.fixture
def upstream(upstream: FakeUpstream) -> FakeUpstream:
    """The shared upstream, with /things answering 200 unless a test scripts it."""
    return answering(upstream, "/things")


# -- BearerToken -------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [TOKEN, Secret(TOKEN)])
async def test_bearer_token_sends_the_authorization_header(
    upstream: FakeUpstream, send: Send, token: str | Secret
) -> None:
    upstream.route("GET", "/things").reply(expect_token(TOKEN))
    response = await attempt(BearerToken(token), send, get(upstream))
    assert response.status == 200


async def test_bearer_token_lets_a_401_stand(upstream: FakeUpstream, send: Send) -> None:
    upstream.route("GET", "/things").reply(401)
    auth = BearerToken(TOKEN)
    request = get(upstream)
    response = await attempt(auth, send, request)
    assert await auth.refresh(request, response, send) is False


# -- ApiKey ------------------------------------------------------------------------------------


async def test_api_key_goes_in_the_x_api_key_header_by_default(
    upstream: FakeUpstream, send: Send
) -> None:
    await attempt(ApiKey(TOKEN), send, get(upstream))
    (received,) = await upstream.wait_for_requests(1)
    assert received.headers["X-API-Key"] == TOKEN
    assert "api_key" not in received.query


async def test_api_key_goes_in_the_header_it_is_given(upstream: FakeUpstream, send: Send) -> None:
    await attempt(ApiKey(Secret(TOKEN), header="Api-Key"), send, get(upstream))
    (received,) = await upstream.wait_for_requests(1)
    assert received.headers["Api-Key"] == TOKEN
    assert "X-API-Key" not in received.headers


async def test_api_key_in_the_query_keeps_other_parameters_and_no_header(
    upstream: FakeUpstream, send: Send
) -> None:
    request = get(upstream, params=[("page", "2")])
    await attempt(ApiKey(TOKEN, query="api_key"), send, request)
    (received,) = await upstream.wait_for_requests(1)
    assert received.query.getall("api_key") == [TOKEN]
    assert received.query.getall("page") == ["2"]
    assert "X-API-Key" not in received.headers


async def test_api_key_in_the_query_is_sent_once_however_often_it_is_applied(
    upstream: FakeUpstream, send: Send
) -> None:
    auth = ApiKey(TOKEN, query="key")
    request = get(upstream, params=[("key", "stale"), ("q", "x")])
    await auth.apply(request, send)
    await attempt(auth, send, request)
    (received,) = await upstream.wait_for_requests(1)
    assert received.query.getall("key") == [TOKEN]
    assert received.query.getall("q") == ["x"]


async def test_api_key_lets_a_401_stand(upstream: FakeUpstream, send: Send) -> None:
    upstream.route("GET", "/things").reply(401)
    auth = ApiKey(TOKEN)
    request = get(upstream)
    assert await auth.refresh(request, await attempt(auth, send, request), send) is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"header": "X-Key", "query": "key"}, "exactly one of header= and query="),
        ({"header": None}, "exactly one of header= and query="),
        ({"header": None, "query": None}, "exactly one of header= and query="),
        ({"header": "X Key"}, "ApiKey header must be a header name"),
        ({"header": ""}, "ApiKey header must be a header name"),
        ({"header": 7}, "ApiKey header must be a header name"),
        ({"query": ""}, "ApiKey query must be a non-empty str"),
        ({"query": "a\nb"}, "ApiKey query must be a non-empty str"),
    ],
)
def test_api_key_placement_must_be_exactly_one_valid_header_or_query(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ApiKey(TOKEN, **kwargs)
    assert TOKEN not in str(caught.value)


# -- BasicAuth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", TOKEN), ("zoë", Secret("pä$$ wörd")), (Secret("sk_live_1"), "")],
)
async def test_basic_auth_sends_rfc7617_credentials_in_utf8(
    upstream: FakeUpstream, send: Send, username: str | Secret, password: str | Secret
) -> None:
    await attempt(BasicAuth(username, password), send, get(upstream))
    (received,) = await upstream.wait_for_requests(1)
    scheme, _, encoded = received.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    plain = f"{Secret(username).reveal()}:{Secret(password).reveal()}"
    assert base64.b64decode(encoded).decode("utf-8") == plain


async def test_basic_auth_lets_a_401_stand(upstream: FakeUpstream, send: Send) -> None:
    upstream.route("GET", "/things").reply(401)
    auth = BasicAuth("alice", TOKEN)
    request = get(upstream)
    assert await auth.refresh(request, await attempt(auth, send, request), send) is False


def test_basic_auth_shows_a_plain_username_and_hides_a_secret_one() -> None:
    assert repr(BasicAuth("alice", TOKEN)) == (
        "BasicAuth(username='alice', password=Secret('**********'))"
    )
    assert "sk_live_1" not in repr(BasicAuth(Secret("sk_live_1"), ""))


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("al:ice", TOKEN, "must not contain ':'"),
        ("", TOKEN, "BasicAuth username must be a non-empty str or Secret, got an empty one"),
        (None, TOKEN, "BasicAuth username must be a non-empty str or Secret, got NoneType"),
        ("alice", None, "BasicAuth password must be a str or Secret, got NoneType"),
        ("alice", TOKEN + "\r\nX-Evil: 1", "password must not contain control characters"),
    ],
)
def test_basic_auth_refuses_bad_credentials_without_showing_them(
    username: Any, password: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        BasicAuth(username, password)
    assert TOKEN not in str(caught.value)


# -- SigningAuth -------------------------------------------------------------------------------

SIGNING_KEY = b"hmac-key-0a1b"


def signature(method: str, path: str, body: bytes, timestamp: str) -> str:
    message = b"\n".join([method.encode(), path.encode(), timestamp.encode(), body])
    return hmac.new(SIGNING_KEY, message, hashlib.sha256).hexdigest()


def verify_signature(received: Received) -> int:
    """The upstream's side: 200 only when the signature matches what arrived."""
    timestamp = received.headers.get("X-Timestamp", "")
    expected = signature(received.method, received.raw_path, received.body, timestamp)
    return 200 if hmac.compare_digest(received.headers.get("X-Signature", ""), expected) else 401


def hmac_signer(clock: FakeClock) -> Callable[[Request], None]:
    def sign(request: Request) -> None:
        timestamp = f"{clock.wall():.0f}"
        url = urlsplit(request.full_url())
        path = f"{url.path}?{url.query}" if url.query else url.path
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Signature"] = signature(
            request.method, path, request.content or b"", timestamp
        )

    return sign


async def test_signing_signs_method_path_query_and_body_the_upstream_can_verify(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    upstream.route("POST", "/orders").reply(verify_signature)
    request = Request(
        "POST", upstream.url + "/orders", params=[("dry", "1")], content=b'{"sku":"a-1"}'
    )
    assert (await attempt(SigningAuth(hmac_signer(clock)), send, request)).status == 200


async def test_signing_runs_on_every_attempt_so_a_timestamped_signature_is_fresh(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    upstream.route("POST", "/orders").reply(503, verify_signature)
    auth = SigningAuth(hmac_signer(clock))
    request = Request("POST", upstream.url + "/orders", content=b"{}")
    assert (await attempt(auth, send, request)).status == 503
    await clock.advance(5)
    assert (await attempt(auth, send, request)).status == 200
    first, second = await upstream.wait_for_requests(2)
    assert int(second.headers["X-Timestamp"]) == int(first.headers["X-Timestamp"]) + 5
    assert first.headers["X-Signature"] != second.headers["X-Signature"]


async def test_signing_awaits_an_async_signer(upstream: FakeUpstream, send: Send) -> None:
    async def nonce() -> str:
        return "yes"

    async def sign(request: Request) -> None:
        request.headers["X-Signed"] = await nonce()

    await attempt(SigningAuth(sign), send, get(upstream))
    (received,) = await upstream.wait_for_requests(1)
    assert received.headers["X-Signed"] == "yes"


async def test_signing_lets_a_401_stand(upstream: FakeUpstream, send: Send) -> None:
    upstream.route("GET", "/things").reply(401)
    auth = SigningAuth(lambda request: None)
    request = get(upstream)
    assert await auth.refresh(request, await attempt(auth, send, request), send) is False


@pytest.mark.parametrize("sign", [None, "hmac", 3])
def test_signing_needs_a_callable(sign: Any) -> None:
    with pytest.raises(ConfigError, match="SigningAuth sign must be a callable"):
        SigningAuth(sign)


# -- secrets stay hidden -----------------------------------------------------------------------


def every_strategy() -> list[tuple[str, Callable[[str], Auth]]]:
    """Each strategy, built for an upstream whose token endpoint is ``/oauth/token``."""

    async def from_vault() -> str:
        return TOKEN

    return [
        ("BearerToken", lambda url: BearerToken(TOKEN)),
        ("BearerToken", lambda url: BearerToken(Secret(TOKEN))),
        ("BearerFrom", lambda url: BearerFrom(from_vault, cache_for=5)),
        ("ApiKey", lambda url: ApiKey(TOKEN)),
        ("ApiKey", lambda url: ApiKey(TOKEN, query="api_key")),
        ("BasicAuth", lambda url: BasicAuth("alice", TOKEN)),
        ("BasicAuth", lambda url: BasicAuth(Secret(TOKEN), "")),
        ("SigningAuth", lambda url: SigningAuth(lambda request: None)),
        (
            "OAuth2ClientCredentials",
            lambda url: OAuth2ClientCredentials(url + "/oauth/token", "svc", TOKEN),
        ),
    ]


@pytest.mark.parametrize(("name", "build"), every_strategy())
async def test_no_strategy_shows_its_secret_in_repr_or_str(
    upstream: FakeUpstream, send: Send, name: str, build: Callable[[str], Auth]
) -> None:
    upstream.route("POST", "/oauth/token").reply(Reply(json={"access_token": TOKEN}))
    auth = build(upstream.url)
    await attempt(auth, send, get(upstream))  # a fetched token must not show either
    for shown in (repr(auth), str(auth), f"{auth!r:>10}"):
        assert shown.startswith(f"{name}(")
        assert TOKEN not in shown
        assert base64.b64encode(TOKEN.encode()).decode() not in shown


def test_reprs_say_how_each_strategy_is_configured() -> None:
    async def vault_token() -> str:
        return TOKEN

    def sign(request: Request) -> None:
        return None

    assert repr(BearerToken(TOKEN)) == "BearerToken(token=Secret('**********'))"
    assert repr(ApiKey(TOKEN)) == "ApiKey(key=Secret('**********'), header='X-API-Key')"
    assert repr(ApiKey(TOKEN, query="k")) == "ApiKey(key=Secret('**********'), query='k')"
    assert repr(BearerFrom(vault_token, cache_for=5)) == (
        "BearerFrom(get_token=test_reprs_say_how_each_strategy_is_configured.<locals>"
        ".vault_token, cache_for=5.0)"
    )
    assert repr(SigningAuth(sign)) == (
        "SigningAuth(sign=test_reprs_say_how_each_strategy_is_configured.<locals>.sign)"
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BearerToken(""), "BearerToken token must be a non-empty str or Secret"),
        (lambda: BearerToken(None), "BearerToken token must be a non-empty str or Secret"),
        (lambda: BearerToken(TOKEN + "\r\n"), "BearerToken token must not contain control"),
        (lambda: ApiKey(""), "ApiKey key must be a non-empty str or Secret, got an empty one"),
        (lambda: ApiKey(12345), "ApiKey key must be a non-empty str or Secret, got int"),
        (lambda: ApiKey(TOKEN + "\n"), "ApiKey key must not contain control characters"),
    ],
)
def test_bad_secrets_are_refused_by_type_never_by_value(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        build()
    assert TOKEN not in str(caught.value)
    assert "12345" not in str(caught.value)
