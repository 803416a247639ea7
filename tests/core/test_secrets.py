from __future__ import annotations

import pickle

import pytest

from interlink.core import Secret, reveal


def test_a_secret_never_shows_its_value() -> None:
    token = Secret("sk_live_abc123")
    for shown in (
        repr(token),
        str(token),
        f"{token}",
        f"{token:>30}",
        "%s" % token,  # noqa: UP031
        [token].__repr__(),
    ):
        assert "abc123" not in shown
    assert repr(token) == "Secret('**********')"


def test_reveal_gives_the_value_only_where_asked() -> None:
    token = Secret("sk_live_abc123")
    assert token.reveal() == "sk_live_abc123"
    assert reveal(token) == "sk_live_abc123"
    assert reveal("plain") == "plain"
    assert Secret(token).reveal() == "sk_live_abc123"  # wrapping twice keeps one layer


def test_secrets_compare_by_value_and_hash_without_it() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("abc")) == hash(Secret("xyz"))  # same length: the hash says nothing more
    assert len({Secret("a"), Secret("a")}) == 1


def test_an_empty_secret_is_falsy() -> None:
    assert not Secret("")
    assert Secret("x")


def test_a_secret_survives_pickling_for_worker_processes() -> None:
    assert pickle.loads(pickle.dumps(Secret("abc"))).reveal() == "abc"


def test_only_strings_can_be_secrets_and_the_error_does_not_echo_the_value() -> None:
    with pytest.raises(TypeError, match="a Secret holds a str, got bytes") as caught:
        Secret(b"abc123")  # type: ignore[arg-type]
    assert "abc123" not in str(caught.value)
