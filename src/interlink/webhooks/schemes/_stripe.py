"""Stripe (``stripe``): ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...][,v0=...]``.

Signed content: ``"{t}.{raw body}"``, HMAC-SHA256, lower-case hex. The key is
the whole ``whsec_...`` string as UTF-8: unlike Standard Webhooks it is *not*
base64-decoded (pitfall 7), and a secret that does not start with ``whsec_``
(an ``sk_live_`` API key pasted by mistake...) is refused as ``bad_secret``.
The header is a comma-separated list of ``key=value`` parts, parsed by key, so
their order does not matter; a part without ``=``, an empty part, a missing or
repeated ``t`` is ``malformed_header``. Only ``v1`` entries are trusted: ``v0``
(Stripe's test-mode placeholder) never verifies anything, and a header with no
``v1`` at all is ``no_matching_signature`` (pitfall 8). Unknown keys are
ignored, as Stripe's libraries do. Tolerance: 300 s either way (Stripe's
libraries check only the past; a far-future timestamp is refused here too).
Rotation: Stripe sends one ``v1`` per live secret while a rolled secret
expires; every ``v1`` is checked against every configured secret.
The id is the event ``id`` from the JSON body (the same on every retry), else
``sha256:<hex>`` of the signed content.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    check_time,
    content_id,
    fail,
    hmac_digest,
    json_field,
    register_scheme,
)

__all__ = ["StripeWebhooks"]

_HEADER: Final = "stripe-signature"
_MAX_DIGITS: Final = 12
_ID_START: Final = b'{\n  "id": "'
"""How every Stripe event body begins: the id is read without parsing the JSON."""
_ID_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def event_id(body: bytes) -> str | None:
    """The top-level ``id`` of a Stripe event body, else ``None``.

    Stripe's bodies start ``{\\n  "id": "evt_...",``: that prefix is read
    directly (an id of ASCII letters, digits and ``_`` needs no JSON decoding),
    anything else goes through ``json_field``.
    """
    if body.startswith(_ID_START):
        end = body.find(b'"', 11, 11 + 256)
        if end > 11:
            candidate = body[11:end]
            if _ID_CHARS.issuperset(candidate):
                return candidate.decode("ascii")
    return json_field(body, "id")


@register_scheme
class StripeWebhooks(Scheme):
    """``stripe``: Stripe's ``t=...,v1=...`` signature header."""

    name: ClassVar[str] = "stripe"
    tolerance: ClassVar[float | None] = 300.0

    def prepare_key(self, secret: str, index: int) -> Any:
        if not secret.startswith("whsec_") or len(secret) <= 6 or secret.strip() != secret:
            raise fail(
                self.name,
                "bad_secret",
                f"secret #{index}: a Stripe endpoint secret is the whole whsec_... string",
            )
        return secret.encode("utf-8")

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = headers.get(_HEADER)
        if not header:
            raise fail(self.name, "missing_header", f"the {_HEADER} header is missing")
        stamp: str | None = None
        v1: list[bytes] = []
        for part in header.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise fail(self.name, "malformed_header", "a signature part is not 'key=value'")
            if key == "t":
                if stamp is not None:
                    raise fail(self.name, "malformed_header", "the header has more than one t")
                stamp = value
            elif key == "v1":
                v1.append(value.strip().encode("ascii", "replace"))
        if stamp is None:
            raise fail(self.name, "malformed_header", "the header has no t (timestamp)")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_DIGITS):
            raise fail(self.name, "malformed_header", "t is not a unix time in seconds")
        timestamp = int(stamp)
        window = self.window
        if window is not None and not abs(now - timestamp) <= window:  # NaN fails too
            check_time(timestamp, now, window, self.name)
        if not v1:
            raise fail(
                self.name,
                "no_matching_signature",
                "no v1 signature in the header (v0 is never trusted)",
            )
        content = stamp.encode("ascii") + b"." + body
        found = False
        for key in self.keys:
            expected = hmac_digest(key, content, "sha256").hex().encode("ascii")
            for candidate in v1:
                if hmac.compare_digest(expected, candidate):
                    found = True
        if not found:
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        return VerifiedWebhook(event_id(body) or content_id(content), timestamp, self.name, body)
