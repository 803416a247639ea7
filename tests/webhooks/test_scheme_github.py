"""The ``github`` scheme: ``X-Hub-Signature-256: sha256=<hex>`` over the raw body, no timestamp."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from interlink.core.errors import ConfigError
from interlink.webhooks import SignatureError, build_scheme, verify

# GitHub's published vector: https://docs.github.com/en/webhooks/using-webhooks/
# validating-webhook-deliveries ("Testing the webhook payload validation").
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"  # the GUID in GitHub's webhook-events docs
NEW_SECRET = "a new secret after rotation"
NOW = 1_767_225_600


def sign(secret: str, body: bytes = BODY, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


def reason_of(headers: dict[str, str], body: bytes = BODY, secrets: list[str] | None = None) -> str:
    with pytest.raises(SignatureError) as caught:
        verify("github", secrets=secrets or [SECRET], headers=headers, body=body, now=NOW)
    assert caught.value.scheme == "github"
    return caught.value.reason


def test_published_vector_verifies_with_the_delivery_id() -> None:
    headers = {"X-Hub-Signature-256": SIGNATURE, "X-GitHub-Delivery": DELIVERY}
    webhook = verify("github", secrets=[SECRET], headers=headers, body=BODY)
    assert webhook.id == DELIVERY
    assert webhook.timestamp is None
    assert webhook.scheme == "github"
    assert webhook.body == BODY


def test_the_independent_computation_matches_the_published_vector() -> None:
    assert sign(SECRET) == SIGNATURE


def test_without_a_delivery_header_the_id_is_the_body_hash() -> None:
    webhook = verify(
        "github", secrets=[SECRET], headers={"X-Hub-Signature-256": SIGNATURE}, body=BODY
    )
    assert webhook.id == "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_an_oversized_delivery_header_is_not_used_as_the_id() -> None:
    headers = {"X-Hub-Signature-256": SIGNATURE, "X-GitHub-Delivery": "d" * 513}
    assert verify("github", secrets=[SECRET], headers=headers, body=BODY).id.startswith("sha256:")


def test_no_time_check_at_all() -> None:
    headers = {"X-Hub-Signature-256": SIGNATURE}
    for now in (0, NOW, 10**12):
        assert verify("github", secrets=[SECRET], headers=headers, body=BODY, now=now)


def test_tolerance_is_refused() -> None:
    with pytest.raises(ConfigError):
        verify("github", secrets=[SECRET], headers={}, body=BODY, tolerance=300)


def test_tampered_body_fails() -> None:
    # the docs' own negative example: "Hello, World?"
    assert (
        reason_of({"X-Hub-Signature-256": SIGNATURE}, b"Hello, World?") == "no_matching_signature"
    )


def test_reserialised_json_body_fails() -> None:
    # pitfall 1 (octokit/webhooks.js#71): JSON.stringify(JSON.parse(x)) changes \u001B.
    body = b'{"action":"opened","comment":"\\u001B[31m"}'
    headers = {"X-Hub-Signature-256": sign(SECRET, body)}
    assert verify("github", secrets=[SECRET], headers=headers, body=body)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialised != body
    assert reason_of(headers, reserialised) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    assert (
        reason_of({"X-Hub-Signature-256": SIGNATURE}, secrets=["wrong"]) == "no_matching_signature"
    )


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_secret_passes(secrets: list[str]) -> None:
    for signer in (SECRET, NEW_SECRET):
        headers = {"X-Hub-Signature-256": sign(signer)}
        assert verify("github", secrets=secrets, headers=headers, body=BODY)


def test_sha1_header_alone_is_never_enough() -> None:
    # github-sha1-only: the legacy X-Hub-Signature (SHA-1) header is ignored.
    headers = {"X-Hub-Signature": sign(SECRET, algorithm="sha1")}
    assert reason_of(headers) == "missing_header"


def test_sha1_value_in_the_sha256_header_fails() -> None:
    headers = {"X-Hub-Signature-256": sign(SECRET, algorithm="sha1")}
    assert reason_of(headers) == "malformed_header"


def test_a_good_sha1_beside_a_bad_sha256_fails() -> None:
    headers = {
        "X-Hub-Signature": sign(SECRET, algorithm="sha1"),
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
    }
    assert reason_of(headers) == "no_matching_signature"


def test_missing_header() -> None:
    assert reason_of({}) == "missing_header"
    assert reason_of({"X-Hub-Signature-256": ""}) == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # no label
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=",
        "sha256=757107ea0eb2509f",  # github-truncated-sig: different length, no exception
        "sha256=" + "z" * 64,
        "sha256=" + "é" * 64,
        "sha256=" + "0" * 10_000,
    ],
)
def test_malformed_header(value: str) -> None:
    assert reason_of({"X-Hub-Signature-256": value}) == "malformed_header"


def test_uppercase_hex_has_the_right_shape_but_is_not_githubs_format() -> None:
    value = "sha256=" + SIGNATURE.removeprefix("sha256=").upper()
    assert reason_of({"X-Hub-Signature-256": value}) == "no_matching_signature"


def test_header_names_in_any_case() -> None:
    headers = {"x-hub-signature-256": SIGNATURE, "X-GITHUB-DELIVERY": DELIVERY}
    assert verify("github", secrets=[SECRET], headers=headers, body=BODY).id == DELIVERY
    headers = {"X-HUB-SIGNATURE-256": SIGNATURE}
    assert verify("github", secrets=[SECRET], headers=headers, body=BODY)


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("github", secrets=[""], headers={"X-Hub-Signature-256": SIGNATURE}, body=BODY)
    assert caught.value.reason == "bad_secret"


def test_a_unicode_secret_is_used_as_utf8() -> None:
    secret = "sécret ✓"
    body = b'{"zen":"Keep it logically awesome."}'
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert verify("github", secrets=[secret], headers={"X-Hub-Signature-256": expected}, body=body)


def test_no_handshake() -> None:
    scheme = build_scheme("github", [SECRET])
    assert scheme.handshake(scheme.verify({"X-Hub-Signature-256": SIGNATURE}, BODY)) is None
