"""Signing webhooks for the receiver tests, written out independently of the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac

KEY = b"interlink-test-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_KEY = b"another-key-for-rotation-tests-xyz"
OTHER_SECRET = "whsec_" + base64.b64encode(OTHER_KEY).decode()


def standard_headers(
    webhook_id: str, timestamp: int, body: bytes, key: bytes = KEY
) -> dict[str, str]:
    """Standard Webhooks v1 headers for ``body``: HMAC-SHA256 of ``id.ts.body``, base64."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
        "content-type": "application/json",
    }
