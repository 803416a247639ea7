"""How the client words its errors, so that each one is useful alone in a log line.

Every ``ClientError`` message has one shape::

    <METHOD> <redacted URL> <what happened>[ after <n> attempts][<detail>]

for example ``POST https://api.example/charges?api_key=REDACTED answered 503
Service Unavailable after 3 attempts (request id abc123): {"error":"down"}``
or ``GET http://127.0.0.1:9/x could not connect: Cannot connect to host...``.

The attempt count is only known once the retry has finished, and the URL a
caller should see is the one it asked for (without the credentials an auth
strategy added), so an error is built in parts and ``relabel`` renders it
again with the final URL and count. The parts live in the exception's
``__dict__`` under a private key; errors raised by others (a user's ``Auth``)
have none and keep their message.
"""

from __future__ import annotations

import http
from typing import Any, TypeVar

from interlink.client._models import Headers, Request, Response
from interlink.client._redact import redact_url
from interlink.core.errors import ClientError, HttpStatusError
from interlink.observability._logging import REDACTOR

__all__ = [
    "REQUEST_ID_HEADERS",
    "HeaderDict",
    "body_excerpt",
    "client_error",
    "relabel",
    "request_id",
    "status_error",
    "transport_error",
    "unusable",
]

E = TypeVar("E", bound=ClientError)

REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "Request-Id",
    "X-Correlation-Id",
    "X-Amzn-RequestId",
    "X-Amz-Request-Id",
    "X-GitHub-Request-Id",
    "X-Cloud-Trace-Context",
    "CF-Ray",
)
"""Response headers read, in this order, for the upstream's request id (case-insensitive)."""

_PARTS = "_interlink_message_parts"


class HeaderDict(dict[str, str]):
    """Response headers as a ``dict`` whose lookups ignore case, as HTTP header names do.

    Keys are stored lower-case; a repeated header's values are joined with
    ``", "`` (RFC 9110 section 5.3).
    """

    def __init__(self, headers: Headers) -> None:
        super().__init__()
        for name, value in headers.items():
            key = name.lower()
            earlier = dict.get(self, key)
            dict.__setitem__(self, key, value if earlier is None else f"{earlier}, {value}")

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def request_id(headers: Headers) -> str | None:
    """The upstream's id for the request, from the first of ``REQUEST_ID_HEADERS`` present."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip()
    return None


def body_excerpt(content: bytes, max_bytes: int) -> str:
    """The first ``max_bytes`` bytes of a body, decoded leniently, with ``...`` when cut."""
    if not content or max_bytes <= 0:
        return ""
    text = content[:max_bytes].decode("utf-8", errors="replace")
    return f"{text}..." if len(content) > max_bytes else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _render(method: str, url: str, what: str, attempts: int, detail: str) -> str:
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return f"{method} {url} {what}{after}{detail}"


def client_error(
    cls: type[E],
    method: str,
    url: str,
    what: str,
    detail: str = "",
    *,
    attempts: int = 1,
    **fields: Any,
) -> E:
    """Build ``cls`` with the message shape above; ``fields`` go to its constructor."""
    error = cls(
        _render(method, url, what, attempts, detail),
        method=method,
        url=url,
        attempts=attempts,
        **fields,
    )
    error.__dict__[_PARTS] = (what, detail)
    return error


def relabel(error: ClientError, *, url: str | None = None, attempts: int | None = None) -> None:
    """Set the final ``url`` and ``attempts`` on ``error`` and render its message again."""
    if url is not None:
        error.url = url
    if attempts is not None:
        error.attempts = attempts
    parts = error.__dict__.get(_PARTS)
    if parts is not None:
        what, detail = parts
        error.args = (_render(error.method, error.url, what, error.attempts, detail),)


def _phrase(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def status_error(
    response: Response,
    *,
    method: str,
    url: str,
    retryable: bool,
    retry_after: float | None,
    max_body: int,
    attempts: int = 1,
) -> HttpStatusError:
    """The ``HttpStatusError`` for an error answer: status, request id and a capped body excerpt."""
    headers = response.headers
    rid = request_id(headers)
    # observability: an upstream echoing credentials must not put them in errors and logs.
    excerpt = REDACTOR.scrub(body_excerpt(response.content, max_body))
    detail = f" (request id {rid})" if rid else ""
    if excerpt:
        detail += f": {_one_line(excerpt)}"
    return client_error(
        HttpStatusError,
        method,
        url,
        f"answered {_phrase(response.status)}",
        detail,
        attempts=attempts,
        status=response.status,
        body_excerpt=excerpt,
        request_id=rid,
        headers=HeaderDict(headers),
        retry_after=retry_after,
        retryable=retryable,
    )


def unusable(request: Request, why: str) -> ClientError:
    """The ``ClientError`` for a request that cannot be sent at all (not retryable, never sent)."""
    error = client_error(
        ClientError, request.method, redact_url(request.full_url()), f"cannot be sent: {why}"
    )
    error.retryable = False
    error.request_sent = False
    return error


def timed_out(request: Request) -> str:
    """What a timeout says: with the attempt's bound when there was one."""
    seconds = request.timeout
    return "timed out" if seconds is None else f"timed out at {seconds:.3g}s"


def transport_error(
    cls: type[ClientError],
    request: Request,
    url: str,
    what: str,
    cause: BaseException,
    *,
    committed: bool = False,
    retryable: bool | None = None,
    request_sent: bool | None = None,
    hide_cause: bool = False,
) -> ClientError:
    """A transport's error for ``cause``, raised while sending ``request`` to ``url``.

    ``cause`` becomes ``__cause__`` (for debugging) unless ``hide_cause`` or
    its text or repr carries the unredacted URL; its text is quoted with the
    URL redacted. ``committed`` marks a failure after a streamed body began,
    which ``Retry`` never retries.
    """
    safe = redact_url(url)
    text = str(cause)
    leaks = url != safe and (url in text or url in repr(cause))
    if leaks:
        text = text.replace(url, safe)
    detail = f": {type(cause).__name__}: {text}" if text else f": {type(cause).__name__}"
    error = client_error(cls, request.method, safe, what, detail)
    if retryable is not None:
        error.retryable = retryable
    if request_sent is not None:
        error.request_sent = request_sent
    if committed:
        error.committed = True
    error.__cause__ = None if hide_cause or leaks else cause
    error.__suppress_context__ = True
    return error
