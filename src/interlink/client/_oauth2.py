"""``OAuth2ClientCredentials``: the OAuth 2.0 client credentials grant, token cached and shared.

Anchors: RFC 6749 §4.4 (the grant), §2.3.1 (client authentication: HTTP
Basic with form-encoded parts, or ``client_id``/``client_secret`` in the
body), §5.1 (the token response: ``access_token``, ``token_type``,
``expires_in``) and §5.2 (the error response: ``error``,
``error_description``). Hand-written for the reasons given in ``_auth``:
one token request shared by concurrent callers, on interlink's clock and
either transport.

Two leniencies, both common in the field: a missing ``token_type`` is taken
as bearer, and ``expires_in`` may be a numeric string. A ``token_type`` that
says something other than bearer is refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, cast
from urllib.parse import quote_plus, urlencode, urlsplit

from multidict import CIMultiDict

from interlink.client._auth import _CONTROL, _clock, _secret, _text, _Token, _TokenCache
from interlink.client._failures import request_id
from interlink.client._models import Request, Response, Send
from interlink.client._redact import redact_url
from interlink.core.clock import Clock
from interlink.core.errors import (
    ClientTimeoutError,
    ConfigError,
    HttpStatusError,
    ResponseValidationError,
)
from interlink.core.secrets import Secret
from interlink.resilience import _validate as check
from interlink.resilience._backoff import parse_retry_after

__all__ = ["OAuth2ClientCredentials"]


_OWNER: Final = "OAuth2ClientCredentials"
_RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_RESERVED_FIELDS: Final = ("grant_type", "client_id", "client_secret", "scope", "audience")
_MAX_DETAIL: Final = 200
_MAX_EXCERPT: Final = 512


class OAuth2ClientCredentials(_TokenCache):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a bearer token, cached until shortly before expiry.

    The token is fetched by POSTing ``grant_type=client_credentials`` (form
    encoded, ``Accept: application/json``) to ``token_url`` through the raw
    transport, with ``scope`` (a string, or a list joined by spaces),
    ``audience`` and ``extra_params`` when given. ``auth_method="basic"``
    (default) sends the client credentials in an HTTP Basic header
    (RFC 6749 §2.3.1); ``"body"`` sends them as ``client_id`` and
    ``client_secret`` form fields.

    The token is renewed ``refresh_margin`` seconds (default 30) before its
    ``expires_in`` runs out, timed on ``clock`` (default ``SYSTEM_CLOCK``); a
    token that lives less than twice the margin is renewed at half its life;
    one without ``expires_in`` is kept until a 401. Concurrent requests that
    find no fresh token share one token request; if it fails, each of them
    gets the error and the next request tries again. ``timeout`` (seconds,
    default 10) bounds each token request. On a 401, ``refresh`` drops the
    token the request carried (unless another caller already replaced it)
    and fetches a new one once.

    A failed token request raises ``HttpStatusError`` (a non-2xx answer;
    retryable for 408, 429, 500, 502, 503 and 504), ``ResponseValidationError``
    (not JSON, no ``access_token``, a ``token_type`` other than bearer, a bad
    ``expires_in``) or ``ClientTimeoutError``. Messages name the token URL
    (redacted), the status and the OAuth2 ``error``/``error_description``,
    never a secret.
    """

    __slots__ = (
        "_basic",
        "_body",
        "_client_id",
        "_margin",
        "_secret",
        "_shown",
        "_timeout",
        "_url",
    )

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | Secret,
        *,
        scope: str | Sequence[str] | None = None,
        audience: str | None = None,
        refresh_margin: float = 30.0,
        auth_method: Literal["basic", "body"] = "basic",
        extra_params: Mapping[str, str | Secret] | None = None,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(_clock(_OWNER, clock))
        self._url = _absolute_url(token_url)
        self._shown = redact_url(self._url)
        self._client_id = _text(_OWNER, "client_id", client_id)
        self._secret = _secret(_OWNER, "client_secret", client_secret)
        method = check.one_of(_OWNER, "auth_method", auth_method, ("basic", "body"))
        self._margin = check.seconds(_OWNER, "refresh_margin", refresh_margin, allow_zero=True)
        self._timeout = check.seconds(_OWNER, "timeout", timeout, allow_zero=False)
        form = [("grant_type", "client_credentials")]
        if scope is not None:
            form.append(("scope", _scope(scope)))
        if audience is not None:
            form.append(("audience", _text(_OWNER, "audience", audience)))
        form += _extra(extra_params)
        self._basic: Secret | None = None
        if method == "basic":
            # §2.3.1: each part is form-encoded before the Basic encoding.
            pair = f"{quote_plus(client_id)}:{quote_plus(self._secret.reveal())}"
            self._basic = Secret("Basic " + base64.b64encode(pair.encode()).decode("ascii"))
        else:
            form += [("client_id", client_id), ("client_secret", self._secret.reveal())]
        self._body = Secret(urlencode(form))

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        """After a 401: drop the failed token (if still current), fetch one once; ``True`` if new."""
        return await self._refresh(request, send)

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self._shown!r}, client_id={self._client_id!r}, "
            "client_secret=Secret('**********'))"
        )

    async def _obtain(self, send: Send) -> _Token:
        headers: CIMultiDict[str] = CIMultiDict(
            {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        )
        if self._basic is not None:
            headers["Authorization"] = self._basic.reveal()
        request = Request("POST", self._url, headers=headers, content=self._body.reveal().encode())
        started = self._clock.monotonic()
        response = await self._send_in_time(send, request)
        if not 200 <= response.status < 300:
            raise self._status_error(response)
        body = self._json_object(response)
        header = Secret("Bearer " + self._access_token(body, response.status))
        lifetime = self._lifetime(body, response.status)
        if lifetime is None:
            return _Token(header, math.inf)
        return _Token(header, started + max(lifetime - self._margin, lifetime / 2))

    async def _send_in_time(self, send: Send, request: Request) -> Response:
        # Runs in the shared fetch's own task: cancelling it on time is safe.
        task = cast("asyncio.Task[Any]", asyncio.current_task())
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = self._clock.call_later(self._timeout, expire)
        try:
            return await send(request)
        except asyncio.CancelledError:
            if not expired:
                raise
            task.uncancel()
            raise ClientTimeoutError(
                f"OAuth2 token request to {self._shown} got no answer within {self._timeout:g} s",
                method="POST",
                url=self._shown,
            ) from None
        finally:
            timer.cancel()

    def _status_error(self, response: Response) -> HttpStatusError:
        message = f"OAuth2 token request to {self._shown} failed with HTTP {response.status}"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error, description = body.get("error"), body.get("error_description")
            if isinstance(error, str) and error:
                message += f": {self._scrub(error)[:_MAX_DETAIL]}"
            if isinstance(description, str) and description:
                message += f" ({self._scrub(description)[:_MAX_DETAIL]})"
        rid = request_id(response.headers)
        if rid:
            message += f" (request id {rid})"
        text = self._scrub(response.text)  # before the cut: no half secret at the edge
        retry_after = response.headers.get("Retry-After")
        return HttpStatusError(
            message,
            status=response.status,
            method="POST",
            url=self._shown,
            body_excerpt=text[:_MAX_EXCERPT] + ("..." if len(text) > _MAX_EXCERPT else ""),
            request_id=rid,
            headers=dict(response.headers.items()),
            retry_after=None
            if retry_after is None
            else parse_retry_after(retry_after, now=self._clock.wall()),
            retryable=response.status in _RETRYABLE_STATUSES,
        )

    def _invalid(self, status: int, field: str, expected: str, found: str) -> Exception:
        where = f"OAuth2 token response from {self._shown} (HTTP {status})"
        return ResponseValidationError(
            f"{where}: {field or 'the body'} must be {expected}, got {found}",
            errors=[(field, expected, found)],
            method="POST",
            url=self._shown,
        )

    def _json_object(self, response: Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "no Content-Type")
            raise self._invalid(response.status, "", "JSON", content_type) from None
        if not isinstance(body, dict):
            raise self._invalid(response.status, "", "a JSON object", type(body).__name__)
        return body

    def _access_token(self, body: dict[str, Any], status: int) -> str:
        token = body.get("access_token")
        if not isinstance(token, str) or not token or _CONTROL.search(token):
            found = "nothing" if token is None else _kind(token)
            raise self._invalid(status, "access_token", "a non-empty string", found)
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            found = repr(token_type)[:40] if isinstance(token_type, str) else _kind(token_type)
            raise self._invalid(status, "token_type", "'Bearer'", found)
        return token

    def _lifetime(self, body: dict[str, Any], status: int) -> float | None:
        value = body.get("expires_in")
        if value is None:
            return None
        seconds = math.nan
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):
                seconds = float(value)
        if not 0 < seconds < math.inf:
            raise self._invalid(
                status, "expires_in", "a positive number of seconds", repr(value)[:40]
            )
        return seconds

    def _scrub(self, text: str) -> str:
        """``text`` with the client secret, as sent or as a server may echo it, replaced by ``***``."""
        secret = self._secret.reveal()
        escaped = json.dumps(secret)[1:-1]
        for form in (secret, quote_plus(secret), escaped, escaped.replace("/", "\\/")):
            text = text.replace(form, "***")
        return text


def _kind(value: object) -> str:
    """What a bad token field was, without showing it (it may be a real token)."""
    if not isinstance(value, str):
        return type(value).__name__
    return "a string with control characters" if value else "an empty string"


def _absolute_url(url: object) -> str:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact_url(url) if isinstance(url, str) else url
        check.fail(_OWNER, "token_url", "an absolute http(s) URL", shown)
    return cast(str, url)


def _scope(scope: object) -> str:
    if isinstance(scope, str):
        return _text(_OWNER, "scope", scope)
    if not (isinstance(scope, Sequence) and scope and all(isinstance(s, str) and s for s in scope)):
        check.fail(_OWNER, "scope", "a non-empty str or a non-empty list of non-empty str", scope)
    return _text(_OWNER, "scope", " ".join(scope))


def _extra(params: Mapping[str, str | Secret] | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if not isinstance(params, Mapping):  # named by type: its values may be secrets
        raise ConfigError(
            f"{_OWNER} extra_params must be a mapping of str to str or Secret, or None, "
            f"got {type(params).__name__}"
        )
    fields = []
    for name, value in params.items():
        if name in _RESERVED_FIELDS:
            raise ConfigError(
                f"{_OWNER} extra_params must not set {name!r}: "
                + ("it is fixed by the grant" if name == "grant_type" else "use the argument")
            )
        text = _text(_OWNER, "extra_params key", name)
        fields.append((text, _secret(_OWNER, f"extra_params[{name!r}]", value).reveal()))
    return fields
