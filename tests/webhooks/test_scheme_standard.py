"""The ``standard`` (Standard Webhooks) and ``svix`` schemes: v1 HMAC-SHA256 and v1a ed25519.

Vector sources:

- v1: ``whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw``, ``msg_p5jXN8AQM9LWM0D4loKWxJek``,
  ``1614265330``, ``{"test": 2432232314}`` -> ``v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=``:
  standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py and
  libraries/javascript/src/webhook.test.ts (``test_sign_function`` / "sign function works"),
  svix/svix-webhooks python/tests/test_webhooks.py, and svix-server
  server/svix-server/src/worker.rs ``test_msg_headers``/signing tests. The wrong-signature
  values (``...LJ1OA=``, ``Ceo5qE...``, ``dawfeoifkpqwoekfpqoekf``) come from the same files.
- v1a: the only published vector, svix/svix-webhooks server/svix-server/src/worker.rs
  ``test_asymmetric_key_signing``: the 64-byte key pair ``6Xb/dCcH...Fs6Kvg==`` (seed then
  public key) signs the same message as ``v1a,hnO3f9T8...m7TBAg==``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlink.core.secrets import Secret
from interlink.webhooks import SignatureError, build_scheme, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = "1614265330"
NOW = int(TS)
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="  # test_invalid_signature_raises_error
OTHER = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="  # test_multi_sig_payload_is_valid

KEYPAIR = base64.b64decode(
    "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
)
PUBLIC = "whpk_" + base64.b64encode(KEYPAIR[32:]).decode()
V1A = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="

NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def v1(secret: str, msg_id: str = MSG_ID, ts: str = TS, body: bytes = BODY) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_") + "=" * (-len(secret) % 4))
    content = f"{msg_id}.{ts}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def std_headers(signature: str = SIGNATURE, msg_id: str = MSG_ID, ts: str = TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature}


def svix_headers(signature: str = SIGNATURE, msg_id: str = MSG_ID, ts: str = TS) -> dict[str, str]:
    return {"svix-id": msg_id, "svix-timestamp": ts, "svix-signature": signature}


def reason_of(
    headers: dict[str, str], body: bytes = BODY, scheme: str = "standard", **kwargs: object
) -> str:
    kwargs.setdefault("secrets", [SECRET])
    kwargs.setdefault("now", NOW)
    with pytest.raises(SignatureError) as caught:
        verify(scheme, headers=headers, body=body, **kwargs)  # type: ignore[arg-type]
    assert caught.value.scheme == scheme
    return caught.value.reason


# --- the published v1 vector ---------------------------------------------------------------------


def test_the_independent_computation_matches_the_published_vector() -> None:
    assert v1(SECRET) == SIGNATURE


@pytest.mark.parametrize("scheme", ["standard", "svix"])
def test_published_v1_vector_verifies(scheme: str) -> None:
    headers = std_headers() if scheme == "standard" else svix_headers()
    webhook = verify(scheme, secrets=[SECRET], headers=headers, body=BODY, now=NOW)
    assert webhook.id == MSG_ID
    assert webhook.timestamp == NOW
    assert webhook.scheme == scheme
    assert webhook.body == BODY


def test_svix_accepts_the_whitelabel_webhook_headers() -> None:
    # svix sends webhook-* instead of svix-* when whitelabel_headers is set
    # (test_valid_unbranded_signature_is_valid_and_returns_json).
    assert verify("svix", secrets=[SECRET], headers=std_headers(), body=BODY, now=NOW).id == MSG_ID


def test_standard_does_not_read_svix_headers() -> None:
    assert reason_of(svix_headers()) == "missing_header"


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        SECRET.removeprefix("whsec_"),  # sw-no-prefix-secret (with_and_without_prefix tests)
        Secret(SECRET),
    ],
)
def test_secret_forms(secret: str) -> None:
    assert verify("standard", secrets=[secret], headers=std_headers(), body=BODY, now=NOW)


def test_unpadded_secret() -> None:
    # sw-unpadded-secret: a 16-byte key whose base64 has "==" padding, given without it.
    padded = "whsec_" + base64.b64encode(bytes(range(16))).decode()
    assert padded.endswith("==")
    signature = v1(padded)
    unpadded = padded.rstrip("=")
    for secret in (padded, unpadded, unpadded.removeprefix("whsec_")):
        headers = std_headers(signature)
        assert verify("standard", secrets=[secret], headers=headers, body=BODY, now=NOW)


def test_invalid_signature_fails() -> None:
    assert reason_of(std_headers(WRONG)) == "no_matching_signature"
    assert reason_of(std_headers("v1,dawfeoifkpqwoekfpqoekf")) == "no_matching_signature"


def test_partial_signature_fails() -> None:
    # webhook.test.ts "partial signature throws error"
    assert reason_of(std_headers(SIGNATURE[:8])) == "no_matching_signature"
    assert reason_of(std_headers("v1,")) == "malformed_header"


def test_tampered_body_fails() -> None:
    assert reason_of(std_headers(), b'{"test": 2432232315}') == "no_matching_signature"


def test_reserialised_json_body_fails() -> None:
    # sw-reserialized-json
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reason_of(std_headers(), compact) == "no_matching_signature"


def test_tampered_id_or_timestamp_fails() -> None:
    assert reason_of(std_headers(msg_id="msg_other")) == "no_matching_signature"
    assert reason_of(std_headers(ts=str(NOW + 1))) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert reason_of(std_headers(), secrets=[NEW_SECRET]) == "no_matching_signature"


# --- rotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_configured_secret_passes(secrets: list[str]) -> None:
    for signature in (SIGNATURE, v1(NEW_SECRET)):
        assert verify(
            "standard", secrets=secrets, headers=std_headers(signature), body=BODY, now=NOW
        )


def test_multi_signature_header() -> None:
    # test_multi_sig_payload_is_valid: unknown versions and wrong v1 entries around a good one.
    header = " ".join([OTHER, OTHER.replace("v1,", "v2,"), SIGNATURE, OTHER])
    assert verify("standard", secrets=[SECRET], headers=std_headers(header), body=BODY, now=NOW)


def test_sender_rotating_signs_with_both_keys() -> None:
    header = f"{v1(NEW_SECRET)} {SIGNATURE}"
    for secrets in ([SECRET], [NEW_SECRET]):
        assert verify("standard", secrets=secrets, headers=std_headers(header), body=BODY, now=NOW)


def test_double_spaces_between_entries_are_tolerated() -> None:
    header = f"{OTHER}  {SIGNATURE} "
    assert verify("standard", secrets=[SECRET], headers=std_headers(header), body=BODY, now=NOW)


# --- v1a (ed25519) ------------------------------------------------------------------------------


def test_the_published_v1a_signature_is_what_the_keypair_produces() -> None:
    seed = Ed25519PrivateKey.from_private_bytes(KEYPAIR[:32])
    signature = seed.sign(f"{MSG_ID}.{TS}.".encode() + BODY)
    assert "v1a," + base64.b64encode(signature).decode() == V1A
    Ed25519PublicKey.from_public_bytes(KEYPAIR[32:]).verify(
        signature, f"{MSG_ID}.{TS}.".encode() + BODY
    )


@pytest.mark.parametrize("scheme", ["standard", "svix"])
def test_published_v1a_vector_verifies(scheme: str) -> None:
    headers = std_headers(V1A)
    assert verify(scheme, secrets=[PUBLIC], headers=headers, body=BODY, now=NOW).id == MSG_ID


def test_v1a_tampered_body_fails() -> None:
    assert reason_of(std_headers(V1A), BODY + b" ", secrets=[PUBLIC]) == "no_matching_signature"


def test_v1a_beside_v1_with_mixed_keys() -> None:
    # symmetric and asymmetric keys configured together, header carrying both kinds
    header = f"{SIGNATURE} {V1A}"
    for secrets in ([SECRET], [PUBLIC], [SECRET, PUBLIC], [NEW_SECRET, PUBLIC]):
        assert verify("standard", secrets=secrets, headers=std_headers(header), body=BODY, now=NOW)


def test_v1a_signature_labelled_v1_fails() -> None:
    # swa-mislabelled-as-v1: a public key never checks a v1 entry.
    mislabelled = V1A.replace("v1a,", "v1,")
    assert reason_of(std_headers(mislabelled), secrets=[PUBLIC]) == "no_matching_signature"


def test_v1_signature_labelled_v1a_fails() -> None:
    # the other way round: an HMAC key never checks a v1a entry.
    mislabelled = SIGNATURE.replace("v1,", "v1a,")
    assert reason_of(std_headers(mislabelled), secrets=[SECRET]) == "no_matching_signature"


@pytest.mark.parametrize(
    "value",
    ["v1a,", "v1a,AAAA", "v1a,not base64!!", "v1a," + base64.b64encode(b"\x00" * 64).decode()],
)
def test_v1a_garbage_fails_cleanly(value: str) -> None:
    assert reason_of(std_headers(value), secrets=[PUBLIC]) in (
        "malformed_header",
        "no_matching_signature",
    )


def test_whsk_private_key_is_refused() -> None:
    private = "whsk_" + base64.b64encode(KEYPAIR).decode()
    assert reason_of(std_headers(V1A), secrets=[private]) == "bad_secret"
    with pytest.raises(SignatureError) as caught:
        build_scheme("svix", [SECRET, private])
    assert caught.value.reason == "bad_secret"
    assert private not in str(caught.value)
    assert private[5:] not in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "whsec_c2hvcnQ=",  # 5 bytes: too short to be a key
        "whsec_not base64 at all!",
        "whpk_" + base64.b64encode(b"\x01" * 31).decode(),  # not 32 bytes
        "whpk_@@@@",
    ],
)
def test_bad_secret(secret: str) -> None:
    assert reason_of(std_headers(), secrets=[secret]) == "bad_secret"


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_default_tolerance_is_300_seconds_both_ways(offset: int, ok: bool) -> None:
    # test_old_timestamp_fails / test_new_timestamp_fails: tolerance + 1 s either way
    if ok:
        assert verify(
            "standard", secrets=[SECRET], headers=std_headers(), body=BODY, now=NOW + offset
        )
    else:
        assert reason_of(std_headers(), now=NOW + offset) == "timestamp_out_of_tolerance"


def test_overridden_tolerance() -> None:
    assert reason_of(std_headers(), now=NOW + 31, tolerance=30) == "timestamp_out_of_tolerance"
    assert reason_of(std_headers(), now=NOW - 31, tolerance=30) == "timestamp_out_of_tolerance"
    later = NOW + 86_400
    assert verify(
        "standard", secrets=[SECRET], headers=std_headers(), body=BODY, now=later, tolerance=86_400
    )


@pytest.mark.parametrize(
    "ts",
    [
        "hello",  # test_invalid_timestamp_raises_error
        "1614265330.0",  # sw-decimal-timestamp: py float() would take it
        "1614265330.5",
        "1_614_265_330",  # int() would take it
        "+1614265330",
        " 1614265330",
        "1614265330 ",
        "-1614265330",
        "١٦١٤٢٦٥٣٣٠",
        "1e9",
        "9" * 5000,
    ],
)
def test_malformed_timestamp(ts: str) -> None:
    assert reason_of(std_headers(ts=ts)) == "malformed_header"


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    headers = std_headers()
    del headers[missing]
    assert reason_of(headers) == "missing_header"
    headers[missing] = ""
    assert reason_of(headers) == "missing_header"


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_svix_missing_header(missing: str) -> None:
    headers = svix_headers()
    del headers[missing]
    assert reason_of(headers, scheme="svix") == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        "v1" + SIGNATURE[3:],  # sw-malformed-sig-no-comma: standardwebhooks 1.1.0 raised ValueError
        "v1",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        f"{SIGNATURE} v1",
        "v2,abc v3,def",  # no v1 or v1a entry at all
        ",abc",
    ],
)
def test_malformed_signature_header(value: str) -> None:
    assert reason_of(std_headers(value)) == "malformed_header"


def test_an_id_with_a_dot_is_malformed() -> None:
    # the spec: id and timestamp must not contain "." (it would shift the signed content)
    headers = std_headers(v1(SECRET, msg_id="msg.1"), msg_id="msg.1")
    assert reason_of(headers) == "malformed_header"


def test_header_names_in_any_case() -> None:
    headers = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": TS, "webhook-Signature": SIGNATURE}
    assert verify("standard", secrets=[SECRET], headers=headers, body=BODY, now=NOW).id == MSG_ID
    headers = {"Svix-Id": MSG_ID, "SVIX-TIMESTAMP": TS, "svix-Signature": SIGNATURE}
    assert verify("svix", secrets=[SECRET], headers=headers, body=BODY, now=NOW).id == MSG_ID


def test_non_ascii_id_is_signed_as_utf8() -> None:
    msg_id = "msg_é"
    headers = std_headers(v1(SECRET, msg_id=msg_id), msg_id=msg_id)
    assert verify("standard", secrets=[SECRET], headers=headers, body=BODY, now=NOW).id == msg_id


def test_a_lone_surrogate_in_the_id_is_a_signature_error() -> None:
    """A caller's ``str`` header (not one decoded from HTTP bytes) can hold a lone surrogate.

    ``check`` must answer ``SignatureError``, never ``UnicodeEncodeError`` (it did
    with ``encode("utf-8", "surrogateescape")``).
    """
    headers = std_headers(msg_id="\ud800")
    assert reason_of(headers) in ("malformed_header", "no_matching_signature")


def test_no_handshake() -> None:
    scheme = build_scheme("standard", [SECRET])
    assert scheme.handshake(scheme.verify(std_headers(), BODY, now=NOW)) is None
