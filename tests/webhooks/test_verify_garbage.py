"""Property: whatever arrives, every registered scheme answers with ``SignatureError`` or a webhook.

For every scheme in the registry (iterated when the tests are collected, so a
scheme added later is covered or flagged), arbitrary header dicts (the scheme's
own header names with garbage, non-ASCII, empty and huge values, plus noise)
and arbitrary bodies never raise anything but ``SignatureError``. A scheme
this file has no example secret for is skipped by name, never silently passed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.webhooks import (
    REASONS,
    SCHEMES,
    SignatureError,
    VerifiedWebhook,
    build_scheme,
    verify,
)

URL = "https://example.com/hook"
NOW = 1_700_000_000

# Example configurations per scheme: (secrets, options). Secrets have the shape
# the scheme expects, so that construction succeeds and ``check`` is reached.
_ED25519_PUBLIC_HEX = (
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"  # RFC 8032 test 1
)
EXAMPLES: dict[str, list[tuple[list[str], dict[str, Any]]]] = {
    "standard": [
        (["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], {}),
        (["whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="], {}),
    ],
    "svix": [
        (
            [
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            ],
            {},
        )
    ],
    "stripe": [(["whsec_test_secret"], {})],
    "github": [(["It's a Secret to Everybody"], {})],
    "shopify": [(["shpss_0123456789abcdef0123456789abcdef"], {})],
    "slack": [(["8f742231b10e8888abcd99yyyzzz85a5"], {})],
    "hmac": [
        (["secret"], {"header": "x-signature"}),
        (
            ["c2VjcmV0LXNlY3JldC1zZWNyZXQ="],
            {
                "header": "X-Signature",
                "algorithm": "sha512",
                "encoding": "base64",
                "prefix": "v1=",
                "separator": ",",
                "template": "{id}.{timestamp}.{url}.{body}",
                "id_header": "X-Id",
                "timestamp_header": "X-Timestamp",
                "secret_encoding": "base64",
            },
        ),
        (
            ["0123456789abcdef"],
            {
                "header": "x-sig",
                "algorithm": "sha1",
                "prefix": "sha1=",
                "template": "v0:{timestamp}:{body}",
                "timestamp_header": "x-ts",
                "secret_encoding": "hex",
            },
        ),
    ],
    "twilio": [(["12345678901234567890123456789012"], {})],
    "paddle": [(["pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI"], {})],
    "square": [(["asdf1234qwer5678zxcv"], {})],
    "discord": [([_ED25519_PUBLIC_HEX], {})],
    "twitch": [(["this-is-a-twitch-secret-0123456789"], {})],
    "zoom": [(["zoom_secret_token_0123456789"], {})],
    "convoy": [(["convoy-secret"], {})],
}

# Header names worth aiming at: every scheme's own, so garbage reaches the parsers.
KNOWN_HEADERS = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "stripe-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-delivery",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-signature",
    "x-id",
    "x-timestamp",
    "x-sig",
    "x-ts",
    "x-twilio-signature",
    "paddle-signature",
    "x-square-hmacsha256-signature",
    "x-signature-ed25519",
    "x-signature-timestamp",
    "twitch-eventsub-message-id",
    "twitch-eventsub-message-timestamp",
    "twitch-eventsub-message-signature",
    "x-zm-signature",
    "x-zm-request-timestamp",
    "x-convoy-signature",
    "content-type",
]

FRAGMENTS = [
    "",
    " ",
    ",",
    "=",
    ";",
    ".",
    ":",
    "t=",
    "ts=",
    "h1=",
    "v0=",
    "v1=",
    "v1,",
    "v1a,",
    "sha256=",
    "sha1=",
    str(NOW),
    str(NOW - 301),
    "1_700_000_000",
    "1700000000.5",
    "-1",
    "+1700000000",
    "Infinity",
    "NaN",
    "²",
    "٣",
    "9" * 5000,
    "2023-11-14T22:13:20.123456789Z",
    "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    "00" * 32,
    "0" * 63,
    "é",
    "\x00",
    "\u2028",
    "🙂",
]

structured = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=5).map("".join)
values = st.one_of(
    st.text(max_size=30),
    structured,
    st.sampled_from(FRAGMENTS),
    st.just("x" * 200_000),
    st.binary(max_size=30).map(lambda raw: raw.decode("latin-1")),
)
names = st.sampled_from(KNOWN_HEADERS) | st.text(min_size=1, max_size=6)
header_dicts = st.dictionaries(names, values, max_size=6)
bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"{}",
            b"[]",
            b"null",
            b'{\n  "id": "evt_1",\n  "object": "event"\n}',
            b'{\n  "id": "',
            b'{"type": "url_verification", "challenge": "abc"}',
            b'{"type": "url_verification", "challenge": 5}',
            b'{"event_id": "Ev1"}',
            b'{"event_id": ' + b"[" * 100_000 + b"}",
            b"token=x&team_id=T1&command=%2Fx",
            b"\xff\xfe\x00",
        ]
    ),
)


def _scheme_cases() -> list[tuple[str, int]]:
    cases: list[tuple[str, int]] = []
    for name in sorted(SCHEMES):
        count = len(EXAMPLES.get(name, [None]))  # an unknown scheme: one case, skipped by name
        cases.extend((name, index) for index in range(count))
    return cases


def _example(name: str, index: int) -> tuple[list[str], dict[str, Any]]:
    if name not in EXAMPLES:
        pytest.skip(f"no example secret for webhook scheme {name!r}: add one to EXAMPLES")
    return EXAMPLES[name][index]


def _configured() -> list[tuple[str, list[str], dict[str, Any]]]:
    """Every registered scheme's example configurations (read from the registry now)."""
    return [
        (name, secrets, options)
        for name in sorted(SCHEMES)
        for secrets, options in EXAMPLES.get(name, [])
    ]


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_registered_scheme_has_a_valid_example(name: str) -> None:
    """The property tests below cover only schemes with an example: a missing one is skipped by name."""
    if name not in EXAMPLES:
        pytest.skip(f"no example secret for webhook scheme {name!r}: add one to EXAMPLES")
    for secrets, options in EXAMPLES[name]:
        assert build_scheme(name, secrets, **options).name == name


# One generated example is checked against every scheme at once (200 examples for
# each scheme, in about the time one scheme's own run would take).
@settings(max_examples=200, deadline=None)
@given(headers=header_dicts, body=bodies, offset=st.integers(-(10**6), 10**6))
def test_garbage_never_raises_anything_but_signature_error(
    headers: dict[str, str], body: bytes, offset: int
) -> None:
    crashed: list[str] = []
    for name, secrets, options in _configured():
        try:
            webhook = verify(
                name,
                secrets=secrets,
                headers=headers,
                body=body,
                url=URL,
                now=NOW + offset,
                **options,
            )
        except SignatureError as error:
            if error.reason not in REASONS or error.reason == "bad_secret":
                crashed.append(f"{name}: reason {error.reason!r}")
            elif error.scheme != name:
                crashed.append(f"{name}: SignatureError.scheme is {error.scheme!r}")
        except Exception as error:
            crashed.append(f"{name}: {type(error).__name__}: {error}")
        else:  # pragma: no cover - garbage forging a signature would be news
            crashed.append(f"{name}: garbage verified as {webhook!r}")
    assert not crashed, crashed


@settings(max_examples=50, deadline=None)
@given(body=bodies)
def test_handshake_never_raises_on_any_body(body: bytes) -> None:
    for name, secrets, options in _configured():
        scheme = build_scheme(name, secrets, **options)
        answer = scheme.handshake(VerifiedWebhook("id", None, name, body))
        assert answer is None or answer.status == 200


@pytest.mark.parametrize(("name", "index"), _scheme_cases())
def test_lone_surrogates_in_headers_never_crash(name: str, index: int) -> None:
    """A ``str`` header may hold a lone surrogate (no HTTP stack sends one, but a caller can)."""
    secrets, options = _example(name, index)
    for value in ("\ud800", "\udcff", "t=\ud800,v1=00", "v1,\ud800", NOW.__str__() + "\ud800"):
        headers = dict.fromkeys(KNOWN_HEADERS, value)
        for stamp_header in ("webhook-timestamp", "svix-timestamp", "x-slack-request-timestamp"):
            headers[stamp_header] = str(NOW)
        headers["webhook-signature"] = headers["svix-signature"] = "v1,AAAA"
        with pytest.raises(SignatureError):
            verify(name, secrets=secrets, headers=headers, body=b"{}", url=URL, now=NOW, **options)
