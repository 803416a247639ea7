"""Twilio (``twilio``): base64 HMAC-SHA1 over the full public URL and the form parameters.

Header: ``X-Twilio-Signature``. Signed content, as twilio-python's
``RequestValidator`` computes it:

- a form-encoded body (``application/x-www-form-urlencoded``, or no
  ``Content-Type`` at all): the URL followed by ``name + value`` of every
  parameter, sorted by name and, for a repeated name, by value (blank values
  count); the URL's own query string stays in the URL;
- a JSON (or any other) body: Twilio adds ``bodySHA256=<hex sha256 of the
  body>`` to the URL and signs the URL alone. The hash is checked too, so the
  body cannot be swapped; a non-form body without it fails;
- an empty body (a GET callback): the URL alone.

The URL is the one Twilio called, so a receiver behind a proxy or TLS
terminator passes its public URL (``url=``): ``http`` for ``https`` fails.
Like twilio-python, the URL is tried both as given and in its other port form:
without its port when it has one, else with the scheme's default port
(``:443`` for https, ``:80`` otherwise), since Twilio is not consistent about
it. The key is the account's auth token as UTF-8; configure the primary and
the secondary token while promoting one (either passes). Twilio signs no
timestamp (tolerance ``None``). The id is the ``I-Twilio-Idempotency-Token``
header (the same on Twilio's retries), else ``sha256:<hex>`` of the URL and
the sorted parameters (or the URL and the body).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, parse_qsl, urlsplit

from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    content_id,
    fail,
    hmac_digest,
    register_scheme,
    require,
)

__all__ = ["TwilioWebhooks"]


_HEADER = "x-twilio-signature"
_ID = "i-twilio-idempotency-token"
_FORM = "application/x-www-form-urlencoded"
_BODY_HASH = "bodySHA256"
_URL_CACHE: Final = 64
_b64 = binascii.b2a_base64


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def port_variant(url: str) -> str | None:
    """twilio-python's other form of ``url``: without its port if it has one, else with the default one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, netloc = parts.scheme, parts.netloc
    start = len(scheme) + 3
    if (
        not netloc
        or url[len(scheme) : start] != "://"
        or url[start : start + len(netloc)] != netloc
    ):
        return None
    if port is not None:
        other = netloc.rpartition(":")[0]
    else:
        other = netloc + (":443" if scheme.lower() == "https" else ":80")
    return url[:start] + other + url[start + len(netloc) :]


def _body_hash(url: str) -> bytes | None:
    """The ``bodySHA256`` the URL carries (lower-case hex), else ``None``."""
    if _BODY_HASH not in url:
        return None
    try:
        values = parse_qs(urlsplit(url).query, keep_blank_values=True).get(_BODY_HASH)
    except ValueError:
        return None
    return values[0].lower().encode("ascii", "replace") if values else None


@register_scheme
class TwilioWebhooks(Scheme):
    """``twilio``: Twilio webhooks and status callbacks (``X-Twilio-Signature``)."""

    name: ClassVar[str] = "twilio"
    tolerance: ClassVar[float | None] = None
    needs_url: ClassVar[bool] = True

    def configure(self, **options: Any) -> None:
        self._urls: dict[str, tuple[bytes, bytes | None, bytes | None]] = {}

    def _url(self, url: str) -> tuple[bytes, bytes | None, bytes | None]:
        """The URL's bytes, its other port form's bytes and its ``bodySHA256``, cached."""
        found = self._urls.get(url)
        if found is None:
            variant = port_variant(url)
            found = (_encode(url), None if variant is None else _encode(variant), _body_hash(url))
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()  # a receiver has one or two URLs; clear() is thread-safe
            self._urls[url] = found
        return found

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        signature = require(headers, _HEADER, self.name).encode("ascii", "replace")
        url_bytes, variant, body_hash = self._url(url or "")
        if body_hash is not None:
            actual = hashlib.sha256(body).hexdigest().encode("ascii")
            if not hmac.compare_digest(actual, body_hash):
                raise fail(self.name, "no_matching_signature", "the body does not match bodySHA256")
            params = b""
            identity = url_bytes + body
        elif not body:
            params = b""
            identity = url_bytes
        else:
            kind = headers.get("content-type", _FORM).partition(";")[0].strip().lower()
            if kind != _FORM:
                raise fail(
                    self.name,
                    "no_matching_signature",
                    "a body that is not form-encoded is signed only through bodySHA256 in the URL",
                )
            pairs = parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="replace",
            )
            params = _encode("".join(name + value for name, value in sorted(pairs)))
            identity = url_bytes + params
        found = False
        for key in self.keys:
            for signed_url in (url_bytes, variant):
                if signed_url is not None:
                    expected = _b64(hmac_digest(key, signed_url + params, "sha1"), newline=False)
                    if hmac.compare_digest(expected, signature):
                        found = True
        if not found:
            raise fail(
                self.name,
                "no_matching_signature",
                "the signature matches no auth token for this URL",
            )
        return VerifiedWebhook(headers.get(_ID) or content_id(identity), None, self.name, body)
