"""``redact_url``: a URL as it may appear in an error, a repr, an event or a log line.

Two places in a URL carry secrets: the userinfo (``https://user:pass@host``,
or a token as the user name, ``https://ghp_...@host``) and the query
(``?api_key=...``, a presigned ``X-Amz-Signature=...``). ``redact_url``
replaces the password (or a user name given without one) and the values of
secret-looking query and fragment parameters with ``REDACTED`` (the marker
the OpenTelemetry conventions give for ``url.full``), and leaves every other
byte as it was, so the URL still tells a reader which call it was.

A parameter is secret-looking when its name, compared case-insensitively, is
one of ``SECRET_PARAMS`` or ends with one of ``SECRET_SUFFIXES`` after a
``_``, ``-`` or ``.`` (``refresh_token``, ``X-Amz-Security-Token``,
``client.secret``). Erring towards redaction is cheap: a redacted harmless
value costs a reader little, a logged token costs a rotation.

Hand-written rather than a ``urllib.parse`` round trip because that
re-encodes the query (``%20`` comes back as ``+``) while a log line should
show what was sent. It runs on error and repr paths only, never per request.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

__all__ = ["SECRET_PARAMS", "SECRET_SUFFIXES", "is_secret_param", "redact_query", "redact_url"]

MASK = "REDACTED"

SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "code",
        "key",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
    }
)
"""Query parameter names whose values are always redacted (case-insensitive)."""

SECRET_SUFFIXES = (
    "apikey",
    "credential",
    "key",
    "passwd",
    "password",
    "secret",
    "sig",
    "signature",
    "token",
)
"""Name endings, after ``_``, ``-`` or ``.``, that mark a parameter as secret too."""

_SEPARATORS = ("_", "-", ".")
_ENDINGS = tuple(sep + suffix for suffix in SECRET_SUFFIXES for sep in _SEPARATORS)


def is_secret_param(name: str) -> bool:
    """True when a query parameter called ``name`` holds a secret (see the module docstring)."""
    lowered = unquote_plus(name).strip().lower()
    return lowered in SECRET_PARAMS or lowered.endswith(_ENDINGS)


def redact_query(text: str) -> str:
    """A query string with secret-looking values replaced: ``a=1&api_key=s`` -> ``a=1&api_key=REDACTED``.

    Every other byte is kept (``url.query`` of a server span, a URL's query
    or fragment in ``redact_url``).
    """
    parts = text.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if equals and value and is_secret_param(name):
            parts[index] = f"{name}={MASK}"
            changed = True
    return "&".join(parts) if changed else text


def redact_url(url: str) -> str:
    """``url`` with the userinfo password and secret-looking parameter values replaced.

    The marker is ``REDACTED``: ``https://bob:hunter2@api.example/v1?api_key=abc&page=2``
    becomes ``https://bob:REDACTED@api.example/v1?api_key=REDACTED&page=2``; a user
    name without a password is masked whole (``https://REDACTED@host``). Anything that is not a
    string is turned into one first; a malformed URL is redacted as far as its
    shape can be read, never raising.
    """
    text = url if isinstance(url, str) else str(url)
    rest, hash_mark, fragment = text.partition("#")
    rest, question, query = rest.partition("?")
    scheme, sep, after = rest.partition("://")
    if sep:
        authority, slash, path = after.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            if colon and password:
                authority = f"{user}:{MASK}@{hostport}"
            elif not colon and user:  # a token as the user name (git, GitHub)
                authority = f"{MASK}@{hostport}"
        rest = f"{scheme}://{authority}{slash}{path}"
    if query:
        query = redact_query(query)
    if fragment:
        fragment = redact_query(fragment)
    return f"{rest}{question}{query}{hash_mark}{fragment}"
