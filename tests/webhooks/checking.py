"""``check`` and ``reason`` for one scheme with a test module's defaults (secret, body, time)."""

from __future__ import annotations

from typing import Any

import pytest

from interlink.webhooks import SignatureError, VerifiedWebhook, verify


class Checker:
    """``verify(scheme, ...)`` with defaults, and the ``reason`` of a failure.

    ``check(headers, body=..., *, secrets=..., now=..., **options)`` verifies;
    ``reason(headers, body=..., **same)`` expects a ``SignatureError`` of this
    scheme and returns its reason.
    """

    def __init__(self, scheme: str, *, secret: str, body: bytes, now: float) -> None:
        self.scheme = scheme
        self.secret = secret
        self.body = body
        self.now = now

    def check(
        self,
        headers: dict[str, str],
        body: bytes | None = None,
        *,
        secrets: list[str] | None = None,
        now: float | None = None,
        **kw: Any,
    ) -> VerifiedWebhook:
        return verify(
            self.scheme,
            secrets=secrets or [self.secret],
            headers=headers,
            body=self.body if body is None else body,
            now=self.now if now is None else now,
            **kw,
        )

    def reason(self, headers: dict[str, str], body: bytes | None = None, **kw: Any) -> str:
        with pytest.raises(SignatureError) as caught:
            self.check(headers, body, **kw)
        assert caught.value.scheme == self.scheme
        return caught.value.reason
