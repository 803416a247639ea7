"""Pagination styles: which pages are asked for, with which query, and when the listing ends.

Most tests drive ``paginate`` with a canned ``fetch`` (the subject is our own
mapping of responses to pages); the ``*_over_a_real_socket`` tests run each
style against ``FakeUpstream`` through the real aiohttp and httpx transports.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from multidict import CIMultiDict

from interlink.client import Cursor, LinkHeader, PageNumber
from interlink.client._models import Request, Response
from interlink.client._pagination import Fetch, PaginationStyle, paginate
from interlink.client._transport import AiohttpTransport, HttpxTransport
from interlink.core.errors import ClientError, ConfigError, HttpStatusError, ResponseValidationError
from interlink.testing import FakeUpstream, Received, Reply

API = "https://api.example/v1/items"
Params = list[tuple[str, str]]


def page(
    url: str, body: Any = None, *, links: Sequence[str] = (), content: bytes | None = None
) -> Response:
    """A 200 response for ``url`` with a JSON ``body`` and one ``Link`` header per entry."""
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    for link in links:
        headers.add("Link", link)
    raw = json.dumps(body).encode() if content is None else content
    return Response(status=200, headers=headers, content=raw, url=url, request=Request("GET", url))


class Recorder:
    """A canned ``fetch``: answers with ``answer(url, params)`` and records every call."""

    def __init__(self, answer: Callable[[str, Params], Response]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, Params]] = []

    async def __call__(self, url: str, params: Params) -> Response:
        self.calls.append((url, list(params)))
        return self.answer(url, params)


def by_url(pages: dict[str, Response]) -> Recorder:
    """Answers each full URL (query included) with its page."""

    def answer(url: str, params: Params) -> Response:
        full = url if not params else f"{url}?{'&'.join(f'{k}={v}' for k, v in params)}"
        return pages[full]

    return Recorder(answer)


def by_param(name: str, pages: dict[str | None, Any]) -> Recorder:
    """Answers with the body ``pages[value of the query parameter name]`` (None when absent)."""

    def answer(url: str, params: Params) -> Response:
        values = [v for k, v in params if k == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {params}"
        return page(url, pages[values[0] if values else None])

    return Recorder(answer)


async def collect(
    fetch: Fetch,
    style: PaginationStyle,
    *,
    url: str = API,
    params: Params | None = None,
    max_pages: int | None = None,
) -> list[Any]:
    return [item async for item in paginate(fetch, url, params or [], style, max_pages=max_pages)]


# -- Link header ------------------------------------------------------------------------


async def test_link_header_follows_next_until_the_last_page() -> None:
    fetch = by_url(
        {
            f"{API}?state=open": page(
                f"{API}?state=open",
                [1, 2],
                links=[
                    f'<{API}?state=open&page=2>; rel="next", <{API}?state=open&page=3>; rel="last"'
                ],
            ),
            f"{API}?state=open&page=2": page(
                f"{API}?state=open&page=2",
                [3, 4],
                links=[f'<{API}?state=open>; rel="prev", <{API}?state=open&page=3>; rel="next"'],
            ),
            f"{API}?state=open&page=3": page(
                f"{API}?state=open&page=3", [5], links=[f'<{API}?state=open>; rel="first"']
            ),
        }
    )
    assert await collect(fetch, LinkHeader(), params=[("state", "open")]) == [1, 2, 3, 4, 5]
    # The first request carries the caller's params; next URLs already hold theirs.
    assert fetch.calls == [
        (API, [("state", "open")]),
        (f"{API}?state=open&page=2", []),
        (f"{API}?state=open&page=3", []),
    ]


async def test_link_header_finds_next_among_several_rel_values_and_quoted_parameters() -> None:
    link = (
        f'<{API}?page=9>; title="last, or; not"; rel="last", '
        f'<{API}?p=1;x>; rel=prev; title="a \\"quoted\\" <{API}?page=7>, rel=next", '
        f'<{API}?page=2>; type="application/json"; rel="prefetch NEXT"'
    )
    fetch = by_url(
        {
            API: page(API, ["a"], links=[link]),
            f"{API}?page=2": page(f"{API}?page=2", ["b"]),
        }
    )
    assert await collect(fetch, LinkHeader()) == ["a", "b"]
    assert fetch.calls[1] == (f"{API}?page=2", [])


async def test_link_header_tolerates_spaces_around_its_parameters() -> None:
    fetch = by_url(
        {
            API: page(
                API,
                [1],
                links=[f'<{API}?page=2> ; rel =  "next" ;title=x'],
            ),
            f"{API}?page=2": page(f"{API}?page=2", [2]),
        }
    )
    assert await collect(fetch, LinkHeader()) == [1, 2]


async def test_link_header_reads_links_spread_over_several_header_lines() -> None:
    fetch = by_url(
        {
            API: page(API, [1], links=[f'<{API}?page=9>; rel="last"', f"<{API}?page=2>; rel=next"]),
            f"{API}?page=2": page(f"{API}?page=2", [2]),
        }
    )
    assert await collect(fetch, LinkHeader()) == [1, 2]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("?page=2", "https://api.example/v1/items?page=2"),
        ("/v2/items?page=2", "https://api.example/v2/items?page=2"),
        ("items?page=2", "https://api.example/v1/items?page=2"),
        ("//api.example/v1/items?page=2", "https://api.example/v1/items?page=2"),
    ],
)
async def test_relative_next_links_are_resolved_against_the_page_url(
    target: str, expected: str
) -> None:
    fetch = by_url(
        {
            f"{API}?page=1": page(f"{API}?page=1", [1], links=[f'<{target}>; rel="next"']),
            expected: page(expected, [2]),
        }
    )
    assert await collect(fetch, LinkHeader(), params=[("page", "1")]) == [1, 2]
    assert fetch.calls[1] == (expected, [])


async def test_a_next_link_back_to_an_earlier_page_raises_a_client_error_naming_it() -> None:
    fetch = by_url(
        {
            API: page(API, [1], links=[f'<{API}?page=2>; rel="next"']),
            f"{API}?page=2": page(f"{API}?page=2", [2], links=[f'<{API}>; rel="next"']),
        }
    )
    items = paginate(fetch, API, [], LinkHeader(), max_pages=None)
    assert [await anext(items), await anext(items)] == [1, 2]  # delivered before the loop shows
    with pytest.raises(ClientError, match="points back to an earlier page") as caught:
        await anext(items)
    assert caught.value.url == API
    assert API in str(caught.value)
    assert caught.value.retryable is False
    assert len(fetch.calls) == 2


async def test_a_next_link_to_the_same_page_is_a_loop_too() -> None:
    fetch = by_url({API: page(API, [1], links=[f'<{API}>; rel="next"'])})
    with pytest.raises(ClientError, match="earlier page"):
        await collect(fetch, LinkHeader())


async def test_the_loop_error_redacts_secrets_in_the_url() -> None:
    looping = f"{API}?api_key=hunter2&page=1"
    fetch = by_url({looping: page(looping, [1], links=[f'<{looping}>; rel="next"'])})
    with pytest.raises(ClientError) as caught:
        await collect(fetch, LinkHeader(), url=looping)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in caught.value.url


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/v1/items?page=2",
        "http://api.example/v1/items?page=2",
        "https://api.example:8443/v1/items?page=2",
        "https://api.example:bad/items",
    ],
)
async def test_a_next_link_to_another_origin_is_refused(target: str) -> None:
    fetch = by_url({API: page(API, [1], links=[f"<{target}>; rel=next"])})
    with pytest.raises(ClientError, match=r"leaves https://api\.example; pass LinkHeader"):
        await collect(fetch, LinkHeader())
    assert len(fetch.calls) == 1


async def test_a_next_link_to_another_origin_is_followed_when_allowed() -> None:
    other = "https://cdn.example/items?page=2"
    fetch = by_url({API: page(API, [1], links=[f"<{other}>; rel=next"]), other: page(other, [2])})
    assert await collect(fetch, LinkHeader(allow_other_origins=True)) == [1, 2]


async def test_default_ports_are_the_same_origin() -> None:
    explicit = "https://api.example:443/v1/items?page=2"
    fetch = by_url(
        {API: page(API, [1], links=[f"<{explicit}>; rel=next"]), explicit: page(explicit, [2])}
    )
    assert await collect(fetch, LinkHeader()) == [1, 2]


async def test_link_header_reads_items_from_a_path_when_given_one() -> None:
    fetch = by_url(
        {
            API: page(API, {"result": {"items": [1]}}, links=[f"<{API}?page=2>; rel=next"]),
            f"{API}?page=2": page(f"{API}?page=2", {"result": {"items": [2]}}),
        }
    )
    assert await collect(fetch, LinkHeader(items="result.items")) == [1, 2]


@pytest.mark.parametrize(
    "link",
    ["garbage", f"{API}?page=2; rel=next", f"<{API}?page=2; rel=next", f"<{API}?page=2>; rel", ""],
)
async def test_malformed_or_missing_next_links_end_the_listing_quietly(link: str) -> None:
    fetch = by_url({API: page(API, [1], links=[link])})
    assert await collect(fetch, LinkHeader()) == [1]
    assert len(fetch.calls) == 1


async def test_a_link_without_rel_next_ends_the_listing() -> None:
    fetch = by_url({API: page(API, [1], links=[f"<{API}?page=2>; rel=last; anchor"])})
    assert await collect(fetch, LinkHeader()) == [1]


async def test_a_body_that_is_not_a_list_names_what_it_is() -> None:
    fetch = by_url({API: page(API, {"data": [1], "next": None})})
    with pytest.raises(ResponseValidationError) as caught:
        await collect(fetch, LinkHeader())
    message = str(caught.value)
    assert "(body): expected a list of items" in message
    assert "an object with keys ['data', 'next']" in message
    assert caught.value.errors == [
        ("(body)", "a list of items", "an object with keys ['data', 'next']")
    ]


# -- Cursor -----------------------------------------------------------------------------


async def test_cursor_from_a_nested_path_is_sent_back_until_it_is_null() -> None:
    fetch = by_param(
        "cursor",
        {
            None: {"data": [1, 2], "meta": {"paging": {"next": "c2"}}},
            "c2": {"data": [3], "meta": {"paging": {"next": "c3"}}},
            "c3": {"data": [4], "meta": {"paging": {"next": None}}},
        },
    )
    items = await collect(
        fetch, Cursor(next_cursor="meta.paging.next"), params=[("filter", "x"), ("limit", "2")]
    )
    assert items == [1, 2, 3, 4]
    assert [params for _, params in fetch.calls] == [
        [("filter", "x"), ("limit", "2")],
        [("filter", "x"), ("limit", "2"), ("cursor", "c2")],
        [("filter", "x"), ("limit", "2"), ("cursor", "c3")],
    ]
    assert {url for url, _ in fetch.calls} == {API}


@pytest.mark.parametrize(
    "last_page",
    [{"items": [9]}, {"items": [9], "next_cursor": None}, {"items": [9], "next_cursor": ""}],
    ids=["absent", "null", "empty"],
)
async def test_an_absent_null_or_empty_cursor_ends_the_listing(last_page: dict[str, Any]) -> None:
    fetch = by_param("cursor", {None: {"items": [8], "next_cursor": "a"}, "a": last_page})
    assert await collect(fetch, Cursor(items="items")) == [8, 9]
    assert len(fetch.calls) == 2


async def test_a_cursor_the_caller_started_from_is_replaced_not_repeated() -> None:
    fetch = by_param(
        "after",
        {"start": {"data": [1], "next": 17}, "17": {"data": [2], "next": None}},
    )
    items = await collect(
        fetch,
        Cursor(cursor_param="after", next_cursor="next"),
        params=[("after", "start"), ("q", "z")],
    )
    assert items == [1, 2]
    assert fetch.calls[1][1] == [("q", "z"), ("after", "17")]  # an integer cursor goes as text


async def test_an_empty_page_with_a_cursor_is_not_the_end() -> None:
    # Slack and others may return fewer items than asked, even none, with more to come.
    fetch = by_param(
        "cursor",
        {None: {"data": [], "next_cursor": "a"}, "a": {"data": [1], "next_cursor": None}},
    )
    assert await collect(fetch, Cursor()) == [1]


async def test_a_cursor_seen_before_raises_a_client_error_naming_the_url() -> None:
    fetch = by_param(
        "cursor",
        {None: {"data": [1], "next_cursor": "a"}, "a": {"data": [2], "next_cursor": "a"}},
    )
    with pytest.raises(ClientError, match="cursor already used") as caught:
        await collect(fetch, Cursor(), params=[("token", "s3cret")])
    assert caught.value.url == f"{API}?token=REDACTED&cursor=a"
    assert "s3cret" not in str(caught.value)


async def test_returning_to_the_starting_cursor_is_a_loop() -> None:
    fetch = by_param("cursor", {"a": {"data": [1], "next_cursor": "a"}})
    with pytest.raises(ClientError, match="cursor already used"):
        await collect(fetch, Cursor(), params=[("cursor", "a")])


@pytest.mark.parametrize(
    ("cursor", "found"),
    [
        ({"id": 3}, "an object with keys ['id']"),
        ([1], "a list of 1"),
        (True, "a boolean"),
        (1.5, "a number"),
    ],
)
async def test_a_cursor_that_is_not_text_or_integer_is_a_validation_error(
    cursor: Any, found: str
) -> None:
    fetch = by_param("cursor", {None: {"data": [1], "page": {"next": cursor}}})
    with pytest.raises(
        ResponseValidationError, match=r"page\.next: expected a string or integer cursor"
    ) as caught:
        await collect(fetch, Cursor(next_cursor="page.next"))
    assert caught.value.errors[0][0] == "page.next"
    assert caught.value.errors[0][2] == found


# -- Page number ------------------------------------------------------------------------


async def test_page_numbers_count_up_until_an_empty_page() -> None:
    fetch = by_param("page", {"1": {"data": [1, 2]}, "2": {"data": [3]}, "3": {"data": []}})
    assert await collect(fetch, PageNumber()) == [1, 2, 3]
    assert [params for _, params in fetch.calls] == [
        [("page", "1")],
        [("page", "2")],
        [("page", "3")],
    ]


async def test_zero_based_page_numbers_start_at_zero() -> None:
    fetch = by_param("p", {"0": [1], "1": [2], "2": []})
    assert await collect(fetch, PageNumber(page_param="p", start=0, items=None)) == [1, 2]


async def test_the_page_size_goes_with_every_request_and_params_are_replaced_not_repeated() -> None:
    fetch = by_param("page", {"1": {"data": [1]}, "2": {"data": []}})
    await collect(
        fetch,
        PageNumber(size_param="per_page", size=50),
        params=[("sort", "asc"), ("page", "7"), ("per_page", "3"), ("tag", "a"), ("tag", "b")],
    )
    assert [params for _, params in fetch.calls] == [
        [("sort", "asc"), ("tag", "a"), ("tag", "b"), ("page", "1"), ("per_page", "50")],
        [("sort", "asc"), ("tag", "a"), ("tag", "b"), ("page", "2"), ("per_page", "50")],
    ]


@pytest.mark.parametrize("total", [2, "2"])
async def test_total_pages_ends_the_listing_without_asking_for_an_empty_page(total: Any) -> None:
    fetch = by_param(
        "page",
        {
            "1": {"data": [1], "meta": {"pages": total}},
            "2": {"data": [2], "meta": {"pages": total}},
        },
    )
    assert await collect(fetch, PageNumber(total_pages="meta.pages")) == [1, 2]
    assert len(fetch.calls) == 2


async def test_total_pages_counts_pages_when_numbering_starts_at_zero() -> None:
    fetch = by_param("page", {"0": {"data": [1], "pages": 2}, "1": {"data": [2], "pages": 2}})
    assert await collect(fetch, PageNumber(start=0, total_pages="pages")) == [1, 2]
    assert len(fetch.calls) == 2


async def test_a_null_total_pages_falls_back_to_the_empty_page() -> None:
    fetch = by_param(
        "page",
        {"1": {"data": [1], "pages": None}, "2": {"data": [2], "pages": None}, "3": {"data": []}},
    )
    assert await collect(fetch, PageNumber(total_pages="pages")) == [1, 2]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"data": [1], "meta": {}}, "nothing: meta is an object with keys [], without 'pages'"),
        ({"data": [1]}, "nothing: the body is an object with keys ['data'], without 'meta'"),
        ({"data": [1], "meta": {"pages": "two"}}, "a string"),
        ({"data": [1], "meta": {"pages": True}}, "a boolean"),
    ],
)
async def test_a_total_pages_that_is_missing_or_not_a_number_is_a_validation_error(
    body: dict[str, Any], found: str
) -> None:
    fetch = by_param("page", {"1": body})
    with pytest.raises(
        ResponseValidationError, match=r"meta\.pages: expected the number of pages"
    ) as caught:
        await collect(fetch, PageNumber(total_pages="meta.pages"))
    assert caught.value.errors == [
        ("meta.pages", "the number of pages (an integer or null)", found)
    ]


# -- Every style ------------------------------------------------------------------------

ENDLESS: list[tuple[str, PaginationStyle, Callable[[], Recorder]]] = [
    (
        "link",
        LinkHeader(),
        lambda: Recorder(lambda url, _: page(url, [url], links=[f"<{url}/next>; rel=next"])),
    ),
    (
        "cursor",
        Cursor(),
        lambda: Recorder(lambda url, params: page(url, {"data": [1], "next_cursor": f"{params}+"})),
    ),
    ("page", PageNumber(), lambda: Recorder(lambda url, _: page(url, {"data": [1]}))),
]


@pytest.mark.parametrize(
    ("style", "make"), [(s, m) for _, s, m in ENDLESS], ids=[n for n, _, _ in ENDLESS]
)
async def test_max_pages_stops_after_that_many_pages(
    style: PaginationStyle, make: Callable[[], Recorder]
) -> None:
    fetch = make()
    items = await collect(fetch, style, max_pages=2)
    assert len(items) == 2
    assert len(fetch.calls) == 2


async def test_pages_are_fetched_only_as_items_are_taken() -> None:
    fetch = by_param("page", {"1": {"data": [1, 2]}, "2": {"data": [3]}, "3": {"data": []}})
    items = paginate(fetch, API, [], PageNumber(), max_pages=None)
    assert await anext(items) == 1
    assert await anext(items) == 2
    assert len(fetch.calls) == 1
    assert await anext(items) == 3
    assert len(fetch.calls) == 2
    await items.aclose()


@pytest.mark.parametrize(
    ("style", "body", "where", "found"),
    [
        (
            PageNumber(),
            {"items": [1]},
            "data",
            "nothing: the body is an object with keys ['items'], without 'data'",
        ),
        (
            Cursor(items="result.rows"),
            {"result": []},
            "result.rows",
            "nothing: result is a list of 0, without 'rows'",
        ),
        (Cursor(), {"data": {"a": 1}}, "data", "an object with keys ['a']"),
        (PageNumber(), {"data": None}, "data", "null"),
        (PageNumber(), {"data": "x"}, "data", "a string"),
        (PageNumber(items=None), 5, "(body)", "a number"),
        (
            LinkHeader(items="data"),
            {f"k{i:02}": i for i in range(12)},
            "data",
            "nothing: the body is an object with keys ['k00', 'k01', 'k02', 'k03', 'k04', "
            "'k05', 'k06', 'k07', 'k08', 'k09', ...], without 'data'",
        ),
    ],
)
async def test_items_missing_or_not_a_list_is_a_validation_error_naming_path_and_finding(
    style: PaginationStyle, body: Any, where: str, found: str
) -> None:
    fetch = Recorder(lambda url, _: page(url, body))
    with pytest.raises(ResponseValidationError) as caught:
        await collect(fetch, style)
    assert caught.value.errors == [(where, "a list of items", found)]
    url = caught.value.url
    assert (
        str(caught.value)
        == f"page 1 of GET {url}: {where}: expected a list of items, found {found}"
    )
    assert caught.value.method == "GET"
    assert url == (f"{API}?page=1" if isinstance(style, PageNumber) else API)


async def test_a_body_that_is_not_json_is_a_validation_error() -> None:
    fetch = Recorder(lambda url, _: page(url, content=b"<html>oops</html>"))
    with pytest.raises(
        ResponseValidationError,
        match=r"\(body\): expected JSON, found 17 bytes of application/json",
    ):
        await collect(fetch, PageNumber())


@pytest.mark.parametrize(
    "style", [PageNumber(), Cursor(), LinkHeader()], ids=["page", "cursor", "link"]
)
async def test_an_empty_body_is_an_empty_last_page(style: PaginationStyle) -> None:
    fetch = Recorder(lambda url, _: page(url, content=b""))
    assert await collect(fetch, style) == []
    assert len(fetch.calls) == 1


async def test_errors_from_fetch_pass_through_untouched() -> None:
    error = HttpStatusError("GET /items: 404", status=404, method="GET", url=API)

    async def fetch(url: str, params: Params) -> Response:
        raise error

    with pytest.raises(HttpStatusError) as caught:
        await collect(fetch, PageNumber())
    assert caught.value is error


# -- Bad arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LinkHeader(items=""), r"LinkHeader\(items=...\) must be None or a dotted path"),
        (
            lambda: Cursor(cursor_param=""),
            r"Cursor\(cursor_param=...\) must be a non-empty query parameter name, got ''",
        ),
        (lambda: Cursor(cursor_param=None), r"Cursor\(cursor_param=...\) must be a non-empty"),
        (lambda: Cursor(next_cursor=""), r"Cursor\(next_cursor=...\) must be a dotted path"),
        (lambda: Cursor(next_cursor=None), r"Cursor\(next_cursor=...\) must be a dotted path"),
        (lambda: Cursor(next_cursor="meta..next"), r"got 'meta\.\.next'"),
        (lambda: Cursor(items=".data"), r"Cursor\(items=...\) must be None or a dotted path"),
        (lambda: PageNumber(page_param=""), r"PageNumber\(page_param=...\) must be a non-empty"),
        (lambda: PageNumber(start=-1), r"PageNumber\(start=...\) must be an integer >= 0, got -1"),
        (lambda: PageNumber(start=True), r"start=...\) must be an integer >= 0, got True"),
        (lambda: PageNumber(start=1.5), r"start=...\) must be an integer >= 0, got 1.5"),
        (lambda: PageNumber(size=10), r"size_param=..., size=...\) go together"),
        (lambda: PageNumber(size_param="per_page"), r"go together.*size=None"),
        (
            lambda: PageNumber(size_param="per_page", size=0),
            r"PageNumber\(size=...\) must be an integer >= 1, got 0",
        ),
        (
            lambda: PageNumber(size_param="per_page", size=False),
            r"size=...\) must be an integer >= 1, got False",
        ),
        (
            lambda: PageNumber(size_param="", size=5),
            r"PageNumber\(size_param=...\) must be a non-empty",
        ),
        (
            lambda: PageNumber(size_param="page", size=5),
            r"must differ from page_param, both are 'page'",
        ),
        (
            lambda: PageNumber(total_pages="meta."),
            r"PageNumber\(total_pages=...\) must be None or a dotted path",
        ),
        (lambda: PageNumber(items=""), r"PageNumber\(items=...\)"),
    ],
)
def test_bad_style_arguments_are_config_errors_naming_the_argument(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


@pytest.mark.parametrize("max_pages", [0, -1, True, 2.0])
async def test_max_pages_below_one_or_not_an_integer_is_a_config_error(max_pages: Any) -> None:
    fetch = Recorder(lambda url, _: page(url, {"data": [1]}))
    with pytest.raises(ConfigError, match=r"max_pages=...\) must be None or an integer >= 1"):
        await collect(fetch, PageNumber(), max_pages=max_pages)
    assert fetch.calls == []


async def test_a_style_that_is_not_one_of_the_three_is_a_config_error() -> None:
    fetch = Recorder(lambda url, _: page(url, []))
    with pytest.raises(
        ConfigError, match=r"must be LinkHeader\(\), Cursor\(\) or PageNumber\(\), got 'page'"
    ):
        await collect(fetch, "page")  # type: ignore[arg-type]
    assert fetch.calls == []


# -- Over a real socket -----------------------------------------------------------------


@pytest.fixture(params=["aiohttp", "httpx"])
async def fetch(request: pytest.FixtureRequest) -> AsyncIterator[Fetch]:
    """One GET through a real transport, as ``ApiClient`` runs it minus the pipeline."""
    transport = AiohttpTransport() if request.param == "aiohttp" else HttpxTransport()

    async def get(url: str, params: Params) -> Response:
        return await transport.send(Request("GET", url, params=list(params)))

    yield get
    await transport.aclose()


def query_pairs(received: Received) -> Params:
    return list(received.query.items())


async def test_link_header_pages_over_a_real_socket(fetch: Fetch) -> None:
    def items(request: Received) -> Reply:
        number = int(request.query.get("page", "1"))
        links = [f'</items?state=open&page={number + 1}>; rel="next"'] if number < 3 else []
        links.append('</items?state=open&page=1>; rel="first"')
        return Reply(json=[f"item{number}"], headers=[("Link", link) for link in links])

    async with FakeUpstream() as upstream:
        route = upstream.route("GET", "/items").reply(items)
        got = [
            item
            async for item in paginate(
                fetch,
                f"{upstream.url}/items",
                [("state", "open")],
                LinkHeader(),
                max_pages=None,
            )
        ]
    assert got == ["item1", "item2", "item3"]
    assert [query_pairs(r) for r in route.requests] == [
        [("state", "open")],
        [("state", "open"), ("page", "2")],
        [("state", "open"), ("page", "3")],
    ]


async def test_a_link_loop_over_a_real_socket_stops_with_the_url(
    fetch: Fetch,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.route("GET", "/items").reply(
            Reply(json=[1], headers={"Link": "</items?page=2>; rel=next"})
        )
        with pytest.raises(
            ClientError,
            match=r"points back to an earlier page: GET http://127\.0\.0\.1:\d+/items\?page=2",
        ):
            await collect(fetch, LinkHeader(), url=f"{upstream.url}/items")
        assert len(upstream.received("GET", "/items")) == 2


async def test_cursor_pages_over_a_real_socket(fetch: Fetch) -> None:
    pages = {None: ("c1", [1, 2]), "c1": ("c2", [3]), "c2": (None, [4])}

    def items(request: Received) -> Reply:
        following, rows = pages[request.query.get("cursor")]
        return Reply(json={"result": {"rows": rows}, "meta": {"next": following}})

    async with FakeUpstream() as upstream:
        route = upstream.route("GET", "/rows").reply(items)
        got = await collect(
            fetch,
            Cursor(next_cursor="meta.next", items="result.rows"),
            url=f"{upstream.url}/rows",
            params=[("filter", "red"), ("limit", "2")],
        )
    assert got == [1, 2, 3, 4]
    assert [query_pairs(r) for r in route.requests] == [
        [("filter", "red"), ("limit", "2")],
        [("filter", "red"), ("limit", "2"), ("cursor", "c1")],
        [("filter", "red"), ("limit", "2"), ("cursor", "c2")],
    ]


async def test_page_numbers_over_a_real_socket(fetch: Fetch) -> None:
    def items(request: Received) -> Reply:
        number = int(request.query["page"])
        return Reply(json={"data": [number * 10], "total_pages": 3})

    async with FakeUpstream() as upstream:
        route = upstream.route("GET", "/things").reply(items)
        got = await collect(
            fetch,
            PageNumber(size_param="per_page", size=1, total_pages="total_pages"),
            url=f"{upstream.url}/things",
            params=[("q", "a b")],
        )
    assert got == [10, 20, 30]
    assert [query_pairs(r) for r in route.requests] == [
        [("q", "a b"), ("page", str(n)), ("per_page", "1")] for n in (1, 2, 3)
    ]
