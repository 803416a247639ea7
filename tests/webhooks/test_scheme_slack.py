"""The ``slack`` scheme: ``X-Slack-Signature: v0=<hex>`` over ``v0:{ts}:{body}``, 300 s window."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from interlink.webhooks import SignatureError, build_scheme, verify

# Slack's published example (https://api.slack.com/authentication/verifying-requests-from-slack,
# now docs.slack.dev/authentication/verifying-requests-from-slack): a slash command.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TS = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
DOC_NOW = int(DOC_TS)

SECRET = DOC_SECRET
NEW_SECRET = "0123456789abcdef0123456789abcdef"
T = 1_767_225_600
EVENT = (
    b'{"token":"z26uFbvR1xHJEdHE1OQiO6t8","team_id":"T061EG9RZ","api_app_id":"A0FFV41KK",'
    b'"event":{"type":"app_mention","text":"<@U0LAN0Z89> hi","ts":"1515449522.000016"},'
    b'"type":"event_callback","event_id":"Ev0MDYGDKJ","event_time":1515449522}'
)
CHALLENGE = (
    b'{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl",'
    b'"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",'
    b'"type":"url_verification"}'
)  # the example in Slack's Events API url_verification docs


def sign(secret: str, body: bytes, stamp: int | str = T) -> str:
    content = b"v0:" + str(stamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


def headers(body: bytes = EVENT, secret: str = SECRET, stamp: int | str = T) -> dict[str, str]:
    return {"X-Slack-Signature": sign(secret, body, stamp), "X-Slack-Request-Timestamp": str(stamp)}


def reason_of(given: dict[str, str], body: bytes = EVENT, **kwargs: object) -> str:
    kwargs.setdefault("secrets", [SECRET])
    kwargs.setdefault("now", T)
    with pytest.raises(SignatureError) as caught:
        verify("slack", headers=given, body=body, **kwargs)  # type: ignore[arg-type]
    assert caught.value.scheme == "slack"
    return caught.value.reason


def test_published_vector_verifies() -> None:
    given = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TS}
    webhook = verify("slack", secrets=[DOC_SECRET], headers=given, body=DOC_BODY, now=DOC_NOW)
    assert webhook.timestamp == DOC_NOW
    assert webhook.scheme == "slack"
    # A form-encoded slash command carries no event id: the signed content's hash.
    content = b"v0:" + DOC_TS.encode() + b":" + DOC_BODY
    assert webhook.id == "sha256:" + hashlib.sha256(content).hexdigest()


def test_the_independent_computation_matches_the_published_vector() -> None:
    assert sign(DOC_SECRET, DOC_BODY, DOC_TS) == DOC_SIGNATURE


def test_an_event_gets_its_event_id() -> None:
    webhook = verify("slack", secrets=[SECRET], headers=headers(), body=EVENT, now=T)
    assert webhook.id == "Ev0MDYGDKJ"
    assert webhook.timestamp == T


def test_json_without_event_id_gets_the_content_id() -> None:
    body = b' {"type":"block_actions"}'
    webhook = verify("slack", secrets=[SECRET], headers=headers(body), body=body, now=T)
    assert webhook.id.startswith("sha256:")


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{not json", b"payload=%7B%22type%22%3A%22block_actions%22%7D", b"\xff\xfe{"],
)
def test_non_json_bodies_never_crash(body: bytes) -> None:
    webhook = verify("slack", secrets=[SECRET], headers=headers(body), body=body, now=T)
    assert webhook.id.startswith("sha256:")
    assert build_scheme("slack", [SECRET]).handshake(webhook) is None


def test_url_verification_handshake() -> None:
    scheme = build_scheme("slack", [SECRET])
    webhook = scheme.verify(headers(CHALLENGE), CHALLENGE, now=T)
    answer = scheme.handshake(webhook)
    assert answer is not None
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert json.loads(answer.body) == {
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    }


def test_an_unverified_challenge_is_refused_before_any_handshake() -> None:
    given = {"X-Slack-Signature": "v0=" + "0" * 64, "X-Slack-Request-Timestamp": str(T)}
    assert reason_of(given, CHALLENGE) == "no_matching_signature"


@pytest.mark.parametrize(
    "body",
    [
        EVENT,
        b'{"type":"url_verification"}',
        b'{"type":"url_verification","challenge":42}',
        b'["url_verification"]',
        b'{"type":"event_callback","challenge":"x","note":"url_verification"}',
        b"type=url_verification&challenge=x",
    ],
)
def test_other_bodies_have_no_handshake(body: bytes) -> None:
    scheme = build_scheme("slack", [SECRET])
    assert scheme.handshake(scheme.verify(headers(body), body, now=T)) is None


def test_tampered_body_fails() -> None:
    assert reason_of(headers(), EVENT.replace(b"hi", b"ho")) == "no_matching_signature"


def test_reserialised_json_body_fails() -> None:
    assert reason_of(headers(), json.dumps(json.loads(EVENT)).encode()) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert reason_of(headers(), secrets=[NEW_SECRET]) == "no_matching_signature"


def test_tampered_timestamp_fails() -> None:
    given = headers()
    given["X-Slack-Request-Timestamp"] = str(T + 1)
    assert reason_of(given) == "no_matching_signature"


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_secret_passes(secrets: list[str]) -> None:
    for signer in (SECRET, NEW_SECRET):
        assert verify("slack", secrets=secrets, headers=headers(secret=signer), body=EVENT, now=T)


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_default_tolerance_is_300_seconds_both_ways(offset: int, ok: bool) -> None:
    if ok:
        assert verify("slack", secrets=[SECRET], headers=headers(), body=EVENT, now=T + offset)
    else:
        assert reason_of(headers(), now=T + offset) == "timestamp_out_of_tolerance"


def test_overridden_tolerance() -> None:
    assert reason_of(headers(), now=T + 61, tolerance=60) == "timestamp_out_of_tolerance"
    assert reason_of(headers(), now=T - 61, tolerance=60) == "timestamp_out_of_tolerance"
    assert verify(
        "slack", secrets=[SECRET], headers=headers(), body=EVENT, now=T + 900, tolerance=1000
    )


def test_the_published_vector_is_stale_today() -> None:
    given = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TS}
    assert reason_of(given, DOC_BODY, secrets=[DOC_SECRET], now=T) == "timestamp_out_of_tolerance"


def test_missing_headers() -> None:
    given = headers()
    assert reason_of({"X-Slack-Request-Timestamp": given["X-Slack-Request-Timestamp"]}) == (
        "missing_header"
    )
    assert reason_of({"X-Slack-Signature": given["X-Slack-Signature"]}) == "missing_header"
    assert reason_of({}) == "missing_header"
    assert reason_of({**given, "X-Slack-Signature": ""}) == "missing_header"


@pytest.mark.parametrize(
    "stamp", ["1_767_225_600", "1767225600.0", "+1767225600", " 1767225600", "-1", "abc", "9" * 50]
)
def test_malformed_timestamp(stamp: str) -> None:
    given = {"X-Slack-Signature": sign(SECRET, EVENT, stamp), "X-Slack-Request-Timestamp": stamp}
    assert reason_of(given) == "malformed_header"


@pytest.mark.parametrize(
    "signature",
    [
        "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v0=",
        "v0=a2114d57",
        "v0=" + "g" * 64,
        "v0=" + "é" * 64,
    ],
)
def test_malformed_signature(signature: str) -> None:
    given = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(T)}
    assert reason_of(given) == "malformed_header"


def test_header_names_in_any_case() -> None:
    given = {name.upper(): value for name, value in headers().items()}
    assert verify("slack", secrets=[SECRET], headers=given, body=EVENT, now=T).id == "Ev0MDYGDKJ"


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("slack", secrets=[""], headers=headers(), body=EVENT, now=T)
    assert caught.value.reason == "bad_secret"
