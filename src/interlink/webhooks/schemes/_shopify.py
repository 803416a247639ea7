"""Shopify (``shopify``): ``X-Shopify-Hmac-Sha256``, base64 HMAC-SHA256 of the raw body.

Signed content: the raw body bytes, HMAC-SHA256 keyed with the app's client
secret as UTF-8, standard base64 (padded) in the header. Shopify signs no
timestamp, so there is no tolerance (``tolerance=`` is a ``ConfigError``) and
replays are stopped only by deduplicating on the id (pitfall 11). Rotation:
after an app secret is rotated Shopify may keep signing with the old one for
up to an hour, so configure both; either matching passes. The id is the
``X-Shopify-Webhook-Id`` header (the same on every retry), else
``X-Shopify-Event-Id``, else ``sha256:<hex>`` of the body.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from typing import ClassVar, Final

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    b64decode,
    content_id,
    fail,
    hmac_digest,
    register_scheme,
)

__all__ = ["ShopifyWebhooks"]

_HEADER: Final = "x-shopify-hmac-sha256"
_ID_HEADERS: Final = ("x-shopify-webhook-id", "x-shopify-event-id")
_MAX_ID: Final = 512
_b64 = binascii.b2a_base64


@register_scheme
class ShopifyWebhooks(Scheme):
    """``shopify``: the ``X-Shopify-Hmac-Sha256`` header."""

    name: ClassVar[str] = "shopify"
    tolerance: ClassVar[float | None] = None

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = headers.get(_HEADER)
        if not header:
            raise fail(self.name, "missing_header", f"the {_HEADER} header is missing")
        candidate = header.strip().encode("ascii", "replace")
        found = False
        for key in self.keys:
            if hmac.compare_digest(
                _b64(hmac_digest(key, body, "sha256"), newline=False), candidate
            ):
                found = True
        if not found:
            raw = b64decode(candidate)
            if raw is None or len(raw) != 32:
                raise fail(
                    self.name, "malformed_header", f"the {_HEADER} header is not a base64 SHA-256"
                )
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        webhook_id = headers.get(_ID_HEADERS[0]) or headers.get(_ID_HEADERS[1])
        if not webhook_id or len(webhook_id) > _MAX_ID:
            webhook_id = content_id(body)
        return VerifiedWebhook(webhook_id, None, self.name, body)
