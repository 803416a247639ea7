"""The receiver with providers' own schemes: handshakes answered, URL signatures behind proxies."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlink.messaging import MemoryBroker
from interlink.testing import FakeClock
from interlink.webhooks import WebhookReceiver, WebhookSource

NOW = 1_800_000_000
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ZOOM_SECRET = "zoom-secret-token"
TWITCH_SECRET = "twitch-subscription-secret"
TWILIO_TOKEN = "12345"
DISCORD_KEY = Ed25519PrivateKey.generate()
DISCORD_PUBLIC = DISCORD_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def hex_hmac(secret: str, content: bytes) -> str:
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


SOURCES = [
    WebhookSource("slack", path="/slack", scheme="slack", secrets=[SLACK_SECRET], queue="slack"),
    WebhookSource("zoom", path="/zoom", scheme="zoom", secrets=[ZOOM_SECRET], queue="zoom"),
    WebhookSource("twitch", path="/twitch", scheme="twitch", secrets=[TWITCH_SECRET], queue="tw"),
    WebhookSource(
        "discord", path="/discord", scheme="discord", secrets=[DISCORD_PUBLIC], queue="discord"
    ),
    WebhookSource(
        "twilio", path="/twilio", scheme="twilio", secrets=[TWILIO_TOKEN], queue="twilio"
    ),
    WebhookSource(
        "twilio-public",
        path="/twilio-public",
        scheme="twilio",
        secrets=[TWILIO_TOKEN],
        queue="twilio",
        public_url="https://public.example/sms",
    ),
]


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(clock=FakeClock(wall=NOW))
    await broker.start()
    yield broker
    await broker.close()


@pytest.fixture
async def receiver(broker: MemoryBroker) -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SOURCES, broker=broker, clock=broker.clock) as receiver:
        yield receiver


async def post(
    receiver: WebhookReceiver, path: str, body: bytes, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=receiver)
    base = kw.pop("base_url", "http://hooks.test")
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        return await http.post(path, content=body, headers=headers)


async def stored(broker: MemoryBroker, queue: str) -> int:
    return (await broker.stats(queue)).ready or 0


async def test_slack_url_verification_is_answered_and_not_stored(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    body = json.dumps(
        {
            "type": "url_verification",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        }
    ).encode()
    signature = "v0=" + hex_hmac(SLACK_SECRET, f"v0:{NOW}:".encode() + body)
    headers = {"x-slack-signature": signature, "x-slack-request-timestamp": str(NOW)}
    response = await post(receiver, "/slack", body, headers)
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert receiver.stats["slack"].handshakes == 1
    assert await stored(broker, "slack") == 0


async def test_an_unsigned_slack_challenge_gets_401(receiver: WebhookReceiver) -> None:
    body = b'{"type":"url_verification","challenge":"x"}'
    headers = {"x-slack-signature": "v0=" + "0" * 64, "x-slack-request-timestamp": str(NOW)}
    assert (await post(receiver, "/slack", body, headers)).status_code == 401


async def test_zoom_url_validation_answers_the_encrypted_token(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    body = b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}'
    headers = {
        "x-zm-signature": "v0=" + hex_hmac(ZOOM_SECRET, f"v0:{NOW}:".encode() + body),
        "x-zm-request-timestamp": str(NOW),
    }
    response = await post(receiver, "/zoom", body, headers)
    assert response.status_code == 200
    assert response.json() == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": hex_hmac(ZOOM_SECRET, b"qgg8vlvZRS6UYooatFL8Aw"),
    }
    assert await stored(broker, "zoom") == 0


def twitch_headers(message_type: str, body: bytes) -> dict[str, str]:
    stamp = "2027-01-15T08:00:00.123456789Z"
    message_id = "e76c6bd4-55c9-4987-8304-da1588d8988b"
    signature = hex_hmac(TWITCH_SECRET, message_id.encode() + stamp.encode() + body)
    return {
        "twitch-eventsub-message-id": message_id,
        "twitch-eventsub-message-timestamp": stamp,
        "twitch-eventsub-message-signature": f"sha256={signature}",
        "twitch-eventsub-message-type": message_type,
    }


async def test_twitch_callback_verification_answers_the_challenge_as_text(
    broker: MemoryBroker,
) -> None:
    body = b'{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387","type":"channel.follow"}}'
    headers = twitch_headers("webhook_callback_verification", body)
    # The receiver's clock at the signed time (2027-01-15T08:00:00Z).
    clock = FakeClock(wall=_rfc3339_seconds(headers["twitch-eventsub-message-timestamp"]))
    async with WebhookReceiver(SOURCES, broker=broker, clock=clock) as receiver:
        response = await post(receiver, "/twitch", body, headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain"
        assert response.text == "pogchamp-kappa-360noscope-vohiyo"
        notification = await post(receiver, "/twitch", body, twitch_headers("notification", body))
        assert notification.json()["duplicate"] is False  # the type header says: not a challenge
    assert await stored(broker, "tw") == 1


def _rfc3339_seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp[:19] + "+00:00").timestamp()


async def test_discord_ping_is_answered_with_a_pong(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    body = b'{"id":"1079","type":1,"application_id":"42"}'
    stamp = str(NOW)
    signature = DISCORD_KEY.sign(stamp.encode() + body).hex()
    headers = {"x-signature-ed25519": signature, "x-signature-timestamp": stamp}
    response = await post(receiver, "/discord", body, headers)
    assert response.status_code == 200
    assert response.json() == {"type": 1}
    assert await stored(broker, "discord") == 0
    forged = {"x-signature-ed25519": "00" * 64, "x-signature-timestamp": stamp}
    assert (await post(receiver, "/discord", body, forged)).status_code == 401


def twilio_signature(url: str, params: dict[str, str]) -> str:
    content = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    mac = hmac.new(TWILIO_TOKEN.encode(), content.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


PARAMS = {"From": "+14158675310", "Body": "Ahoy", "MessageSid": "SM1", "To": "+15005550006"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_twilio_signs_the_url_the_receiver_rebuilds_from_the_request(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    body = urlencode(PARAMS).encode()
    url = "http://hooks.test/twilio?tenant=7"
    headers = {**FORM, "x-twilio-signature": twilio_signature(url, PARAMS)}
    assert (await post(receiver, "/twilio?tenant=7", body, headers)).status_code == 200
    assert await stored(broker, "twilio") == 1


async def test_behind_a_proxy_the_public_url_is_what_twilio_signed(
    receiver: WebhookReceiver, broker: MemoryBroker
) -> None:
    body = urlencode(PARAMS).encode()
    public = {**FORM, "x-twilio-signature": twilio_signature("https://public.example/sms", PARAMS)}
    internal = {
        **FORM,
        "x-twilio-signature": twilio_signature("http://hooks.test/twilio-public", PARAMS),
    }
    assert (await post(receiver, "/twilio-public", body, public)).status_code == 200
    assert (await post(receiver, "/twilio-public", body, internal)).status_code == 401


async def test_forwarded_headers_count_only_when_trusted(broker: MemoryBroker) -> None:
    body = urlencode(PARAMS).encode()
    signed = twilio_signature("https://public.example/twilio", PARAMS)
    headers = {
        **FORM,
        "x-twilio-signature": signed,
        "x-forwarded-proto": "https",
        "x-forwarded-host": "public.example",
    }
    async with WebhookReceiver(SOURCES, broker=broker, clock=broker.clock) as untrusting:
        assert (await post(untrusting, "/twilio", body, headers)).status_code == 401
    async with WebhookReceiver(
        SOURCES, broker=broker, clock=broker.clock, trust_forwarded=True
    ) as trusting:
        assert (await post(trusting, "/twilio", body, headers)).status_code == 200
