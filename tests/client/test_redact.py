"""``redact_url``: secrets in a URL never reach an error, a repr, an event or a log line."""

from __future__ import annotations

import pytest

from interlink.client import redact_url
from interlink.client._redact import is_secret_param


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://bob:hunter2@api.example/v1?api_key=abc&page=2",
            "https://bob:REDACTED@api.example/v1?api_key=REDACTED&page=2",
        ),
        ("https://ghp_token123@github.com/org/repo", "https://REDACTED@github.com/org/repo"),
        ("https://bob:@api.example/", "https://bob:@api.example/"),
        (
            "https://api.example/x?TOKEN=t&Signature=s&sig=x",
            "https://api.example/x?TOKEN=REDACTED&Signature=REDACTED&sig=REDACTED",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=f00&X-Amz-Security-Token=t",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED",
        ),
        (
            "https://app.example/cb#access_token=t&state=s",
            "https://app.example/cb#access_token=REDACTED&state=s",
        ),
        (
            "https://api.example/x?refresh_token=r&client_secret=c&code=z",
            "https://api.example/x?refresh_token=REDACTED&client_secret=REDACTED&code=REDACTED",
        ),
    ],
)
def test_secrets_are_replaced_and_everything_else_kept(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_a_url_without_secrets_is_returned_byte_for_byte() -> None:
    url = "https://api.example/v1/items?q=a%20b&sort=name+asc&page=2#top"
    assert redact_url(url) == url


def test_empty_values_and_bare_names_are_left_alone() -> None:
    assert (
        redact_url("https://api.example/?api_key=&token&x=1")
        == "https://api.example/?api_key=&token&x=1"
    )


def test_a_percent_encoded_secret_name_is_still_recognised() -> None:
    assert (
        redact_url("https://api.example/?api%5Fkey=s") == "https://api.example/?api%5Fkey=REDACTED"
    )


@pytest.mark.parametrize(
    "url", ["http://[::1", "not a url at all", "", "//host?token=t", "?apikey=k"]
)
def test_malformed_urls_never_raise_and_are_still_redacted(url: str) -> None:
    redacted = redact_url(url)
    assert "=t" not in redacted.replace("=REDACTED", "")
    assert "apikey=k" not in redacted


def test_a_non_string_is_turned_into_one() -> None:
    class Url:
        def __str__(self) -> str:
            return "https://u:p@h/"

    assert redact_url(Url()) == "https://u:REDACTED@h/"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["api_key", "APIKEY", "password", "private_key", "session-token", "client.secret", "key"],
)
def test_secret_looking_names(name: str) -> None:
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["page", "monkey", "tokens", "sort", "q", "keyword"])
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret_param(name)
