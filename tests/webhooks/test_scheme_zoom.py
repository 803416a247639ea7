"""The ``zoom`` scheme: ``x-zm-signature: v0=hex(HMAC(token, "v0:ts:body"))`` and URL validation.

Zoom's docs (https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events)
give the algorithm and sample code but no secret token with a matching
signature, so the signatures here are computed in the test with
``hmac``/``hashlib``. The ``endpoint.url_validation`` body is the docs' example.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from interlink.webhooks import Handshake, SignatureError, VerifiedWebhook, build_scheme
from tests.webhooks.checking import Checker

TOKEN = "zoom-secret-token-1"
OLD = "zoom-secret-token-0"
TS = 1_767_225_600
BODY = b'{"event":"meeting.started","event_ts":1767225600123,"payload":{"account_id":"A1","object":{"id":"85"}}}'
VALIDATION = b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}'


def signed(body: bytes = BODY, *, token: str = TOKEN, ts: int | str = TS) -> dict[str, str]:
    digest = hmac.new(token.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-zm-signature": "v0=" + digest, "x-zm-request-timestamp": str(ts)}


CHECKER = Checker("zoom", secret=TOKEN, body=BODY, now=TS)
check, reason = CHECKER.check, CHECKER.reason


def test_valid_event_id_is_the_body_hash() -> None:
    webhook = check(signed())
    assert webhook == VerifiedWebhook(
        "sha256:" + hashlib.sha256(BODY).hexdigest(), TS, "zoom", BODY
    )


def test_a_retry_with_a_new_timestamp_has_the_same_id() -> None:
    assert check(signed(ts=TS + 60), now=TS + 60).id == check(signed()).id


def test_header_names_in_any_case() -> None:
    headers = {name.upper(): value for name, value in signed().items()}
    assert check(headers).timestamp == TS


def test_tampered_and_reserialised_body_fail() -> None:
    assert reason(signed(), BODY.replace(b"85", b"86")) == "no_matching_signature"
    assert reason(signed(), json.dumps(json.loads(BODY)).encode()) == "no_matching_signature"


def test_wrong_secret_and_rotation() -> None:
    assert reason(signed(token=OLD)) == "no_matching_signature"
    assert check(signed(token=OLD), secrets=[TOKEN, OLD]).timestamp == TS
    assert check(signed(), secrets=[OLD, TOKEN]).timestamp == TS


def test_expired_and_future_with_the_default_300s() -> None:
    assert check(signed(), now=TS + 300).timestamp == TS
    assert reason(signed(), now=TS + 301) == "timestamp_out_of_tolerance"
    assert reason(signed(), now=TS - 301) == "timestamp_out_of_tolerance"


def test_tolerance_override() -> None:
    assert check(signed(), now=TS + 900, tolerance=1000).timestamp == TS
    assert reason(signed(), now=TS + 11, tolerance=10) == "timestamp_out_of_tolerance"


def test_missing_headers() -> None:
    headers = signed()
    assert reason({"x-zm-signature": headers["x-zm-signature"]}) == "missing_header"
    assert reason({"x-zm-request-timestamp": str(TS)}) == "missing_header"


@pytest.mark.parametrize(
    ("signature", "stamp"),
    [
        ("0" * 64, str(TS)),
        ("v1=" + "0" * 64, str(TS)),
        ("v0=" + "0" * 64, "1767225600.5"),
        ("v0=" + "0" * 64, "1767225600000000"),
        ("v0=" + "0" * 64, " 1767225600"),
    ],
)
def test_malformed_headers(signature: str, stamp: str) -> None:
    assert (
        reason({"x-zm-signature": signature, "x-zm-request-timestamp": stamp}) == "malformed_header"
    )


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        check(signed(), secrets=[""])
    assert caught.value.reason == "bad_secret"


def test_url_validation_handshake() -> None:
    scheme = build_scheme("zoom", [TOKEN, OLD])
    verified = scheme.verify(signed(VALIDATION), VALIDATION, now=TS)
    answer = scheme.handshake(verified)
    assert isinstance(answer, Handshake)
    assert (answer.status, answer.content_type) == (200, "application/json")
    expected = hmac.new(TOKEN.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert json.loads(answer.body) == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": expected,
    }


def test_url_validation_uses_the_first_secret() -> None:
    scheme = build_scheme("zoom", [OLD, TOKEN])
    answer = scheme.handshake(scheme.verify(signed(VALIDATION), VALIDATION, now=TS))
    expected = hmac.new(OLD.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert answer is not None
    assert json.loads(answer.body)["encryptedToken"] == expected


def test_no_handshake_for_other_events() -> None:
    scheme = build_scheme("zoom", [TOKEN])
    assert scheme.handshake(scheme.verify(signed(), BODY, now=TS)) is None
    for body in (
        b'{"event":"endpoint.url_validation"}',
        b'{"event":"endpoint.url_validation","payload":{"plainToken":5}}',
        b'{"event":"meeting.ended","payload":{"plainToken":"endpoint.url_validation"}}',
        b'["endpoint.url_validation"]',
    ):
        assert scheme.handshake(scheme.verify(signed(body), body, now=TS)) is None
