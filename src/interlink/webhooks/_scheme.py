"""What every signature scheme shares: the ``Scheme`` base class, its registry, and the checks.

A scheme is built once per source with its secrets, tolerance and options
(``Scheme.__init__`` prepares the keys, so a bad secret fails there), then
``check`` runs per webhook: a pure function of the headers (a dict with
lower-case names), the raw body bytes, the public URL and the time. It returns
a ``VerifiedWebhook`` or raises ``SignatureError``, never anything else.

The checks here exist so that every scheme does them the same, safe way:
timestamps are digits only and hashed exactly as received (pitfall 4 of
research/webhooks.md), the tolerance is symmetric (pitfall 5), signatures are
compared as bytes with ``hmac.compare_digest`` (pitfall 2) and a malformed
header is a ``SignatureError``, never a ``ValueError`` (pitfall 3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple

from interlink.core.errors import ConfigError, SignatureError
from interlink.core.secrets import Secret

__all__ = [
    "REASONS",
    "SCHEMES",
    "Handshake",
    "Scheme",
    "VerifiedWebhook",
    "b64decode",
    "check_time",
    "content_id",
    "fail",
    "hexdecode",
    "hmac_digest",
    "json_field",
    "lower_headers",
    "matches",
    "parse_unix",
    "quick_verify",
    "register_scheme",
    "require",
    "scheme_class",
]

try:
    from _hashlib import hmac_digest  # hmac.digest without its Python frame
except ImportError:  # pragma: no cover - a Python built without OpenSSL
    hmac_digest = hmac.digest  # type: ignore[assignment]

REASONS: Final = (
    "missing_header",
    "malformed_header",
    "timestamp_out_of_tolerance",
    "no_matching_signature",
    "bad_secret",
)
"""Every ``SignatureError.reason``."""

_MAX_TOLERANCE_SHOWN: Final = 10**9
_MAX_DIGITS: Final = 12
_time = time.time


class VerifiedWebhook(NamedTuple):
    """A webhook whose signature checked out (an immutable named tuple: cheap to build).

    ``id`` identifies the webhook for deduplication (where it comes from is
    documented per scheme: a delivery-id header, else the provider's event id,
    else ``sha256:<hex>`` of the signed content); ``timestamp`` is the signed
    unix time in seconds, ``None`` for schemes that sign none; ``body`` is the
    raw bytes as received.
    """

    id: str
    timestamp: int | None
    scheme: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Handshake:
    """An answer a provider expects instead of a stored webhook (Slack ``url_verification``...)."""

    status: int
    content_type: str
    body: bytes


def fail(scheme: str, reason: str, message: str) -> SignatureError:
    """The ``SignatureError`` to raise: ``"<scheme>: <message>"`` with its ``reason``."""
    return SignatureError(f"{scheme}: {message}", reason=reason, scheme=scheme)


def require(headers: Mapping[str, str], name: str, scheme: str) -> str:
    """The header ``name`` (lower-case), or ``SignatureError("missing_header")``."""
    value = headers.get(name)
    if value is None or value == "":
        raise fail(scheme, "missing_header", f"the {name} header is missing")
    return value


def parse_unix(value: str, scheme: str, header: str) -> int:
    """A unix timestamp in seconds: ASCII digits only (no sign, space, ``_`` or fraction)."""
    if value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)
    raise fail(scheme, "malformed_header", f"the {header} header is not a unix time in seconds")


def check_time(timestamp: float, now: float, tolerance: float, scheme: str) -> None:
    """Reject a timestamp more than ``tolerance`` seconds before or after ``now``."""
    if not abs(now - timestamp) <= tolerance:  # a NaN never passes
        direction = "old" if timestamp < now else "far in the future"
        raise fail(
            scheme,
            "timestamp_out_of_tolerance",
            f"the signed timestamp is too {direction} (tolerance {_shown(tolerance)} s)",
        )


def _shown(tolerance: float) -> str:
    return "inf" if tolerance > _MAX_TOLERANCE_SHOWN else f"{tolerance:g}"


def matches(expected: bytes, candidates: Iterable[bytes]) -> bool:
    """Whether any candidate equals ``expected``, each compared in constant time."""
    found = False
    for candidate in candidates:
        if hmac.compare_digest(expected, candidate):
            found = True
    return found


def b64decode(value: str | bytes) -> bytes | None:
    """Strict standard base64 (padding optional); ``None`` when it is not base64."""
    data = value.encode("ascii", "replace") if isinstance(value, str) else value
    data = data.strip()
    if len(data) % 4:
        data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def hexdecode(value: str | bytes) -> bytes | None:
    """Hex (either case) as bytes; ``None`` when it is not hex."""
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        return None


def content_id(content: bytes) -> str:
    """``sha256:<hex>`` of ``content``: the id of a webhook that carries none."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def json_field(body: bytes, *path: str) -> str | None:
    """The string (or integer) at ``path`` in a JSON object body, else ``None``. Never raises."""
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= 512 else None


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased (matching is case-insensitive); the first value of a repeat wins."""
    if headers.__class__ is dict:
        try:
            fast = {name.lower(): value for name, value in headers.items()}
            "".join(fast.values())  # TypeError unless every value is a str (checked in C)
        except (AttributeError, TypeError):
            pass  # a name or value that is not a str: the general path handles or names it
        else:
            if len(fast) == len(headers):
                return fast
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers: names and values must be str (or bytes)")
        lowered.setdefault(name.lower(), value)
    return lowered


def quick_verify(scheme: Scheme, headers: object, body: object) -> VerifiedWebhook | None:
    """``scheme.check`` of a webhook in the usual shape, else ``None`` (then verify with care).

    The usual shape: a ``dict`` whose names are lower-case already (ASGI gives
    them so), a ``bytes`` body, now. It saves the lower-cased copy. Anything
    that fails here, a genuine mismatch included, returns ``None``: the careful
    path runs again and raises what is due.
    """
    if headers.__class__ is not dict or body.__class__ is not bytes:
        return None
    try:
        if scheme.optional_headers and not "".join(headers).islower():
            return None  # a header it may do without could be there in another case
        return scheme.check(headers, body, None, _time())
    except Exception:
        return None


class Scheme(ABC):
    """One signature scheme, built once with its secrets; ``check`` verifies a webhook.

    Subclasses set ``name``, ``tolerance`` (the default window in seconds, or
    ``None`` when the scheme signs no timestamp), ``needs_url`` and the
    ``option_names`` they accept, turn each secret into a key in
    ``prepare_key`` (raise ``fail(..., "bad_secret", ...)`` when it cannot be
    one) and implement ``check``; ``handshake`` answers a provider's endpoint
    challenge. Register a subclass with ``register_scheme``.
    """

    name: ClassVar[str] = ""
    tolerance: ClassVar[float | None] = None
    optional_headers: ClassVar[bool] = True
    """``False`` when ``check`` reads only headers it cannot do without: then a name in
    another case fails the check (and ``verify`` retries case-insensitively) instead of
    being silently passed over."""
    needs_url: ClassVar[bool] = False
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        secrets: Sequence[str | bytes | Secret],
        *,
        tolerance: float | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            allowed = ", ".join(sorted(self.option_names)) or "none"
            raise ConfigError(
                f"webhook scheme {self.name!r}: unknown option(s) {', '.join(unknown)}"
                f" (options: {allowed})"
            )
        self.window = self._window(tolerance)
        """The tolerance in seconds this instance applies (``None``: no timestamp signed)."""
        self.configure(**options)
        if isinstance(secrets, str | bytes | Secret) or not isinstance(secrets, Sequence):
            raise ConfigError(
                f"webhook scheme {self.name!r}: secrets must be a list (so that rotation works)"
            )
        if not secrets:
            raise ConfigError(f"webhook scheme {self.name!r}: at least one secret is needed")
        self.keys: tuple[Any, ...] = tuple(
            self.prepare_key(_secret_text(s, self.name), i) for i, s in enumerate(secrets)
        )

    def _window(self, tolerance: float | None) -> float | None:
        if tolerance is None:
            return self.tolerance
        if self.tolerance is None:
            raise ConfigError(f"webhook scheme {self.name!r} signs no timestamp: drop tolerance")
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise ConfigError(f"webhook scheme {self.name!r}: tolerance must be seconds (a number)")
        if math.isnan(tolerance) or tolerance <= 0:
            raise ConfigError(
                f"webhook scheme {self.name!r}: tolerance must be > 0 seconds, got {tolerance!r}"
                " (use math.inf to turn the time check off knowingly)"
            )
        return float(tolerance)

    def configure(self, **options: Any) -> None:  # noqa: B027 - optional: most take none
        """Take the scheme's options (only names in ``option_names`` arrive); ``ConfigError`` if bad."""

    def prepare_key(self, secret: str, index: int) -> Any:
        """The key ``check`` uses for ``secret`` (default: its UTF-8 bytes; empty is ``bad_secret``)."""
        if not secret:
            raise fail(self.name, "bad_secret", f"secret #{index} is empty")
        return secret.encode("utf-8")

    @abstractmethod
    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        """Verify one webhook; ``headers`` has lower-case names. Raises ``SignatureError``."""

    def handshake(
        self, webhook: VerifiedWebhook, headers: Mapping[str, str] | None = None
    ) -> Handshake | None:
        """The answer to a verified endpoint challenge, or ``None`` for an ordinary webhook.

        ``headers`` (lower-case names) are the request's, when the caller has them.
        """
        return None

    def verify(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        *,
        url: str | None = None,
        now: float | None = None,
    ) -> VerifiedWebhook:
        """``check`` with header names matched case-insensitively and ``now`` the wall clock."""
        if now is None and url is None:
            verified = quick_verify(self, headers, body)
            if verified is not None:
                return verified
        return self.verify_with_care(headers, body, url, now)

    def verify_with_care(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        url: str | None,
        now: float | None,
    ) -> VerifiedWebhook:
        """``verify`` without its quick path: arguments checked, header names lower-cased."""
        if body.__class__ is not bytes:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise TypeError("body must be the raw request bytes, not a parsed or decoded value")
            body = bytes(body)
        if now is not None and not math.isfinite(now):
            raise ConfigError(f"now must be finite unix seconds, got {now!r}")
        if self.needs_url and not url:
            raise ConfigError(f"webhook scheme {self.name!r} signs the URL: pass url=")
        return self.check(lower_headers(headers), body, url, time.time() if now is None else now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(secrets={len(self.keys)}, tolerance={self.window})"


def _secret_text(secret: object, scheme: str) -> str:
    if isinstance(secret, Secret):
        return secret.reveal()
    if isinstance(secret, bytes):
        try:
            return secret.decode("utf-8")
        except UnicodeDecodeError:
            raise fail(scheme, "bad_secret", "a secret given as bytes is not UTF-8") from None
    if isinstance(secret, str):
        return secret
    raise ConfigError(f"webhook scheme {scheme!r}: a secret must be a str, bytes or Secret")


SCHEMES: dict[str, type[Scheme]] = {}
"""Every registered scheme class by name."""


def register_scheme(cls: type[Scheme]) -> type[Scheme]:
    """Class decorator: make ``cls`` available by ``cls.name`` (a second one by that name is an error)."""
    if not cls.name or (cls.name in SCHEMES and SCHEMES[cls.name] is not cls):
        raise ConfigError(f"a webhook scheme needs a unique name, got {cls.name!r}")
    SCHEMES[cls.name] = cls
    return cls


def scheme_class(name: str) -> type[Scheme]:
    """The scheme class called ``name``; ``ConfigError`` naming the known ones otherwise."""
    found = SCHEMES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ConfigError(f"unknown webhook scheme {name!r}; known: {', '.join(sorted(SCHEMES))}")
    return found
