"""The ``shopify`` scheme: ``X-Shopify-Hmac-Sha256``, base64 HMAC-SHA256 of the raw body.

No published vector: Shopify's docs (shopify.dev "Verify webhooks") and its
libraries' tests compute the HMAC at run time. The signatures here are built
independently with ``hmac``/``hashlib``/``base64`` as the docs describe
(HMAC-SHA256 of the raw body keyed with the app's client secret, base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from interlink.webhooks import SignatureError, build_scheme, verify

SECRET = "shpss_0123456789abcdef0123456789abcdef"
NEW_SECRET = "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"
# An orders/create style body, as Shopify sends it (compact JSON).
BODY = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00","note":"caf\\u00e9"}'
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
EVENT_ID = "98880550-7158-44d4-b7cd-2c97c8a091b5"
NOW = 1_767_225_600


def sign(secret: str, body: bytes = BODY) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers(secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": sign(secret, body)}


def reason_of(given: dict[str, str], body: bytes = BODY, secrets: list[str] | None = None) -> str:
    with pytest.raises(SignatureError) as caught:
        verify("shopify", secrets=secrets or [SECRET], headers=given, body=body, now=NOW)
    assert caught.value.scheme == "shopify"
    return caught.value.reason


def test_valid_webhook_verifies_with_the_webhook_id() -> None:
    given = headers() | {"X-Shopify-Webhook-Id": WEBHOOK_ID, "X-Shopify-Event-Id": EVENT_ID}
    webhook = verify("shopify", secrets=[SECRET], headers=given, body=BODY)
    assert webhook.id == WEBHOOK_ID
    assert webhook.timestamp is None
    assert webhook.scheme == "shopify"
    assert webhook.body == BODY


def test_event_id_is_the_fallback() -> None:
    given = headers() | {"X-Shopify-Event-Id": EVENT_ID}
    assert verify("shopify", secrets=[SECRET], headers=given, body=BODY).id == EVENT_ID


def test_content_id_when_no_id_header() -> None:
    webhook = verify("shopify", secrets=[SECRET], headers=headers(), body=BODY)
    assert webhook.id == "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_no_time_check() -> None:
    for now in (0, NOW, 10**12):
        assert verify("shopify", secrets=[SECRET], headers=headers(), body=BODY, now=now)


def test_tampered_body_fails() -> None:
    assert reason_of(headers(), BODY.replace(b"403.00", b"4.03")) == "no_matching_signature"


def test_reserialised_json_body_fails() -> None:
    # shopify-reserialized: json.dumps turns \u00e9 into é-escaped text and adds spaces.
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    assert reason_of(headers(), reserialised) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert reason_of(headers(), secrets=["shpss_wrong"]) == "no_matching_signature"


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_secret_passes(secrets: list[str]) -> None:
    # Shopify keeps signing with the old secret for up to an hour after a rotation.
    for signer in (SECRET, NEW_SECRET):
        assert verify("shopify", secrets=secrets, headers=headers(signer), body=BODY)


def test_hex_instead_of_base64_is_malformed() -> None:
    hex_value = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert reason_of({"X-Shopify-Hmac-Sha256": hex_value}) == "malformed_header"


@pytest.mark.parametrize(
    "value",
    ["not base64!", "AAAA", "é" * 44, "QUFB" * 100, base64.b64encode(b"x" * 20).decode()],
)
def test_malformed_header(value: str) -> None:
    assert reason_of({"X-Shopify-Hmac-Sha256": value}) == "malformed_header"


def test_well_formed_but_wrong_signature() -> None:
    value = base64.b64encode(b"\x00" * 32).decode()
    assert reason_of({"X-Shopify-Hmac-Sha256": value}) == "no_matching_signature"


def test_missing_header() -> None:
    assert reason_of({}) == "missing_header"
    assert reason_of({"X-Shopify-Hmac-Sha256": ""}) == "missing_header"
    assert reason_of({"X-Shopify-Hmac-SHA1": sign(SECRET)}) == "missing_header"


def test_header_names_in_any_case() -> None:
    for name in ("x-shopify-hmac-sha256", "X-Shopify-Hmac-SHA256", "X-SHOPIFY-HMAC-SHA256"):
        given = {name: sign(SECRET), "x-shopify-WEBHOOK-id": WEBHOOK_ID}
        assert verify("shopify", secrets=[SECRET], headers=given, body=BODY).id == WEBHOOK_ID


def test_surrounding_whitespace_in_the_value_is_tolerated() -> None:
    given = {"X-Shopify-Hmac-Sha256": f" {sign(SECRET)} "}
    assert verify("shopify", secrets=[SECRET], headers=given, body=BODY)


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("shopify", secrets=[SECRET, ""], headers=headers(), body=BODY)
    assert caught.value.reason == "bad_secret"
    assert SECRET not in str(caught.value)


def test_no_handshake() -> None:
    scheme = build_scheme("shopify", [SECRET])
    assert scheme.handshake(scheme.verify(headers(), BODY)) is None
