"""The ``twitch`` scheme: EventSub's HMAC over ``id + timestamp + body``, and the challenge.

Twitch's docs (https://dev.twitch.tv/docs/eventsub/handling-webhook-events/)
show the headers and a ``webhook_callback_verification`` body but publish no
secret with a matching signature, so the signatures here are computed in the
test with ``hmac``/``hashlib`` over the docs' example message id, timestamp and
challenge body.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from interlink.webhooks import Handshake, SignatureError, VerifiedWebhook, build_scheme
from interlink.webhooks.schemes._twitch import parse_rfc3339
from tests.webhooks.checking import Checker

SECRET = "keepItSecretKeepItSafe"  # twitchdev/eventsub-webhooks-node-sample index.js
OLD = "the-previous-subscription-secret"
# The docs' example request headers:
MESSAGE_ID = "e76c6bd4-55c9-4987-8304-da1588d8988b"
STAMP = "2019-11-16T10:11:12.634234626Z"
TS = 1573899072  # 2019-11-16T10:11:12Z
CHALLENGE_BODY = (
    b'{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4",'
    b'"status":"webhook_callback_verification_pending","type":"channel.follow","version":"1",'
    b'"cost":1,"condition":{"broadcaster_user_id":"12826"},"transport":{"method":"webhook",'
    b'"callback":"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z"}}'
)
BODY = (
    b'{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","type":"channel.follow"},'
    b'"event":{"user_id":"1337","broadcaster_user_id":"12826"}}'
)


def signed(
    body: bytes = BODY, *, secret: str = SECRET, message_id: str = MESSAGE_ID, stamp: str = STAMP
) -> dict[str, str]:
    digest = hmac.new(
        secret.encode(), message_id.encode() + stamp.encode() + body, hashlib.sha256
    ).hexdigest()
    return {
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": "sha256=" + digest,
        "Twitch-Eventsub-Message-Type": "notification",
    }


CHECKER = Checker("twitch", secret=SECRET, body=BODY, now=TS)
check, reason = CHECKER.check, CHECKER.reason


def test_valid_notification() -> None:
    assert check(signed()) == VerifiedWebhook(MESSAGE_ID, TS, "twitch", BODY)


def test_header_names_in_any_case() -> None:
    headers = {name.lower(): value for name, value in signed().items()}
    assert check(headers).id == MESSAGE_ID
    headers = {name.upper(): value for name, value in signed().items()}
    assert check(headers).id == MESSAGE_ID


def test_tampered_and_reserialised_body_fail() -> None:
    assert reason(signed(), BODY.replace(b"1337", b"1338")) == "no_matching_signature"
    assert reason(signed(), json.dumps(json.loads(BODY)).encode()) == "no_matching_signature"


def test_id_and_timestamp_are_signed_as_received() -> None:
    headers = signed()
    headers["Twitch-Eventsub-Message-Id"] = MESSAGE_ID.upper()
    assert reason(headers) == "no_matching_signature"
    headers = signed()
    headers["Twitch-Eventsub-Message-Timestamp"] = "2019-11-16T10:11:12.634234627Z"  # same second
    assert reason(headers) == "no_matching_signature"


def test_wrong_secret_and_rotation() -> None:
    assert reason(signed(secret=OLD)) == "no_matching_signature"
    assert check(signed(secret=OLD), secrets=[SECRET, OLD]).id == MESSAGE_ID
    assert check(signed(), secrets=[OLD, SECRET]).id == MESSAGE_ID


def test_stale_and_future_with_the_default_600s() -> None:  # research pitfall 5: twitch-stale
    assert check(signed(), now=TS + 600).timestamp == TS
    assert reason(signed(), now=TS + 601) == "timestamp_out_of_tolerance"
    assert reason(signed(), now=TS - 601) == "timestamp_out_of_tolerance"


def test_tolerance_override() -> None:
    assert check(signed(), now=TS + 3000, tolerance=3600).timestamp == TS
    assert reason(signed(), now=TS + 61, tolerance=60) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2019-11-16T10:11:12Z", TS),
        ("2019-11-16T10:11:12.6Z", TS),
        ("2019-11-16T10:11:12.634234626Z", TS),
        ("2019-11-16t10:11:12.634z", TS),
        ("2019-11-16T11:11:12+01:00", TS),
        ("2019-11-16T09:41:12.5-00:30", TS),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_rfc3339_timestamps(stamp: str, expected: int) -> None:
    assert parse_rfc3339(stamp) == expected
    assert check(signed(stamp=stamp), now=expected).timestamp == expected


@pytest.mark.parametrize(
    "stamp",
    [
        "1573899072",
        "2019-11-16 10:11:12Z",
        "2019-11-16T10:11:12",
        "2019-11-16T10:11:12.Z",
        "2019-11-16T10:11:12.1234567890Z",
        "2019-13-16T10:11:12Z",
        "2019-02-30T10:11:12Z",
        "2019-11-16T24:11:12Z",
        "2019-11-16T10:11:60Z",
        "2019-11-16T10:11:12+24:00",
        "2019-11-16T10:11:12+0100",
        "+019-11-16T10:11:12Z",
        "\uff12\uff10\uff11\uff19-11-16T10:11:12Z",
        "2019-11-16T10:11:12Zjunk",
        "0000-01-01T00:00:00Z",
    ],
)
def test_malformed_timestamps(stamp: str) -> None:
    assert parse_rfc3339(stamp) is None
    assert reason(signed(stamp=stamp)) == "malformed_header"


def test_missing_headers() -> None:
    empty = signed()
    empty["Twitch-Eventsub-Message-Timestamp"] = ""
    assert reason(empty) == "missing_header"
    for name in (
        "Twitch-Eventsub-Message-Id",
        "Twitch-Eventsub-Message-Timestamp",
        "Twitch-Eventsub-Message-Signature",
    ):
        headers = signed()
        del headers[name]
        assert reason(headers) == "missing_header"


@pytest.mark.parametrize("value", ["abc", "sha1=" + "0" * 40, "SHA256=" + "0" * 64])
def test_malformed_signature(value: str) -> None:
    headers = signed()
    headers["Twitch-Eventsub-Message-Signature"] = value
    assert reason(headers) == "malformed_header"


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        check(signed(), secrets=[""])
    assert caught.value.reason == "bad_secret"


def test_challenge_handshake() -> None:
    scheme = build_scheme("twitch", [SECRET])
    headers = signed(CHALLENGE_BODY)
    headers["Twitch-Eventsub-Message-Type"] = "webhook_callback_verification"
    verified = scheme.verify(headers, CHALLENGE_BODY, now=TS)
    assert scheme.handshake(verified) == Handshake(
        200, "text/plain", b"pogchamp-kappa-360noscope-vohiyo"
    )


def test_no_handshake_for_notifications_and_revocations() -> None:
    scheme = build_scheme("twitch", [SECRET])
    assert scheme.handshake(scheme.verify(signed(), BODY, now=TS)) is None
    for body in (
        b'{"subscription":{"id":"x","status":"authorization_revoked"}}',
        b'{"challenge":"abc"}',
        b'{"challenge":7,"subscription":{}}',
        b'{"challenge":"abc","subscription":"x"}',
        b'"challenge"',
    ):
        assert scheme.handshake(scheme.verify(signed(body), body, now=TS)) is None
