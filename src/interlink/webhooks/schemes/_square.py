"""Square (``square``): base64 HMAC-SHA256 over the notification URL followed by the raw body.

Header: ``x-square-hmacsha256-signature`` (the legacy HMAC-SHA1
``x-square-signature`` is not accepted: it would be a downgrade). The URL is
the subscription's notification URL exactly as configured in Square, so a
receiver behind a proxy passes its public URL (``url=``), not the one it sees;
a different URL (another path, ``http`` for ``https``, a second subscription
sharing the listener) fails. The key is the subscription's signature key as
UTF-8. Square signs no timestamp (tolerance ``None``), so replays are stopped
by deduplicating on the id: the body's ``event_id`` (the same on every retry),
else ``sha256:<hex>`` of the body. Rotation: configure the old and the new
signature key; either one passes.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from typing import ClassVar

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    content_id,
    fail,
    hmac_digest,
    json_field,
    register_scheme,
    require,
)

__all__ = ["SquareWebhooks"]


_HEADER = "x-square-hmacsha256-signature"
_b64 = binascii.b2a_base64


@register_scheme
class SquareWebhooks(Scheme):
    """``square``: Square webhook subscriptions (URL + body, base64 HMAC-SHA256)."""

    name: ClassVar[str] = "square"
    tolerance: ClassVar[float | None] = None
    needs_url: ClassVar[bool] = True

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        signature = require(headers, _HEADER, self.name).strip().encode("ascii", "replace")
        content = (url or "").encode("utf-8", "surrogatepass") + body
        found = False
        for key in self.keys:
            if hmac.compare_digest(
                _b64(hmac_digest(key, content, "sha256"), newline=False), signature
            ):
                found = True
        if not found:
            raise fail(
                self.name, "no_matching_signature", "the signature matches no secret for this URL"
            )
        return VerifiedWebhook(
            json_field(body, "event_id") or content_id(body), None, self.name, body
        )
