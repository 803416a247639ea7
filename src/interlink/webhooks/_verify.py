"""``verify``: check one webhook's signature by scheme name, a pure function.

Building a scheme prepares its keys (base64-decoding a ``whsec_`` secret,
parsing an ed25519 public key), so ``verify`` keeps the schemes it built in a
small cache keyed by their arguments: a call with the same scheme, secrets,
tolerance and options costs one dictionary lookup before the check itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from interlink.core.secrets import Secret
from interlink.webhooks._scheme import Scheme, VerifiedWebhook, quick_verify, scheme_class

__all__ = ["build_scheme", "verify"]

_CACHE_SIZE: Final = 256
_cache: dict[tuple[Any, ...], Scheme] = {}


def build_scheme(
    scheme: str,
    secrets: Sequence[str | bytes | Secret],
    *,
    tolerance: float | None = None,
    **options: Any,
) -> Scheme:
    """A ready ``Scheme`` named ``scheme``: ``ConfigError`` for a bad name or option, ``SignatureError("bad_secret")`` for an unusable secret."""
    return scheme_class(scheme)(secrets, tolerance=tolerance, **options)


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _cache_key(
    scheme: str, secrets: object, tolerance: object, options: dict[str, Any]
) -> tuple[Any, ...] | None:
    if not isinstance(secrets, list | tuple):
        return None
    parts: list[object] = [scheme, type(tolerance), tolerance]
    for secret in secrets:
        parts.append(secret.reveal() if isinstance(secret, Secret) else secret)
    if options:  # with each value's type: True == 1, but they are not the same option
        parts.append(tuple((k, type(v), v) for k, v in sorted(options.items(), key=_first)))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def verify(
    scheme: str,
    *,
    secrets: Sequence[str | bytes | Secret],
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    url: str | None = None,
    now: float | None = None,
    tolerance: float | None = None,
    **options: Any,
) -> VerifiedWebhook:
    """Verify one webhook signed with ``scheme``; return it, or raise ``SignatureError``.

    ``secrets`` is a list (any one matching passes, so rotation works);
    ``headers`` are matched case-insensitively; ``body`` is the raw bytes as
    received; ``url`` is the public URL, for the schemes that sign it
    (``twilio``, ``square``); ``now`` (unix seconds) defaults to the wall clock;
    ``tolerance`` (seconds) overrides the scheme's default window, checked in
    both directions. ``options`` are the scheme's own (``hmac``'s header and
    template...). ``SignatureError.reason`` says what failed; a bad scheme
    name, option or argument raises ``ConfigError``.
    """
    key: tuple[Any, ...] | None
    if options or secrets.__class__ is not list:
        key = _cache_key(scheme, secrets, tolerance, options)
    else:  # the usual call: a list of str secrets, hashable as they are
        key = (
            (scheme, None, *secrets)
            if tolerance is None
            else (scheme, type(tolerance), tolerance, *secrets)
        )
    try:
        built = _cache.get(key) if key is not None else None
    except TypeError:  # an unhashable secret: the slow key reveals and hashes each value
        key = _cache_key(scheme, secrets, tolerance, options)
        built = _cache.get(key) if key is not None else None
    if built is None:
        built = build_scheme(scheme, secrets, tolerance=tolerance, **options)
        if key is not None:
            if len(_cache) >= _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = built
    if now is None and url is None:  # Scheme.verify, inlined: one call less per webhook
        verified = quick_verify(built, headers, body)
        if verified is not None:
            return verified
    return built.verify_with_care(headers, body, url, now)
