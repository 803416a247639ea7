"""The ``square`` scheme: base64 HMAC-SHA256 over the notification URL and the body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from interlink.core.errors import ConfigError
from interlink.webhooks import SignatureError, VerifiedWebhook, verify

# square/square-python-sdk tests (test_webhooks_helper: test_signature_validation_pass,
# ..._escaped_pass, ..._url_mismatch, ..._invalid_signature_key); the same vector is in
# square-nodejs-sdk, square-ruby-sdk, square-php-sdk and square-go-sdk.
SQ_BODY = (
    b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification",'
    b'"event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
    b'"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
SQ_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
SQ_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
SQ_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"

URL = "https://example.com/hooks/square"
KEY = "square-signature-key"
OLD = "square-old-key"
BODY = b'{"merchant_id":"M1","type":"payment.updated","event_id":"evt-123","data":{}}'


def sign(key: str, url: str, body: bytes) -> str:
    return base64.b64encode(
        hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    ).decode()


def check(
    signature: str | None, body: bytes = BODY, *, url: str = URL, secrets: list[str] | None = None
) -> VerifiedWebhook:
    headers = {} if signature is None else {"X-Square-HmacSha256-Signature": signature}
    return verify("square", secrets=secrets or [KEY], headers=headers, body=body, url=url, now=0)


def reason(signature: str | None, body: bytes = BODY, **kw: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        check(signature, body, **kw)
    return caught.value.reason


def test_official_vector() -> None:
    webhook = verify(
        "square",
        secrets=[SQ_KEY],
        headers={"x-square-hmacsha256-signature": SQ_SIGNATURE},
        body=SQ_BODY,
        url=SQ_URL,
    )
    assert webhook == VerifiedWebhook(
        "ac3ac95b-f97d-458c-a6e6-18981597e05f", None, "square", SQ_BODY
    )


def test_official_escaped_vector() -> None:
    webhook = verify(
        "square",
        secrets=["signature-key"],
        headers={"x-square-hmacsha256-signature": "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="},
        body=b'{"data":{"type":"webhooks","id":">id<"}}',
        url="https://webhook.site/webhooks",
    )
    assert webhook.id.startswith("sha256:")  # no event_id in that body


def test_official_url_mismatch_fails() -> None:  # research: square-official-url-mismatch
    with pytest.raises(SignatureError) as caught:
        verify(
            "square",
            secrets=[SQ_KEY],
            headers={"x-square-hmacsha256-signature": SQ_SIGNATURE},
            body=SQ_BODY,
            url="https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9",
        )
    assert caught.value.reason == "no_matching_signature"


def test_official_wrong_key_fails() -> None:
    with pytest.raises(SignatureError) as caught:
        verify(
            "square",
            secrets=["MCmhFRxGX82xMwg5FsaoQA"],
            headers={"x-square-hmacsha256-signature": SQ_SIGNATURE},
            body=SQ_BODY,
            url=SQ_URL,
        )
    assert caught.value.reason == "no_matching_signature"


def test_valid_webhook() -> None:
    webhook = check(sign(KEY, URL, BODY))
    assert (webhook.id, webhook.timestamp, webhook.scheme) == ("evt-123", None, "square")


def test_id_falls_back_to_content() -> None:
    body = b'{"type":"x"}'
    assert check(sign(KEY, URL, body), body).id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_http_behind_a_proxy_fails() -> None:
    assert reason(sign(KEY, URL, BODY), url=URL.replace("https", "http")) == "no_matching_signature"


def test_tampered_and_reserialised_body_fail() -> None:
    signature = sign(KEY, URL, BODY)
    assert reason(signature, BODY.replace(b"evt-123", b"evt-124")) == "no_matching_signature"
    assert reason(signature, json.dumps(json.loads(BODY)).encode()) == "no_matching_signature"


def test_wrong_secret_and_rotation() -> None:
    assert reason(sign(OLD, URL, BODY)) == "no_matching_signature"
    assert check(sign(OLD, URL, BODY), secrets=[KEY, OLD]).id == "evt-123"
    assert check(sign(KEY, URL, BODY), secrets=[OLD, KEY]).id == "evt-123"


def test_missing_and_malformed_header() -> None:
    assert reason(None) == "missing_header"
    assert reason("") == "missing_header"
    assert reason("not base64 at all ✓") == "no_matching_signature"


def test_header_name_in_any_case() -> None:
    signature = sign(KEY, URL, BODY)
    for name in ("X-SQUARE-HMACSHA256-SIGNATURE", "x-square-hmacsha256-signature"):
        assert (
            verify("square", secrets=[KEY], headers={name: signature}, body=BODY, url=URL).id
            == "evt-123"
        )


def test_legacy_sha1_header_is_not_enough() -> None:
    legacy = base64.b64encode(
        hmac.new(KEY.encode(), URL.encode() + BODY, hashlib.sha1).digest()
    ).decode()
    with pytest.raises(SignatureError) as caught:
        verify("square", secrets=[KEY], headers={"X-Square-Signature": legacy}, body=BODY, url=URL)
    assert caught.value.reason == "missing_header"


def test_url_is_required_and_no_tolerance() -> None:
    with pytest.raises(ConfigError):
        verify("square", secrets=[KEY], headers={}, body=BODY)
    with pytest.raises(ConfigError):
        verify("square", secrets=[KEY], headers={}, body=BODY, url=URL, tolerance=10)


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        check(sign(KEY, URL, BODY), secrets=[""])
    assert caught.value.reason == "bad_secret"
