"""/livez, /readyz and /health: on a Service running in process, and on stand-ins for the edges.

The service runs on SQLite (broker and inbox in ``tmp_path``) with clients
pointing at a ``FakeUpstream``; a failing dependency is a ``ping`` patched
to raise or to hang. The cache and the timeout are checked on a stand-in
service whose broker counts its pings, with a ``FakeClock`` for the cache.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from starlette.applications import Starlette

from interlink.core.errors import MessagingError
from interlink.messaging import MemoryBroker, QueueStats
from interlink.service._config import ServiceConfig
from interlink.service._health import READY_CACHE_SECONDS, configured_queues, health_routes
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeClock, FakeUpstream
from tests.polling import eventually
from tests.service.ops_support import HANDLED, post_webhook, write_config

HEALTH_JSON = "application/health+json"


@pytest.fixture
async def http(service: Service) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=service.url) as session:
        yield session


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(path) as response:
        assert response.headers["content-type"] == HEALTH_JSON
        assert response.headers["cache-control"] == "no-store"
        return response.status, json.loads(await response.read())


def assert_check_shape(check: dict[str, Any]) -> None:
    assert check["status"] in ("pass", "warn", "fail")
    assert check["time"].endswith("Z")
    dt.datetime.fromisoformat(check["time"])


async def broken_ping() -> float:
    raise MessagingError("the broker went away")


# -- /livez --------------------------------------------------------------------------------
async def test_livez_passes_without_checking_anything_even_with_the_broker_down(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.broker, "ping", broken_ping)
    assert await get(http, "/livez") == (200, {"status": "pass"})
    async with http.head("/livez") as head:
        assert head.status == 200
    async with http.post("/livez") as post:
        assert post.status == 405


# -- /readyz -------------------------------------------------------------------------------
async def test_readyz_passes_when_broker_storage_and_state_answer(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await get(http, "/readyz")
    assert status == 200
    assert body["status"] == "pass"
    assert set(body["checks"]) == {
        "broker:responseTime",
        "storage:responseTime",
        "state:responseTime",
    }
    for [check] in body["checks"].values():
        assert_check_shape(check)
        assert check["status"] == "pass"
        assert check["observedUnit"] == "ms"
        assert check["observedValue"] >= 0
    assert body["checks"]["state:responseTime"][0]["output"] == "memory://"


async def test_readyz_turns_503_without_the_broker_and_200_when_it_answers_again(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.broker, "ping", broken_ping)
    answers: list[tuple[int, dict[str, Any]]] = []

    async def answered(status: int) -> bool:
        answers.append(await get(http, "/readyz"))
        return answers[-1][0] == status

    await eventually(lambda: answered(503), "unready")  # within the second it is cached
    body = answers[-1][1]
    assert body["status"] == "fail"
    [broker] = body["checks"]["broker:responseTime"]
    assert broker["status"] == "fail"
    assert broker["output"] == "MessagingError: the broker went away"
    assert "observedValue" not in broker
    assert body["checks"]["storage:responseTime"][0]["status"] == "pass"
    monkeypatch.undo()
    await eventually(lambda: answered(200), "ready again")


async def test_readyz_fails_when_the_inbox_does_not_answer(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.worker is not None
    assert service.worker.inbox is not None
    monkeypatch.setattr(service.worker.inbox, "ping", broken_ping)
    status, body = await get(http, "/readyz")
    assert status == 503
    [storage] = body["checks"]["storage:responseTime"]
    assert storage["status"] == "fail"
    assert storage["output"] == "MessagingError: the broker went away"
    assert body["checks"]["broker:responseTime"][0]["status"] == "pass"


async def test_a_process_without_workers_does_not_check_the_inbox(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    loaded = load_config(write_config(tmp_path, upstream.url))
    async with (
        Service(loaded, workers=False) as service,
        aiohttp.ClientSession(base_url=service.url) as http,
    ):
        status, body = await get(http, "/readyz")
    assert status == 200
    assert set(body["checks"]) == {"broker:responseTime", "state:responseTime"}


async def test_readyz_is_503_before_the_service_started(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    service = Service(load_config(write_config(tmp_path, upstream.url)))
    transport = httpx.ASGITransport(app=Starlette(routes=health_routes(service)))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        response = await http.get("/readyz")
        live = await http.get("/livez")
    assert response.status_code == 503
    [broker] = response.json()["checks"]["broker:responseTime"]
    assert broker["output"] == "RuntimeError: the service is not started"
    assert live.status_code == 200


# -- the cache and the timeout, on a stand-in ---------------------------------------------------
class CountingBroker(MemoryBroker):
    """Counts pings; while ``hold`` is set, a ping waits for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.pings = 0
        self.hold = False
        self.release = asyncio.Event()

    async def ping(self) -> float:
        self.pings += 1
        if self.hold:
            await self.release.wait()
        return await super().ping()


@dataclass
class StandIn:
    """The attributes health reads from a ``Service``."""

    config: ServiceConfig
    broker: Any
    worker: Any = None
    clients: dict[str, Any] = field(default_factory=dict)
    receiver: Any = None
    started_at: float = 0.0


@pytest.fixture
async def counting() -> AsyncIterator[CountingBroker]:
    broker = CountingBroker()
    await broker.start()
    yield broker
    await broker.close()


def stand_in_client(stand_in: StandIn, clock: FakeClock) -> httpx.AsyncClient:
    app = Starlette(routes=health_routes(stand_in, clock=clock))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h")


async def test_readyz_answers_from_its_cache_for_a_second(
    counting: CountingBroker, clock: FakeClock
) -> None:
    stand_in = StandIn(ServiceConfig(), counting)
    async with stand_in_client(stand_in, clock) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert counting.pings == 1
        await clock.advance(READY_CACHE_SECONDS - 0.001)
        await http.get("/readyz")
        assert counting.pings == 1
        await clock.advance(0.001)
        await http.get("/readyz")
        assert counting.pings == 2


async def test_probes_at_the_same_time_share_one_round_of_checks(
    counting: CountingBroker, clock: FakeClock
) -> None:
    stand_in = StandIn(ServiceConfig(), counting)
    counting.hold = True
    async with stand_in_client(stand_in, clock) as http:
        probes = [asyncio.ensure_future(http.get("/readyz")) for _ in range(5)]
        await eventually(lambda: _is(counting.pings == 1), "pinged")
        counting.release.set()
        answers = await asyncio.gather(*probes)
    assert [a.status_code for a in answers] == [200] * 5
    assert counting.pings == 1


async def test_a_check_that_does_not_answer_in_time_fails(
    counting: CountingBroker, clock: FakeClock
) -> None:
    config = ServiceConfig.model_validate({"service": {"readiness_timeout": "50ms"}})
    stand_in = StandIn(config, counting)
    counting.hold = True  # never released: the ping hangs
    async with stand_in_client(stand_in, clock) as http:
        response = await http.get("/readyz")
        health = await http.get("/health")
    assert response.status_code == 503
    [broker] = response.json()["checks"]["broker:responseTime"]
    assert broker["output"] == "no answer within 0.05s"
    assert health.status_code == 503
    assert health.json()["status"] == "fail"


async def test_an_inbox_without_ping_passes_and_an_unopened_inbox_fails(
    counting: CountingBroker, clock: FakeClock
) -> None:
    config = ServiceConfig.model_validate({"storage": {"url": "memory://"}})

    @dataclass
    class Worker:
        inbox: object

    stand_in = StandIn(config, counting, worker=Worker(inbox=object()))
    async with stand_in_client(stand_in, clock) as http:
        [storage] = (await http.get("/readyz")).json()["checks"]["storage:responseTime"]
        assert storage == {**storage, "status": "pass", "output": "object has no ping()"}
        stand_in.worker = Worker(inbox=None)
        await clock.advance(READY_CACHE_SECONDS)
        response = await http.get("/readyz")
    assert response.status_code == 503
    [storage] = response.json()["checks"]["storage:responseTime"]
    assert storage["output"] == "the inbox is not open"


async def test_a_queue_the_backend_cannot_count_has_a_null_observed_value(
    counting: CountingBroker, clock: FakeClock
) -> None:
    async def stats(queue: str) -> QueueStats:
        return QueueStats(queue, None, None, None, None, None)

    counting.stats = stats  # type: ignore[method-assign]
    config = ServiceConfig.model_validate({"queues": {"orders": {"handler": "m:f"}}})
    async with stand_in_client(StandIn(config, counting), clock) as http:
        [check] = (await http.get("/health")).json()["checks"]["queue:orders"]
    assert check["status"] == "pass"
    assert check["observedValue"] is None
    assert (check["ready"], check["inFlight"], check["oldestAge"]) == (None, None, None)


async def _is(value: bool) -> bool:
    return value


# -- /health --------------------------------------------------------------------------------------
async def test_health_reports_every_component_with_its_observed_values(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await service.broker.publish("orders", {"id": "o1", "fail": True})
    await service.broker.publish("orders", {"id": "o2"})
    assert await post_webhook(http, service.url, "wh_1", b'{"n": 1}') == 200
    assert await post_webhook(http, service.url, "wh_2", b'{"n": 2}', good=False) == 401

    async def settled() -> bool:
        return "o2" in HANDLED and await service.broker.dead_letters.count(queue="orders") == 1

    await eventually(settled, "handled and dead-lettered")
    status, body = await get(http, "/health")
    assert status == 200  # warn is still 200
    assert body["status"] == "warn"
    assert body["serviceId"] == "ops-test"
    checks = body["checks"]
    assert list(checks) == [
        "broker:responseTime",
        "storage:responseTime",
        "state:responseTime",
        "uptime",
        "queue:orders",
        "queue:shop.events",
        "dlq:orders",
        "dlq:shop.events",
        "client:upstream",
        "client:plain",
        "webhook:shop",
    ]
    for [check] in checks.values():
        assert_check_shape(check)
    [uptime] = checks["uptime"]
    assert uptime["observedUnit"] == "s"
    assert uptime["observedValue"] >= 0
    [shop_queue] = checks["queue:shop.events"]  # no worker handles it: the webhook waits
    assert shop_queue["status"] == "pass"
    assert (shop_queue["observedValue"], shop_queue["observedUnit"]) == (1, "messages")
    assert (shop_queue["ready"], shop_queue["inFlight"]) == (1, 0)
    assert shop_queue["oldestAge"] >= 0
    [orders_dlq] = checks["dlq:orders"]
    assert (orders_dlq["status"], orders_dlq["observedValue"]) == ("warn", 1)
    assert orders_dlq["output"] == "1 dead letter from 'orders'"
    assert checks["dlq:shop.events"][0]["status"] == "pass"
    [upstream_client] = checks["client:upstream"]
    assert upstream_client["status"] == "pass"
    assert upstream_client["breakerState"] == "closed"
    assert (upstream_client["observedValue"], upstream_client["observedUnit"]) == (0.0, "%")
    assert checks["client:plain"][0]["breakerState"] is None
    [webhook] = checks["webhook:shop"]
    assert webhook["status"] == "pass"
    assert (webhook["accepted"], webhook["rejected"]) == (1, 1)
    assert webhook["observedUnit"] == "s"
    assert webhook["observedValue"] >= 0
    dt.datetime.fromisoformat(webhook["lastAcceptedAt"])
    dt.datetime.fromisoformat(webhook["lastReceivedAt"])


async def test_health_passes_on_a_quiet_service_and_warns_on_an_open_breaker(
    service: Service, http: aiohttp.ClientSession
) -> None:
    status, body = await get(http, "/health")
    assert (status, body["status"]) == (200, "pass")
    assert body["checks"]["webhook:shop"][0]["observedValue"] is None  # none received yet
    breaker = service.clients["upstream"].pipeline.breaker
    assert breaker is not None
    breaker.force_open()
    status, body = await get(http, "/health")
    assert (status, body["status"]) == (200, "warn")
    [client] = body["checks"]["client:upstream"]
    assert client["status"] == "warn"
    assert client["breakerState"] == "forced_open"
    assert client["output"] == "circuit breaker forced_open"


async def test_health_fails_with_503_when_the_broker_does_not_answer(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> Any:
        raise MessagingError("the broker went away")

    monkeypatch.setattr(service.broker, "ping", broken)
    monkeypatch.setattr(service.broker, "stats", broken)
    monkeypatch.setattr(service.broker.dead_letters, "count", broken)
    status, body = await get(http, "/health")
    assert (status, body["status"]) == (503, "fail")
    assert body["checks"]["broker:responseTime"][0]["status"] == "fail"
    for key in ("queue:orders", "dlq:orders"):
        [check] = body["checks"][key]
        assert check["status"] == "warn"  # an observation missing; the broker check fails
        assert check["output"] == "MessagingError: the broker went away"


def test_configured_queues_are_the_queues_then_the_webhook_targets_once_each() -> None:
    config = ServiceConfig.model_validate(
        {
            "queues": {"b": {"handler": "m:f"}, "a": {"handler": "m:f"}},
            "webhooks": {
                name: {"path": f"/{name}", "scheme": "standard", "secrets": ["x"], "publish_to": q}
                for name, q in (("one", "a"), ("two", "c"))
            },
        }
    )
    assert configured_queues(config) == ["b", "a", "c"]
