"""Processing received webhooks in the worker runtime, and mounting the receiver in an app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from interlink.messaging import MemoryBroker, MemoryInbox, MessageContext, Worker
from interlink.testing import FakeClock
from interlink.webhooks import ReceivedWebhook, WebhookReceiver, WebhookSource, webhook_handler
from tests.polling import eventually
from tests.webhooks.serving import serving
from tests.webhooks.signing import SECRET, standard_headers

NOW = 1_800_000_000
BODY = b'{"type":"order.created","data":{"id":"o_1"}}'


def source(path: str = "/webhooks/shop") -> WebhookSource:
    return WebhookSource(
        "shop", path=path, scheme="standard", secrets=[SECRET], queue="shop.events"
    )


async def until(predicate: Any, what: str, seconds: float = 5.0) -> None:
    await eventually(predicate, what, seconds, step=0.005)


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(clock=FakeClock(wall=NOW))
    await broker.start()
    yield broker
    await broker.close()


async def send(receiver: WebhookReceiver, webhook_id: str, body: bytes = BODY) -> httpx.Response:
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
        headers = standard_headers(webhook_id, NOW, body)
        headers["user-agent"] = "Shop/2"
        return await http.post("/webhooks/shop", content=body, headers=headers)


async def test_a_handler_gets_the_verified_webhook_as_received(broker: MemoryBroker) -> None:
    seen: list[tuple[ReceivedWebhook, str]] = []
    worker = Worker(broker, inbox=MemoryInbox(clock=broker.clock))

    @worker.handler("shop.events")
    @webhook_handler
    async def on_order(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        seen.append((webhook, ctx.idempotency_key))

    async with WebhookReceiver([source()], broker=broker, clock=broker.clock) as receiver:
        response = await send(receiver, "evt_1")
    receipt = response.json()["receipt_id"]
    async with worker:
        await until(lambda: seen, "the handler")
    [(webhook, key)] = seen
    assert webhook.source == "shop"
    assert webhook.id == "evt_1"
    assert webhook.message_id == "shop:evt_1"
    assert webhook.scheme == "standard"
    assert webhook.timestamp == NOW
    assert webhook.received_at == NOW
    assert webhook.receipt_id == receipt
    assert webhook.body == BODY
    assert webhook.json() == {"type": "order.created", "data": {"id": "o_1"}}
    assert webhook.headers["user-agent"] == "Shop/2"
    assert not any(name.startswith("x-interlink-") for name in webhook.headers)
    assert key.endswith(":shop:evt_1")


async def test_a_webhook_stored_twice_takes_effect_once_through_the_inbox(
    broker: MemoryBroker,
) -> None:
    effects: list[str] = []
    worker = Worker(broker, inbox=MemoryInbox(clock=broker.clock))

    @worker.handler("shop.events")
    @webhook_handler
    async def on_order(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        effects.append(webhook.id)

    # Two receivers (two processes, or one restarted): each stores the copy it got.
    for _ in range(2):
        async with WebhookReceiver([source()], broker=broker, clock=broker.clock) as receiver:
            assert (await send(receiver, "evt_1")).json()["duplicate"] is False
    async with worker:
        await until(
            lambda: (stats := worker.stats()) and next(iter(stats.values())).duplicates == 1,
            "the duplicate",
        )
    assert effects == ["evt_1"]


async def test_a_handler_failure_retries_like_any_message(broker: MemoryBroker) -> None:
    attempts: list[int] = []
    worker = Worker(broker, clock=broker.clock)

    @worker.handler("shop.events", retry=["1s"], max_attempts=3)
    @webhook_handler
    async def flaky(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("the shop's API is down")

    async with WebhookReceiver([source()], broker=broker, clock=broker.clock) as receiver:
        await send(receiver, "evt_1")
    clock = broker.clock
    assert isinstance(clock, FakeClock)
    async with worker:
        await until(lambda: attempts == [1], "the first attempt")
        await clock.advance(1.5)
        await until(lambda: attempts == [1, 2], "the retry")


async def test_a_message_the_receiver_did_not_store_is_dead_lettered_at_once(
    broker: MemoryBroker,
) -> None:
    called: list[ReceivedWebhook] = []
    worker = Worker(broker, clock=broker.clock)

    @worker.handler("shop.events")
    @webhook_handler
    async def on_order(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        called.append(webhook)

    await broker.publish("shop.events", b"{}", message_id="stray")
    async with worker:
        await until(lambda: next(iter(worker.stats().values())).dead_lettered == 1, "the DLQ")
    assert called == []
    [dead] = await broker.dead_letters.list(queue="shop.events")
    assert dead.failure.error_type == "interlink.messaging.InvalidPayloadError"
    assert "not stored by the webhook receiver" in dead.failure.error_message


async def test_the_receiver_mounts_in_fastapi_with_its_lifespan(tmp_path: Any) -> None:
    receiver = WebhookReceiver([source()], broker=f"sqlite:///{tmp_path}/hooks.db")
    app = FastAPI(lifespan=receiver.lifespan)
    app.router.routes.extend(receiver.routes())

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert receiver.started
        headers = standard_headers("evt_1", int(receiver.clock.wall()), BODY)
        accepted = await client.post("/webhooks/shop", content=BODY, headers=headers)
        assert accepted.status_code == 200
        assert accepted.json()["duplicate"] is False
        assert (await client.get("/ping")).json() == {"pong": "yes"}
        assert receiver.stats["shop"].accepted == 1
        assert (await receiver.broker.stats("shop.events")).ready == 1
    assert not receiver.started


async def test_the_receiver_works_under_a_mount_prefix(tmp_path: Any) -> None:
    receiver = WebhookReceiver([source("/shop")], broker=f"sqlite:///{tmp_path}/hooks.db")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with receiver:  # chained inside the app's own lifespan
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/hooks", receiver)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        headers = standard_headers("evt_2", int(receiver.clock.wall()), BODY)
        assert (await client.post("/hooks/shop", content=BODY, headers=headers)).status_code == 200
        assert (await client.post("/hooks/other", content=BODY, headers=headers)).status_code == 404


def test_a_webhook_without_a_signed_timestamp_comes_back_with_none() -> None:
    from interlink.messaging import Message
    from interlink.webhooks._received import HEADER_WEBHOOK, receipt_header

    header = receipt_header("github", None, 1_800_000_000.5, "r-1")
    message = Message(
        id="repo:72d3162e",
        queue="repo.events",
        body=b"{}",
        headers={HEADER_WEBHOOK: header, "x-github-event": "push"},
    )
    ctx = MessageContext(message=message, handler="h", clock=FakeClock())
    webhook = ReceivedWebhook.from_message(ctx)
    assert (webhook.source, webhook.id, webhook.scheme) == ("repo", "72d3162e", "github")
    assert (webhook.timestamp, webhook.received_at, webhook.receipt_id) == (
        None,
        1_800_000_000.5,
        "r-1",
    )
    assert webhook.headers == {"x-github-event": "push"}
