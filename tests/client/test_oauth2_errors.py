"""``OAuth2ClientCredentials``: token endpoint failures and bad arguments give clear errors, never the secret.

The token endpoint is ``FakeUpstream``, reached over a real socket.
"""

from __future__ import annotations

from typing import Any

import pytest

from interlink.client import OAuth2ClientCredentials
from interlink.client._models import Request, Response, Send
from interlink.core import (
    ClientError,
    ConfigError,
    HttpStatusError,
    ResponseValidationError,
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


def oauth(upstream: FakeUpstream, clock: FakeClock, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        upstream.url + "/oauth/token", CLIENT_ID, Secret(SECRET), clock=clock, **kwargs
    )


async def call(auth: OAuth2ClientCredentials, send: Send, upstream: FakeUpstream) -> Response:
    """One API call as the client makes it: apply the credentials, then send."""
    request = Request("GET", upstream.url + "/api")
    await auth.apply(request, send)
    return await send(request)


# -- when the token endpoint fails -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "expected"),
    [
        (
            Reply(401, json={"error": "invalid_client", "error_description": "Bad credentials"}),
            HttpStatusError,
            "failed with HTTP 401: invalid_client (Bad credentials)",
        ),
        (Reply(400, json={"error": "invalid_scope"}), HttpStatusError, "HTTP 400: invalid_scope"),
        (Reply(500, body="<h1>oops</h1>"), HttpStatusError, "failed with HTTP 500"),
        (Reply(403, json={"message": "no"}), HttpStatusError, "failed with HTTP 403"),
        (
            Reply(200, body="<html>login</html>", headers={"Content-Type": "text/html"}),
            ResponseValidationError,
            "(HTTP 200): the body must be JSON, got text/html",
        ),
        (Reply(json=["t1"]), ResponseValidationError, "the body must be a JSON object, got list"),
        (
            Reply(json={"token_type": "Bearer"}),
            ResponseValidationError,
            "access_token must be a non-empty string, got nothing",
        ),
        (
            Reply(json={"access_token": "", "token_type": "Bearer"}),
            ResponseValidationError,
            "access_token must be a non-empty string, got an empty string",
        ),
        (
            Reply(json={"access_token": 42}),
            ResponseValidationError,
            "access_token must be a non-empty string, got int",
        ),
        (
            Reply(json={"access_token": "t1\r\nX: y"}),
            ResponseValidationError,
            "access_token must be a non-empty string, got a string with control characters",
        ),
        (
            Reply(json={"access_token": "t1", "token_type": "mac"}),
            ResponseValidationError,
            "token_type must be 'Bearer', got 'mac'",
        ),
        (
            Reply(json={"access_token": "t1", "token_type": None}),
            ResponseValidationError,
            "token_type must be 'Bearer', got NoneType",
        ),
        (
            Reply(json={"access_token": "t1", "expires_in": "soon"}),
            ResponseValidationError,
            "expires_in must be a positive number of seconds, got 'soon'",
        ),
        (
            Reply(json={"access_token": "t1", "expires_in": -5}),
            ResponseValidationError,
            "expires_in must be a positive number of seconds, got -5",
        ),
        (
            Reply(json={"access_token": "t1", "expires_in": True}),
            ResponseValidationError,
            "expires_in must be a positive number of seconds, got True",
        ),
    ],
)
async def test_token_endpoint_errors_say_what_went_wrong_without_the_secret(
    upstream: FakeUpstream,
    send: Send,
    clock: FakeClock,
    reply: Reply,
    error: type[ClientError],
    expected: str,
) -> None:
    upstream.route("POST", "/oauth/token").reply(reply)
    auth = oauth(upstream, clock)
    with pytest.raises(error) as caught:
        await call(auth, send, upstream)
    message = str(caught.value)
    url = f"{upstream.url}/oauth/token"
    assert message.startswith(
        (f"OAuth2 token request to {url} ", f"OAuth2 token response from {url} ")
    )
    assert expected in message
    assert caught.value.method == "POST"
    assert caught.value.url == f"{upstream.url}/oauth/token"
    assert SECRET not in message
    assert upstream.received("GET", "/api") == []  # the API never saw a request without a token


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (429, True), (503, True), (501, False)]
)
async def test_token_endpoint_statuses_are_retryable_only_when_trying_again_may_help(
    upstream: FakeUpstream, send: Send, clock: FakeClock, status: int, retryable: bool
) -> None:
    upstream.route("POST", "/oauth/token").reply(Reply(status, retry_after=7))
    with pytest.raises(HttpStatusError) as caught:
        await call(oauth(upstream, clock), send, upstream)
    assert caught.value.status == status
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == 7.0


async def test_a_token_endpoint_that_echoes_the_secret_does_not_leak_it(
    upstream: FakeUpstream, send: Send, clock: FakeClock
) -> None:
    def echo(received: Received) -> Reply:
        return Reply(400, json={"error": "invalid_request", "error_description": received.text()})

    upstream.route("POST", "/oauth/token").reply(echo)
    auth = oauth(upstream, clock, auth_method="body")
    with pytest.raises(HttpStatusError) as caught:
        await call(auth, send, upstream)
    assert "client_secret=***" in str(caught.value)
    for shown in (str(caught.value), caught.value.body_excerpt, repr(caught.value)):
        assert SECRET not in shown
        assert "cs-8c1d%2Fvery%3Asecret" not in shown


@pytest.mark.parametrize(
    "body",
    [
        '{"error": "invalid_client", "error_description": "secret cs-8c1d\\/very:secret"}',
        "x" * 505 + SECRET,  # the secret across the excerpt's cut
    ],
    ids=["json-escaped-slash", "across-the-cut"],
)
async def test_an_echoed_secret_is_scrubbed_from_the_excerpt_in_any_spelling(
    upstream: FakeUpstream, send: Send, clock: FakeClock, body: str
) -> None:
    reply = Reply(401, body=body, headers={"X-Request-Id": "req-9"})
    upstream.route("POST", "/oauth/token").reply(reply)
    with pytest.raises(HttpStatusError) as caught:
        await call(oauth(upstream, clock), send, upstream)
    assert caught.value.request_id == "req-9"
    assert "(request id req-9)" in str(caught.value)
    for shown in (str(caught.value), caught.value.body_excerpt):
        assert "cs-8c1d" not in shown
        assert "very:secret" not in shown


# -- configuration -----------------------------------------------------------------------------


def test_repr_shows_the_redacted_token_url_and_client_id_but_never_the_secret() -> None:
    auth = OAuth2ClientCredentials("https://bob:pw@auth.example/token", CLIENT_ID, SECRET)
    assert repr(auth) == (
        "OAuth2ClientCredentials(token_url='https://bob:REDACTED@auth.example/token', "
        "client_id='svc-orders', client_secret=Secret('**********'))"
    )
    assert SECRET not in str(auth)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("/token", CLIENT_ID, SECRET), {}, "token_url must be an absolute http"),
        (("ftp://h/token", CLIENT_ID, SECRET), {}, "token_url must be an absolute http"),
        (("https:///token", CLIENT_ID, SECRET), {}, "token_url must be an absolute http"),
        (("http://[::1/token", CLIENT_ID, SECRET), {}, "token_url must be an absolute http"),
        ((None, CLIENT_ID, SECRET), {}, "token_url must be an absolute http"),
        (("https://h/t", "", SECRET), {}, "client_id must be a non-empty str"),
        (("https://h/t", CLIENT_ID, ""), {}, "client_secret must be a non-empty str or Secret"),
        (("https://h/t", CLIENT_ID, 1234), {}, "client_secret must be a non-empty str or Secret"),
        (("https://h/t", CLIENT_ID, SECRET), {"auth_method": "post"}, "auth_method must be"),
        (("https://h/t", CLIENT_ID, SECRET), {"refresh_margin": -1}, "refresh_margin must be"),
        (("https://h/t", CLIENT_ID, SECRET), {"timeout": 0}, "timeout must be"),
        (("https://h/t", CLIENT_ID, SECRET), {"scope": ""}, "scope must be a non-empty str"),
        (("https://h/t", CLIENT_ID, SECRET), {"scope": []}, "scope must be a non-empty str"),
        (("https://h/t", CLIENT_ID, SECRET), {"scope": ["a", 1]}, "scope must be a non-empty"),
        (("https://h/t", CLIENT_ID, SECRET), {"audience": ""}, "audience must be a non-empty"),
        (("https://h/t", CLIENT_ID, SECRET), {"clock": 5}, "clock must be a Clock or None"),
        (
            ("https://h/t", CLIENT_ID, SECRET),
            {"extra_params": [("assertion", SECRET)]},
            "extra_params must be a mapping",
        ),
        (
            ("https://h/t", CLIENT_ID, SECRET),
            {"extra_params": {"grant_type": "password"}},
            "extra_params must not set 'grant_type': it is fixed by the grant",
        ),
        (
            ("https://h/t", CLIENT_ID, SECRET),
            {"extra_params": {"scope": "a"}},
            "extra_params must not set 'scope': use the argument",
        ),
        (
            ("https://h/t", CLIENT_ID, SECRET),
            {"extra_params": {"assertion": 5}},
            r"extra_params\['assertion'\] must be a non-empty str or Secret, got int",
        ),
    ],
)
def test_bad_arguments_are_config_errors_that_never_show_the_secret(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        OAuth2ClientCredentials(*args, **kwargs)
    assert SECRET not in str(caught.value)
    assert "1234" not in str(caught.value)


def test_a_bad_token_url_is_shown_redacted() -> None:
    with pytest.raises(ConfigError) as caught:
        OAuth2ClientCredentials("ftp://bob:hunter2@h/token", CLIENT_ID, SECRET)
    assert "hunter2" not in str(caught.value)
