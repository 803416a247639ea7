"""The ``discord`` scheme: ed25519 over ``timestamp + body``, and the PING handshake.

Discord publishes no signed test vector, so each test signs with a private key
made here by ``cryptography`` (independent of the code under test, which only
ever sees the public key).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlink.webhooks import Handshake, SignatureError, VerifiedWebhook, build_scheme
from tests.webhooks.checking import Checker

SEED = bytes(range(32))
PRIVATE = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC_HEX = PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
OTHER_HEX = OTHER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
TS = 1_767_225_600
BODY = b'{"id":"1234567890123456789","type":2,"application_id":"42","data":{"name":"ping"}}'
PING = b'{"id":"1111","type":1,"application_id":"42"}'


def signed(
    body: bytes = BODY, ts: int | str = TS, key: Ed25519PrivateKey = PRIVATE
) -> dict[str, str]:
    signature = key.sign(str(ts).encode() + body).hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": str(ts)}


CHECKER = Checker("discord", secret=PUBLIC_HEX, body=BODY, now=TS)
check, reason = CHECKER.check, CHECKER.reason


def test_valid_interaction() -> None:
    assert check(signed()) == VerifiedWebhook("1234567890123456789", TS, "discord", BODY)


def test_id_falls_back_to_content() -> None:
    body = b"{}"
    assert check(signed(body), body).id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_upper_case_hex_and_header_case() -> None:
    headers = signed()
    upper = {
        "x-signature-ed25519": headers["X-Signature-Ed25519"].upper(),
        "X-SIGNATURE-TIMESTAMP": str(TS),
    }
    assert check(upper).timestamp == TS
    assert check(upper, secrets=[PUBLIC_HEX.upper()]).timestamp == TS


def test_tampered_and_reserialised_body_fail() -> None:
    assert reason(signed(), BODY.replace(b"ping", b"pong")) == "no_matching_signature"
    assert reason(signed(), json.dumps(json.loads(BODY)).encode()) == "no_matching_signature"


def test_timestamp_is_signed() -> None:
    headers = signed()
    headers["X-Signature-Timestamp"] = str(TS + 1)
    assert reason(headers) == "no_matching_signature"


def test_wrong_key_and_rotation() -> None:
    assert reason(signed(key=OTHER)) == "no_matching_signature"
    assert check(signed(key=OTHER), secrets=[PUBLIC_HEX, OTHER_HEX]).timestamp == TS
    assert check(signed(), secrets=[OTHER_HEX, PUBLIC_HEX]).timestamp == TS


def test_expired_and_future_with_the_default_300s() -> None:
    assert check(signed(), now=TS + 300).timestamp == TS
    assert reason(signed(), now=TS + 301) == "timestamp_out_of_tolerance"
    assert reason(signed(), now=TS - 301) == "timestamp_out_of_tolerance"


def test_tolerance_override() -> None:
    assert check(signed(), now=TS + 3600, tolerance=7200).timestamp == TS
    assert reason(signed(), now=TS + 31, tolerance=30) == "timestamp_out_of_tolerance"


def test_missing_headers() -> None:
    headers = signed()
    assert reason({"X-Signature-Timestamp": str(TS)}) == "missing_header"
    assert reason({"X-Signature-Ed25519": headers["X-Signature-Ed25519"]}) == "missing_header"


@pytest.mark.parametrize(
    ("signature", "stamp"),
    [
        ("zz" * 64, str(TS)),
        ("ab" * 63, str(TS)),
        ("ab" * 65, str(TS)),
        ("ab " * 42 + "ab", str(TS)),
        ("é" * 128, str(TS)),
        ("ab" * 64, "1.5"),
        ("ab" * 64, "+1767225600"),
        ("ab" * 64, "Infinity"),
    ],
)
def test_malformed_headers(signature: str, stamp: str) -> None:
    assert (
        reason({"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp})
        == "malformed_header"
    )


@pytest.mark.parametrize("secret", ["", "zz" * 32, "ab" * 31, "ab" * 33, "not hex"])
def test_bad_secret(secret: str) -> None:
    with pytest.raises(SignatureError) as caught:
        check(signed(), secrets=[secret])
    assert caught.value.reason == "bad_secret"


def test_ping_handshake() -> None:
    scheme = build_scheme("discord", [PUBLIC_HEX])
    verified = scheme.verify(signed(PING), PING, now=TS)
    assert verified.id == "1111"
    assert scheme.handshake(verified) == Handshake(200, "application/json", b'{"type": 1}')
    assert json.loads(scheme.handshake(verified).body) == {"type": 1}  # type: ignore[union-attr]


def test_no_handshake_for_other_interactions() -> None:
    scheme = build_scheme("discord", [PUBLIC_HEX])
    assert scheme.handshake(scheme.verify(signed(), BODY, now=TS)) is None
    for body in (b'{"type":true}', b'{"type":"1"}', b"[1]", b"not json"):
        assert scheme.handshake(scheme.verify(signed(body), body, now=TS)) is None
