"""Standard Webhooks (``standard``) and Svix (``svix``): v1 HMAC-SHA256 and v1a ed25519.

Signed content: ``"{webhook-id}.{webhook-timestamp}.{raw body}"``. The
signature header is a space-separated list of ``version,base64`` entries; a
sender rotating keys signs with each, and any match passes. A ``whsec_``
secret (or a bare base64 one, as the reference libraries accept) is
base64-decoded into the HMAC key and checks only ``v1`` entries; a ``whpk_``
public key checks only ``v1a`` entries, so a label cannot make one kind of
key check the other's signature. A ``whsk_`` key is the sender's private key
and is refused. Tolerance: 300 s either way, as every reference library.
The id is the ``webhook-id`` header (stable across the sender's retries).
``svix`` reads ``svix-id``/``svix-timestamp``/``svix-signature`` and falls
back to the ``webhook-*`` names Svix sends when white-labelled.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from interlink.core.secrets import Secret
from interlink.webhooks._scheme import (
    Scheme,
    VerifiedWebhook,
    b64decode,
    check_time,
    fail,
    hmac_digest,
    register_scheme,
)

__all__ = ["StandardWebhooks", "SvixWebhooks"]

_MIN_KEY_BYTES = 16
_b64 = binascii.b2a_base64
compare = hmac.compare_digest
_new = tuple.__new__


def _ed25519_key(raw: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def ed25519_ok(key: Any, signature: bytes, content: bytes) -> bool:
    """Whether ``signature`` is ``key``'s ed25519 signature of ``content``."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, content)
    except InvalidSignature:
        return False
    return True


@register_scheme
class StandardWebhooks(Scheme):
    """``standard``: the Standard Webhooks 1.0 spec (``webhook-*`` headers)."""

    name: ClassVar[str] = "standard"
    tolerance: ClassVar[float | None] = 300.0
    optional_headers: ClassVar[bool] = False  # id, timestamp and signature: all required
    id_headers: ClassVar[tuple[str, ...]] = ("webhook-id",)
    timestamp_headers: ClassVar[tuple[str, ...]] = ("webhook-timestamp",)
    signature_headers: ClassVar[tuple[str, ...]] = ("webhook-signature",)

    def prepare_key(self, secret: str, index: int) -> Any:
        if secret.startswith("whpk_"):
            raw = b64decode(secret[5:])
            if raw is None or len(raw) != 32:
                raise fail(
                    self.name, "bad_secret", f"secret #{index}: a whpk_ key is 32 bytes of base64"
                )
            return ("v1a", _ed25519_key(raw))
        if secret.startswith("whsk_"):
            raise fail(
                self.name,
                "bad_secret",
                f"secret #{index} is a whsk_ private key: a receiver needs the whpk_ public key",
            )
        raw = b64decode(secret.removeprefix("whsec_"))
        if raw is None or len(raw) < _MIN_KEY_BYTES:
            raise fail(
                self.name,
                "bad_secret",
                f"secret #{index}: expected whsec_ followed by base64 of at least {_MIN_KEY_BYTES} bytes",
            )
        return ("v1", raw)

    def __init__(
        self,
        secrets: Sequence[str | bytes | Secret],
        *,
        tolerance: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(secrets, tolerance=tolerance, **options)
        only_hmac = all(kind == "v1" for kind, _ in self.keys)
        self._hmac_keys: tuple[bytes, ...] | None = (
            tuple(key for _, key in self.keys) if only_hmac else None
        )
        """The HMAC keys when there is no public key: the fast path of ``check``."""
        self._id_name = self.id_headers[0]
        self._timestamp_name = self.timestamp_headers[0]
        self._signature_name = self.signature_headers[0]

    def _headers(self, headers: Mapping[str, str]) -> tuple[str, str, str]:
        """The id, timestamp and signature headers, when one of the first names was missing."""
        found = []
        for names in (self.id_headers, self.timestamp_headers, self.signature_headers):
            value = next((headers[n] for n in names if headers.get(n)), None)
            if value is None:
                raise fail(self.name, "missing_header", f"the {names[0]} header is missing")
            found.append(value)
        return found[0], found[1], found[2]

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        get = headers.get
        msg_id = get(self._id_name)
        stamp = get(self._timestamp_name)
        signatures = get(self._signature_name)
        if not (msg_id and stamp and signatures):
            msg_id, stamp, signatures = self._headers(headers)
        # parse_unix's rule and check_time's window, inlined: this is the measured path.
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise fail(
                self.name, "malformed_header", "the timestamp header is not a unix time in seconds"
            )
        timestamp = int(stamp)
        if "." in msg_id:
            raise fail(self.name, "malformed_header", "the id header must not contain '.'")
        window = self.window
        if window is not None and not abs(now - timestamp) <= window:  # NaN fails too
            check_time(timestamp, now, window, self.name)
        if self._hmac_keys is not None and " " not in signatures and signatures[:3] == "v1,":
            # The usual case: one v1 signature, HMAC keys only.
            candidate = signatures[3:].encode("ascii", "replace")
            if not candidate:
                raise fail(
                    self.name, "malformed_header", "a signature entry is not 'version,base64'"
                )
            content = f"{msg_id}.{stamp}.".encode("utf-8", "surrogatepass") + body
            found = False
            for key in self._hmac_keys:
                if compare(_b64(hmac_digest(key, content, "sha256"), newline=False), candidate):
                    found = True
            if found:  # VerifiedWebhook(...) without its Python-level __new__
                return _new(VerifiedWebhook, (msg_id, timestamp, self.name, body))
            raise fail(self.name, "no_matching_signature", "no signature matches any secret")
        v1: list[bytes] = []
        v1a: list[bytes] = []
        for entry in signatures.split(" "):
            version, comma, value = entry.partition(",")
            if not comma or not value:
                if not entry:
                    continue
                raise fail(
                    self.name, "malformed_header", "a signature entry is not 'version,base64'"
                )
            if version == "v1":
                v1.append(value.encode("ascii", "replace"))
            elif version == "v1a":
                v1a.append(value.encode("ascii", "replace"))
        if not v1 and not v1a:
            raise fail(self.name, "malformed_header", "no v1 or v1a signature in the header")
        content = f"{msg_id}.{stamp}.".encode("utf-8", "surrogatepass") + body
        if _any_valid(self.keys, content, v1, v1a):
            return VerifiedWebhook(msg_id, timestamp, self.name, body)
        raise fail(self.name, "no_matching_signature", "no signature matches any secret")


def _any_valid(keys: tuple[Any, ...], content: bytes, v1: list[bytes], v1a: list[bytes]) -> bool:
    found = False
    for kind, key in keys:
        if kind == "v1":
            if v1:
                expected = _b64(hmac_digest(key, content, "sha256"), newline=False)
                for candidate in v1:
                    if hmac.compare_digest(expected, candidate):
                        found = True
        else:
            for candidate in v1a:
                signature = b64decode(candidate)
                if (
                    signature is not None
                    and len(signature) == 64
                    and ed25519_ok(key, signature, content)
                ):
                    found = True
    return found


@register_scheme
class SvixWebhooks(StandardWebhooks):
    """``svix``: Standard Webhooks with ``svix-*`` headers (``webhook-*`` accepted too)."""

    name: ClassVar[str] = "svix"
    optional_headers: ClassVar[bool] = True  # svix-* first, webhook-* in their absence
    id_headers: ClassVar[tuple[str, ...]] = ("svix-id", "webhook-id")
    timestamp_headers: ClassVar[tuple[str, ...]] = ("svix-timestamp", "webhook-timestamp")
    signature_headers: ClassVar[tuple[str, ...]] = ("svix-signature", "webhook-signature")
