"""Convoy (``convoy``): ``X-Convoy-Signature`` in Convoy's simple or advanced form.

Simple: the header is HMAC(raw body). Advanced: ``t=<unix>,v1=<sig>[,v1=<sig>...]``
over ``"{t},{raw body}"``; the parts are parsed by name (``t`` need not come
first), ``t`` must be ASCII digits (``t=Infinity`` is malformed) and Convoy
sends one ``v1`` per active secret of the endpoint, so rotation works by any
``v1`` matching any configured secret. Parts other than ``t`` and ``v1`` are
ignored. These rules and the test vectors follow frain-dev/convoy
``pkg/signature`` (``testdata/signature-vectors.json``).

Options: ``mode`` is ``simple`` or ``advanced``; by default it is detected per
request (advanced when the header has a ``t=`` or ``v1=`` part, which no hex
or base64 signature can have, simple otherwise). Configure the mode you set
in Convoy to refuse the other form. ``algorithm`` is ``sha256`` (default) or
``sha512``; ``encoding`` is ``hex`` (default) or ``base64``. A signature is
decoded and compared as raw digest bytes, as Convoy's own verifier does (so
upper-case hex passes). The key is the endpoint secret as UTF-8.

Tolerance: 300 s either way for the advanced form (Convoy's SDKs check 300 s
into the past only); the simple form signs no time, so none is checked and
``VerifiedWebhook.timestamp`` is ``None``. The id is the
``X-Convoy-Idempotency-Key`` header when Convoy sends one (the same on every
retry of an event delivery), else ``sha256:<hex>`` of the body.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from interlink.core.errors import ConfigError
from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    b64decode,
    check_time,
    content_id,
    fail,
    hexdecode,
    hmac_digest,
    parse_unix,
    register_scheme,
    require,
)

__all__ = ["ConvoyWebhooks"]


_HEADER = "x-convoy-signature"
_ID = "x-convoy-idempotency-key"
_MODES = (None, "simple", "advanced")
_ALGORITHMS = ("sha256", "sha512")
_ENCODINGS = ("hex", "base64")


@register_scheme
class ConvoyWebhooks(Scheme):
    """``convoy``: Convoy's signature header, simple or advanced."""

    name: ClassVar[str] = "convoy"
    tolerance: ClassVar[float | None] = 300.0
    option_names: ClassVar[frozenset[str]] = frozenset({"mode", "algorithm", "encoding"})

    mode: str | None
    algorithm: str
    encoding: str

    def configure(
        self,
        *,
        mode: str | None = None,
        algorithm: str = "sha256",
        encoding: str = "hex",
        **options: Any,
    ) -> None:
        for option, value, allowed in (
            ("mode", mode, _MODES),
            ("algorithm", algorithm, _ALGORITHMS),
            ("encoding", encoding, _ENCODINGS),
        ):
            if value not in allowed:
                shown = ", ".join(str(a) for a in allowed if a is not None)
                raise ConfigError(
                    f"webhook scheme 'convoy': option {option} must be one of {shown}, got {value!r}"
                )
        self.mode = mode
        self.algorithm = algorithm
        self.encoding = encoding

    def _decode(self, value: str) -> bytes | None:
        if self.encoding == "hex":
            return hexdecode(value)
        return b64decode(value) if value.isascii() else None

    def _matches(self, content: bytes, candidates: list[bytes]) -> bool:
        found = False
        algorithm = self.algorithm
        for key in self.keys:
            expected = hmac_digest(key, content, algorithm)
            for candidate in candidates:
                if hmac.compare_digest(expected, candidate):
                    found = True
        return found

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = require(headers, _HEADER, self.name).strip()
        mode = self.mode
        if mode is None:
            mode = "simple"
            for part in header.split(","):
                if part.startswith(("t=", "v1=")):
                    mode = "advanced"
                    break
        timestamp: int | None = None
        if mode == "simple":
            signature = self._decode(header)
            if signature is None:
                raise fail(self.name, "malformed_header", f"the signature is not {self.encoding}")
            candidates = [signature]
            content = body
        else:
            stamp: str | None = None
            candidates = []
            signed = False
            for part in header.split(","):
                key, eq, value = part.partition("=")
                if not eq:
                    raise fail(self.name, "malformed_header", "a signature part is not key=value")
                if key == "t":
                    if stamp is not None:
                        raise fail(self.name, "malformed_header", "the header has two t parts")
                    stamp = value
                elif key == "v1":
                    signed = True
                    decoded = self._decode(value)
                    if decoded is not None:
                        candidates.append(decoded)
            if stamp is None:
                raise fail(self.name, "malformed_header", "the advanced header has no t part")
            if not signed:
                raise fail(self.name, "malformed_header", "the advanced header has no v1 part")
            timestamp = parse_unix(stamp, self.name, "X-Convoy-Signature t")
            window = self.window
            if window is not None:
                check_time(timestamp, now, window, self.name)
            content = stamp.encode("ascii") + b"," + body
        if not self._matches(content, candidates):
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        return VerifiedWebhook(headers.get(_ID) or content_id(body), timestamp, self.name, body)
