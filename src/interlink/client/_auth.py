"""Auth strategies for ``ApiClient``: each one implements the ``Auth`` protocol of ``_models``.

Anchors: RFC 6750 §2.1 (``BearerToken``, ``BearerFrom``), RFC 7617
(``BasicAuth``); ``OAuth2ClientCredentials`` lives in ``_oauth2`` and shares
the token cache defined here. Written by hand because the libraries that do
this (authlib, httpx-auth) are bound to one HTTP library's auth flow, while
interlink needs one strategy on both transports, its injectable clock, and a
token fetch that concurrent callers share (one fetch, however many requests
wait on it).

Every secret is held as a ``Secret``: the reprs show ``Secret('**********')``,
and error messages name a bad secret's type, never its value.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Generic, TypeVar, cast

from interlink.client._models import Request, Response, Send
from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.errors import ConfigError
from interlink.core.secrets import Secret
from interlink.resilience import _validate as check

__all__ = ["ApiKey", "BasicAuth", "BearerFrom", "BearerToken", "SigningAuth"]

T = TypeVar("T")

# RFC 9110 §5.6.2 token: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than tab would split or corrupt a header line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _secret(owner: str, arg: str, value: object, *, allow_empty: bool = False) -> Secret:
    """``value`` as a ``Secret``; a ``ConfigError`` that names its type (never the value) otherwise."""
    expected = f"{'a' if allow_empty else 'a non-empty'} str or Secret"
    if isinstance(value, Secret | str):
        text = value.reveal() if isinstance(value, Secret) else value
        if not text and not allow_empty:
            raise ConfigError(f"{owner} {arg} must be {expected}, got an empty one")
        if _CONTROL.search(text):
            raise ConfigError(
                f"{owner} {arg} must not contain control characters such as line breaks "
                "(value hidden)"
            )
        return Secret(text)
    raise ConfigError(f"{owner} {arg} must be {expected}, got {type(value).__name__}")


def _text(owner: str, arg: str, value: object) -> str:
    """A non-empty ``str`` without control characters (not a secret: shown in the message)."""
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        check.fail(owner, arg, "a non-empty str without control characters", value)
    return value


def _callable(owner: str, arg: str, value: T, what: str) -> T:
    if not callable(value):
        check.fail(owner, arg, what, value)
    return value


def _clock(owner: str, clock: Clock | None) -> Clock:
    return check.instance_or_none(owner, "clock", clock, Clock) or SYSTEM_CLOCK  # type: ignore[type-abstract]


def _consume(task: asyncio.Task[Any]) -> None:
    # A fetch whose every waiter was cancelled still ends; read its error so
    # asyncio does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class _SharedFetch(Generic[T]):
    """At most one fetch at a time: callers that arrive while it runs await the same one.

    The fetch runs in its own task, so a waiter that is cancelled (a timeout,
    a caller going away) does not cancel it for the others. When it fails,
    every waiter gets the error and the next call starts a new fetch.
    """

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: asyncio.Task[T] | None = None

    async def run(self, fetch: Callable[[], Coroutine[Any, Any, T]]) -> T:
        task = self._task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(fetch())
            task.add_done_callback(_consume)
            self._task = task
        return await asyncio.shield(task)


class _Token:
    """A ready ``Authorization`` value and the monotonic time after which it is renewed."""

    __slots__ = ("header", "renew_at")

    def __init__(self, header: Secret, renew_at: float) -> None:
        self.header = header
        self.renew_at = renew_at


def _bearer(owner: str, arg: str, value: object) -> Secret:
    return Secret("Bearer " + _secret(owner, arg, value).reveal())


class BearerToken:
    """A static token sent as ``Authorization: Bearer <token>`` (RFC 6750 §2.1).

    ``token`` is a ``str`` or a ``Secret``. A 401 is final: there is nothing
    to refresh (``refresh`` returns ``False``).
    """

    __slots__ = ("_header",)

    def __init__(self, token: str | Secret) -> None:
        self._header = _bearer("BearerToken", "token", token)

    async def apply(self, request: Request, send: Send) -> None:
        """Set the ``Authorization`` header."""
        request.headers["Authorization"] = self._header.reveal()

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """Always ``False``: a static token cannot be renewed."""
        return False

    def __repr__(self) -> str:
        return "BearerToken(token=Secret('**********'))"


class _TokenCache(ABC):
    """The shared part of the token-fetching strategies: the cache, one shared fetch, 401 refresh."""

    __slots__ = ("_cached", "_clock", "_flight")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cached: _Token | None = None
        self._flight: _SharedFetch[_Token] = _SharedFetch()

    @abstractmethod
    async def _obtain(self, send: Send) -> _Token:
        """Fetch a new token (called by one task at a time)."""

    async def _renew(self, send: Send) -> _Token:
        token = await self._obtain(send)
        self._cached = token
        return token

    async def _token(self, send: Send) -> _Token:
        cached = self._cached
        if cached is not None and self._clock.monotonic() < cached.renew_at:
            return cached
        return await self._flight.run(lambda: self._renew(send))

    async def _refresh(self, request: Request, send: Send) -> bool:
        used = request.headers.get("Authorization", "")
        cached = self._cached
        # Only the token the failed request carried is thrown away: one that
        # another caller fetched meanwhile is fresh and is used as it is.
        if cached is not None and cached.header == Secret(used):
            self._cached = None
        token = await self._token(send)
        request.headers["Authorization"] = token.header.reveal()
        return token.header != Secret(used)

    async def apply(self, request: Request, send: Send) -> None:
        """Set ``Authorization: Bearer <token>``, fetching the token first when none is fresh."""
        request.headers["Authorization"] = (await self._token(send)).header.reveal()


class BearerFrom(_TokenCache):
    """A bearer token from your own async callable, e.g. a secrets manager or a token cache.

    ``get_token()`` returns a ``str`` or a ``Secret``. With ``cache_for=None``
    (the default) it is called for every request; with ``cache_for`` seconds
    (``math.inf``: until a 401) the token is reused that long, and concurrent
    requests that find no fresh token share one call. On a 401, ``refresh``
    drops the cached token, calls ``get_token()`` once and returns ``True``
    when it gave a different token (the request is then sent once more).
    ``clock`` (default ``SYSTEM_CLOCK``) times the cache.
    """

    __slots__ = ("_cache_for", "_get_token")

    def __init__(
        self,
        get_token: Callable[[], Awaitable[str | Secret]],
        *,
        cache_for: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(_clock("BearerFrom", clock))
        self._get_token = _callable(
            "BearerFrom", "get_token", get_token, "an async callable () -> str | Secret"
        )
        self._cache_for = (
            None
            if cache_for is None
            else check.seconds(
                "BearerFrom", "cache_for", cache_for, allow_zero=False, allow_inf=True
            )
        )

    async def _obtain(self, send: Send) -> _Token:
        started = self._clock.monotonic()
        value = await self._get_token()
        if not isinstance(value, str | Secret) or not value:
            found = "an empty one" if isinstance(value, str | Secret) else type(value).__name__
            raise ConfigError(
                f"BearerFrom get_token must return a non-empty str or Secret, got {found}"
            )
        header = _bearer("BearerFrom", "get_token's token", value)
        return _Token(header, started + (self._cache_for or 0.0))

    async def _token(self, send: Send) -> _Token:
        if self._cache_for is None:
            return await self._obtain(send)
        return await super()._token(send)

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """After a 401: fetch a token once; ``True`` when it differs from the one that failed."""
        return await self._refresh(request, send)

    def __repr__(self) -> str:
        return f"BearerFrom(get_token={_name(self._get_token)}, cache_for={self._cache_for!r})"


class _DefaultHeader(str):
    """Marks ``ApiKey``'s default header, so that ``query=`` alone replaces it."""

    __slots__ = ()


_X_API_KEY: Final = _DefaultHeader("X-API-Key")


class ApiKey:
    """An API key sent in a header (default ``X-API-Key``) or in a query parameter.

    Give exactly one of ``header=`` and ``query=``: ``ApiKey(key)`` sends
    ``X-API-Key: <key>``, ``ApiKey(key, header="Api-Key")`` another header,
    ``ApiKey(key, query="api_key")`` a query parameter (which replaces any
    parameter of that name on the request). A 401 is final.
    """

    __slots__ = ("_header", "_key", "_query")

    def __init__(
        self, key: str | Secret, *, header: str | None = _X_API_KEY, query: str | None = None
    ) -> None:
        self._key = _secret("ApiKey", "key", key)
        if header is _X_API_KEY and query is not None:
            header = None
        if (header is None) == (query is None):
            raise ConfigError(
                f"ApiKey takes exactly one of header= and query=, got header={header!r} "
                f"and query={query!r}"
            )
        if header is not None and not (isinstance(header, str) and _HEADER_NAME.fullmatch(header)):
            check.fail("ApiKey", "header", "a header name such as 'X-API-Key'", header)
        self._header = None if header is None else str(header)
        self._query = None if query is None else _text("ApiKey", "query", query)

    async def apply(self, request: Request, send: Send) -> None:
        """Set the header, or put the key in the query (once, however often it runs)."""
        if self._header is not None:
            request.headers[self._header] = self._key.reveal()
            return
        name = self._query
        params = request.params
        if any(param == name for param, _ in params):
            params[:] = [(param, value) for param, value in params if param != name]
        params.append((cast(str, name), self._key.reveal()))

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """Always ``False``: a static key cannot be renewed."""
        return False

    def __repr__(self) -> str:
        where = f"header={self._header!r}" if self._header is not None else f"query={self._query!r}"
        return f"ApiKey(key=Secret('**********'), {where})"


class BasicAuth:
    """HTTP Basic authentication (RFC 7617): ``Authorization: Basic base64(user:password)``.

    ``username`` may be a ``Secret`` too (some APIs put the key there; the
    repr then hides it); it must not contain ``:``. ``password`` may be empty.
    Both are encoded as UTF-8. A 401 is final.
    """

    __slots__ = ("_header", "_username")

    def __init__(self, username: str | Secret, password: str | Secret) -> None:
        user = _secret("BasicAuth", "username", username)
        if ":" in user.reveal():
            raise ConfigError("BasicAuth username must not contain ':' (RFC 7617 §2)")
        secret = _secret("BasicAuth", "password", password, allow_empty=True)
        pair = f"{user.reveal()}:{secret.reveal()}".encode()
        self._header = Secret("Basic " + base64.b64encode(pair).decode("ascii"))
        self._username: str | Secret = username if isinstance(username, Secret) else user.reveal()

    async def apply(self, request: Request, send: Send) -> None:
        """Set the ``Authorization`` header."""
        request.headers["Authorization"] = self._header.reveal()

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """Always ``False``: static credentials cannot be renewed."""
        return False

    def __repr__(self) -> str:
        return f"BasicAuth(username={self._username!r}, password=Secret('**********'))"


class SigningAuth:
    """A hook for custom request signing: ``sign(request)`` edits the request in place.

    ``sign`` may be a plain or an async function; it typically computes an
    HMAC over ``request.method``, ``request.full_url()`` and
    ``request.content`` and sets a header. It runs on every attempt, so a
    timestamped signature is fresh on each retry. A 401 is final.
    """

    __slots__ = ("_sign",)

    def __init__(self, sign: Callable[[Request], Awaitable[None] | None]) -> None:
        self._sign = _callable(
            "SigningAuth", "sign", sign, "a callable (request) -> None or an awaitable"
        )

    async def apply(self, request: Request, send: Send) -> None:
        """Call ``sign(request)`` (awaiting it when it returns an awaitable)."""
        result = self._sign(request)
        if inspect.isawaitable(result):
            await result

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """Always ``False``: a signature is not a credential that can be renewed."""
        return False

    def __repr__(self) -> str:
        return f"SigningAuth(sign={_name(self._sign)})"


def _name(function: object) -> str:
    return getattr(function, "__qualname__", type(function).__name__)
