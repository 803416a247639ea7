"""A generic HMAC scheme (``hmac``), configured by options, for providers without their own.

Options (``ConfigError`` naming the option when one is wrong):

- ``header`` (required): the signature header's name (any case).
- ``algorithm``: ``sha1``, ``sha256`` (default) or ``sha512``.
- ``encoding``: ``hex`` (default; either case accepted) or ``base64`` (standard
  alphabet, padding optional).
- ``prefix``: a label before the signature, such as ``"sha256="`` or ``"v0="``.
- ``separator``: when the header may carry several signatures (a sender
  rotating keys), the string between them, such as ``","`` or ``" "``; entries
  are stripped of spaces and, with a ``prefix``, those without it are skipped
  (so ``t=...`` or ``v0=...`` parts can sit beside the ``v1=`` ones).
- ``template``: what is signed (default ``"{body}"``), with the placeholders
  ``{body}`` (the raw body bytes), ``{timestamp}`` and ``{id}`` (the header
  values exactly as received) and ``{url}`` (the public URL passed to
  ``verify``); ``{{`` and ``}}`` are literal braces. ``"{timestamp}.{body}"``,
  ``"v0:{timestamp}:{body}"`` and ``"{url}{body}"`` cover most providers.
- ``id_header``: the header holding the delivery id (needed for ``{id}``).
- ``timestamp_header``: the header holding the unix time in seconds (digits
  only). Required when the template signs ``{timestamp}``, and refused when it
  does not (an unsigned timestamp proves nothing).
- ``secret_encoding``: how each secret becomes the key: ``utf8`` (default, its
  UTF-8 bytes), ``base64`` or ``hex`` (decoded; a secret that does not decode is
  ``bad_secret``).

Tolerance: the class default is 300 s, applied (in both directions) only when a
``timestamp_header`` is configured; without one nothing time-related is signed,
the instance's ``window`` is ``None`` and passing ``tolerance=`` is a
``ConfigError``, as for any scheme without timestamps. Rotation: every
signature in the header is checked against every configured secret. The id is
the ``id_header`` value when configured and present, else ``sha256:<hex>`` of
the signed content.
"""

from __future__ import annotations

import binascii
import hmac
import string
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from interlink.core.errors import ConfigError
from interlink.core.secrets import Secret
from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    b64decode,
    check_time,
    content_id,
    fail,
    hmac_digest,
    register_scheme,
)

__all__ = ["HmacWebhooks"]

_ALGORITHMS: Final = {"sha1": 20, "sha256": 32, "sha512": 64}
_ENCODINGS: Final = ("hex", "base64")
_SECRET_ENCODINGS: Final = ("utf8", "base64", "hex")
_PLACEHOLDERS: Final = ("body", "id", "timestamp", "url")
_MAX_DIGITS: Final = 12
_MAX_ID: Final = 512
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_b64 = binascii.b2a_base64


def _text_option(value: object, option: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ConfigError(f"webhook scheme 'hmac': option {option} must be a non-empty string")
    return value


def _choice(value: object, option: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(
            f"webhook scheme 'hmac': option {option} must be one of {', '.join(choices)},"
            f" got {value!r}"
        )
    return str(value)


def _parse_template(template: str) -> tuple[tuple[bytes, str | None], ...]:
    """The template as ``(literal bytes, placeholder or None)`` pairs."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ConfigError(
            f"webhook scheme 'hmac': option template is malformed ({error})"
        ) from None
    parts: list[tuple[bytes, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and field not in _PLACEHOLDERS:
            raise ConfigError(
                f"webhook scheme 'hmac': option template has an unknown placeholder {{{field}}}"
                f" (placeholders: {', '.join('{' + p + '}' for p in _PLACEHOLDERS)})"
            )
        if spec or conversion:
            raise ConfigError(
                f"webhook scheme 'hmac': option template: {{{field}}} takes no format or conversion"
            )
        parts.append((literal.encode("utf-8"), field))
    return tuple(parts)


@register_scheme
class HmacWebhooks(Scheme):
    """``hmac``: any HMAC signature header, described by options."""

    name: ClassVar[str] = "hmac"
    tolerance: ClassVar[float | None] = 300.0
    option_names: ClassVar[frozenset[str]] = frozenset(
        {
            "header",
            "algorithm",
            "encoding",
            "prefix",
            "separator",
            "template",
            "id_header",
            "timestamp_header",
            "secret_encoding",
        }
    )

    def __init__(
        self,
        secrets: Sequence[str | bytes | Secret],
        *,
        tolerance: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(secrets, tolerance=tolerance, **options)
        if self._timestamp_header is None:
            if tolerance is not None:
                raise ConfigError(
                    "webhook scheme 'hmac' signs no timestamp without timestamp_header:"
                    " drop tolerance"
                )
            self.window = None

    def configure(self, **options: Any) -> None:
        if "header" not in options:
            raise ConfigError(
                "webhook scheme 'hmac': option header (the signature header) is required"
            )
        self._header = _text_option(options["header"], "header").lower()
        self._algorithm = _choice(
            options.get("algorithm", "sha256"), "algorithm", tuple(_ALGORITHMS)
        )
        self._digest_size = _ALGORITHMS[self._algorithm]
        self._hex = _choice(options.get("encoding", "hex"), "encoding", _ENCODINGS) == "hex"
        self._prefix = _text_option(options.get("prefix", ""), "prefix", empty=True)
        separator = options.get("separator")
        self._separator = None if separator is None else _text_option(separator, "separator")
        self._secret_encoding = _choice(
            options.get("secret_encoding", "utf8"), "secret_encoding", _SECRET_ENCODINGS
        )
        id_header = options.get("id_header")
        self._id_header = (
            None if id_header is None else _text_option(id_header, "id_header").lower()
        )
        stamp_header = options.get("timestamp_header")
        self._timestamp_header = (
            None if stamp_header is None else _text_option(stamp_header, "timestamp_header").lower()
        )
        template = _text_option(options.get("template", "{body}"), "template")
        self._parts = _parse_template(template)
        fields = {field for _, field in self._parts if field is not None}
        if "body" not in fields:
            raise ConfigError("webhook scheme 'hmac': option template must sign {body}")
        if "timestamp" in fields and self._timestamp_header is None:
            raise ConfigError(
                "webhook scheme 'hmac': option template signs {timestamp}: set timestamp_header"
            )
        if "timestamp" not in fields and self._timestamp_header is not None:
            raise ConfigError(
                "webhook scheme 'hmac': option timestamp_header is set but template does not sign"
                " {timestamp} (an unsigned timestamp proves nothing)"
            )
        if "id" in fields and self._id_header is None:
            raise ConfigError("webhook scheme 'hmac': option template signs {id}: set id_header")
        self._signs_id = "id" in fields
        self._signs_url = "url" in fields
        self._body_only = self._parts == ((b"", "body"),)

    def prepare_key(self, secret: str, index: int) -> Any:
        key: bytes | None
        if self._secret_encoding == "utf8":
            key = secret.encode("utf-8")
        elif self._secret_encoding == "base64":
            key = b64decode(secret)
        else:
            try:
                key = bytes.fromhex(secret)
            except ValueError:
                key = None
        if not key:
            raise fail(
                self.name,
                "bad_secret",
                f"secret #{index} is empty or not {self._secret_encoding} (option secret_encoding)",
            )
        return key

    def _candidates(self, header: str) -> list[bytes]:
        entries = header.split(self._separator) if self._separator else (header,)
        prefix = self._prefix
        found: list[bytes] = []
        for entry in entries:
            entry = entry.strip()
            if prefix:
                if not entry.startswith(prefix):
                    if self._separator:
                        continue
                    raise fail(
                        self.name, "malformed_header", f"the {self._header} header lacks its prefix"
                    )
                entry = entry[len(prefix) :].strip()
            if not entry:
                continue
            if self._hex:
                found.append(entry.lower().encode("ascii", "replace"))
            else:
                found.append(entry.rstrip("=").encode("ascii", "replace"))
        if not found:
            raise fail(self.name, "malformed_header", f"no signature in the {self._header} header")
        return found

    def _plausible(self, candidate: bytes) -> bool:
        """Whether ``candidate`` has the shape of a signature (to tell malformed from mismatch)."""
        if self._hex:
            return len(candidate) == 2 * self._digest_size and _HEX.issuperset(
                candidate.decode("ascii")
            )
        raw = b64decode(candidate)
        return raw is not None and len(raw) == self._digest_size

    def _text_bytes(self, value: str, what: str | None) -> bytes:
        """``value`` as the UTF-8 bytes it arrived as (``malformed_header`` for a lone surrogate)."""
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise fail(self.name, "malformed_header", f"the {what} value is not text") from None

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        header = headers.get(self._header)
        if not header:
            raise fail(self.name, "missing_header", f"the {self._header} header is missing")
        timestamp: int | None = None
        stamp = ""
        if self._timestamp_header is not None:
            stamp = headers.get(self._timestamp_header) or ""
            if not stamp:
                raise fail(
                    self.name, "missing_header", f"the {self._timestamp_header} header is missing"
                )
            if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_DIGITS):
                raise fail(
                    self.name,
                    "malformed_header",
                    f"the {self._timestamp_header} header is not a unix time in seconds",
                )
            timestamp = int(stamp)
            window = self.window
            if window is not None and not abs(now - timestamp) <= window:  # NaN fails too
                check_time(timestamp, now, window, self.name)
        msg_id = headers.get(self._id_header) if self._id_header is not None else None
        if self._signs_id and not msg_id:
            raise fail(self.name, "missing_header", f"the {self._id_header} header is missing")
        if self._signs_url and not url:
            raise ConfigError("webhook scheme 'hmac': the template signs {url}: pass url=")
        candidates = self._candidates(header)
        if self._body_only:
            content = body
        else:
            values = {
                "body": body,
                "timestamp": stamp.encode("ascii"),
                "id": self._text_bytes(msg_id or "", self._id_header),
                "url": self._text_bytes(url or "", "url"),
            }
            content = b"".join(
                literal if field is None else literal + values[field]
                for literal, field in self._parts
            )
        algorithm = self._algorithm
        found = False
        for key in self.keys:
            digest = hmac_digest(key, content, algorithm)
            expected = (
                digest.hex().encode("ascii")
                if self._hex
                else _b64(digest, newline=False).rstrip(b"=")
            )
            for candidate in candidates:
                if hmac.compare_digest(expected, candidate):
                    found = True
        if not found:
            if not any(self._plausible(candidate) for candidate in candidates):
                raise fail(
                    self.name,
                    "malformed_header",
                    f"the {self._header} header holds no {'hex' if self._hex else 'base64'}"
                    f" {self._algorithm} signature",
                )
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        if not msg_id or len(msg_id) > _MAX_ID:
            msg_id = content_id(content)
        return VerifiedWebhook(msg_id, timestamp, self.name, body)
