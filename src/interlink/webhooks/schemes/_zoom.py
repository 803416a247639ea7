"""Zoom (``zoom``): HMAC-SHA256 over ``"v0:{timestamp}:{raw body}"``, hex: Slack's scheme.

The check is ``slack``'s (``SlackWebhooks``) with Zoom's header names.

Headers: ``x-zm-signature: v0=<hex>`` and ``x-zm-request-timestamp`` (unix
seconds, hashed exactly as received). The key is the app's secret token as
UTF-8; configure the old and the new token while rotating (either passes).
Tolerance: Zoom documents none; interlink applies 300 s either way by its own
choice (override with ``tolerance=``). Zoom sends no delivery id and the
timestamp header changes on a retry while the body does not, so the id is
``sha256:<hex>`` of the body (two genuinely identical events collapse into
one, which their bodies' ``event_ts`` makes unlikely).

Handshake: a verified ``endpoint.url_validation`` body is answered with
``200 application/json {"plainToken": p, "encryptedToken": hex(HMAC-SHA256(token, p))}``.
``handshake`` is not told which key verified the request, so it answers with
the **first** configured secret: list the current token first.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import ClassVar

from interlink.webhooks._scheme import (
    Handshake,
    VerifiedWebhook,
    content_id,
    register_scheme,
)
from interlink.webhooks.schemes._slack import SlackWebhooks

__all__ = ["ZoomWebhooks"]


_SIGNATURE = "x-zm-signature"
_TIMESTAMP = "x-zm-request-timestamp"
_VALIDATION = "endpoint.url_validation"
_VALIDATION_BYTES = _VALIDATION.encode()


@register_scheme
class ZoomWebhooks(SlackWebhooks):
    """``zoom``: Zoom event notifications (``x-zm-signature: v0=...``)."""

    name: ClassVar[str] = "zoom"
    tolerance: ClassVar[float | None] = 300.0
    signature_header: ClassVar[str] = _SIGNATURE
    timestamp_header: ClassVar[str] = _TIMESTAMP

    def webhook_id(self, body: bytes, content: bytes) -> str:
        """Zoom sends no id and re-stamps a retry: the hash of the body."""
        return content_id(body)

    def handshake(
        self, webhook: VerifiedWebhook, headers: Mapping[str, str] | None = None
    ) -> Handshake | None:
        """The ``endpoint.url_validation`` answer (signed with the first secret), else ``None``."""
        if _VALIDATION_BYTES not in webhook.body:
            return None
        try:
            payload = json.loads(webhook.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or payload.get("event") != _VALIDATION:
            return None
        inner = payload.get("payload")
        plain = inner.get("plainToken") if isinstance(inner, dict) else None
        if not isinstance(plain, str) or not plain:
            return None
        encrypted = hmac.new(self.keys[0], plain.encode("utf-8", "surrogatepass"), "sha256")
        answer = {"plainToken": plain, "encryptedToken": encrypted.hexdigest()}
        return Handshake(200, "application/json", json.dumps(answer).encode("utf-8"))
