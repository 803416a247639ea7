"""Zoom (``zoom``): HMAC-SHA256 over ``"v0:{timestamp}:{raw body}"``, hex.

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

import binascii
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from interlink.webhooks._scheme import (
    Handshake,
    Scheme,
    VerifiedWebhook,
    check_time,
    content_id,
    fail,
    parse_unix,
    register_scheme,
    require,
)

__all__ = ["ZoomWebhooks"]

try:
    from _hashlib import hmac_digest as _hmac_digest  # hmac.digest without its Python frame
except ImportError:  # pragma: no cover - a Python built without OpenSSL
    _hmac_digest = hmac.digest  # type: ignore[assignment]

_SIGNATURE = "x-zm-signature"
_TIMESTAMP = "x-zm-request-timestamp"
_VALIDATION = "endpoint.url_validation"
_VALIDATION_BYTES = _VALIDATION.encode()


@register_scheme
class ZoomWebhooks(Scheme):
    """``zoom``: Zoom event notifications (``x-zm-signature: v0=...``)."""

    name: ClassVar[str] = "zoom"
    tolerance: ClassVar[float | None] = 300.0

    def prepare_key(self, secret: str, index: int) -> Any:
        if not secret:
            raise fail(self.name, "bad_secret", f"secret #{index} is empty")
        return secret.encode("utf-8")

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        signature = require(headers, _SIGNATURE, self.name)
        stamp = require(headers, _TIMESTAMP, self.name)
        if not signature.startswith("v0="):
            raise fail(self.name, "malformed_header", f"the {_SIGNATURE} header is not v0=<hex>")
        candidate = signature[3:].encode("ascii", "replace")
        timestamp = parse_unix(stamp, self.name, _TIMESTAMP)
        window = self.window
        if window is not None:
            check_time(timestamp, now, window, self.name)
        content = b"v0:" + stamp.encode("ascii") + b":" + body
        found = False
        for key in self.keys:
            if hmac.compare_digest(
                binascii.hexlify(_hmac_digest(key, content, "sha256")), candidate
            ):
                found = True
        if not found:
            raise fail(self.name, "no_matching_signature", "the signature matches no secret token")
        return VerifiedWebhook(content_id(body), timestamp, self.name, body)

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
