"""GitHub (``github``): ``X-Hub-Signature-256: sha256=<hex>`` over the raw body.

Signed content: the raw body bytes, HMAC-SHA256 with the webhook secret as
UTF-8, lower-case hex after the ``sha256=`` label. The legacy SHA-1
``X-Hub-Signature`` header is never enough: without the SHA-256 one the
webhook fails with ``missing_header`` (pitfall 8). GitHub signs no timestamp,
so there is no tolerance (``tolerance=`` is a ``ConfigError``) and replays
are stopped only by deduplicating on the id (pitfall 11). A webhook has one
secret at GitHub; configuring several (old and new while changing it) accepts
either. The id is the ``X-GitHub-Delivery`` GUID (the same on a manual
redelivery; it is not signed, so a captured delivery replayed under a new
GUID is a new id: dedupe on the body too where that matters), else
``sha256:<hex>`` of the body (also when the header is over 512 characters).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import ClassVar, Final

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    content_id,
    fail,
    hmac_digest,
    register_scheme,
)

__all__ = ["GitHubWebhooks"]

_HEADER: Final = "x-hub-signature-256"
_PREFIX: Final = "sha256="
_MAX_ID: Final = 512
_HEX: Final = frozenset("0123456789abcdefABCDEF")


@register_scheme
class GitHubWebhooks(Scheme):
    """``github``: the ``X-Hub-Signature-256`` header (SHA-1 is never accepted)."""

    name: ClassVar[str] = "github"
    tolerance: ClassVar[float | None] = None

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = headers.get(_HEADER)
        if not header:
            raise fail(
                self.name,
                "missing_header",
                f"the {_HEADER} header is missing (the SHA-1 x-hub-signature is not accepted)",
            )
        if not header.startswith(_PREFIX):
            raise fail(self.name, "malformed_header", f"the {_HEADER} header is not 'sha256=<hex>'")
        candidate = header[7:].strip().encode("ascii", "replace")
        found = False
        for key in self.keys:
            expected = hmac_digest(key, body, "sha256").hex().encode("ascii")
            if hmac.compare_digest(expected, candidate):
                found = True
        if not found:
            if len(candidate) != 64 or not _HEX.issuperset(header[7:].strip()):
                raise fail(
                    self.name, "malformed_header", f"the {_HEADER} header is not 'sha256=<hex>'"
                )
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        delivery = headers.get("x-github-delivery")
        if not delivery or len(delivery) > _MAX_ID:
            delivery = content_id(body)
        return VerifiedWebhook(delivery, None, self.name, body)
