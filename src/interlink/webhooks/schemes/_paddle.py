"""Paddle Billing (``paddle``): HMAC-SHA256 over ``"{ts}:{raw body}"``, hex.

Header: ``Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>...]``; the pairs are
parsed by name, so their order does not matter. Paddle sends one ``h1`` per
live secret of the notification destination while a secret is rotated, and
any one of them matching any configured secret passes. The key is the whole
``pdl_ntfset_...`` secret as UTF-8 (not decoded). Tolerance: 5 s either way,
the ``maximum_variance`` of Paddle's own SDKs; a receiver with a slower path
(a queue in front of ``verify``) should raise it knowingly. The id is the
body's ``notification_id`` (stable across Paddle's retries of one
notification), else its ``event_id``, else ``sha256:<hex>`` of the body.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import ClassVar

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    check_time,
    content_id,
    fail,
    hmac_digest,
    json_field,
    matches,
    parse_unix,
    register_scheme,
    require,
)

__all__ = ["PaddleWebhooks"]


_HEADER = "paddle-signature"


@register_scheme
class PaddleWebhooks(Scheme):
    """``paddle``: Paddle Billing notifications (``Paddle-Signature: ts=...;h1=...``)."""

    name: ClassVar[str] = "paddle"
    tolerance: ClassVar[float | None] = 5.0

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = require(headers, _HEADER, self.name)
        stamp: str | None = None
        candidates: list[bytes] = []
        for part in header.split(";"):
            key, eq, value = part.partition("=")
            if not eq:
                if not part.strip():
                    continue
                raise fail(
                    self.name, "malformed_header", "a Paddle-Signature part is not key=value"
                )
            if key == "h1":
                candidates.append(value.encode("ascii", "replace"))
            elif key == "ts":
                if stamp is not None:
                    raise fail(self.name, "malformed_header", "Paddle-Signature has two ts parts")
                stamp = value
        if stamp is None:
            raise fail(self.name, "malformed_header", "Paddle-Signature has no ts part")
        if not candidates:
            raise fail(self.name, "malformed_header", "Paddle-Signature has no h1 signature")
        timestamp = parse_unix(stamp, self.name, "Paddle-Signature ts")
        window = self.window
        if window is not None:
            check_time(timestamp, now, window, self.name)
        content = stamp.encode("ascii") + b":" + body
        found = False
        for key in self.keys:
            if matches(binascii.hexlify(hmac_digest(key, content, "sha256")), candidates):
                found = True
        if not found:
            raise fail(self.name, "no_matching_signature", "no h1 signature matches any secret")
        webhook_id = (
            json_field(body, "notification_id") or json_field(body, "event_id") or content_id(body)
        )
        return VerifiedWebhook(webhook_id, timestamp, self.name, body)
