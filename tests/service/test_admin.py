"""The admin API on a Service running in process: the token, queues, dead letters, breakers,
webhook sources, and a clear 4xx problem for every bad request.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from interlink.core.errors import CircuitForcedOpenError
from interlink.service import _admin
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.polling import eventually
from tests.service.ops_support import (
    HANDLED,
    HEALED,
    TOKEN,
    admin,
    post_webhook,
    write_config,
)

PROBLEM = "application/problem+json"
REFUSED = "tests.service.ops_support.Refused"


@pytest.fixture
async def http(service: Service) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=service.url, headers=admin()) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """``(status, JSON body)``; an error must be a problem whose status is the response's."""
    async with http.request(method, path, **kwargs) as response:
        body = json.loads(await response.read())
        if response.status >= 400:
            assert response.headers["content-type"] == PROBLEM
            assert body["status"] == response.status
            assert body["title"]
            assert body["detail"]
        else:
            assert response.headers["content-type"] == "application/json"
        return response.status, body


async def dead_letter(service: Service, *orders: dict[str, Any]) -> list[str]:
    """Publish failing ``orders``; their dead letter ids once every one is dead-lettered."""
    before = await service.broker.dead_letters.count(queue="orders")
    for order in orders:
        await service.broker.publish("orders", {**order, "fail": True})

    async def arrived() -> bool:
        return await service.broker.dead_letters.count(queue="orders") == before + len(orders)

    await eventually(arrived, "dead-lettered")
    records = await service.broker.dead_letters.list(queue="orders", limit=1000)
    return [record.id for record in records[before:]]


# -- the token ---------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, ""])
async def test_without_a_token_configured_everything_under_admin_is_404(
    tmp_path: Path, upstream: FakeUpstream, token: str | None
) -> None:
    config = write_config(tmp_path, upstream.url, admin_token=token)
    async with (
        Service(load_config(config)) as service,
        aiohttp.ClientSession(base_url=service.url) as http,
    ):
        for path in ("/admin/queues", "/admin/openapi.json", "/admin/dead-letters/x", "/admin/"):
            for headers in ({}, admin(), admin("")):
                status, body = await call(http, "GET", path, headers=headers)
                assert status == 404, path
                assert "admin API is off" in body["detail"]
        status, _ = await call(http, "DELETE", "/admin/dead-letters?all=true", headers=admin())
        assert status == 404
        async with http.get("/livez") as live:
            assert live.status == 200  # the rest is served


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, None),
        (f"Bearer {TOKEN}x", "invalid_token"),
        (f"Bearer {TOKEN[:-1]}", "invalid_token"),
        ("Bearer ", "invalid_token"),
        (f"Basic {TOKEN}", "invalid_token"),
        (TOKEN, "invalid_token"),
        ("Bearer wrong", "invalid_token"),
    ],
)
async def test_a_request_without_the_token_is_401_with_www_authenticate(
    service: Service, authorization: str | None, error: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with aiohttp.ClientSession(base_url=service.url, headers=headers) as http:
        for method, path in (
            ("GET", "/admin/queues"),
            ("GET", "/admin/openapi.json"),
            ("POST", "/admin/dead-letters/replay"),
            ("DELETE", "/admin/dead-letters?all=true"),
            ("GET", "/admin/no-such-page"),
        ):
            async with http.request(method, path) as response:
                assert response.status == 401, (method, path)
                assert response.headers["content-type"] == PROBLEM
                challenge = response.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="interlink admin"')
                assert (f'error="{error}"' in challenge) == (error is not None)
                assert TOKEN not in await response.text()


async def test_the_token_is_compared_in_constant_time_and_the_scheme_in_any_case(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return compare(given, expected)

    monkeypatch.setattr(_admin.hmac, "compare_digest", spy)
    headers = {"Authorization": f"bearer   {TOKEN}"}
    async with aiohttp.ClientSession(base_url=service.url, headers=headers) as http:
        assert (await call(http, "GET", "/admin/queues"))[0] == 200
    assert compared == [(TOKEN.encode(), TOKEN.encode())]


async def test_the_openapi_document_describes_every_endpoint_and_its_problems(
    http: aiohttp.ClientSession,
) -> None:
    status, schema = await call(http, "GET", "/admin/openapi.json")
    assert status == 200
    assert schema["servers"] == [{"url": "/admin"}]
    assert schema["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "service.admin_token of the service's config file.",
    }
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert sorted(operations) == [
        "DELETE /dead-letters",
        "DELETE /dead-letters/{dead_letter_id}",
        "GET /breakers",
        "GET /breakers/{client}",
        "GET /dead-letters",
        "GET /dead-letters/{dead_letter_id}",
        "GET /queues",
        "GET /webhooks",
        "POST /breakers/{client}/close",
        "POST /breakers/{client}/open",
        "POST /breakers/{client}/reset",
        "POST /dead-letters/replay",
        "POST /dead-letters/{dead_letter_id}/replay",
    ]
    for operation in operations.values():
        assert operation["security"] == [{"adminToken": []}]
        for code in ("401", "422"):
            content = operation["responses"][code]["content"]
            assert content == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


# -- queues ------------------------------------------------------------------------------------------
async def test_queues_lists_depth_in_flight_oldest_age_and_dead_letters(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    loaded = load_config(write_config(tmp_path, upstream.url))
    async with (
        Service(loaded, workers=False) as service,
        aiohttp.ClientSession(base_url=service.url, headers=admin()) as http,
    ):
        for n in range(3):
            await service.broker.publish("orders", {"id": n})
        await service.broker.publish("orders", {"id": "later"}, delay=3600)
        status, body = await call(http, "GET", "/admin/queues")
    assert status == 200
    orders, shop = body["items"]
    assert orders == {
        **orders,
        "name": "orders",
        "ready": 3,
        "delayed": 1,
        "in_flight": 0,
        "dead_letters": 0,
        "dead_letter_queue": "orders.dlq",
    }
    assert orders["oldest_age_seconds"] >= 0
    assert shop == {
        "name": "shop.events",
        "ready": 0,
        "delayed": 0,
        "in_flight": 0,
        "oldest_age_seconds": None,
        "dead_letters": 0,
        "dead_letter_queue": "shop.events.dlq",
    }


async def test_queues_counts_the_dead_letters_of_each_queue(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await dead_letter(service, {"id": "a"}, {"id": "b"})
    status, body = await call(http, "GET", "/admin/queues")
    assert status == 200
    assert [(q["name"], q["dead_letters"]) for q in body["items"]] == [
        ("orders", 2),
        ("shop.events", 0),
    ]


# -- dead letters --------------------------------------------------------------------------------
async def test_dead_letters_are_listed_oldest_first_with_filters(
    service: Service, http: aiohttp.ClientSession
) -> None:
    first, second = await dead_letter(service, {"id": "a"}, {"id": "b"})
    status, body = await call(http, "GET", "/admin/dead-letters")
    assert status == 200
    assert (body["count"], body["limit"]) == (2, 100)
    assert [item["id"] for item in body["items"]] == [first, second]
    item = body["items"][0]
    assert item == {
        **item,
        "source_queue": "orders",
        "dead_letter_queue": "orders.dlq",
        "error_type": REFUSED,
        "error_message": "order a refused",
        "reason": "permanent",
        "attempts": 1,
        "handler": "orders:handle",
    }
    assert item["dead_lettered_at"].endswith("Z")
    for query, expected in (
        ("queue=orders", [first, second]),
        ("queue=shop.events", []),
        ("dlq=orders.dlq", [first, second]),
        ("dlq=elsewhere", []),
        (f"error_type={REFUSED}", [first, second]),
        ("error_type=ValueError", []),
        ("limit=1", [first]),
        (f"queue=orders&error_type={REFUSED}&limit=1000", [first, second]),
    ):
        status, body = await call(http, "GET", f"/admin/dead-letters?{query}")
        assert status == 200
        assert [item["id"] for item in body["items"]] == expected, query


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("limit=0", "query.limit"),
        ("limit=-1", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=many", "query.limit"),
        ("queue=", "query.queue"),
        ("queue=" + "q" * 201, "query.queue"),
        ("dlq=", "query.dlq"),
        ("error_type=", "query.error_type"),
        ("error_type=" + "E" * 501, "query.error_type"),
    ],
)
async def test_a_bad_filter_is_422_naming_it(
    http: aiohttp.ClientSession, query: str, where: str
) -> None:
    status, body = await call(http, "GET", f"/admin/dead-letters?{query}")
    assert status == 422
    assert body["detail"] == f"invalid {where}"
    [error] = body["errors"]
    assert error["loc"] == where.split(".")
    assert error["msg"]
    assert error["type"]


async def test_a_dead_letter_shows_its_message_and_failure(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await service.broker.publish(
        "orders", {"id": "a", "fail": True, "total": 12.5}, headers={"traceparent": "00-ab-cd-01"}
    )

    async def arrived() -> bool:
        return await service.broker.dead_letters.count() == 1

    await eventually(arrived, "dead-lettered")
    [record] = await service.broker.dead_letters.list()
    dead_letter_id = record.id
    status, body = await call(http, "GET", f"/admin/dead-letters/{dead_letter_id}")
    assert status == 200
    assert body["body"] == {"id": "a", "fail": True, "total": 12.5}
    assert body["body_base64"] is None
    assert body["content_type"] == "application/json"
    assert body["headers"]["traceparent"] == "00-ab-cd-01"
    assert body["error_type"] == REFUSED
    assert "Refused: order a refused" in body["traceback"]
    assert (body["attempt"], body["delivery_count"]) == (1, 1)
    for key in ("published_at", "first_failed_at", "last_failed_at", "dead_lettered_at"):
        assert body[key].endswith("Z"), key


async def dead_letter_raw(service: Service, body: bytes) -> str:
    """Dead-letter a raw ``body`` by hand (the handler never sees it)."""
    await service.broker.publish("parked", body)
    async with service.broker.consume("parked", prefetch=1) as consumer:
        async for delivery in consumer:
            await delivery.dead_letter(_failure())
            break
    records = await service.broker.dead_letters.list(queue="parked")
    return records[-1].id


def _failure() -> Any:
    from interlink.messaging import Failure

    return Failure("Boom", "boom", "Traceback ...", "parked:h", 1, 1.0, 2.0)


async def test_a_body_that_is_not_json_is_shown_base64(
    service: Service, http: aiohttp.ClientSession
) -> None:
    dead_letter_id = await dead_letter_raw(service, b"\x00\xffraw")
    status, body = await call(http, "GET", f"/admin/dead-letters/{dead_letter_id}")
    assert status == 200
    assert (body["body"], body["body_base64"], body["body_text"]) == (None, "AP9yYXc=", None)
    assert body["content_type"] == "application/octet-stream"
    assert body["first_failed_at"] == "1970-01-01T00:00:01Z"


async def test_a_dead_lettered_webhook_is_shown_as_the_text_the_provider_sent(
    service: Service, http: aiohttp.ClientSession
) -> None:
    """The receiver stores a webhook's bytes as they came (octet-stream): readable all the same."""
    sent = '{"type": "payment.succeeded", "data": {"id": "pay_1", "note": "café"}}'
    dead_letter_id = await dead_letter_raw(service, sent.encode())
    status, body = await call(http, "GET", f"/admin/dead-letters/{dead_letter_id}")
    assert status == 200
    assert body["content_type"] == "application/octet-stream"
    assert body["body_text"] == sent
    assert base64.b64decode(body["body_base64"]) == sent.encode()


async def test_an_unknown_dead_letter_is_404(http: aiohttp.ClientSession) -> None:
    for method, path in (
        ("GET", "/admin/dead-letters/nope"),
        ("POST", "/admin/dead-letters/nope/replay"),
        ("DELETE", "/admin/dead-letters/nope"),
    ):
        status, body = await call(http, method, path)
        assert status == 404, (method, path)
        assert "'nope'" in body["detail"]


async def test_replay_by_ids_sends_them_back_and_they_are_handled(
    service: Service, http: aiohttp.ClientSession
) -> None:
    first, second, third = await dead_letter(service, {"id": "a"}, {"id": "b"}, {"id": "c"})
    HEALED.update({"a", "b"})
    status, body = await call(
        http, "POST", "/admin/dead-letters/replay", json={"ids": [second, first, second]}
    )
    assert status == 200
    assert body["count"] == 2
    assert [item["dead_letter_id"] for item in body["replayed"]] == [second, first]
    await eventually(lambda: {"a", "b"} <= set(HANDLED), "handled after the replay")
    [left] = await service.broker.dead_letters.list()
    assert left.id == third


async def test_replay_one_by_its_path(service: Service, http: aiohttp.ClientSession) -> None:
    [dead_letter_id] = await dead_letter(service, {"id": "a"})
    HEALED.add("a")
    status, body = await call(http, "POST", f"/admin/dead-letters/{dead_letter_id}/replay")
    assert status == 200
    [replayed] = body["replayed"]
    assert replayed["dead_letter_id"] == dead_letter_id
    await eventually(lambda: "a" in HANDLED, "handled after the replay")


async def test_replay_by_filter_takes_the_oldest_up_to_the_limit(
    service: Service, http: aiohttp.ClientSession
) -> None:
    first, second, third = await dead_letter(service, {"id": "a"}, {"id": "b"}, {"id": "c"})
    await dead_letter_raw(service, b"other")  # from the queue "parked": not matched
    HEALED.update({"a", "b", "c"})
    replay = "/admin/dead-letters/replay"
    status, body = await call(
        http, "POST", replay, json={"filter": {"queue": "orders"}, "limit": 2}
    )
    assert status == 200
    assert [item["dead_letter_id"] for item in body["replayed"]] == [first, second]
    status, body = await call(http, "POST", replay, json={"filter": {"error_type": REFUSED}})
    assert [item["dead_letter_id"] for item in body["replayed"]] == [third]
    await eventually(lambda: {"a", "b", "c"} <= set(HANDLED), "handled")
    status, body = await call(http, "POST", replay, json={"filter": {"dlq": "orders.dlq"}})
    assert (status, body) == (200, {"replayed": [], "count": 0})
    status, body = await call(http, "POST", replay, json={"filter": {}})  # every one
    assert (status, body["count"]) == (200, 1)  # the parked one


async def test_replay_with_an_unknown_id_is_404_and_replays_nothing(
    service: Service, http: aiohttp.ClientSession
) -> None:
    [known] = await dead_letter(service, {"id": "a"})
    status, body = await call(
        http, "POST", "/admin/dead-letters/replay", json={"ids": [known, "missing"]}
    )
    assert status == 404
    assert body["detail"] == "no dead letter with id 'missing'"
    assert await service.broker.dead_letters.count() == 1


@pytest.mark.parametrize(
    ("payload", "loc", "msg"),
    [
        ({}, ["body", "filter"], "Field required"),
        ({"ids": []}, ["body", "ids"], "List should have at least 1 item after validation, not 0"),
        ({"ids": "abc"}, ["body", "ids"], "Input should be a valid list"),
        ({"ids": [""]}, ["body", "ids", 0], "String should have at least 1 character"),
        ({"ids": None}, ["body", "ids"], "Input should be a valid list"),
        ({"ids": ["a"], "filter": {}}, ["body", "filter"], "Extra inputs are not permitted"),
        (
            {"filter": {"queue": ""}},
            ["body", "filter", "queue"],
            "String should have at least 1 character",
        ),
        ({"filter": {"retyr": 1}}, ["body", "filter", "retyr"], "Extra inputs are not permitted"),
        (
            {"filter": {}, "limit": 0},
            ["body", "limit"],
            "Input should be greater than or equal to 1",
        ),
        (
            {"filter": {}, "limit": 1001},
            ["body", "limit"],
            "Input should be less than or equal to 1000",
        ),
        (
            {"filter": None},
            ["body", "filter"],
            "Input should be a valid dictionary or object to extract fields from",
        ),
        ([], ["body"], 'expected an object: {"ids": [...]} or {"filter": {...}}'),
        ("ids", ["body"], 'expected an object: {"ids": [...]} or {"filter": {...}}'),
    ],
)
async def test_a_bad_replay_body_is_422_naming_what_is_wrong(
    http: aiohttp.ClientSession, payload: Any, loc: list[str | int], msg: str
) -> None:
    status, body = await call(http, "POST", "/admin/dead-letters/replay", json=payload)
    assert status == 422
    assert body["detail"] == "invalid " + ".".join(str(part) for part in loc)
    assert [(e["loc"], e["msg"]) for e in body["errors"]] == [(loc, msg)]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"ids": ["\\ud800"]}', "application/json"),
        (b'{"\\ud800": 1}', "application/json"),
        (b"ids=a", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
async def test_a_body_that_cannot_be_read_is_422(
    http: aiohttp.ClientSession, data: bytes, content_type: str
) -> None:
    status, body = await call(
        http,
        "POST",
        "/admin/dead-letters/replay",
        data=data,
        headers={"content-type": content_type},
    )
    assert status == 422
    assert body["errors"]


async def test_purge_by_ids_deletes_exactly_those(
    service: Service, http: aiohttp.ClientSession
) -> None:
    first, second, third = await dead_letter(service, {"id": "a"}, {"id": "b"}, {"id": "c"})
    status, body = await call(http, "DELETE", f"/admin/dead-letters?id={first}&id={third}")
    assert (status, body) == (200, {"purged": 2})
    status, body = await call(http, "DELETE", f"/admin/dead-letters/{second}")
    assert (status, body) == (200, {"purged": 1})
    assert await service.broker.dead_letters.count() == 0


async def test_purge_with_an_unknown_id_is_404_and_purges_nothing(
    service: Service, http: aiohttp.ClientSession
) -> None:
    [known] = await dead_letter(service, {"id": "a"})
    status, body = await call(http, "DELETE", f"/admin/dead-letters?id={known}&id=gone")
    assert status == 404
    assert body["detail"] == "no dead letter with id 'gone'; nothing was purged"
    assert await service.broker.dead_letters.count() == 1


async def test_purge_by_ids_keeps_those_the_filters_do_not_match(
    service: Service, http: aiohttp.ClientSession
) -> None:
    [order] = await dead_letter(service, {"id": "a"})
    parked = await dead_letter_raw(service, b"1")
    status, body = await call(
        http, "DELETE", f"/admin/dead-letters?id={order}&id={parked}&queue=parked"
    )
    assert (status, body) == (200, {"purged": 1})
    status, body = await call(http, "DELETE", f"/admin/dead-letters?id={order}&error_type=Boom")
    assert (status, body) == (200, {"purged": 0})
    [left] = await service.broker.dead_letters.list()
    assert left.id == order


async def test_purge_by_filter_or_all(service: Service, http: aiohttp.ClientSession) -> None:
    await dead_letter(service, {"id": "a"}, {"id": "b"})
    await dead_letter_raw(service, b"1")
    await dead_letter_raw(service, b"2")
    status, body = await call(http, "DELETE", "/admin/dead-letters?queue=nothing-here")
    assert (status, body) == (200, {"purged": 0})
    status, body = await call(http, "DELETE", f"/admin/dead-letters?error_type={REFUSED}")
    assert (status, body) == (200, {"purged": 2})
    status, body = await call(http, "DELETE", "/admin/dead-letters?dlq=parked.dlq&queue=parked")
    assert (status, body) == (200, {"purged": 2})
    await dead_letter(service, {"id": "c"})
    status, body = await call(http, "DELETE", "/admin/dead-letters?all=true")
    assert (status, body) == (200, {"purged": 1})


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "give id, a filter (queue, dlq, error_type) or all=true"),
        ("all=false", "give id, a filter (queue, dlq, error_type) or all=true"),
        ("all=perhaps", "invalid query.all"),
        ("queue=", "invalid query.queue"),
        ("id=", "invalid query.id.0"),
    ],
)
async def test_a_purge_without_a_clear_target_is_422(
    service: Service, http: aiohttp.ClientSession, query: str, detail: str
) -> None:
    await dead_letter(service, {"id": "a"})
    status, body = await call(http, "DELETE", f"/admin/dead-letters?{query}")
    assert (status, body["detail"]) == (422, detail)
    assert await service.broker.dead_letters.count() == 1


# -- breakers ----------------------------------------------------------------------------------------
async def test_breakers_list_state_and_window_figures(
    service: Service, http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.route("GET", "/ping").reply(200)
    await service.clients["upstream"].get("/ping")
    status, body = await call(http, "GET", "/admin/breakers")
    assert status == 200
    with_breaker, without = body["items"]
    assert with_breaker == {
        "client": "upstream",
        "state": "closed",
        "error_rate": 0.0,
        "requests": 1,
        "failures": 0,
        "window": {
            "failure_rate": 0.0,
            "slow_call_rate": 0.0,
            "buffered_calls": 1,
            "failed_calls": 0,
            "slow_calls": 0,
            "not_permitted_calls": 0,
        },
    }
    assert without == {**without, "client": "plain", "state": None, "window": None}
    status, one = await call(http, "GET", "/admin/breakers/upstream")
    assert (status, one) == (200, with_breaker)


async def test_a_breaker_is_forced_open_closed_and_reset(
    service: Service, http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    client = service.clients["upstream"]
    status, body = await call(http, "POST", "/admin/breakers/upstream/open")
    assert (status, body["state"]) == (200, "forced_open")
    with pytest.raises(CircuitForcedOpenError):
        await client.get("/anything")
    assert upstream.requests == []  # rejected before reaching the upstream
    status, body = await call(http, "GET", "/admin/breakers/upstream")
    assert body["window"]["not_permitted_calls"] == 1
    status, body = await call(http, "POST", "/admin/breakers/upstream/close")
    assert (status, body["state"]) == (200, "closed")
    assert body["window"]["not_permitted_calls"] == 1  # close keeps the count...
    status, body = await call(http, "POST", "/admin/breakers/upstream/reset")
    assert (status, body["state"]) == (200, "closed")
    assert body["window"]["not_permitted_calls"] == 0  # ...reset clears it
    upstream.route("GET", "/anything").reply(200)
    await client.get("/anything")


@pytest.mark.parametrize("action", ["open", "close", "reset"])
async def test_a_breaker_action_on_an_unknown_client_is_404_and_without_a_breaker_409(
    http: aiohttp.ClientSession, action: str
) -> None:
    status, body = await call(http, "POST", f"/admin/breakers/nobody/{action}")
    assert status == 404
    assert body["detail"] == "no client named 'nobody' (clients: plain, upstream)"
    status, body = await call(http, "POST", f"/admin/breakers/plain/{action}")
    assert (status, body["detail"]) == (409, "client 'plain' has no circuit breaker")
    status, _ = await call(http, "GET", "/admin/breakers/nobody")
    assert status == 404
    status, _ = await call(http, "POST", f"/admin/breakers/upstream/{action}-now")
    assert status == 404


# -- webhooks ------------------------------------------------------------------------------------------
async def test_webhooks_show_counts_rejections_by_reason_and_recent_requests(
    service: Service, http: aiohttp.ClientSession
) -> None:
    async with aiohttp.ClientSession() as plain:  # no admin token on the webhook posts
        assert await post_webhook(plain, service.url, "wh_1", b'{"n": 1}') == 200
        assert await post_webhook(plain, service.url, "wh_1", b'{"n": 1}') == 200
        assert await post_webhook(plain, service.url, "wh_2", b"{}", good=False) == 401
    status, body = await call(http, "GET", "/admin/webhooks")
    assert status == 200
    [shop] = body["items"]
    assert shop == {
        **shop,
        "source": "shop",
        "path": "/webhooks/shop",
        "scheme": "standard",
        "queue": "shop.events",
        "accepted": 1,
        "duplicates": 1,
        "handshakes": 0,
        "too_large": 0,
        "unavailable": 0,
        "rejected": {"no_matching_signature": 1},
        "rejected_total": 1,
    }
    assert shop["last_received_at"].endswith("Z")
    assert shop["last_accepted_at"].endswith("Z")
    rejected, duplicate, accepted = shop["recent"]  # newest first
    assert rejected == {**rejected, "outcome": "rejected", "reason": "no_matching_signature"}
    assert rejected["webhook_id"] is None
    assert rejected["receipt"] is None
    assert rejected["client"] == "127.0.0.1"  # who sent it: the forged one's sender
    assert duplicate == {**duplicate, "outcome": "duplicate", "webhook_id": "wh_1"}
    assert accepted == {**accepted, "outcome": "accepted", "webhook_id": "wh_1", "reason": None}
    assert accepted["client"] is None  # kept only for what was turned away
    assert accepted["receipt"] == duplicate["receipt"]


async def test_webhooks_is_empty_without_sources(tmp_path: Path, upstream: FakeUpstream) -> None:
    path = write_config(tmp_path, upstream.url)
    text = path.read_text()
    start, end = text.index("webhooks:"), text.index("queues:")
    path.write_text(text[:start] + text[end:])
    async with (
        Service(load_config(path)) as service,
        aiohttp.ClientSession(base_url=service.url, headers=admin()) as http,
    ):
        assert await call(http, "GET", "/admin/webhooks") == (200, {"items": []})


# -- the rest ---------------------------------------------------------------------------------------------
async def test_an_unknown_path_is_404_and_a_wrong_method_405_as_problems(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await call(http, "GET", "/admin/nothing-here")
    assert (status, body["detail"]) == (404, "Not Found")
    async with http.put("/admin/queues") as response:
        assert response.status == 405
        assert response.headers["allow"] == "GET"
        assert response.headers["content-type"] == PROBLEM


async def test_a_broker_that_does_not_answer_is_503_with_retry_after(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlink.core.errors import MessagingError

    async def broken(*args: object, **kwargs: object) -> Any:
        raise MessagingError("the broker went away")

    monkeypatch.setattr(service.broker.dead_letters, "list", broken)
    async with http.get("/admin/dead-letters") as response:
        assert response.status == 503
        assert response.headers["retry-after"] == "5"
        body = await response.json(content_type=PROBLEM)
    assert body["detail"] == "the broker did not answer: the broker went away"


async def test_405_lists_every_method_of_the_path_literal_routes_first(
    http: aiohttp.ClientSession,
) -> None:
    for path, allow in (
        ("/admin/dead-letters", "DELETE, GET"),
        ("/admin/dead-letters/abc", "DELETE, GET"),
        ("/admin/dead-letters/replay", "POST"),  # not GET /dead-letters/{id}
        ("/admin/breakers/upstream/open", "POST"),
    ):
        async with http.options(path) as response:
            assert response.status == 405, path
            assert response.headers["allow"] == allow, path
            assert response.headers["content-type"] == PROBLEM


async def test_http_problem_turns_the_apps_own_404_and_405_into_problems() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/hello", hello)], exception_handlers={HTTPException: _admin.http_problem}
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        missing = await client.get("/admin/dead-letters/%0A")
        wrong = await client.post("/hello")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
    }
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert wrong.json()["title"] == "Method Not Allowed"


@pytest.mark.parametrize(
    ("raw", "content_type", "shown"),
    [
        (b'{"total": NaN}', "application/json", (None, "eyJ0b3RhbCI6IE5hTn0=", '{"total": NaN}')),
        (b"{not json", "application/json", (None, "e25vdCBqc29u", "{not json")),
        (b'{"a": 1}', "application/json; charset=utf-8", ({"a": 1}, None, None)),
        (b'{"a": 1}', "text/plain", (None, "eyJhIjogMX0=", '{"a": 1}')),
        ("é".encode(), "application/octet-stream", (None, "w6k=", "é")),
        (b"\xe9", "application/octet-stream", (None, "6Q==", None)),  # Latin-1: not UTF-8
    ],
)
def test_a_body_from_another_publisher_is_shown_as_json_only_when_it_is(
    raw: bytes, content_type: str, shown: tuple[Any, str | None, str | None]
) -> None:
    """RabbitMQ carries whatever another publisher sent: JSON that is not, or NaN."""
    from interlink.messaging import DeadLetter, Message

    record = DeadLetter(
        id="dl1",
        message=Message(id="m1", queue="q", body=raw, content_type=content_type),
        failure=_failure(),
        source_queue="q",
        dead_letter_queue="q.dlq",
        dead_lettered_at=3.0,
    )
    detail = _admin._detail(record)
    assert (detail.body, detail.body_base64, detail.body_text) == shown


async def test_a_broker_refusing_an_argument_is_422(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlink.core.errors import ConfigError

    async def refuse(*args: object, **kwargs: object) -> Any:
        raise ConfigError("the error_type filter must be a string")

    monkeypatch.setattr(service.broker.dead_letters, "list", refuse)
    status, body = await call(http, "GET", "/admin/dead-letters")
    assert (status, body["detail"]) == (422, "the error_type filter must be a string")


async def test_the_openapi_document_is_built_once(http: aiohttp.ClientSession) -> None:
    first = await call(http, "GET", "/admin/openapi.json")
    assert await call(http, "GET", "/admin/openapi.json") == first


async def test_what_is_not_http_passes_the_guard_and_is_ignored_when_admin_is_off(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Lifespan events reach the FastAPI app through the guard; the off switch ignores them."""
    service = Service(load_config(write_config(tmp_path, upstream.url)))
    sent: list[dict[str, Any]] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await _admin.admin_app(service)({"type": "lifespan", "state": {}}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    sent.clear()
    await _admin._off({"type": "lifespan"}, receive, send)
    assert sent == []


def test_a_replay_body_is_told_apart_by_its_ids_key() -> None:
    from pydantic import TypeAdapter

    from interlink.service._admin_models import ReplayIds, ReplayMatching, ReplayRequest

    adapter: TypeAdapter[Any] = TypeAdapter(ReplayRequest)
    assert isinstance(adapter.validate_python({"ids": ["a"]}), ReplayIds)
    assert isinstance(adapter.validate_python({"filter": {}}), ReplayMatching)
    by_ids = ReplayIds(ids=["a"])
    assert adapter.validate_python(by_ids) == by_ids
    assert adapter.dump_python(by_ids) == {"ids": ["a"]}


async def test_a_body_that_is_not_utf8_is_400(http: aiohttp.ClientSession) -> None:
    status, body = await call(
        http,
        "POST",
        "/admin/dead-letters/replay",
        data=b"V\xff+\xfe",
        headers={"content-type": "application/json"},
    )
    assert (status, body["detail"]) == (400, "There was an error parsing the body")


async def test_strings_that_are_not_valid_unicode_are_escaped_not_a_500() -> None:
    """A memory or RabbitMQ dead letter may hold a lone surrogate (an exception's message)."""
    import httpx

    from interlink.messaging import Failure, MemoryBroker
    from interlink.service._config import ServiceConfig

    class StandIn:
        config = ServiceConfig.model_validate({"service": {"admin_token": TOKEN}})
        broker = MemoryBroker()
        worker = receiver = None
        clients: dict[str, Any] = {}  # noqa: RUF012 - a stand-in, read only
        started_at = 0.0

    broker = StandIn.broker
    await broker.start()
    await broker.publish("q", {"n": 1})
    async with broker.consume("q", prefetch=1) as consumer:
        async for delivery in consumer:
            await delivery.dead_letter(Failure("E", "bad \ud800 text", "tb", "h", 1, 1.0, 2.0))
            break
    [record] = await broker.dead_letters.list()
    transport = httpx.ASGITransport(app=_admin.admin_app(StandIn()))
    async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=admin()) as c:
        listed = await c.get("/dead-letters")
        shown = await c.get(f"/dead-letters/{record.id}")
    await broker.close()
    assert listed.status_code == shown.status_code == 200
    assert listed.json()["items"][0]["error_message"] == "bad \ud800 text"
    assert b"\\ud800" in shown.content
