"""The ``twilio`` scheme: base64 HMAC-SHA1 over the URL and the sorted form parameters."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

import pytest

from interlink.core.errors import ConfigError
from interlink.webhooks import SignatureError, VerifiedWebhook, verify

# Twilio's docs example request (https://www.twilio.com/docs/usage/security, "Let's walk
# through an example request"), also twilio/twilio-python tests/unit/test_request_validator.py:
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
FORM = urlencode(PARAMS).encode()
# twilio-python test_request_validator.py: the other vectors with the same token and URL.
DUPLICATE_EXPECTED = (
    "IK+Dwps556ElfBT0I3Rgjkr1wJU="  # Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234
)
WITH_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="  # the https URL with :443 added
HTTP_WITH_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4="  # the http URL with :80 added
HTTP_WITH_1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="  # the http URL with :1234
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_EXPECTED = "a9nBmqA0ju/hNViExpshrM61xv4="  # URL + "&bodySHA256=" + JSON_HASH
FORM_TYPE = "application/x-www-form-urlencoded"


def sign(token: str, content: str) -> str:
    return base64.b64encode(
        hmac.new(token.encode(), content.encode(), hashlib.sha1).digest()
    ).decode()


def check(
    signature: str | None,
    body: bytes = FORM,
    *,
    url: str = URL,
    content_type: str | None = FORM_TYPE,
    secrets: list[str] | None = None,
    extra: dict[str, str] | None = None,
) -> VerifiedWebhook:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    if content_type is not None:
        headers["Content-Type"] = content_type
    headers.update(extra or {})
    return verify("twilio", secrets=secrets or [TOKEN], headers=headers, body=body, url=url)


def reason(signature: str | None, body: bytes = FORM, **kw: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        check(signature, body, **kw)
    return caught.value.reason


def test_docs_example_request() -> None:
    webhook = check(EXPECTED)
    assert (webhook.timestamp, webhook.scheme, webhook.body) == (None, "twilio", FORM)
    signed = URL + "".join(k + v for k, v in sorted(PARAMS.items()))
    assert webhook.id == "sha256:" + hashlib.sha256(signed.encode()).hexdigest()


def test_parameter_order_in_the_body_does_not_matter() -> None:
    body = urlencode(sorted(PARAMS.items(), reverse=True)).encode()
    assert check(EXPECTED, body).body == body


def test_no_content_type_is_read_as_a_form() -> None:
    assert check(EXPECTED, content_type=None).timestamp is None
    assert (
        check(EXPECTED, content_type="application/x-www-form-urlencoded; charset=utf-8").timestamp
        is None
    )


def test_repeated_parameters_sorted_like_twilio_python() -> None:
    body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
    assert check(DUPLICATE_EXPECTED, body).timestamp is None
    assert (
        check(DUPLICATE_EXPECTED, b"Digits=1234&SidAccount=AC123&Digits=5678&Sid=CA123").timestamp
        is None
    )


def test_blank_values_are_signed() -> None:
    body = b"A=1&Empty=&B=2"
    assert check(sign(TOKEN, URL + "A1B2Empty"), body).timestamp is None
    assert reason(sign(TOKEN, URL + "A1B2"), body) == "no_matching_signature"


def test_percent_encoded_utf8_values() -> None:
    body = urlencode({"Body": "héllo wörld ✓", "From": "+1"}).encode()
    assert check(sign(TOKEN, URL + "Bodyhéllo wörld ✓From+1"), body).timestamp is None


def test_json_body_with_body_sha256() -> None:
    url = URL + "&bodySHA256=" + JSON_HASH
    webhook = check(JSON_EXPECTED, JSON_BODY, url=url, content_type="application/json")
    assert webhook.id == "sha256:" + hashlib.sha256(url.encode() + JSON_BODY).hexdigest()


def test_json_body_hash_is_checked() -> None:
    url = URL + "&bodySHA256=" + JSON_HASH
    body = JSON_BODY.replace(b"value", b"other")
    assert (
        reason(JSON_EXPECTED, body, url=url, content_type="application/json")
        == "no_matching_signature"
    )


def test_json_body_without_body_sha256_fails() -> None:
    assert (
        reason(sign(TOKEN, URL), JSON_BODY, content_type="application/json")
        == "no_matching_signature"
    )


def test_empty_body_signs_the_url_alone() -> None:
    assert check(sign(TOKEN, URL), b"", content_type=None).timestamp is None


def test_behind_a_proxy_http_url_fails() -> None:  # research pitfall 10: twilio-http-behind-proxy
    assert reason(EXPECTED, url=URL.replace("https", "http")) == "no_matching_signature"


def test_default_port_variants_pass() -> None:
    assert check(WITH_443).timestamp is None  # signed with :443, received without
    assert check(EXPECTED, url=URL.replace(".com", ".com:443")).timestamp is None  # the reverse
    http = URL.replace("https", "http")
    assert check(HTTP_WITH_80, url=http).timestamp is None
    assert (
        check(
            sign(TOKEN, http + "".join(k + v for k, v in sorted(PARAMS.items()))),
            url=http.replace(".com", ".com:80"),
        ).timestamp
        is None
    )


def test_other_ports_like_twilio_python() -> None:
    # twilio-python strips any port for the "without" form and keeps a given port for the "with" form.
    assert check(EXPECTED, url=URL.replace(".com", ".com:1234")).timestamp is None
    http_1234 = URL.replace(".com", ".com:1234").replace("https", "http")
    assert check(HTTP_WITH_1234, url=http_1234).timestamp is None


def test_idempotency_token_is_the_id() -> None:
    webhook = check(EXPECTED, extra={"I-Twilio-Idempotency-Token": "idem-abc"})
    assert webhook.id == "idem-abc"


def test_tampered_body_fails() -> None:
    assert reason(EXPECTED, FORM.replace(b"1234", b"9999")) == "no_matching_signature"
    assert reason(EXPECTED, FORM + b"&Extra=1") == "no_matching_signature"


def test_wrong_token_and_rotation() -> None:
    assert reason(EXPECTED, secrets=["54321"]) == "no_matching_signature"
    assert check(EXPECTED, secrets=["54321", TOKEN]).timestamp is None
    assert check(EXPECTED, secrets=[TOKEN, "54321"]).timestamp is None


def test_missing_and_malformed_header() -> None:
    assert reason(None) == "missing_header"
    assert reason("") == "missing_header"
    assert reason("not base64 ✓") == "no_matching_signature"


def test_header_name_in_any_case() -> None:
    for name in ("x-twilio-signature", "X-TWILIO-SIGNATURE"):
        headers = {name: EXPECTED, "content-type": FORM_TYPE}
        assert (
            verify("twilio", secrets=[TOKEN], headers=headers, body=FORM, url=URL).timestamp is None
        )


def test_url_is_required_and_no_tolerance() -> None:
    with pytest.raises(ConfigError):
        verify("twilio", secrets=[TOKEN], headers={}, body=FORM)
    with pytest.raises(ConfigError):
        verify("twilio", secrets=[TOKEN], headers={}, body=FORM, url=URL, tolerance=10)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "https://host:99999/x",
        "not a url",
        "https://",
        "https://ü.example/ä?bodySHA256",
    ],
)
def test_odd_urls_never_raise_anything_but_signature_error(url: str) -> None:
    assert reason(EXPECTED, url=url) == "no_matching_signature"


def test_bad_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        check(EXPECTED, secrets=[""])
    assert caught.value.reason == "bad_secret"
