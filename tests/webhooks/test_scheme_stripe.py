"""The ``stripe`` scheme: ``Stripe-Signature: t=...,v1=...`` over ``t.body``, whole-string key.

Stripe publishes no fixed signature vector: stripe-python's tests
(stripe/stripe-python tests/test_webhook.py) compute theirs with the library
itself. The payload and secret below are that test file's
``DUMMY_WEBHOOK_PAYLOAD`` and ``DUMMY_WEBHOOK_SECRET``; the signatures are
computed here independently (``hmac``/``hashlib`` written out), as Stripe's docs
describe: HMAC-SHA256, key = the whole ``whsec_...`` string, content =
``"{t}.{body}"``, lower-case hex.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from interlink.core.secrets import Secret
from interlink.webhooks import SignatureError, verify

SECRET = "whsec_test_secret"  # stripe-python tests/test_webhook.py DUMMY_WEBHOOK_SECRET
NEW_SECRET = "whsec_rolled_secret_0123456789"
PAYLOAD = b"""{
  "id": "evt_test_webhook",
  "object": "event",
  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }
}"""  # stripe-python tests/test_webhook.py DUMMY_WEBHOOK_PAYLOAD
T = 1_767_225_600


def sign(secret: str, body: bytes = PAYLOAD, stamp: int | str = T) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def header(*parts: str) -> dict[str, str]:
    return {"Stripe-Signature": ",".join(parts)}


def valid(secret: str = SECRET, body: bytes = PAYLOAD, stamp: int = T) -> dict[str, str]:
    return header(f"t={stamp}", f"v1={sign(secret, body, stamp)}")


def reason_of(headers: dict[str, str], body: bytes = PAYLOAD, **kwargs: object) -> str:
    kwargs.setdefault("secrets", [SECRET])
    kwargs.setdefault("now", T)
    with pytest.raises(SignatureError) as caught:
        verify("stripe", headers=headers, body=body, **kwargs)  # type: ignore[arg-type]
    assert caught.value.scheme == "stripe"
    return caught.value.reason


def test_valid_event_verifies_with_the_event_id() -> None:
    webhook = verify("stripe", secrets=[SECRET], headers=valid(), body=PAYLOAD, now=T)
    assert webhook.id == "evt_test_webhook"
    assert webhook.timestamp == T
    assert webhook.scheme == "stripe"
    assert webhook.body == PAYLOAD


def test_a_compact_json_body_gives_its_id_too() -> None:
    body = b'{"object":"event","id":"evt_1Compact"}'
    assert verify("stripe", secrets=[SECRET], headers=valid(body=body), body=body, now=T).id == (
        "evt_1Compact"
    )


def test_a_body_without_an_id_gets_the_content_id() -> None:
    body = b"not json at all"
    webhook = verify("stripe", secrets=[SECRET], headers=valid(body=body), body=body, now=T)
    assert webhook.id == "sha256:" + hashlib.sha256(f"{T}.".encode() + body).hexdigest()


def test_an_id_with_escapes_is_read_as_json() -> None:
    body = b'{\n  "id": "evt_\\u0041",\n  "object": "event"\n}'
    assert verify("stripe", secrets=[SECRET], headers=valid(body=body), body=body, now=T).id == (
        "evt_A"
    )


def test_the_key_is_the_whole_whsec_string_not_base64_decoded() -> None:
    # pitfall 7 (stripe-key-not-base64-decoded): a Standard-Webhooks style key fails.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    decoded_key = base64.b64decode(secret.removeprefix("whsec_"))
    wrong = hmac.new(decoded_key, f"{T}.".encode() + PAYLOAD, hashlib.sha256).hexdigest()
    assert reason_of(header(f"t={T}", f"v1={wrong}"), secrets=[secret]) == "no_matching_signature"
    assert verify("stripe", secrets=[secret], headers=valid(secret), body=PAYLOAD, now=T)


def test_tampered_body_fails() -> None:
    assert reason_of(valid(), PAYLOAD.replace(b"rdr_123", b"rdr_124")) == "no_matching_signature"


def test_reserialised_json_body_fails() -> None:
    reserialised = json.dumps(json.loads(PAYLOAD)).encode()
    assert reason_of(valid(), reserialised) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert reason_of(valid(), secrets=["whsec_other"]) == "no_matching_signature"


def test_tampered_timestamp_fails() -> None:
    headers = header(f"t={T + 1}", f"v1={sign(SECRET)}")
    assert reason_of(headers, now=T + 1) == "no_matching_signature"


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_configured_secret_passes(secrets: list[str]) -> None:
    for signer in (SECRET, NEW_SECRET):
        headers = valid(signer)
        assert verify("stripe", secrets=secrets, headers=headers, body=PAYLOAD, now=T).id


def test_rolled_secret_header_with_two_v1_entries() -> None:
    # stripe-rolled-secret: Stripe sends one v1 per live secret while the old one expires.
    headers = header(f"t={T}", f"v1={sign(NEW_SECRET)}", f"v1={sign(SECRET)}")
    assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T)
    assert verify("stripe", secrets=[NEW_SECRET], headers=headers, body=PAYLOAD, now=T)


def test_a_bad_v1_beside_a_good_one_passes() -> None:
    # stripe-python test_header_contains_valid_signature
    headers = header(f"t={T}", f"v1={sign(SECRET)}", "v1=bad_signature")
    assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T)


def test_parts_in_any_order_and_unknown_keys_are_ignored() -> None:
    headers = header(f"v1={sign(SECRET)}", "v2=whatever", f"t={T}")
    assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T)


def test_spaces_around_parts_are_tolerated() -> None:
    headers = {"Stripe-Signature": f"t={T}, v1={sign(SECRET)}"}
    assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T)


def test_v0_only_never_verifies() -> None:
    # stripe-v0-only: stripe-python test_raise_on_no_signatures_with_expected_scheme
    assert reason_of(header(f"t={T}", f"v0={sign(SECRET)}")) == "no_matching_signature"


def test_v1_bad_and_v0_good_fails() -> None:
    # stripe-v1-bad-v0-good: a downgrade to v0 must not pass.
    headers = header(f"t={T}", "v1=" + "0" * 64, f"v0={sign(SECRET)}")
    assert reason_of(headers) == "no_matching_signature"


@pytest.mark.parametrize(
    ("offset", "reason"), [(300, None), (-300, None), (301, "old"), (-301, "future")]
)
def test_default_tolerance_is_300_seconds_both_ways(offset: int, reason: str | None) -> None:
    # stripe-future-1h and pitfall 5: the window is symmetric, unlike stripe-python's.
    now = T + offset
    if reason is None:
        assert verify("stripe", secrets=[SECRET], headers=valid(), body=PAYLOAD, now=now)
    else:
        with pytest.raises(SignatureError, match=reason) as caught:
            verify("stripe", secrets=[SECRET], headers=valid(), body=PAYLOAD, now=now)
        assert caught.value.reason == "timestamp_out_of_tolerance"


def test_a_timestamp_an_hour_in_the_future_fails() -> None:
    assert reason_of(valid(stamp=T + 3600)) == "timestamp_out_of_tolerance"


def test_overridden_tolerance() -> None:
    # stripe-python test_raise_on_timestamp_outside_tolerance: 15 s old with tolerance 10.
    assert reason_of(valid(stamp=T - 15), tolerance=10) == "timestamp_out_of_tolerance"
    assert reason_of(valid(stamp=T + 15), tolerance=10) == "timestamp_out_of_tolerance"
    webhook = verify(
        "stripe",
        secrets=[SECRET],
        headers=valid(stamp=T - 3000),
        body=PAYLOAD,
        now=T,
        tolerance=3600,
    )
    assert webhook.timestamp == T - 3000


def test_missing_header() -> None:
    assert reason_of({}) == "missing_header"
    assert reason_of({"Stripe-Signature": ""}) == "missing_header"
    assert reason_of({"X-Stripe-Signature": valid()["Stripe-Signature"]}) == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        "i'm not even a real signature header",  # stripe-python test_raise_on_malformed_header
        "bad_header",  # stripe-python test_raise_on_invalid_header
        "t=,v1=00",
        "v1=00",
        f"t={T},v1=00,garbage",
        f"t={T},,v1=00",
        f"t={T},=00",
        f"t={T},t={T},v1=00",
        "t=1_767_225_600,v1=00",  # stripe-underscore-timestamp: int() would take it
        "t=+1767225600,v1=00",
        "t= 1767225600,v1=00",
        "t=1767225600.0,v1=00",
        "t=-1,v1=00",
        "t=Infinity,v1=00",
        "t=١٧٦٧٢٢٥٦٠٠,v1=00",  # Arabic-Indic digits: str.isdigit() but not ASCII
        "t=" + "9" * 5000 + ",v1=00",
        "t=1767225600é,v1=00",
    ],
)
def test_malformed_header(value: str) -> None:
    assert reason_of({"Stripe-Signature": value}) == "malformed_header"


def test_a_timestamp_is_hashed_exactly_as_received() -> None:
    # Leading zeros: int() would normalise them; the signature covers the header bytes.
    stamp = f"0{T}"
    headers = header(f"t={stamp}", f"v1={sign(SECRET, stamp=stamp)}")
    assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T).timestamp == T
    headers = header(f"t={stamp}", f"v1={sign(SECRET)}")
    assert reason_of(headers) == "no_matching_signature"


def test_non_ascii_signature_fails_cleanly() -> None:
    assert reason_of(header(f"t={T}", "v1=é" * 32)) == "no_matching_signature"


def test_uppercase_hex_is_not_stripes_format() -> None:
    assert reason_of(header(f"t={T}", f"v1={sign(SECRET).upper()}")) == "no_matching_signature"


def test_header_name_in_any_case() -> None:
    for name in ("stripe-signature", "STRIPE-SIGNATURE", "sTrIpE-SiGnAtUrE"):
        headers = {name: valid()["Stripe-Signature"]}
        assert verify("stripe", secrets=[SECRET], headers=headers, body=PAYLOAD, now=T)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "sk_live_51H0abcdef",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_abc\n",
        " whsec_abc",
    ],
)
def test_bad_secret(secret: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify("stripe", secrets=[secret], headers=valid(), body=PAYLOAD, now=T)
    assert caught.value.reason == "bad_secret"
    if len(secret) > 8:
        assert secret.strip() not in str(caught.value)


def test_secret_object() -> None:
    assert verify("stripe", secrets=[Secret(SECRET)], headers=valid(), body=PAYLOAD, now=T)


def test_no_handshake() -> None:
    from interlink.webhooks import build_scheme

    scheme = build_scheme("stripe", [SECRET])
    assert scheme.handshake(scheme.verify(valid(), PAYLOAD, now=T)) is None
