"""The receiver on every broker backend: memory, SQLite and RabbitMQ (publisher confirms)."""

from __future__ import annotations

import time

import httpx

from interlink.messaging import MemoryInbox, MessageContext, Worker
from interlink.webhooks import ReceivedWebhook, WebhookReceiver, WebhookSource, webhook_handler
from tests.messaging.harness import Harness
from tests.webhooks.signing import SECRET, standard_headers

BODY = b'{"type":"invoice.paid","data":{"id":"in_1"}}'


async def test_a_2xx_means_stored_and_a_refused_store_means_503_on_every_backend(
    harness: Harness,
) -> None:
    queue = harness.queue("hooks")
    source = WebhookSource(
        "billing", path="/hooks", scheme="standard", secrets=[SECRET], queue=queue
    )
    effects: list[str] = []
    worker = Worker(harness.broker, inbox=MemoryInbox(clock=harness.clock), clock=harness.clock)

    @worker.handler(queue)
    @webhook_handler
    async def on_invoice(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        effects.append(webhook.id)

    now = int(harness.clock.wall()) if harness.fake_time else int(time.time())
    async with WebhookReceiver([source], broker=harness.broker, clock=harness.clock) as rcv:
        transport = httpx.ASGITransport(app=rcv)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            first = await http.post(
                "/hooks", content=BODY, headers=standard_headers("m1", now, BODY)
            )
            await harness.refuse_publishes(queue)
            refused = await http.post(
                "/hooks", content=BODY, headers=standard_headers("m2", now, BODY)
            )
    assert first.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    async with worker:
        await harness.run_until(lambda: effects == ["m1"], within=10)
