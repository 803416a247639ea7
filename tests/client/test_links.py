"""RFC 8288 Link headers: every link and rel read, however the header is spelled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from interlink.client._links import next_link, origin, origin_text, parse_link_header


def test_every_link_of_a_github_style_header_is_read_with_its_rels() -> None:
    header = (
        '<https://api.github.com/repos/o/r/issues?page=2>; rel="next", '
        '<https://api.github.com/repos/o/r/issues?page=5>; rel="last"'
    )
    assert parse_link_header(header) == [
        ("https://api.github.com/repos/o/r/issues?page=2", {"next"}),
        ("https://api.github.com/repos/o/r/issues?page=5", {"last"}),
    ]


def test_targets_and_quoted_parameters_may_hold_commas_semicolons_and_escaped_quotes() -> None:
    header = (
        '</a?x=1,2;y>; title="one, two; \\"three\\""; rel="prev START", </b>; rel=Next; anchor=x'
    )
    assert parse_link_header(header) == [("/a?x=1,2;y", {"prev", "start"}), ("/b", {"next"})]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        ("no links here", []),
        ("<unclosed; rel=next", []),
        ("</only-target>", [("/only-target", set())]),
        ("</x>; rel", [("/x", set())]),
        ('</x>; rel="next', [("/x", {"next"})]),  # an unclosed quote runs to the end
    ],
)
def test_odd_headers_are_read_leniently(header: str, expected: list[tuple[str, set[str]]]) -> None:
    assert parse_link_header(header) == expected


def test_next_link_looks_through_every_link_header_of_a_response() -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("Link", '</first>; rel="first"')
    headers.add("link", '</second>; rel="next"')
    assert next_link(headers) == "/second"
    assert next_link(CIMultiDict()) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://API.example/v1", ("https", "api.example", 443)),
        ("https://api.example:443/v1", ("https", "api.example", 443)),
        ("http://127.0.0.1:8080/x", ("http", "127.0.0.1", 8080)),
        ("https://api.example:bad/x", ("https", "api.example", -1)),
        ("/relative", ("", "", None)),
    ],
)
def test_origin_is_scheme_host_and_effective_port(
    url: str, expected: tuple[str, str, int | None]
) -> None:
    assert origin(url) == expected


def test_origin_text_omits_the_default_port() -> None:
    assert origin_text(("https", "api.example", 443)) == "https://api.example"
    assert origin_text(("http", "127.0.0.1", 8080)) == "http://127.0.0.1:8080"


@given(st.text(alphabet='<>;,="\\ \tabrelnxt/?:', max_size=60) | st.text(max_size=60))
def test_parse_link_header_never_raises_and_targets_come_from_angle_brackets(header: str) -> None:
    for target, rels in parse_link_header(header):
        assert target in header
        assert ">" not in target  # a target ends at the first '>' after its '<'
        assert all(rel == rel.lower() and rel for rel in rels)
