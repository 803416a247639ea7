"""The ``paddle`` scheme: Paddle Billing's ``Paddle-Signature: ts=...;h1=...``."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from interlink.webhooks import SignatureError, verify
from tests.webhooks.checking import Checker

# PaddleHQ/paddle-python-sdk tests/Unit/Notification/test_Verifier.py
# (test_validate_paddle_signature_header_integrity): three secrets, the last one signs;
# the header carries a non-hex "h1=dummy" next to the real signature.
SDK_SECRETS = [
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
]
SDK_HEADER = (
    "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
)
SDK_BODY = b"hello-world"
SDK_TS = 1696195954

SECRET = "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI"
OLD = "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_oldoldoldoldoldoldoldoldoldold"
TS = 1_767_225_600
BODY = (
    b'{"event_id":"evt_01hv8x2a","event_type":"transaction.completed",'
    b'"occurred_at":"2026-01-01T00:00:00Z","notification_id":"ntf_01hv8x2b","data":{"id":"txn_1"}}'
)


def sign(secret: str, ts: int | str, body: bytes) -> str:
    """An independent HMAC-SHA256 of ``ts:body`` (hex)."""
    return hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()


def header(*signatures: str, ts: int | str = TS) -> dict[str, str]:
    return {"Paddle-Signature": f"ts={ts};" + ";".join(f"h1={s}" for s in signatures)}


CHECKER = Checker("paddle", secret=SECRET, body=BODY, now=TS)
check, reason = CHECKER.check, CHECKER.reason


def test_sdk_vector_passes() -> None:
    webhook = verify(
        "paddle",
        secrets=SDK_SECRETS,
        headers={"Paddle-Signature": SDK_HEADER},
        body=SDK_BODY,
        now=SDK_TS,
    )
    assert webhook.timestamp == SDK_TS
    assert webhook.scheme == "paddle"
    assert webhook.id.startswith("sha256:")  # "hello-world" has no notification_id


def test_sdk_vector_fails_with_only_the_wrong_secrets() -> None:
    with pytest.raises(SignatureError) as caught:
        verify(
            "paddle",
            secrets=SDK_SECRETS[:2],
            headers={"Paddle-Signature": SDK_HEADER},
            body=SDK_BODY,
            now=SDK_TS,
        )
    assert caught.value.reason == "no_matching_signature"


def test_valid_webhook_id_is_the_notification_id() -> None:
    webhook = check(header(sign(SECRET, TS, BODY)))
    assert (webhook.id, webhook.timestamp, webhook.body) == ("ntf_01hv8x2b", TS, BODY)


def test_id_falls_back_to_event_id_then_content() -> None:
    body = b'{"event_id":"evt_9","data":{}}'
    assert check(header(sign(SECRET, TS, body)), body).id == "evt_9"
    body = b"[1,2]"
    assert (
        check(header(sign(SECRET, TS, body)), body).id
        == "sha256:" + hashlib.sha256(body).hexdigest()
    )


def test_tampered_body_fails() -> None:
    assert (
        reason(header(sign(SECRET, TS, BODY)), BODY.replace(b"txn_1", b"txn_2"))
        == "no_matching_signature"
    )


def test_reserialised_json_fails() -> None:
    body = json.dumps(json.loads(BODY)).encode()
    assert reason(header(sign(SECRET, TS, BODY)), body) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert reason(header(sign(OLD, TS, BODY))) == "no_matching_signature"


def test_rotation_either_secret_and_either_h1() -> None:
    both = header(sign(OLD, TS, BODY), sign(SECRET, TS, BODY))
    assert check(both, secrets=[SECRET]).id == "ntf_01hv8x2b"
    assert check(both, secrets=[OLD]).id == "ntf_01hv8x2b"
    assert check(header(sign(OLD, TS, BODY)), secrets=[SECRET, OLD]).id == "ntf_01hv8x2b"


def test_stale_6s_fails_with_the_default_5s() -> None:  # research pitfall 5: paddle-stale-6s
    signed = header(sign(SECRET, TS, BODY))
    assert check(signed, now=TS + 5).timestamp == TS
    assert reason(signed, now=TS + 6) == "timestamp_out_of_tolerance"
    assert reason(signed, now=TS - 6) == "timestamp_out_of_tolerance"  # future, too


def test_tolerance_override() -> None:
    signed = header(sign(SECRET, TS, BODY))
    assert check(signed, now=TS + 60, tolerance=120).timestamp == TS
    assert reason(signed, now=TS + 121, tolerance=120) == "timestamp_out_of_tolerance"


def test_missing_header() -> None:
    assert reason({}) == "missing_header"
    assert reason({"Paddle-Signature": ""}) == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "h1=abc",  # no ts
        f"ts={TS}",  # no h1
        f"ts={TS};ts={TS};h1=ab",
        "ts=1e9;h1=ab",
        "ts= 1767225600;h1=ab",
        "ts=-1;h1=ab",
        "ts=\uff11\uff12\uff13;h1=ab",
        "ts=Infinity;h1=ab",
    ],
)
def test_malformed_header(value: str) -> None:
    assert reason({"Paddle-Signature": value}) == "malformed_header"


def test_header_part_order_and_name_case() -> None:
    signature = sign(SECRET, TS, BODY)
    assert check({"PADDLE-SIGNATURE": f"h1={signature};ts={TS}"}).timestamp == TS
    assert check({"paddle-signature": f"ts={TS};h1={signature};"}).timestamp == TS


def test_timestamp_is_hashed_as_received() -> None:
    # a signature over "01767225600" does not pass for the value 1767225600 written differently
    signature = sign(SECRET, TS, BODY)
    assert reason(header(signature, ts="0" + str(TS))) == "no_matching_signature"


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        check(header("ab"), secrets=[""])
    assert caught.value.reason == "bad_secret"
