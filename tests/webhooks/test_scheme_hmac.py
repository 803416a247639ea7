"""The generic ``hmac`` scheme: options, their validation, and providers expressed with it.

Vectors: GitHub's published one (docs.github.com, "Validating webhook
deliveries") and Slack's (docs.slack.dev, "Verifying requests from Slack")
re-expressed as ``hmac`` options; everything else is computed independently
here with ``hmac``/``hashlib``/``base64``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from typing import Any

import pytest

from interlink.core.errors import ConfigError
from interlink.webhooks import SignatureError, build_scheme, verify

SECRET = "hmac-secret"
NEW_SECRET = "hmac-secret-new"
BODY = b'{"event":"thing.created","id":"e_1"}'
T = 1_767_225_600
URL = "https://example.com/hooks/in?source=x"

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def mac(key: bytes | str, content: bytes, algorithm: str = "sha256") -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, content, algorithm).digest()


def run(headers: dict[str, str], body: bytes = BODY, **kwargs: Any) -> Any:
    kwargs.setdefault("secrets", [SECRET])
    kwargs.setdefault("now", T)
    return verify("hmac", headers=headers, body=body, **kwargs)


def reason_of(headers: dict[str, str], body: bytes = BODY, **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        run(headers, body, **kwargs)
    assert caught.value.scheme == "hmac"
    return caught.value.reason


# --- the default: hex HMAC-SHA256 of the body ------------------------------------------------


def test_default_is_hex_sha256_of_the_body() -> None:
    headers = {"X-Signature": mac(SECRET, BODY).hex()}
    webhook = run(headers, header="x-signature")
    assert webhook.scheme == "hmac"
    assert webhook.timestamp is None
    assert webhook.id == "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_default_has_no_time_window() -> None:
    scheme = build_scheme("hmac", [SECRET], header="x-signature")
    assert scheme.window is None
    headers = {"x-signature": mac(SECRET, BODY).hex()}
    assert scheme.verify(headers, BODY, now=0)
    assert scheme.verify(headers, BODY, now=10**12)


def test_tolerance_without_a_timestamp_header_is_refused() -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        build_scheme("hmac", [SECRET], tolerance=60, header="x-signature")


def test_hex_is_accepted_in_either_case() -> None:
    assert run({"x-signature": mac(SECRET, BODY).hex().upper()}, header="x-signature")


def test_tampered_body_and_wrong_secret_fail() -> None:
    headers = {"x-signature": mac(SECRET, BODY).hex()}
    assert reason_of(headers, BODY + b" ", header="x-signature") == "no_matching_signature"
    assert reason_of(headers, secrets=["other"], header="x-signature") == "no_matching_signature"


@pytest.mark.parametrize("secrets", [[SECRET, NEW_SECRET], [NEW_SECRET, SECRET]])
def test_rotation_either_secret_passes(secrets: list[str]) -> None:
    for signer in (SECRET, NEW_SECRET):
        headers = {"x-signature": mac(signer, BODY).hex()}
        assert run(headers, secrets=secrets, header="x-signature")


def test_missing_and_malformed_signature() -> None:
    assert reason_of({}, header="x-signature") == "missing_header"
    assert reason_of({"x-signature": ""}, header="x-signature") == "missing_header"
    for value in ("zz", "abc", "é" * 64, "0" * 63, " "):
        assert reason_of({"x-signature": value}, header="x-signature") == "malformed_header"
    assert reason_of({"x-signature": "0" * 64}, header="x-signature") == "no_matching_signature"


# --- providers expressed with options ---------------------------------------------------------


def test_github_published_vector_as_options() -> None:
    webhook = run(
        {"X-Hub-Signature-256": GITHUB_SIGNATURE, "X-GitHub-Delivery": "d-1"},
        GITHUB_BODY,
        secrets=[GITHUB_SECRET],
        header="X-Hub-Signature-256",
        prefix="sha256=",
        id_header="X-GitHub-Delivery",
    )
    assert webhook.id == "d-1"


def test_the_prefix_is_required_when_configured() -> None:
    bare = GITHUB_SIGNATURE.removeprefix("sha256=")
    reason = reason_of(
        {"X-Hub-Signature-256": bare},
        GITHUB_BODY,
        secrets=[GITHUB_SECRET],
        header="X-Hub-Signature-256",
        prefix="sha256=",
    )
    assert reason == "malformed_header"


def test_slack_published_vector_as_options() -> None:
    options: dict[str, Any] = {
        "header": "X-Slack-Signature",
        "prefix": "v0=",
        "template": "v0:{timestamp}:{body}",
        "timestamp_header": "X-Slack-Request-Timestamp",
    }
    headers = {"X-Slack-Signature": SLACK_SIGNATURE, "X-Slack-Request-Timestamp": SLACK_TS}
    webhook = run(headers, SLACK_BODY, secrets=[SLACK_SECRET], now=int(SLACK_TS), **options)
    assert webhook.timestamp == int(SLACK_TS)
    content = b"v0:" + SLACK_TS.encode() + b":" + SLACK_BODY
    assert webhook.id == "sha256:" + hashlib.sha256(content).hexdigest()
    # the default window is 300 s, both ways
    for offset, ok in ((300, True), (-300, True), (301, False), (-301, False)):
        now = int(SLACK_TS) + offset
        if ok:
            assert run(headers, SLACK_BODY, secrets=[SLACK_SECRET], now=now, **options)
        else:
            reason = reason_of(headers, SLACK_BODY, secrets=[SLACK_SECRET], now=now, **options)
            assert reason == "timestamp_out_of_tolerance"
    # an overridden window
    now = int(SLACK_TS) + 3000
    reason = reason_of(headers, SLACK_BODY, secrets=[SLACK_SECRET], now=now, **options)
    assert reason == "timestamp_out_of_tolerance"
    assert run(headers, SLACK_BODY, secrets=[SLACK_SECRET], now=now, tolerance=3600, **options)
    assert build_scheme("hmac", [SLACK_SECRET], tolerance=math.inf, **options).window == math.inf


def test_timestamped_template_failures() -> None:
    options: dict[str, Any] = {
        "header": "x-sig",
        "template": "{timestamp}.{body}",
        "timestamp_header": "x-ts",
    }
    sig = mac(SECRET, f"{T}.".encode() + BODY).hex()
    assert run({"x-sig": sig, "x-ts": str(T)}, **options).timestamp == T
    assert reason_of({"x-sig": sig}, **options) == "missing_header"
    assert reason_of({"x-sig": sig, "x-ts": ""}, **options) == "missing_header"
    for stamp in ("1_767_225_600", "1767225600.0", "+1767225600", "-5", "x", "1" * 40):
        assert reason_of({"x-sig": sig, "x-ts": stamp}, **options) == "malformed_header"
    assert reason_of({"x-sig": sig, "x-ts": str(T + 1)}, now=T + 1, **options) == (
        "no_matching_signature"
    )


def test_shopify_style_base64() -> None:
    value = base64.b64encode(mac(SECRET, BODY)).decode()
    options: dict[str, Any] = {"header": "X-Shopify-Hmac-Sha256", "encoding": "base64"}
    assert run({"x-shopify-hmac-sha256": value}, **options)
    assert run({"x-shopify-hmac-sha256": value.rstrip("=")}, **options)  # unpadded
    assert reason_of({"x-shopify-hmac-sha256": mac(SECRET, BODY).hex()}, **options) == (
        "malformed_header"
    )
    assert reason_of({"x-shopify-hmac-sha256": "@@@@"}, **options) == "malformed_header"


def test_square_style_url_and_body_in_base64() -> None:
    options: dict[str, Any] = {
        "header": "x-square-hmacsha256-signature",
        "template": "{url}{body}",
        "encoding": "base64",
    }
    value = base64.b64encode(mac(SECRET, URL.encode() + BODY)).decode()
    headers = {"x-square-hmacsha256-signature": value}
    assert run(headers, url=URL, **options)
    assert (
        reason_of(headers, url=URL.replace("https", "http"), **options) == "no_matching_signature"
    )
    with pytest.raises(ConfigError, match="url="):
        run(headers, **options)


def test_standard_webhooks_style_with_id_separator_and_base64_key() -> None:
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    # The Standard Webhooks / svix test vector (standard-webhooks libraries/python/tests/
    # test_webhooks.py test_sign_function).
    options: dict[str, Any] = {
        "header": "webhook-signature",
        "encoding": "base64",
        "prefix": "v1,",
        "separator": " ",
        "template": "{id}.{timestamp}.{body}",
        "id_header": "webhook-id",
        "timestamp_header": "webhook-timestamp",
        "secret_encoding": "base64",
    }
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v2,xxxx v1,AAAA v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    expected = base64.b64encode(
        mac(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body)
    ).decode()
    assert expected == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    webhook = run(
        headers, body, secrets=["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330, **options
    )
    assert webhook.id == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert webhook.timestamp == 1614265330
    # the signed id cannot be swapped
    swapped = {**headers, "webhook-id": "msg_other"}
    reason = reason_of(
        swapped, body, secrets=["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330, **options
    )
    assert reason == "no_matching_signature"
    missing_id = {k: v for k, v in headers.items() if k != "webhook-id"}
    reason = reason_of(
        missing_id, body, secrets=["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330, **options
    )
    assert reason == "missing_header"
    # no entry with the prefix at all
    only_v2 = {**headers, "webhook-signature": "v2,abc v3,def"}
    reason = reason_of(
        only_v2, body, secrets=["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330, **options
    )
    assert reason == "malformed_header"


def test_stripe_style_multiple_prefixed_entries() -> None:
    options: dict[str, Any] = {"header": "x-sig", "prefix": "v1=", "separator": ","}
    good = mac(SECRET, BODY).hex()
    assert run({"x-sig": f"t=1,v1={'0' * 64},v0={good}, v1={good}"}, **options)
    assert reason_of({"x-sig": f"t=1,v0={good}"}, **options) == "malformed_header"
    assert reason_of({"x-sig": f"v1={'0' * 64},v0={good}"}, **options) == "no_matching_signature"


def test_sha1_and_sha512() -> None:
    for algorithm in ("sha1", "sha512"):
        value = mac(SECRET, BODY, algorithm).hex()
        assert run({"x-sig": value}, header="x-sig", algorithm=algorithm)
        assert reason_of(
            {"x-sig": mac(SECRET, BODY).hex()}, header="x-sig", algorithm=algorithm
        ) == ("malformed_header")


def test_id_header_without_signing_it() -> None:
    headers = {"x-sig": mac(SECRET, BODY).hex(), "x-delivery": "dlv_1"}
    assert run(headers, header="x-sig", id_header="x-delivery").id == "dlv_1"
    assert run({"x-sig": headers["x-sig"]}, header="x-sig", id_header="x-delivery").id.startswith(
        "sha256:"
    )
    long_id = {**headers, "x-delivery": "d" * 600}
    assert run(long_id, header="x-sig", id_header="x-delivery").id.startswith("sha256:")


def test_literal_braces_in_the_template() -> None:
    content = b"{" + str(T).encode() + b"}" + BODY
    headers = {"x-sig": mac(SECRET, content).hex(), "x-ts": str(T)}
    assert run(headers, header="x-sig", template="{{{timestamp}}}{body}", timestamp_header="x-ts")


def test_non_ascii_template_literal_is_utf8() -> None:
    content = "é:".encode() + BODY
    assert run({"x-sig": mac(SECRET, content).hex()}, header="x-sig", template="é:{body}")


def test_a_lone_surrogate_in_a_signed_header_is_malformed() -> None:
    options: dict[str, Any] = {"header": "x-sig", "template": "{id}.{body}", "id_header": "x-id"}
    reason = reason_of({"x-sig": "0" * 64, "x-id": "\ud800"}, **options)
    assert reason == "malformed_header"


def test_header_names_in_any_case() -> None:
    content = f"{T}.".encode() + BODY
    headers = {"X-SIG": mac(SECRET, content).hex(), "x-Ts": str(T)}
    options: dict[str, Any] = {
        "header": "X-Sig",
        "template": "{timestamp}.{body}",
        "timestamp_header": "X-TS",
    }
    assert run(headers, **options).timestamp == T


# --- secrets ------------------------------------------------------------------------------------


def test_secret_encodings() -> None:
    key = bytes(range(32))
    headers = {"x-sig": mac(key, BODY).hex()}
    assert run(headers, secrets=[key.hex()], header="x-sig", secret_encoding="hex")
    assert run(
        headers, secrets=[base64.b64encode(key).decode()], header="x-sig", secret_encoding="base64"
    )


@pytest.mark.parametrize(
    ("secret", "encoding"),
    [
        ("", "utf8"),
        ("", "hex"),
        ("xyz", "hex"),
        ("abc", "hex"),
        ("not base64!", "base64"),
        ("", "base64"),
    ],
)
def test_bad_secret(secret: str, encoding: str) -> None:
    with pytest.raises(SignatureError) as caught:
        build_scheme("hmac", [secret], header="x-sig", secret_encoding=encoding)
    assert caught.value.reason == "bad_secret"
    assert "secret_encoding" in str(caught.value)


# --- option validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({}, "header"),
        ({"header": ""}, "header"),
        ({"header": 5}, "header"),
        ({"header": "x", "algorithm": "md5"}, "algorithm"),
        ({"header": "x", "algorithm": "SHA256"}, "algorithm"),
        ({"header": "x", "encoding": "base32"}, "encoding"),
        ({"header": "x", "secret_encoding": "latin1"}, "secret_encoding"),
        ({"header": "x", "prefix": 3}, "prefix"),
        ({"header": "x", "separator": ""}, "separator"),
        ({"header": "x", "template": ""}, "template"),
        ({"header": "x", "template": "{nonce}.{body}"}, "unknown placeholder {nonce}"),
        ({"header": "x", "template": "{}{body}"}, "unknown placeholder"),
        ({"header": "x", "template": "{body"}, "template"),
        ({"header": "x", "template": "body}"}, "template"),
        ({"header": "x", "template": "{body:>5}"}, "template"),
        ({"header": "x", "template": "{body!r}"}, "template"),
        ({"header": "x", "template": "{timestamp}"}, "template must sign {body}"),
        ({"header": "x", "template": "{timestamp}.{body}"}, "timestamp_header"),
        ({"header": "x", "timestamp_header": "x-ts"}, "timestamp_header"),
        ({"header": "x", "template": "{id}.{body}"}, "id_header"),
        ({"header": "x", "id_header": ""}, "id_header"),
        ({"header": "x", "nonsense": 1}, "unknown option"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_scheme("hmac", [SECRET], **options)
    assert named in str(caught.value)
