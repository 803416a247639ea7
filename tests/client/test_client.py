"""ApiClient against a real FakeUpstream, on both transports: bodies, models, headers, errors,
secrets, quota, health, events, configuration and the lifecycle.

Retries, the breaker, the bulkhead, the rate limiter, timeouts, streaming and
cancellation are in ``test_client_resilience.py``.
"""

from __future__ import annotations

import traceback
from typing import Any

import pydantic
import pytest

import interlink
from interlink.client import (
    ApiClient,
    ClientError,
    ConnectError,
    HttpStatusError,
    LinkHeader,
    ResponseValidationError,
)
from interlink.client._models import Response
from interlink.core import ConfigError, Secret
from interlink.resilience import CircuitBreaker, Pipeline, RateLimiter, ResilienceEvent, Retry
from interlink.testing import FakeUpstream, Reply
from tests.client.client_support import FAST, CountingToken, closed_port, make_client


class Item(pydantic.BaseModel):
    id: int
    name: str


# -- bodies -------------------------------------------------------------------------
async def test_json_body_is_decoded(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/items/1").reply(Reply(json={"id": 1, "tags": ["a"]}))
    async with make_client(upstream, transport) as client:
        assert await client.get("/items/1") == {"id": 1, "tags": ["a"]}


async def test_vendor_json_content_type_is_decoded_too(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/p").reply(
        Reply(body=b'{"ok": true}', headers={"Content-Type": "application/problem+json"})
    )
    async with make_client(upstream, transport) as client:
        assert await client.get("/p") == {"ok": True}


async def test_text_body_is_returned_as_text(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/hello").reply(Reply(body="grüße"))
    async with make_client(upstream, transport) as client:
        assert await client.get("/hello") == "grüße"


@pytest.mark.parametrize("reply", [Reply(status=204), Reply(status=200)])
async def test_an_empty_body_gives_none(
    upstream: FakeUpstream, transport: str, reply: Reply
) -> None:
    upstream.route("DELETE", "/items/1").reply(reply)
    async with make_client(upstream, transport) as client:
        assert await client.delete("/items/1") is None


async def test_a_body_that_says_json_but_is_not_raises_validation_error(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/bad").reply(
        Reply(body=b"<html>oops", headers={"Content-Type": "application/json"})
    )
    async with make_client(upstream, transport) as client:
        with pytest.raises(
            ResponseValidationError, match=r"GET http://127\.0\.0\.1:\d+/bad answered 200"
        ) as caught:
            await client.get("/bad")
    assert caught.value.errors[0][0] == "(body)"


async def test_response_model_validates_one_object(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/items/1").reply(Reply(json={"id": "1", "name": "bolt"}))
    async with make_client(upstream, transport) as client:
        assert await client.get("/items/1", response_model=Item) == Item(id=1, name="bolt")


async def test_response_model_validates_a_list(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/items").reply(
        Reply(json=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    )
    async with make_client(upstream, transport) as client:
        items = await client.get("/items", response_model=list[Item])
    assert [item.name for item in items] == ["a", "b"]


async def test_response_model_applies_to_text_bodies(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/count").reply(Reply(body="42"))
    async with make_client(upstream, transport) as client:
        assert await client.get("/count", response_model=int) == 42


async def test_validation_error_names_the_field_what_was_expected_and_what_was_found(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/items").reply(
        Reply(json=[{"id": 1, "name": "a"}, {"id": "x", "name": "b"}, {"id": 3}])
    )
    async with make_client(upstream, transport) as client:
        with pytest.raises(ResponseValidationError) as caught:
            await client.get("/items", response_model=list[Item])
    error = caught.value
    assert [path for path, _, _ in error.errors] == ["[1].id", "[2].name"]
    assert error.errors[0][2] == "'x'"
    assert "valid integer" in error.errors[0][1]
    message = str(error)
    assert "answered 200 with a body that does not match list[Item]: " in message
    assert "[1].id: Input should be a valid integer" in message
    assert "got 'x'" in message
    assert error.retryable is False
    assert error.attempts == 1


async def test_raw_returns_the_response(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/raw").reply(Reply(json={"a": 1}, headers={"X-Thing": "yes"}))
    async with make_client(upstream, transport) as client:
        response = await client.get("/raw", raw=True)
    assert isinstance(response, Response)
    assert response.status == 200
    assert response.ok
    assert response.headers["x-thing"] == "yes"
    assert response.json() == {"a": 1}
    assert response.url == f"{upstream.url}/raw"


# -- what is sent ------------------------------------------------------------------
async def test_default_user_agent_names_interlink_and_its_version(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/").reply(200)
    async with make_client(upstream, transport) as client:
        await client.get("/")
    assert upstream.requests[0].headers["User-Agent"] == f"interlink/{interlink.__version__}"


async def test_user_agent_can_be_overridden(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/").reply(200)
    async with make_client(upstream, transport, user_agent="shop/2.0") as client:
        await client.get("/")
        await client.get("/", headers={"User-Agent": "batch-job"})
    async with make_client(upstream, transport, headers={"user-agent": "other/1"}) as client:
        await client.get("/")
    assert [r.headers["User-Agent"] for r in upstream.requests] == [
        "shop/2.0",
        "batch-job",
        "other/1",
    ]


async def test_json_params_and_headers_are_sent(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("POST", "/orders").reply(Reply(status=201, json={"id": 7}))
    headers = {"X-Tenant": "acme", "X-Token": Secret("s3")}
    async with make_client(upstream, transport, headers={"X-Client": "shop"}) as client:
        created = await client.post(
            "/orders",
            json={"sku": "A1", "qty": 2},
            params={"dry": False, "tags": ["a", "b"], "skip": None, "n": 3},
            headers=headers,  # type: ignore[arg-type]
        )
    assert created == {"id": 7}
    received = upstream.requests[0]
    assert received.json() == {"sku": "A1", "qty": 2}
    assert received.headers["Content-Type"] == "application/json"
    assert received.query.getall("tags") == ["a", "b"]
    assert dict(received.query) | {"tags": "a"} == {"dry": "false", "tags": "a", "n": "3"}
    assert (
        received.headers["X-Client"],
        received.headers["X-Tenant"],
        received.headers["X-Token"],
    ) == (
        "shop",
        "acme",
        "s3",
    )


async def test_methods_are_case_insensitive_and_custom_ones_allowed(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("*", "/cache").reply(200)
    async with make_client(upstream, transport) as client:
        await client.request("get", "/cache")
        await client.request("PURGE", "/cache", content=bytearray(b"k"), idempotency_key="p-1")
    assert [(r.method, r.body) for r in upstream.requests] == [("GET", b""), ("PURGE", b"k")]


async def test_an_at_sign_in_an_absolute_urls_query_is_no_credential(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/users").reply(200)
    async with make_client(upstream, transport) as client:
        await client.get(f"{upstream.url}/users?email=a@b.example")
    assert upstream.requests[0].query["email"] == "a@b.example"
    assert "Authorization" not in upstream.requests[0].headers


async def test_pydantic_models_are_encoded_as_json(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("PUT", "/items/1").reply(200)
    async with make_client(upstream, transport) as client:
        await client.put("/items/1", json=Item(id=1, name="bolt"))
    assert upstream.requests[0].json() == {"id": 1, "name": "bolt"}


async def test_form_data_and_raw_content_are_sent(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("*", "/{name}").reply(200)
    async with make_client(upstream, transport) as client:
        await client.post("/form", data={"a": "1", "b": ["x", "y"]})
        await client.post("/raw", content="plain", headers={"Content-Type": "text/plain"})
        await client.patch("/bytes", content=b"\x00\x01", idempotency_key="k")
    form, text, binary = upstream.requests
    assert form.body == b"a=1&b=x&b=y"
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (text.body, text.headers["Content-Type"]) == (b"plain", "text/plain")
    assert binary.body == b"\x00\x01"


async def test_paths_join_the_base_url_and_its_query_is_kept(
    upstream: FakeUpstream, transport: str
) -> None:
    for path in ("/v1/items", "/v1", "/absolute"):
        upstream.route("GET", path).reply(200)
    client = ApiClient(f"{upstream.url}/v1/?region=eu", transport=transport, resilience=FAST)
    async with client:
        await client.get("/items", params={"page": 2})
        await client.get("items")
        await client.get("")
        await client.get(f"{upstream.url}/absolute?x=1")
    paths = [(r.path, dict(r.query)) for r in upstream.requests]
    assert paths == [
        ("/v1/items", {"region": "eu", "page": "2"}),
        ("/v1/items", {"region": "eu"}),
        ("/v1", {"region": "eu"}),
        ("/absolute", {"x": "1"}),
    ]


async def test_idempotency_key_string_is_sent_as_it_is(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("POST", "/charges").reply(201)
    async with make_client(upstream, transport) as client:
        await client.post("/charges", json={}, idempotency_key="order-42")
        await client.post("/charges", json={})
    assert [r.idempotency_key for r in upstream.requests] == ["order-42", None]


# -- error statuses and their messages -----------------------------------------------
async def test_error_message_names_method_url_status_attempts_request_id_and_body(
    upstream: FakeUpstream, transport: str
) -> None:
    body = {"error": "down", "detail": "x" * 5000}
    upstream.route("GET", "/charges").reply(
        Reply(status=503, json=body, headers={"X-Request-Id": "abc123"})
    )
    async with make_client(upstream, transport, max_error_body=64) as client:
        with pytest.raises(HttpStatusError) as caught:
            await client.get("/charges", params={"api_key": "K3Y"})
    error = caught.value
    assert str(error).startswith(
        f"GET {upstream.url}/charges?api_key=REDACTED answered 503 Service Unavailable after 3 attempts"
        ' (request id abc123): {"error": "down"'
    )
    assert str(error).endswith("...")
    assert (error.status, error.attempts, error.request_id, error.retryable) == (
        503,
        3,
        "abc123",
        True,
    )
    assert error.method == "GET"
    assert error.url == f"{upstream.url}/charges?api_key=REDACTED"
    assert len(error.body_excerpt) == 64 + 3
    assert error.headers["X-Request-Id"] == error.headers.get("x-request-id") == "abc123"
    assert "X-REQUEST-ID" in error.headers
    assert 5 not in error.headers


async def test_a_non_retryable_status_raises_after_one_attempt(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/missing").reply(Reply(status=404, body="no such item"))
    async with make_client(upstream, transport) as client:
        with pytest.raises(
            HttpStatusError, match=r"answered 404 Not Found: no such item$"
        ) as caught:
            await client.get("/missing", raw=True)
    assert caught.value.retryable is False
    assert caught.value.attempts == 1
    assert "after" not in str(caught.value)


async def test_an_unknown_status_is_named_by_its_number(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/odd").reply(599)
    async with make_client(upstream, transport) as client:
        with pytest.raises(HttpStatusError, match=r"answered 599$"):
            await client.get("/odd")


# -- auth ----------------------------------------------------------------------------
def _token_gate(received: Any) -> Reply:
    if received.headers.get("Authorization") == "Bearer token-2":
        return Reply(json={"ok": True})
    return Reply(status=401, body="expired")


async def test_a_401_refreshes_the_auth_once_then_sends_again(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/me").reply(_token_gate)
    auth = CountingToken()
    async with make_client(upstream, transport, auth=auth) as client:
        assert await client.get("/me") == {"ok": True}
    assert auth.refresh_calls == 1
    assert [r.headers["Authorization"] for r in upstream.requests] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_a_401_stands_when_the_refresh_fails(upstream: FakeUpstream, transport: str) -> None:
    upstream.route("GET", "/me").reply(_token_gate)
    auth = CountingToken(refreshes=False)
    async with make_client(upstream, transport, auth=auth) as client:
        with pytest.raises(HttpStatusError, match="answered 401 Unauthorized: expired") as caught:
            await client.get("/me")
    assert (auth.refresh_calls, caught.value.retryable, len(upstream.requests)) == (1, False, 1)


async def test_the_refresh_happens_once_per_call_not_per_attempt(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/me").reply(401)
    auth = CountingToken()
    async with make_client(upstream, transport, auth=auth) as client:
        with pytest.raises(HttpStatusError):
            await client.get("/me")
        with pytest.raises(HttpStatusError):
            await client.get("/me")
    assert auth.refresh_calls == 2
    assert len(upstream.requests) == 4


async def test_credentials_go_only_to_the_base_urls_origin(transport: str) -> None:
    async with FakeUpstream() as home, FakeUpstream() as elsewhere:
        home.route("GET", "/{path}").reply(200)
        elsewhere.route("GET", "/{path}").reply(200)
        auth = CountingToken()
        async with make_client(home, transport, auth=auth) as client:
            await client.get("/mine")
            await client.get(f"{home.url}/also-mine")
            await client.get(f"{elsewhere.url}/theirs")
    assert [r.headers.get("Authorization") for r in home.requests] == ["Bearer token-1"] * 2
    assert "Authorization" not in elsewhere.requests[0].headers


class FailingAuth:
    """An ``Auth`` whose token endpoint is down, or which is simply broken."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def apply(self, request: Any, send: Any) -> None:
        self.calls += 1
        raise self.error

    async def refresh(self, request: Any, response: Any, send: Any) -> bool:
        return False  # pragma: no cover - apply never lets a request out


async def test_an_auth_failure_is_retried_and_raised_as_the_auth_worded_it(
    upstream: FakeUpstream, transport: str
) -> None:
    auth = FailingAuth(ClientError("token endpoint https://auth.example/token answered 503"))
    async with make_client(upstream, transport, auth=auth) as client:
        with pytest.raises(ClientError) as caught:
            await client.get("/me")
        assert client.health().failures == 1
    assert str(caught.value) == "token endpoint https://auth.example/token answered 503"
    assert (caught.value.attempts, auth.calls, upstream.requests) == (3, 3, [])


async def test_a_broken_auth_propagates_as_it_is_and_is_no_upstream_failure(
    upstream: FakeUpstream, transport: str
) -> None:
    auth = FailingAuth(KeyError("oops"))
    resilience = {"retry": {"max_attempts": 1}}
    async with make_client(upstream, transport, auth=auth, resilience=resilience) as client:
        with pytest.raises(KeyError):
            await client.get("/me")
        assert (client.health().requests, client.health().failures) == (1, 0)


async def test_an_attempt_that_fails_with_auth_is_reported_with_the_callers_url(
    transport: str,
) -> None:
    events: list[ResilienceEvent] = []
    base = f"http://127.0.0.1:{closed_port()}"
    async with ApiClient(
        base, transport=transport, resilience=FAST, auth=CountingToken()
    ) as client:
        client.events.subscribe(events.append)
        with pytest.raises(
            ConnectError, match=r"/x\?key=REDACTED could not connect after 3 attempts"
        ):
            await client.get("/x", params={"key": "k"})
        with pytest.raises(ConnectError):
            async with client.stream("GET", "/x"):
                pass  # pragma: no cover - never entered
    failed = [dict(e.attributes) for e in events if e.kind == "client.request"]
    assert [(f["status"], f["error"]) for f in failed] == [(None, "ConnectError")] * 6


async def test_a_fallback_value_is_returned_as_it_is(
    upstream: FakeUpstream, transport: str
) -> None:
    from interlink.resilience import Fallback

    upstream.route("GET", "/quote").reply(Reply(reset=True))
    pipeline = Pipeline(fallback=Fallback({"price": None}), timeout=5.0)
    async with make_client(upstream, transport, resilience=pipeline) as client:
        assert await client.get("/quote") == {"price": None}


def test_what_counts_as_an_upstream_failure() -> None:
    from interlink.client._health import is_upstream_failure

    assert is_upstream_failure(HttpStatusError("503", status=503, retryable=True))
    assert not is_upstream_failure(HttpStatusError("404", status=404))
    assert not is_upstream_failure(ResponseValidationError("bad", errors=[]))
    assert is_upstream_failure(ConnectError("refused"))
    assert not is_upstream_failure(ValueError("a bug"))


# -- secrets -------------------------------------------------------------------------
def _everything_printed(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


async def test_secrets_never_appear_in_errors_or_reprs(
    upstream: FakeUpstream, transport: str
) -> None:
    # Built at run time, so that the traceback's source lines cannot show them.
    key, password, token = ("".join(["K3Y", "-", word]) for word in ("api", "pw", "bearer"))
    upstream.route("GET", "/fail").reply(Reply(status=500, body="boom"))
    upstream.route("GET", "/reset").reply(Reply(reset=True))
    upstream.route("GET", "/model").reply(Reply(json={"id": "x"}))
    base = upstream.url.replace("http://", f"http://bob:{password}@")
    client = ApiClient(
        base, transport=transport, resilience=FAST, headers={"Authorization": f"Bearer {token}"}
    )
    refused = f"http://bob:{password}@127.0.0.1:{closed_port()}/x?token={key}"
    errors: list[BaseException] = []
    async with client:
        for path, kwargs in [("/fail", {}), ("/reset", {}), ("/model", {"response_model": Item})]:
            with pytest.raises(ClientError) as caught:
                await client.get(path, params={"api_key": key}, **kwargs)
            errors.append(caught.value)
        with pytest.raises(ConnectError) as refused_error:
            await client.get(refused)
        errors.append(refused_error.value)
    shown = "\n".join(_everything_printed(error) for error in errors) + repr(client)
    assert all(secret not in shown for secret in (key, password, token)), shown
    assert "api_key=REDACTED" in shown
    assert "bob:REDACTED@" in repr(client)
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {token}"


async def test_credentials_in_the_url_become_basic_auth(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/{path}").reply(200)
    async with make_client(upstream, transport) as client:
        await client.get(upstream.url.replace("http://", "http://bob:s%40fe@") + "/abs")
    async with ApiClient(
        upstream.url.replace("http://", "http://al:pw@"), transport=transport
    ) as client:
        await client.get("/rel")
    basic = [r.headers["Authorization"] for r in upstream.requests]
    assert basic == ["Basic Ym9iOnNAZmU=", "Basic YWw6cHc="]  # bob:s@fe, al:pw


# -- quota, events, health -------------------------------------------------------------
async def test_quota_headers_are_parsed_into_client_quota_and_an_event(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/q").reply(
        Reply(
            json=[],
            headers={
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "42",
                "X-RateLimit-Reset": "30",
            },
        )
    )
    events: list[ResilienceEvent] = []
    async with make_client(upstream, transport) as client:
        assert client.quota is None
        client.events.subscribe(events.append)
        await client.get("/q")
    assert client.quota is not None
    assert (client.quota.limit, client.quota.remaining, client.quota.reset) == (100, 42, 30.0)
    quota_events = [e for e in events if e.kind == "client.quota"]
    assert [dict(e.attributes) for e in quota_events] == [
        {"limit": 100, "remaining": 42, "reset": 30.0, "policy": None}
    ]


async def test_malformed_quota_headers_are_ignored_and_unobserved_quotas_kept(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/bad").reply(Reply(headers={"X-RateLimit-Remaining": "lots"}))
    upstream.route("GET", "/good").reply(
        Reply(headers={"RateLimit": "limit=10, remaining=9, reset=5"})
    )
    async with make_client(upstream, transport) as client:
        await client.get("/bad")
        assert client.quota is None
        await client.get("/good")
    assert client.quota is not None
    assert client.quota.remaining == 9


async def test_a_request_event_is_emitted_per_attempt(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/flaky").reply(503, 200)
    events: list[ResilienceEvent] = []
    async with make_client(upstream, transport) as client:
        client.events.subscribe(events.append)
        await client.get("/flaky", params={"token": "t0k"})
    requests = [dict(e.attributes) for e in events if e.kind == "client.request"]
    assert [(r["attempt"], r["status"], r["error"]) for r in requests] == [
        (1, 503, None),
        (2, 200, None),
    ]
    assert requests[0]["method"] == "GET"
    assert requests[0]["url"].endswith("/flaky?token=REDACTED")
    assert all(r["duration"] >= 0 for r in requests)
    assert events[0].policy == client.name


async def test_health_reports_breaker_state_and_recent_error_rate(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/ok").reply(200)
    upstream.route("GET", "/down").reply(503)
    upstream.route("GET", "/missing").reply(404)
    resilience = {"retry": {"max_attempts": 1}, "circuit_breaker": {}}
    async with make_client(upstream, transport, name="payments", resilience=resilience) as client:
        before = client.health()
        await client.get("/ok")
        with pytest.raises(HttpStatusError):
            await client.get("/missing")
        with pytest.raises(HttpStatusError):
            await client.get("/down")
        health = client.health()
    assert (before.requests, before.error_rate, before.healthy) == (0, 0.0, True)
    assert (health.name, health.breaker_state, health.requests, health.failures) == (
        "payments",
        "closed",
        3,
        1,
    )
    assert health.error_rate == pytest.approx(100 / 3)


# -- pagination ----------------------------------------------------------------------
async def test_paginate_follows_links_through_the_client_and_validates_items(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/items").reply(
        lambda r: Reply(
            json=[{"id": int(r.query.get("page", 1)), "name": "n"}],
            headers={"Link": '</items?page=2>; rel="next"'} if "page" not in r.query else None,
        )
    )
    async with make_client(upstream, transport, auth=CountingToken()) as client:
        items = [item async for item in client.paginate("/items", response_model=Item)]
        raw = [item async for item in client.paginate("/items", style=LinkHeader(), max_pages=1)]
    assert items == [Item(id=1, name="n"), Item(id=2, name="n")]
    assert raw == [{"id": 1, "name": "n"}]
    assert all(r.headers["Authorization"] == "Bearer token-1" for r in upstream.requests)


async def test_paginate_names_the_item_that_does_not_match(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/items").reply(Reply(json=[{"id": 1, "name": "a"}, {"id": "?"}]))
    async with make_client(upstream, transport) as client:
        with pytest.raises(ResponseValidationError, match=r"items\[1\]\.id") as caught:
            async for _ in client.paginate("/items", response_model=Item):
                pass
    assert caught.value.errors[0][0] == "items[1].id"


# -- configuration -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": 5}, "base_url must be an absolute http"),
        ({"base_url": "ftp://files.example"}, "base_url must be an absolute http:// or https://"),
        ({"base_url": "https://"}, "no host"),
        ({"base_url": "http://[::1"}, "malformed"),
        ({"timeout": 0}, "ApiClient timeout must be"),
        ({"timeout": "soon"}, "ApiClient timeout must be"),
        ({"name": ""}, "ApiClient name must be"),
        ({"auth": "token"}, "ApiClient auth must be an Auth"),
        ({"resilience": 3}, "ApiClient resilience must be None"),
        ({"resilience": {"retries": {}}}, "ApiClient resilience: unknown key 'retries'"),
        ({"headers": {"X-A": 1}}, "must be a str"),
        ({"headers": {"X-A": "a\r\nX-B: b"}}, "must not contain line breaks"),
        ({"headers": {"bad name": "x"}}, "not a valid header name"),
        ({"headers": ["X-A"]}, "ApiClient headers must be a mapping"),
        ({"user_agent": ""}, "ApiClient user_agent must be"),
        ({"user_agent": "a/1", "headers": {"User-Agent": "b/2"}}, "not both"),
        ({"transport": "requests"}, "ApiClient transport must be"),
        ({"rate_limiter": 10}, "ApiClient rate_limiter must be"),
        ({"breaker_per_host": "yes"}, "ApiClient breaker_per_host must be"),
        ({"max_error_body": -1}, "ApiClient max_error_body must be"),
        ({"clock": "now"}, "ApiClient clock must be"),
        ({"breaker_per_host": True, "resilience": Pipeline(retry=Retry())}, "cannot be copied"),
        (
            {"rate_limiter": RateLimiter(), "resilience": {"rate_limit": {"rate": 5}}},
            "already has a rate limiter",
        ),
    ],
)
def test_bad_constructor_arguments_raise_config_error(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("base_url", "https://api.example")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        ApiClient(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "GE T"}, "method must be an HTTP method"),
        ({"method": None}, "method must be an HTTP method"),
        ({"path_or_url": None}, "path_or_url must be a str"),
        ({"path_or_url": "ftp://x/y"}, "must be an absolute http:// or https://"),
        ({"params": "a=1"}, "params must be a mapping or a list"),
        ({"params": {"a": object()}}, "params must map str names"),
        ({"params": [("a",)]}, "params must map str names"),
        ({"params": {1: "a"}}, "params must map str names"),
        ({"json": {"a": object()}}, "json= cannot be encoded as JSON"),
        (
            {"json": {}, "content": b""},
            "pass one of json=, data= and content=, got json and content",
        ),
        ({"data": "a=1"}, "pass raw bodies as content="),
        ({"content": 5}, "content= must be bytes or str"),
        ({"headers": {"X-A": None}}, "must be a str"),
        ({"idempotency_key": ""}, "idempotency_key must be True, a non-empty str or None"),
        ({"idempotency_key": 7}, "idempotency_key must be True"),
        ({"response_model": 3}, "response_model=3 is not a type pydantic can validate"),
        ({"response_model": []}, r"response_model=\[\] is not a type pydantic can validate"),
    ],
)
async def test_bad_call_arguments_raise_config_error_and_send_nothing(
    upstream: FakeUpstream, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"method": "POST", "path_or_url": "/x", **kwargs}
    async with make_client(upstream, "aiohttp") as client:
        with pytest.raises(ConfigError, match=message):
            await client.request(**kwargs)
    assert upstream.requests == []


async def test_an_unhashable_response_model_still_validates(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/n").reply(Reply(json=5))

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
            return handler(int)

    async with make_client(upstream, "aiohttp") as client:
        assert await client.get("/n", response_model=Unhashable()) == 5


async def test_the_default_pipeline_follows_the_standard_handler() -> None:
    client = ApiClient("https://api.example:8443/v1", timeout="2s")
    pipeline = client.pipeline
    assert client.name == "api.example"
    assert client.timeout == 2.0
    assert [p.name for p in pipeline.policies] == [
        "api.example.retry",
        "api.example.circuit_breaker",
    ]  # the attempt timeout is the transport's: no second timer per call
    assert pipeline.config == {
        "retry": {"max_attempts": 3, "initial_delay": 0.2, "max_delay": 10.0, "jitter": "full"},
        "circuit_breaker": {
            "window_type": "time",
            "window": 30,
            "failure_rate": 50.0,
            "min_calls": 20,
            "open_for": 5.0,
            "half_open_calls": 1,
        },
    }
    await client.aclose()


async def test_a_mapping_gets_the_clients_timeout_and_a_pipeline_is_used_as_it_is() -> None:
    mapped = ApiClient("https://api.example", timeout=3, resilience={"retry": {"max_attempts": 2}})
    assert mapped.pipeline.timeout is None  # the transport enforces it
    assert mapped.timeout == 3.0
    assert ApiClient("https://api.example", resilience={"timeout": "250ms"}).timeout == 0.25
    assert ApiClient("https://api.example", resilience={"timeout": {"seconds": 2}}).timeout == 2.0
    assert mapped.pipeline.breaker is None
    mine = Pipeline(breaker=CircuitBreaker())
    assert ApiClient("https://api.example", resilience=mine).pipeline is mine
    limiter = RateLimiter(rate=5)
    combined = ApiClient("https://api.example", resilience=mine, rate_limiter=limiter).pipeline
    assert combined.rate_limiter is limiter
    assert combined.breaker is mine.breaker
    limited = Pipeline(rate_limiter=limiter)
    assert (
        ApiClient("https://api.example", resilience=limited, rate_limiter=limiter).pipeline
        is limited
    )


# -- lifecycle -----------------------------------------------------------------------
async def test_using_the_client_after_aclose_raises_a_clear_error(
    upstream: FakeUpstream, transport: str
) -> None:
    upstream.route("GET", "/").reply(200)
    client = make_client(upstream, transport, name="payments")
    async with client:
        await client.get("/")
    await client.aclose()  # idempotent
    assert client.closed
    with pytest.raises(
        ClientError,
        match=r"GET /items\?token=REDACTED cannot be sent: ApiClient 'payments' is closed",
    ) as caught:
        await client.get("/items?token=t")
    assert caught.value.retryable is False
    assert caught.value.request_sent is False
    with pytest.raises(ClientError, match="is closed"):
        async with client.stream("GET", "/"):
            pass  # pragma: no cover - never entered
    with pytest.raises(ClientError, match="is closed: create a new one"):
        async with client:
            pass  # pragma: no cover - never entered
    assert len(upstream.requests) == 1


async def test_a_transport_of_yours_is_used_and_left_open(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/").reply(200)
    from interlink.client import AiohttpTransport

    shared = AiohttpTransport()
    for name in ("a", "b"):
        async with ApiClient(upstream.url, transport=shared, name=name) as client:
            assert client.transport is shared
            await client.get("/")
    assert not shared.closed
    assert upstream.connections == 1
    await shared.aclose()


def test_repr_names_the_client_and_hides_secrets() -> None:
    client = ApiClient("https://bob:pw@api.example/v1?api_key=k", auth=CountingToken(), name="x")
    assert (
        repr(client)
        == "ApiClient(name='x', base_url='https://bob:REDACTED@api.example/v1?api_key=REDACTED')"
    )


async def test_a_fallback_cannot_stand_in_for_a_stream_or_a_page(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/items").reply(503)
    resilience = {"retry": {"max_attempts": 1}, "fallback": {"items": []}}
    async with ApiClient(upstream.url, resilience=resilience) as client:
        assert await client.get("/items") == {"items": []}  # a body: the fallback answers
        with pytest.raises(ConfigError, match=r"ApiClient.stream cannot run .* with a fallback"):
            async with client.stream("GET", "/items"):
                pass
        with pytest.raises(ConfigError, match=r"ApiClient.paginate cannot run .* fallback"):
            async for _ in client.paginate("/items"):
                pass
    assert len(upstream.requests) == 2  # the stream was refused before anything was sent
