"""Pagination: every item of a listing that the upstream serves page by page.

Three styles, one per way APIs chain their pages:

* ``LinkHeader``: follow the ``Link: <url>; rel="next"`` response header
  (RFC 8288; GitHub, GitLab, Okta). The next URL carries its own query.
* ``Cursor``: the body names the next page's cursor (``{"data": [...],
  "next_cursor": "abc"}``; Slack, Notion, many others); it is sent back as a
  query parameter.
* ``PageNumber``: ``?page=1``, ``?page=2``... until an empty page or the
  announced page count.

``paginate`` drives any style over a ``fetch(url, params)`` callable that runs
one GET (``ApiClient.paginate`` passes its own, so every page goes through the
resilience pipeline). The Link parser is hand-written because the header's
grammar (quoted parameters holding commas and semicolons, several links and
several ``rel`` values per header) defeats a plain ``split``. It guards against
the two ways a listing goes wrong: a next page that was already fetched (a
loop: ``ClientError`` naming the URL) and a body whose items are not where the
style says (``ResponseValidationError`` naming the path and what was there).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

from interlink.client._links import next_link, origin, origin_text
from interlink.client._models import Response
from interlink.client._redact import redact_url
from interlink.core.errors import ClientError, ConfigError, ResponseValidationError

__all__ = ["Cursor", "Fetch", "LinkHeader", "PageNumber", "PaginationStyle", "paginate"]

Fetch = Callable[[str, list[tuple[str, str]]], Awaitable[Response]]
"""Runs one GET of ``url`` with the query ``params`` and returns the response."""


def _check_param(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{owner}({name}=...) must be a non-empty query parameter name, got {value!r}"
        )


def _check_path(owner: str, name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not all(value.split(".")):
        what = "None or " if optional else ""
        raise ConfigError(
            f"{owner}({name}=...) must be {what}a dotted path into the body such as "
            f"'data' or 'meta.next', got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """Follow ``Link: <url>; rel="next"`` response headers (RFC 8288) until there is none.

    ``items``: dotted path to the list of items in each body (default ``None``:
    the body is the list, as with GitHub). Relative next URLs are resolved
    against the page's URL. ``allow_other_origins`` (default ``False``): a
    next link to another scheme, host or port is refused with a
    ``ClientError``, because following it would hand the client's
    credentials to that host.
    """

    items: str | None = None
    allow_other_origins: bool = False

    def __post_init__(self) -> None:
        _check_path("LinkHeader", "items", self.items, optional=True)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Pass the cursor the body names back as a query parameter, until it is absent.

    ``cursor_param`` (default ``"cursor"``): the query parameter that carries
    it. ``next_cursor`` (default ``"next_cursor"``): dotted path to it in the
    body (``"meta.next"`` for ``{"meta": {"next": ...}}``); a missing,
    ``null`` or empty cursor ends the listing. ``items`` (default ``"data"``):
    dotted path to the list of items, ``None`` when the body is the list.
    """

    cursor_param: str = "cursor"
    next_cursor: str = "next_cursor"
    items: str | None = "data"

    def __post_init__(self) -> None:
        _check_param("Cursor", "cursor_param", self.cursor_param)
        _check_path("Cursor", "next_cursor", self.next_cursor, optional=False)
        _check_path("Cursor", "items", self.items, optional=True)


@dataclass(frozen=True, slots=True)
class PageNumber:
    """Ask for page ``start``, ``start + 1``... until a page is empty or the pages run out.

    ``page_param`` (default ``"page"``): the query parameter of the page
    number. ``start`` (default 1; 0 for zero-based APIs). ``size_param`` and
    ``size`` (default ``None``, both or neither): a page-size parameter sent
    with every request, such as ``per_page=100``. ``items`` (default
    ``"data"``): dotted path to the list of items, ``None`` when the body is
    the list. ``total_pages`` (default ``None``): dotted path to the number of
    pages, when the body announces it; the listing then stops after that many
    pages without asking for an empty one (a ``null`` count is ignored).
    """

    page_param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None
    items: str | None = "data"
    total_pages: str | None = None

    def __post_init__(self) -> None:
        _check_param("PageNumber", "page_param", self.page_param)
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ConfigError(f"PageNumber(start=...) must be an integer >= 0, got {self.start!r}")
        if (self.size_param is None) != (self.size is None):
            raise ConfigError(
                "PageNumber(size_param=..., size=...) go together: give both "
                f"(such as size_param='per_page', size=100) or neither, got "
                f"size_param={self.size_param!r}, size={self.size!r}"
            )
        if self.size_param is not None:
            _check_param("PageNumber", "size_param", self.size_param)
            if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
                raise ConfigError(
                    f"PageNumber(size=...) must be an integer >= 1, got {self.size!r}"
                )
            if self.size_param == self.page_param:
                raise ConfigError(
                    f"PageNumber(size_param=...) must differ from page_param, both are {self.page_param!r}"
                )
        _check_path("PageNumber", "items", self.items, optional=True)
        _check_path("PageNumber", "total_pages", self.total_pages, optional=True)


PaginationStyle = LinkHeader | Cursor | PageNumber
"""How a listing chains its pages: one of ``LinkHeader``, ``Cursor``, ``PageNumber``."""


async def paginate(
    fetch: Fetch,
    first_url: str,
    params: list[tuple[str, str]],
    style: PaginationStyle,
    *,
    max_pages: int | None,
) -> AsyncIterator[Any]:
    """Every item of every page, in order, fetching each page only when the last item was taken.

    ``first_url`` with ``params`` is the first page. ``max_pages`` (``None``:
    no limit) stops after that many pages. Raises ``ConfigError`` for a bad
    style or ``max_pages``, ``ClientError`` when the pages loop, and
    ``ResponseValidationError`` when a body is not JSON or its items are not
    a list where the style says; errors from ``fetch`` pass through.
    """
    if not isinstance(style, LinkHeader | Cursor | PageNumber):
        raise ConfigError(
            f"paginate(style=...) must be LinkHeader(), Cursor() or PageNumber(), got {style!r}"
        )
    if max_pages is not None and (
        isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1
    ):
        raise ConfigError(
            f"paginate(max_pages=...) must be None or an integer >= 1, got {max_pages!r}"
        )
    if isinstance(style, LinkHeader):
        pages = _link_pages(fetch, first_url, params, style)
    elif isinstance(style, Cursor):
        pages = _cursor_pages(fetch, first_url, params, style)
    else:
        pages = _number_pages(fetch, first_url, params, style)
    fetched = 0
    try:
        async for items in pages:
            fetched += 1
            for item in items:
                yield item
            if max_pages is not None and fetched >= max_pages:
                return
    finally:
        await pages.aclose()


async def _link_pages(
    fetch: Fetch, url: str, params: list[tuple[str, str]], style: LinkHeader
) -> AsyncGenerator[list[Any], None]:
    start = origin(url)
    current = _with_query(url, params)
    seen = {current}
    page = 1
    while True:
        response = await fetch(url, params)
        body = _decode(response, current, page)
        yield _items(body, style.items, current, page)
        base = response.url or current
        seen.add(base)
        target = next_link(response.headers)
        if target is None:
            return
        url, params = urljoin(base, target), []
        if url in seen:
            raise _loop(f"the next link of page {page} points back to an earlier page", url)
        if not style.allow_other_origins and origin(url) != start:
            raise _loop(
                f"the next link of page {page} leaves {redact_url(origin_text(start))}; "
                "pass LinkHeader(allow_other_origins=True) to follow it with the client's "
                "credentials",
                url,
            )
        seen.add(url)
        current = url
        page += 1


async def _cursor_pages(
    fetch: Fetch, url: str, params: list[tuple[str, str]], style: Cursor
) -> AsyncGenerator[list[Any], None]:
    page_params = params
    others = [(key, value) for key, value in params if key != style.cursor_param]
    # A cursor the caller started from counts as used: coming back to it is a loop.
    seen = {value for key, value in params if key == style.cursor_param}
    page = 1
    while True:
        current = _with_query(url, page_params)
        response = await fetch(url, page_params)
        body = _decode(response, current, page)
        yield _items(body, style.items, current, page)
        cursor = _cursor(body, style.next_cursor, current, page)
        if cursor is None:
            return
        page_params = [*others, (style.cursor_param, cursor)]
        if cursor in seen:
            raise _loop(
                f"page {page} names a cursor already used, the listing loops",
                _with_query(url, page_params),
            )
        seen.add(cursor)
        page += 1


async def _number_pages(
    fetch: Fetch, url: str, params: list[tuple[str, str]], style: PageNumber
) -> AsyncGenerator[list[Any], None]:
    replaced = {style.page_param, style.size_param}
    others = [(key, value) for key, value in params if key not in replaced]
    sized = [] if style.size is None else [(str(style.size_param), str(style.size))]
    page = 1
    while True:
        page_params = [*others, (style.page_param, str(style.start + page - 1)), *sized]
        current = _with_query(url, page_params)
        response = await fetch(url, page_params)
        body = _decode(response, current, page)
        items = _items(body, style.items, current, page)
        if not items:
            return
        yield items
        if style.total_pages is not None:
            total = _total_pages(body, style.total_pages, current, page)
            if total is not None and page >= total:
                return
        page += 1


_MISSING: Any = object()
_EMPTY_BODY: Any = object()


def _decode(response: Response, url: str, page: int) -> Any:
    """The JSON body; ``_EMPTY_BODY`` for no body at all (a 204 is an empty page)."""
    if not response.content or response.content.isspace():
        return _EMPTY_BODY
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("Content-Type", "no Content-Type")
        raise _invalid(
            page, url, "(body)", "JSON", f"{len(response.content)} bytes of {content_type}"
        ) from None


def _items(body: Any, path: str | None, url: str, page: int) -> list[Any]:
    if body is _EMPTY_BODY:
        return []
    if path is None:
        items, where, missing = body, "(body)", ""
    else:
        (items, missing), where = _lookup(body, path), path
    if isinstance(items, list):
        return items
    raise _invalid(page, url, where, "a list of items", missing or _describe(items))


def _cursor(body: Any, path: str, url: str, page: int) -> str | None:
    if body is _EMPTY_BODY:
        return None
    cursor, _ = _lookup(body, path)
    if cursor is _MISSING or cursor is None or cursor == "":
        return None
    if isinstance(cursor, str):
        return cursor
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        return str(cursor)
    raise _invalid(
        page, url, path, "a string or integer cursor (or null at the end)", _describe(cursor)
    )


def _total_pages(body: Any, path: str, url: str, page: int) -> int | None:
    total, missing = _lookup(body, path)
    if total is None:
        return None
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    if isinstance(total, str) and total.isascii() and total.isdigit():
        return int(total)
    found = missing or _describe(total)
    raise _invalid(page, url, path, "the number of pages (an integer or null)", found)


def _lookup(body: Any, path: str) -> tuple[Any, str]:
    """(the value at the dotted ``path``, ``""``), or (``_MISSING``, where the path stops)."""
    node = body
    keys = path.split(".")
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[:depth]) or "the body"
            return _MISSING, f"nothing: {where} is {_describe(node)}, without {key!r}"
        node = node[key]
    return node, ""


def _describe(value: Any) -> str:
    """What a JSON value is, without its contents (they may be private)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        keys = sorted(value)
        shown = ", ".join(repr(key) for key in keys[:10]) + (", ..." if len(keys) > 10 else "")
        return f"an object with keys [{shown}]"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _invalid(page: int, url: str, path: str, expected: str, found: str) -> ResponseValidationError:
    safe = redact_url(url)
    return ResponseValidationError(
        f"page {page} of GET {safe}: {path}: expected {expected}, found {found}",
        errors=[(path, expected, found)],
        method="GET",
        url=safe,
    )


def _loop(message: str, url: str) -> ClientError:
    safe = redact_url(url)
    error = ClientError(f"pagination stopped: {message}: GET {safe}", method="GET", url=safe)
    error.retryable = False
    return error


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
