"""Discord interactions (``discord``): ed25519 over ``timestamp + raw body``.

Headers: ``X-Signature-Ed25519`` (the 64-byte signature in hex) and
``X-Signature-Timestamp`` (unix seconds, hashed exactly as received). The key
is the application's public key from the developer portal, 32 bytes in hex; a
value that is not that is a ``bad_secret``. Several keys may be configured
(an application moved between keys): any one verifying passes. Tolerance:
Discord's libraries check no time at all; interlink applies 300 s either way
by its own choice, so that a captured interaction cannot be replayed later
(override with ``tolerance=``). The id is the interaction's ``id`` from the
body (a snowflake, the same if Discord re-sends it), else ``sha256:<hex>`` of
the body. Handshake: a verified ``PING`` (``"type": 1``) is answered with
``200 application/json {"type": 1}``, which Discord requires before it saves
an interactions endpoint URL.
"""

from __future__ import annotations

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
    hexdecode,
    json_field,
    parse_unix,
    register_scheme,
    require,
)

__all__ = ["DiscordWebhooks"]

_SIGNATURE = "x-signature-ed25519"
_TIMESTAMP = "x-signature-timestamp"
_PING = 1
_PONG = Handshake(200, "application/json", b'{"type": 1}')


@register_scheme
class DiscordWebhooks(Scheme):
    """``discord``: Discord interactions endpoint (ed25519, hex public key)."""

    name: ClassVar[str] = "discord"
    tolerance: ClassVar[float | None] = 300.0

    def prepare_key(self, secret: str, index: int) -> Any:
        raw = hexdecode(secret.strip())
        if raw is None or len(raw) != 32:
            raise fail(
                self.name,
                "bad_secret",
                f"secret #{index}: expected the application public key, 64 hex digits",
            )
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            return Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:  # pragma: no cover - cryptography accepts any 32 bytes today
            raise fail(self.name, "bad_secret", f"secret #{index} is not an ed25519 key") from None

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        signature_hex = require(headers, _SIGNATURE, self.name)
        stamp = require(headers, _TIMESTAMP, self.name)
        signature = hexdecode(signature_hex) if len(signature_hex) == 128 else None
        if signature is None:
            raise fail(
                self.name, "malformed_header", f"the {_SIGNATURE} header is not 64 bytes of hex"
            )
        timestamp = parse_unix(stamp, self.name, _TIMESTAMP)
        window = self.window
        if window is not None:
            check_time(timestamp, now, window, self.name)
        from cryptography.exceptions import InvalidSignature

        content = stamp.encode("ascii") + body
        found = False
        for key in self.keys:
            try:
                key.verify(signature, content)
            except InvalidSignature:
                continue
            found = True
        if not found:
            raise fail(self.name, "no_matching_signature", "the signature matches no public key")
        return VerifiedWebhook(
            json_field(body, "id") or content_id(body), timestamp, self.name, body
        )

    def handshake(
        self, webhook: VerifiedWebhook, headers: Mapping[str, str] | None = None
    ) -> Handshake | None:
        """``{"type": 1}`` for a verified PING interaction, else ``None``."""
        try:
            payload = json.loads(webhook.body)
        except (ValueError, RecursionError):
            return None
        if isinstance(payload, dict):
            kind = payload.get("type")
            if kind == _PING and type(kind) is int:
                return _PONG
        return None
