"""The receiver, in process: verify, answer, deduplicate, and store before the 2xx."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from interlink.core.errors import ConfigError, PublishError
from interlink.messaging import Broker, Delivery, MemoryBroker
from interlink.testing import FakeClock
from interlink.webhooks import (
    RECENT_WEBHOOKS,
    ReceiptLog,
    RecentWebhook,
    WebhookReceiver,
    WebhookSource,
)
from tests.webhooks.signing import OTHER_KEY, OTHER_SECRET, SECRET, standard_headers

NOW = 1_800_000_000
BODY = b'{"type":"invoice.paid","data":{"id":"in_1","amount":1200}}'


def source(**overrides: Any) -> WebhookSource:
    options: dict[str, Any] = {
        "path": "/webhooks/billing",
        "scheme": "standard",
        "secrets": [SECRET],
        "queue": "billing.events",
    }
    options.update(overrides)
    return WebhookSource("billing", **options)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=NOW)


@pytest.fixture
async def broker(clock: FakeClock) -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(clock=clock)
    await broker.start()
    yield broker
    await broker.close()


@pytest.fixture
async def receiver(broker: MemoryBroker, clock: FakeClock) -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver([source()], broker=broker, clock=clock) as receiver:
        yield receiver


@pytest.fixture
async def http(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
        yield client


async def drain(broker: Broker, queue: str = "billing.events") -> list[Delivery]:
    """Every message ready in ``queue`` (acked), polled until the queue reports none left."""
    stats = await broker.stats(queue)
    wanted = stats.ready or 0
    taken: list[Delivery] = []
    if not wanted:
        return taken
    async with broker.consume(queue, prefetch=wanted) as consumer:
        async for delivery in consumer:
            taken.append(delivery)
            await delivery.ack()
            if len(taken) == wanted:
                break
    return taken


async def post(
    http: httpx.AsyncClient, webhook_id: str = "msg_1", body: bytes = BODY, **extra: str
) -> httpx.Response:
    headers = standard_headers(webhook_id, NOW, body)
    headers.update(extra)
    return await http.post("/webhooks/billing", content=body, headers=headers)


async def test_a_verified_webhook_is_stored_before_its_2xx_with_the_receipt(
    http: httpx.AsyncClient, broker: MemoryBroker, receiver: WebhookReceiver
) -> None:
    response = await post(http, **{"user-agent": "Billing-Hookshot/1.0", "x-secret": "no"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["duplicate"] is False
    [delivery] = await drain(broker)
    message = delivery.message
    assert message.id == "billing:msg_1"
    assert message.body == BODY  # the raw bytes, never re-serialised
    assert message.headers["x-interlink-webhook"] == (
        f"scheme=standard; timestamp={NOW}; received_at={float(NOW)!r};"
        f" receipt={answer['receipt_id']}"
    )
    assert message.headers["user-agent"] == "Billing-Hookshot/1.0"
    assert "x-secret" not in message.headers  # only allow-listed headers are kept
    assert "webhook-signature" not in message.headers
    assert receiver.stats["billing"].accepted == 1


async def test_a_repeat_answers_2xx_duplicate_with_the_first_receipt_and_is_not_stored_again(
    http: httpx.AsyncClient, broker: MemoryBroker, receiver: WebhookReceiver
) -> None:
    first = (await post(http)).json()
    again = await post(http)
    assert again.status_code == 200
    assert again.json() == {"receipt_id": first["receipt_id"], "duplicate": True}
    assert len(await drain(broker)) == 1
    assert receiver.stats["billing"].duplicates == 1


class GatedBroker(MemoryBroker):
    """Its first publish waits for ``gate`` (then fails if ``fail_first``); later ones do not."""

    def __init__(self, clock: FakeClock, *, fail_first: bool = False) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()
        self.fail_first = fail_first
        self.calls = 0

    async def publish(self, queue: str, body: object, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            await self.gate.wait()
            if self.fail_first:
                raise PublishError("disk full", queue=queue, reason="refused")
        return await super().publish(queue, body, **kwargs)


async def two_copies_at_once(broker: GatedBroker, clock: FakeClock) -> list[httpx.Response]:
    """POST one webhook twice at once: the second arrives while the first is being stored."""
    async with WebhookReceiver([source()], broker=broker, clock=clock) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            first = asyncio.ensure_future(post(http))
            second = asyncio.ensure_future(post(http))
            deadline = asyncio.get_running_loop().time() + 5
            # The first is inside publish and the second waits on its claim.
            while receiver.receipts._pending.get("billing:msg_1") is None:
                assert asyncio.get_running_loop().time() < deadline, "the copies never met"
                await asyncio.sleep(0)
            broker.gate.set()
            return [await first, await second]


async def test_two_copies_at_once_store_one_and_the_other_answers_duplicate(
    clock: FakeClock,
) -> None:
    broker = GatedBroker(clock)
    answers = await two_copies_at_once(broker, clock)
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True]
    assert broker.calls == 1
    assert len(await drain(broker)) == 1
    await broker.close()


async def test_when_the_first_copy_fails_to_store_the_waiting_copy_stores_it(
    clock: FakeClock,
) -> None:
    broker = GatedBroker(clock, fail_first=True)
    answers = await two_copies_at_once(broker, clock)
    assert sorted(a.status_code for a in answers) == [200, 503]
    [stored] = await drain(broker)
    assert stored.message.id == "billing:msg_1"
    await broker.close()


async def test_storage_down_answers_503_with_retry_after_and_the_retry_is_stored(
    http: httpx.AsyncClient, broker: MemoryBroker, receiver: WebhookReceiver
) -> None:
    broker.refuse_publishes("billing.events")
    refused = await post(http)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"] == "application/problem+json"
    assert receiver.stats["billing"].unavailable == 1
    assert await drain(broker) == []
    broker.accept_publishes("billing.events")
    retried = await post(http)
    assert retried.status_code == 200
    assert retried.json()["duplicate"] is False  # a failed store is not remembered
    assert len(await drain(broker)) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-signature": "v1,AAAA"}, "no_matching_signature"),
        ({"webhook-signature": "v1"}, "malformed_header"),
        ({"webhook-timestamp": str(NOW - 301)}, "timestamp_out_of_tolerance"),
        ({"webhook-id": ""}, "missing_header"),
    ],
)
async def test_a_bad_signature_gets_401_without_saying_why_and_the_reason_is_logged(
    http: httpx.AsyncClient,
    broker: MemoryBroker,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str],
    reason: str,
) -> None:
    headers = standard_headers("msg_1", NOW, BODY)
    headers.update(change)
    with caplog.at_level(logging.WARNING, logger="interlink.webhooks"):
        response = await http.post("/webhooks/billing", content=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401
    assert reason not in response.text
    assert receiver.stats["billing"].rejected == {reason: 1}
    assert any(reason in record.getMessage() for record in caplog.records)
    assert await drain(broker) == []


@pytest.mark.parametrize(
    ("trust_forwarded", "forwarded_for", "sender"),
    [
        (False, None, "203.0.113.9"),  # the peer
        (False, "198.51.100.7", "203.0.113.9"),  # a header anyone can send is not believed
        (True, "198.51.100.7", "198.51.100.7"),  # behind a trusted proxy: what it forwarded
        (True, "10.9.9.9, 198.51.100.7", "198.51.100.7"),  # its own entry, the last one
        (True, None, "203.0.113.9"),  # nothing forwarded: the peer
    ],
)
async def test_a_rejected_webhook_names_its_sender_in_the_log_and_the_recent_list(
    clock: FakeClock,
    broker: MemoryBroker,
    caplog: pytest.LogCaptureFixture,
    trust_forwarded: bool,
    forwarded_for: str | None,
    sender: str,
) -> None:
    """Who sends forged webhooks is what an operator asks after a rejection alert."""
    async with WebhookReceiver(
        [source()], broker=broker, clock=clock, trust_forwarded=trust_forwarded
    ) as receiver:
        transport = httpx.ASGITransport(app=receiver, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            extra = {"webhook-signature": "v1,AAAA"}
            if forwarded_for is not None:
                extra["x-forwarded-for"] = forwarded_for
            with caplog.at_level(logging.WARNING, logger="interlink.webhooks"):
                assert (await post(http, **extra)).status_code == 401
        (recent,) = receiver.stats["billing"].recent
    assert recent.client == sender
    (line,) = [r.getMessage() for r in caplog.records if "webhook rejected" in r.getMessage()]
    assert f"client={sender} " in line


async def test_a_tampered_body_gets_401(http: httpx.AsyncClient, broker: MemoryBroker) -> None:
    headers = standard_headers("msg_1", NOW, BODY)
    response = await http.post("/webhooks/billing", content=BODY + b" ", headers=headers)
    assert response.status_code == 401
    assert await drain(broker) == []


async def test_a_rotated_secret_verifies_with_the_old_or_the_new_key(clock: FakeClock) -> None:
    broker = MemoryBroker(clock=clock)
    rotating = source(secrets=[SECRET, OTHER_SECRET])
    async with WebhookReceiver([rotating], broker=broker, clock=clock) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            old = await post(http, "msg_old")
            headers = standard_headers("msg_new", NOW, BODY, key=OTHER_KEY)
            new = await http.post("/webhooks/billing", content=BODY, headers=headers)
    assert (old.status_code, new.status_code) == (200, 200)
    await broker.close()


async def test_too_large_by_content_length_is_413_before_reading(
    clock: FakeClock, broker: MemoryBroker
) -> None:
    small = source(max_body=16)
    async with WebhookReceiver([small], broker=broker, clock=clock) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            response = await post(http)
        assert response.status_code == 413
        assert response.json()["detail"] == "the body is larger than 16 bytes"
        assert receiver.stats["billing"].too_large == 1
    assert await drain(broker) == []


async def call_asgi(
    app: WebhookReceiver, scope: dict[str, Any], chunks: list[bytes], *, disconnect: bool = False
) -> list[dict[str, Any]]:
    """Drive the ASGI app by hand: the body in ``chunks``, then (optionally) a disconnect."""
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or disconnect}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        incoming.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(headers: dict[str, str], path: str = "/webhooks/billing") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "server": ("hooks.test", 443),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


async def test_a_streamed_body_over_the_limit_is_413_without_content_length(
    clock: FakeClock, broker: MemoryBroker
) -> None:
    small = source(max_body=len(BODY) - 1)
    async with WebhookReceiver([small], broker=broker, clock=clock) as receiver:
        headers = standard_headers("msg_1", NOW, BODY)
        chunks = [BODY[:10], BODY[10:30], BODY[30:]]
        sent = await call_asgi(receiver, http_scope(headers), chunks)
        assert sent[0]["status"] == 413
        exact = source(max_body=len(BODY))
    async with WebhookReceiver([exact], broker=broker, clock=clock) as receiver:
        sent = await call_asgi(receiver, http_scope(headers), chunks)
        assert sent[0]["status"] == 200  # the chunks are joined: the signature holds
    assert len(await drain(broker)) == 1


async def test_a_client_that_leaves_mid_body_gets_nothing_stored(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    headers = standard_headers("msg_1", NOW, BODY)
    sent = await call_asgi(receiver, http_scope(headers), [BODY[:10]], disconnect=True)
    assert sent == []
    assert await drain(broker) == []


async def test_unknown_path_is_404_and_other_methods_are_405(
    http: httpx.AsyncClient, broker: MemoryBroker
) -> None:
    missing = await http.post("/webhooks/nope", content=BODY)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await http.get("/webhooks/billing")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert await drain(broker) == []


async def test_receipts_expire_after_their_window(clock: FakeClock, broker: MemoryBroker) -> None:
    receipts = ReceiptLog(clock, window=60)
    async with WebhookReceiver([source()], broker=broker, clock=clock, receipts=receipts) as rcv:
        transport = httpx.ASGITransport(app=rcv)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            await post(http)
            await clock.advance(61)  # 61 s on: still inside the signature's 300 s tolerance
            again = await post(http)
    assert again.json()["duplicate"] is False  # stored again; the worker's inbox dedupes it
    assert [d.message.id for d in await drain(broker)] == ["billing:msg_1", "billing:msg_1"]


def test_the_receipt_log_keeps_at_most_max_entries() -> None:
    clock = FakeClock()
    receipts = ReceiptLog(clock, max_entries=2)
    for key in ("a", "b", "c"):
        receipts.done(key, f"r-{key}")
    assert (receipts.get("a"), receipts.get("b"), receipts.get("c")) == (None, "r-b", "r-c")
    assert len(receipts) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"window": 0}, "window"),
    ],
)
def test_a_receipt_log_with_bad_bounds_is_a_config_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ReceiptLog(FakeClock(), **kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"path": "webhooks"}, "path must start with '/'"),
        ({"path": "/w?x=1"}, "path must start with '/'"),
        ({"scheme": "nope"}, "unknown webhook scheme 'nope'"),
        ({"secrets": "whsec_abc"}, "secrets must be a list"),
        ({"secrets": ["whsec_!!"]}, "secret #0"),
        ({"queue": ""}, "queue name"),
        ({"max_body": 0}, "max_body"),
        ({"public_url": "ftp://x"}, "public_url"),
        ({"forward_headers": "content-type"}, "forward_headers"),
        ({"options": {"bogus": 1}}, "unknown option"),
    ],
)
def test_a_bad_source_is_a_config_error_naming_it(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="webhook source 'billing'") as caught:
        source(**overrides)
    assert message in str(caught.value)
    for secret in ("whsec_!!", "whsec_abc"):  # a secret never shows in the error
        assert secret not in str(caught.value)


def test_a_source_name_must_be_simple() -> None:
    with pytest.raises(ConfigError, match="webhook source name"):
        WebhookSource("bad name", path="/x", scheme="standard", secrets=[SECRET], queue="q")


async def test_receiver_arguments_are_checked(broker: MemoryBroker) -> None:
    with pytest.raises(ConfigError, match="at least one WebhookSource"):
        WebhookReceiver([], broker=broker)
    with pytest.raises(ConfigError, match="share the path"):
        WebhookReceiver(
            [
                source(),
                WebhookSource(
                    "b", path="/webhooks/billing", scheme="standard", secrets=[SECRET], queue="q"
                ),
            ],
            broker=broker,
        )
    with pytest.raises(ConfigError, match="two webhook sources are named"):
        WebhookReceiver([source(), source(path="/other")], broker=broker)
    with pytest.raises(ConfigError, match="broker must be"):
        WebhookReceiver([source()], broker=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="retry_after"):
        WebhookReceiver([source()], broker=broker, retry_after=0)
    with pytest.raises(ConfigError, match="start it first"):
        _ = WebhookReceiver([source()], broker="memory://").broker


async def test_a_receiver_given_a_url_opens_and_closes_its_own_broker(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/hooks.db"
    receiver = WebhookReceiver([source()], broker=url)
    async with receiver:
        assert receiver.started
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            headers = standard_headers("msg_1", int(receiver.clock.wall()), BODY)
            response = await http.post("/webhooks/billing", content=BODY, headers=headers)
        assert response.status_code == 200
        assert (await receiver.broker.stats("billing.events")).ready == 1
    assert not receiver.started
    await receiver.close()  # idempotent


async def test_the_lifespan_protocol_starts_and_stops_the_receiver(tmp_path: Any) -> None:
    receiver = WebhookReceiver([source()], broker=f"sqlite:///{tmp_path}/hooks.db")
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []
    states: list[bool] = []

    async def receive() -> dict[str, Any]:
        states.append(receiver.started)
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await receiver({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert states == [False, True]
    assert not receiver.started


async def test_a_failed_startup_is_reported_through_the_lifespan_protocol(tmp_path: Any) -> None:
    receiver = WebhookReceiver([source()], broker="nope://x")
    incoming = [{"type": "lifespan.startup"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await receiver({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "unknown broker scheme" in sent[0]["message"]


async def test_websocket_scopes_are_refused(receiver: WebhookReceiver) -> None:
    async def nothing() -> dict[str, Any]:
        raise AssertionError

    async def ignore(message: dict[str, Any]) -> None:
        raise AssertionError

    with pytest.raises(ConfigError, match="serves HTTP"):
        await receiver({"type": "websocket"}, nothing, ignore)


def test_the_receipt_body_is_json() -> None:
    from interlink.webhooks._receiver import _receipt_body

    assert json.loads(_receipt_body("abc", True)) == {"receipt_id": "abc", "duplicate": True}


async def test_receipts_past_the_window_are_dropped_as_new_ones_arrive() -> None:
    clock = FakeClock()
    receipts = ReceiptLog(clock, window=60)
    for n in range(100):
        receipts.done(f"old-{n}", f"r-{n}")
    await clock.advance(61)
    for n in range(156):  # the 256th insert sweeps the expired ones
        receipts.done(f"new-{n}", f"r-{n}")
    assert len(receipts) == 156
    assert receipts.get("new-0") == "r-0"


async def test_a_body_over_the_limit_mid_stream_is_413_before_the_rest_arrives(
    clock: FakeClock, broker: MemoryBroker
) -> None:
    async with WebhookReceiver([source(max_body=16)], broker=broker, clock=clock) as receiver:
        headers = standard_headers("msg_1", NOW, BODY)
        chunks = [BODY[:10], BODY[10:20], BODY[20:30], BODY[30:]]
        sent = await call_asgi(receiver, http_scope(headers), chunks)
    assert sent[0]["status"] == 413
    assert await drain(broker) == []


async def test_a_client_gone_before_the_body_gets_nothing(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    headers = standard_headers("msg_1", NOW, BODY)
    sent = await call_asgi(receiver, http_scope(headers), [], disconnect=True)
    assert sent == []
    assert await drain(broker) == []


async def test_a_cancelled_store_releases_its_claim_for_the_next_copy(clock: FakeClock) -> None:
    class StuckBroker(MemoryBroker):
        stuck = True
        entered = asyncio.Event()

        async def publish(self, queue: str, body: object, **kwargs: Any) -> str:
            if self.stuck:
                self.entered.set()
                await asyncio.Event().wait()  # never: the request is cancelled here
            return await super().publish(queue, body, **kwargs)

    broker = StuckBroker(clock=clock)
    async with WebhookReceiver([source()], broker=broker, clock=clock) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            first = asyncio.ensure_future(post(http))
            await asyncio.wait_for(broker.entered.wait(), timeout=5)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            broker.stuck = False
            again = await post(http)
        assert again.json()["duplicate"] is False  # not answered from a store that never was
        assert len(await drain(broker)) == 1
    await broker.close()


async def test_start_is_idempotent_and_sources_must_be_sources(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    await receiver.start()
    assert receiver.started
    with pytest.raises(ConfigError, match="not a WebhookSource"):
        WebhookReceiver([source(), "billing"], broker=broker)  # type: ignore[list-item]


async def test_a_url_signing_scheme_rebuilds_the_url_from_the_server_without_a_host(
    clock: FakeClock, broker: MemoryBroker
) -> None:
    import base64 as b64
    import hashlib
    import hmac as hm
    from urllib.parse import urlencode

    params = {"Body": "Ahoy", "From": "+14158675310"}
    signed = "https://hooks.test/hooks/sms" + "".join(f"{k}{params[k]}" for k in sorted(params))
    signature = b64.b64encode(hm.new(b"token", signed.encode(), hashlib.sha1).digest()).decode()
    sms = WebhookSource("sms", path="/sms", scheme="twilio", secrets=["token"], queue="sms")
    async with WebhookReceiver([sms], broker=broker, clock=clock) as receiver:
        scope = http_scope(
            {"x-twilio-signature": signature, "content-type": "application/x-www-form-urlencoded"},
            path="/sms",
        )
        scope["root_path"] = "/hooks"  # mounted, with the path relative to the mount
        sent = await call_asgi(receiver, scope, [urlencode(params).encode()])
    assert sent[0]["status"] == 200  # https://hooks.test:443/hooks/sms, tried without :443


async def test_recent_keeps_the_latest_requests_with_their_outcome_newest_last(
    clock: FakeClock, broker: MemoryBroker
) -> None:
    small = source(max_body=len(BODY))
    async with WebhookReceiver([small], broker=broker, clock=clock) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            accepted = (await post(http)).json()["receipt_id"]
            await post(http)  # the same again: a duplicate
            await post(http, "msg_2", **{"webhook-signature": "v1,AAAA"})
            await post(http, "msg_3", body=BODY + b" ")  # larger than max_body
            broker.refuse_publishes("billing.events")
            await post(http, "msg_4")
        stats = receiver.stats["billing"]
    assert list(stats.recent) == [
        RecentWebhook(NOW, "accepted", "msg_1", accepted),
        RecentWebhook(NOW, "duplicate", "msg_1", accepted),
        # What was turned away keeps the sender's address (httpx's ASGI transport's peer).
        RecentWebhook(NOW, "rejected", reason="no_matching_signature", client="127.0.0.1"),
        RecentWebhook(NOW, "too_large", client="127.0.0.1"),
        RecentWebhook(NOW, "unavailable", "msg_4"),
    ]
    for n in range(RECENT_WEBHOOKS):
        stats.recent.append(RecentWebhook(NOW + n, "accepted"))
    assert len(stats.recent) == RECENT_WEBHOOKS
    assert stats.recent[-1].at == NOW + RECENT_WEBHOOKS - 1
