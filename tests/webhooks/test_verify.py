"""``verify()``'s own contract: arguments, header forms, secrets, and what errors say."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest

from interlink.core.errors import ConfigError
from interlink.core.secrets import Secret
from interlink.webhooks import SCHEMES, SignatureError, build_scheme, verify

# GitHub's documented vector (https://docs.github.com/en/webhooks/using-webhooks/
# validating-webhook-deliveries, "Testing the webhook payload validation").
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
HEADERS = {"X-Hub-Signature-256": SIGNATURE, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab"}

STRIPE_SECRET = "whsec_test_secret"
NOW = 1_700_000_000


def stripe_headers(body: bytes, stamp: int = NOW) -> dict[str, str]:
    signed = f"{stamp}.".encode() + body
    digest = hmac.new(STRIPE_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}


def test_a_valid_webhook_verifies() -> None:
    webhook = verify("github", secrets=[SECRET], headers=HEADERS, body=BODY)
    assert webhook.id == "72d3162e-cc78-11e3-81ab"
    assert webhook.scheme == "github"
    assert webhook.body == BODY
    assert webhook.timestamp is None


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        verify("nope", secrets=[SECRET], headers=HEADERS, body=BODY)
    message = str(caught.value)
    assert "'nope'" in message
    for name in ("github", "standard", "stripe", "hmac"):
        assert name in message
    assert all(name in message for name in SCHEMES)


@pytest.mark.parametrize("secrets", [SECRET, SECRET.encode(), Secret(SECRET), {SECRET}, None, 3])
def test_secrets_must_be_a_list(secrets: object) -> None:
    with pytest.raises(ConfigError, match="list"):
        verify("github", secrets=secrets, headers=HEADERS, body=BODY)  # type: ignore[arg-type]


@pytest.mark.parametrize("secrets", [[], ()])
def test_secrets_must_not_be_empty(secrets: list[str]) -> None:
    with pytest.raises(ConfigError, match="at least one secret"):
        verify("github", secrets=secrets, headers=HEADERS, body=BODY)


def test_a_secret_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="str, bytes or Secret"):
        verify("github", secrets=[42], headers=HEADERS, body=BODY)  # type: ignore[list-item]


@pytest.mark.parametrize("tolerance", [0, 0.0, -1, -300.0, math.nan])
def test_tolerance_must_be_positive(tolerance: float) -> None:
    body = b"{}"
    with pytest.raises(ConfigError, match="tolerance"):
        verify(
            "stripe",
            secrets=[STRIPE_SECRET],
            headers=stripe_headers(body),
            body=body,
            now=NOW,
            tolerance=tolerance,
        )


@pytest.mark.parametrize("tolerance", [True, "300", [300]])
def test_tolerance_must_be_a_number(tolerance: object) -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        build_scheme("stripe", [STRIPE_SECRET], tolerance=tolerance)  # type: ignore[arg-type]


def test_infinite_tolerance_turns_the_time_check_off_knowingly() -> None:
    body = b"{}"
    webhook = verify(
        "stripe",
        secrets=[STRIPE_SECRET],
        headers=stripe_headers(body, stamp=1),
        body=body,
        now=NOW,
        tolerance=math.inf,
    )
    assert webhook.timestamp == 1


@pytest.mark.parametrize("scheme", ["github", "shopify"])
def test_tolerance_on_a_scheme_without_timestamps_is_refused(scheme: str) -> None:
    with pytest.raises(ConfigError, match="no timestamp"):
        verify(scheme, secrets=[SECRET], headers=HEADERS, body=BODY, tolerance=300)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        verify("github", secrets=[SECRET], headers=HEADERS, body=BODY, header="x")


@pytest.mark.parametrize("body", ["Hello, World!", 1, None, {"a": 1}])
def test_body_must_be_bytes(body: object) -> None:
    with pytest.raises(TypeError, match="raw request bytes"):
        verify("github", secrets=[SECRET], headers=HEADERS, body=body)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [bytearray(BODY), memoryview(BODY)])
def test_bytearray_and_memoryview_bodies_are_accepted(body: bytes) -> None:
    webhook = verify("github", secrets=[SECRET], headers=HEADERS, body=body)
    assert webhook.body == BODY
    assert type(webhook.body) is bytes


def test_headers_as_a_list_of_pairs() -> None:
    pairs = [("x-hub-signature-256", SIGNATURE), ("X-GitHub-Delivery", "d1")]
    assert verify("github", secrets=[SECRET], headers=pairs, body=BODY).id == "d1"


def test_headers_as_bytes_pairs() -> None:
    pairs = [(b"X-Hub-Signature-256", SIGNATURE.encode()), (b"x-github-delivery", b"d2")]
    webhook = verify("github", secrets=[SECRET], headers=pairs, body=BODY)  # type: ignore[arg-type]
    assert webhook.id == "d2"


def test_headers_in_any_case() -> None:
    mixed = {"x-HUB-signature-256": SIGNATURE, "X-Github-DELIVERY": "d3"}
    assert verify("github", secrets=[SECRET], headers=mixed, body=BODY).id == "d3"


def test_the_first_of_repeated_headers_wins() -> None:
    pairs = [("X-Hub-Signature-256", SIGNATURE), ("x-hub-signature-256", "sha256=" + "0" * 64)]
    assert verify("github", secrets=[SECRET], headers=pairs, body=BODY).scheme == "github"


def test_header_values_must_be_text() -> None:
    with pytest.raises(TypeError, match="headers"):
        verify("github", secrets=[SECRET], headers={"x-hub-signature-256": 5}, body=BODY)  # type: ignore[arg-type]


def test_a_secret_object_among_the_secrets_works() -> None:
    webhook = verify(
        "github", secrets=["an old secret", Secret(SECRET)], headers=HEADERS, body=BODY
    )
    assert webhook.scheme == "github"


def test_a_secret_object_with_options_works() -> None:
    webhook = verify(
        "hmac",
        secrets=[Secret(SECRET)],
        headers=HEADERS,
        body=BODY,
        header="X-Hub-Signature-256",
        prefix="sha256=",
    )
    assert webhook.timestamp is None


def test_secrets_given_as_bytes_work() -> None:
    assert verify("github", secrets=[SECRET.encode()], headers=HEADERS, body=BODY).body == BODY


def test_a_secret_given_as_bytes_must_be_utf8() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("github", secrets=[b"\xff\xfe"], headers=HEADERS, body=BODY)
    assert caught.value.reason == "bad_secret"


def test_the_same_arguments_reuse_the_built_scheme() -> None:
    for _ in range(3):
        assert verify("github", secrets=[SECRET], headers=HEADERS, body=BODY).body == BODY
    with pytest.raises(SignatureError):
        verify("github", secrets=["other"], headers=HEADERS, body=BODY)


def test_a_failure_names_scheme_and_reason() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("github", secrets=[SECRET], headers=HEADERS, body=b"Hello, World?")
    assert caught.value.reason == "no_matching_signature"
    assert caught.value.scheme == "github"
    assert str(caught.value).startswith("github: ")


@pytest.mark.parametrize(
    ("scheme", "secret", "headers"),
    [
        ("github", SECRET, HEADERS),
        ("github", SECRET, {"X-Hub-Signature-256": "sha256=zz"}),
        ("stripe", STRIPE_SECRET, stripe_headers(b"{}")),
        ("stripe", "sk_live_not_a_webhook_secret", stripe_headers(b"{}")),
        ("standard", "whsec_c2hvcnQ=", {}),
        ("standard", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", {}),
        ("slack", "8f742231b10e8888abcd99yyyzzz85a5", {"X-Slack-Signature": "v0=00"}),
    ],
)
def test_the_error_message_never_contains_the_secret(
    scheme: str, secret: str, headers: dict[str, str]
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(scheme, secrets=[secret], headers=headers, body=b"tampered", now=NOW + 10**6)
    text = str(caught.value) + repr(caught.value) + repr(caught.value.args)
    assert secret not in text
    assert secret.removeprefix("whsec_").removeprefix("whsk_") not in text


def test_the_error_message_never_contains_the_computed_signature() -> None:
    body = b"tampered"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError) as caught:
        verify("github", secrets=[SECRET], headers=HEADERS, body=body)
    assert expected not in str(caught.value)


def test_scheme_repr_hides_the_secrets() -> None:
    scheme = build_scheme("github", [SECRET, "second"])
    assert SECRET not in repr(scheme)
    assert "secrets=2" in repr(scheme)


def test_now_defaults_to_the_wall_clock() -> None:
    body = b"{}"
    with pytest.raises(SignatureError) as caught:
        verify("stripe", secrets=[STRIPE_SECRET], headers=stripe_headers(body, stamp=1), body=body)
    assert caught.value.reason == "timestamp_out_of_tolerance"


def test_a_cached_scheme_does_not_bypass_argument_checks() -> None:
    """Regression: a cache key ``(scheme, tolerance, *secrets)`` has ``True == 1``.

    After a call with ``tolerance=1``, a call with ``tolerance=True`` found the
    cached scheme and skipped the ``ConfigError`` a fresh build raises.
    """
    body = b"{}"
    headers = stripe_headers(body)
    verify("stripe", secrets=[STRIPE_SECRET], headers=headers, body=body, now=NOW, tolerance=1)
    with pytest.raises(ConfigError, match="tolerance"):
        verify(
            "stripe",
            secrets=[STRIPE_SECRET],
            headers=headers,
            body=body,
            now=NOW,
            tolerance=True,
        )


def test_a_nan_now_does_not_switch_the_time_check_off() -> None:
    """Regression: ``now=nan`` made ``abs(now - t) > window`` False, so any timestamp passed.

    A NaN clock then accepts any timestamp silently; it should be refused
    (``ConfigError``). An infinite ``now`` already fails the window check.
    """
    body = b"{}"
    with pytest.raises((ConfigError, SignatureError)) as caught:
        verify(
            "stripe",
            secrets=[STRIPE_SECRET],
            headers=stripe_headers(body, 1),
            body=body,
            now=math.nan,
        )
    assert isinstance(caught.value, ConfigError)


def test_an_unhashable_secret_is_a_config_error_not_a_type_error() -> None:
    with pytest.raises(ConfigError, match="a secret must be a str, bytes or Secret"):
        verify(
            "github",
            secrets=[bytearray(b"not hashable")],  # type: ignore[list-item]
            headers={"x-hub-signature-256": "sha256=" + "0" * 64},
            body=b"{}",
        )


def test_the_scheme_cache_stays_bounded() -> None:
    from interlink.webhooks import _verify as module

    headers = {"x-hub-signature-256": "sha256=" + "0" * 64}
    for n in range(module._CACHE_SIZE + 10):
        with pytest.raises(SignatureError):
            verify("github", secrets=[f"secret-{n}"], headers=headers, body=b"{}")
    assert len(module._cache) <= module._CACHE_SIZE
