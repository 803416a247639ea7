"""Slack (``slack``): ``X-Slack-Signature: v0=<hex>`` and ``X-Slack-Request-Timestamp``.

Signed content: ``"v0:{timestamp}:{raw body}"``, HMAC-SHA256 keyed with the
app's signing secret as UTF-8, lower-case hex after the ``v0=`` label. The
timestamp header is digits only and hashed exactly as received. Tolerance:
300 s either way, as Slack's own SDKs. Rotation: configure the old and the new
signing secret while changing it; either matching passes. The id is the
``event_id`` of an Events API JSON body (the same on Slack's retries, which
carry ``X-Slack-Retry-Num``), else ``sha256:<hex>`` of the signed content:
slash commands and interactivity payloads are form-encoded and carry no event
id, and their body is never parsed (a non-JSON body never fails here).
Handshake: a verified JSON body ``{"type": "url_verification", "challenge":
...}`` is answered 200 ``application/json`` ``{"challenge": ...}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from interlink.webhooks._scheme import (
    Handshake,
    Scheme,
    VerifiedWebhook,
    check_time,
    content_id,
    fail,
    hmac_digest,
    json_field,
    parse_unix,
    register_scheme,
    require,
)

__all__ = ["SlackWebhooks"]

_SIGNATURE: Final = "x-slack-signature"
_TIMESTAMP: Final = "x-slack-request-timestamp"
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_JSON_START: Final = frozenset((b"{", b" ", b"\t", b"\r", b"\n"))
"""The first byte of a body that may be JSON (a form-encoded body is never parsed)."""


@register_scheme
class SlackWebhooks(Scheme):
    """``slack``: Slack's ``v0`` request signature (Events API, commands, interactivity)."""

    name: ClassVar[str] = "slack"
    tolerance: ClassVar[float | None] = 300.0
    signature_header: ClassVar[str] = _SIGNATURE
    timestamp_header: ClassVar[str] = _TIMESTAMP

    def webhook_id(self, body: bytes, content: bytes) -> str:
        """The ``event_id`` of an Events API body, else the hash of the signed content."""
        event_id = json_field(body, "event_id") if body[:1] in _JSON_START else None
        return event_id or content_id(content)

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        sig_name, ts_name = self.signature_header, self.timestamp_header
        signature = require(headers, sig_name, self.name)
        stamp = require(headers, ts_name, self.name)
        timestamp = parse_unix(stamp, self.name, ts_name)
        if not signature.startswith("v0="):
            raise fail(self.name, "malformed_header", f"the {sig_name} header is not 'v0=<hex>'")
        if self.window is not None:
            check_time(timestamp, now, self.window, self.name)
        candidate = signature[3:].strip().encode("ascii", "replace")
        content = b"v0:" + stamp.encode("ascii") + b":" + body
        found = False
        for key in self.keys:
            expected = hmac_digest(key, content, "sha256").hex().encode("ascii")
            if hmac.compare_digest(expected, candidate):
                found = True
        if not found:
            if len(candidate) != 64 or not _HEX.issuperset(signature[3:].strip()):
                raise fail(
                    self.name, "malformed_header", f"the {sig_name} header is not 'v0=<hex>'"
                )
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        return VerifiedWebhook(self.webhook_id(body, content), timestamp, self.name, body)

    def handshake(
        self, webhook: VerifiedWebhook, headers: Mapping[str, str] | None = None
    ) -> Handshake | None:
        """Slack's ``url_verification``: echo the ``challenge`` back as JSON."""
        if b"url_verification" not in webhook.body:
            return None
        try:
            payload: Any = json.loads(webhook.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or payload.get("type") != "url_verification":
            return None
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            return None
        return Handshake(200, "application/json", json.dumps({"challenge": challenge}).encode())
