"""Cleaners and key case: what each does to a string, option checking, idempotent key cases."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.core.errors import ConfigError
from interlink.transform._clean import CLEANERS, KEY_CASES, make_cleaner
from interlink.transform._errors import Invalid

LONE_SURROGATE = json.loads('"\\udcff"')


def config_error(name: str, options: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        make_cleaner(name, options)
    return str(info.value)


# --- names and options -----------------------------------------------------------------------


def test_the_cleaners_are_exactly_the_documented_seven() -> None:
    assert set(CLEANERS) == {
        "strip",
        "collapse_spaces",
        "lower",
        "upper",
        "printable",
        "allow",
        "max_length",
    }


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("strp", "strip"),
        ("collapse", "collapse_spaces"),
        ("maxlength", "max_length"),
        ("lowercase", "lower"),
        ("allowed", "allow"),
    ],
)
def test_an_unknown_cleaner_suggests_the_closest_name(name: str, suggestion: str) -> None:
    message = config_error(name)
    assert f"unknown cleaner {name!r}" in message
    assert f"did you mean {suggestion!r}?" in message


def test_an_unknown_cleaner_with_no_close_name_lists_them_all() -> None:
    assert (
        "unknown cleaner 'slugify' (expected one of: allow, collapse_spaces, lower, max_length, "
        "printable, strip, upper)" in config_error("slugify")
    )


@pytest.mark.parametrize("name", ["strip", "collapse_spaces", "lower", "upper", "printable"])
def test_cleaners_without_options_refuse_any(name: str) -> None:
    assert f"cleaner {name!r} takes no options; got option 'x'" in config_error(name, {"x": 1})
    assert f"cleaner {name!r} takes no options; got 5" in config_error(name, {"value": 5})
    assert make_cleaner(name, {"value": None})(" a ") in {"a", " a ", " A "}


def test_an_unknown_option_suggests_the_right_one() -> None:
    assert "cleaner 'allow': unknown option 'char' (did you mean 'chars'?)" in config_error(
        "allow", {"char": "a-z"}
    )
    assert "cleaner 'max_length': unknown option 'len'" in config_error(
        "max_length", {"length": 3, "len": 3}
    )


def test_options_must_be_a_mapping() -> None:
    assert "options must be a mapping, got int 5" in config_error("max_length", 5)  # type: ignore[arg-type]


# --- the option-less cleaners -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("strip", "  a b \t\n", "a b"),
        ("strip", "\u00a0x\u3000", "x"),
        ("strip", "", ""),
        ("collapse_spaces", "  a \t\n b\u00a0\u2003c  ", "a b c"),
        ("collapse_spaces", "one\r\ntwo", "one two"),
        ("collapse_spaces", "   ", ""),
        ("collapse_spaces", "a\u200bb", "a\u200bb"),  # zero-width space is not whitespace
        ("lower", "ÄBC Straße", "äbc straße"),
        ("upper", "straße", "STRASSE"),
        ("upper", "abc" + LONE_SURROGATE, "ABC\udcff"),
    ],
)
def test_simple_cleaners(name: str, value: str, expected: str) -> None:
    assert make_cleaner(name)(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("a\tb\nc\r\nd", "a b c  d"),  # each whitespace character becomes one space
        ("nbsp\u00a0here", "nbsp here"),
        ("line\u2028sep", "line sep"),
        ("nul\x00bell\x07del\x7f", "nulbelldel"),
        ("c1\x85\x9b", "c1 "),  # NEL is whitespace; CSI is a control character
        ("unit\x1fsep", "unitsep"),  # C0 separators are controls, not spaces
        ("\ufeffbom", "bom"),
        ("soft\u00adhyphen", "softhyphen"),
        ("rtl\u202eoverride\u202c", "rtloverride"),
        ("zero\u200bwidth", "zerowidth"),
        ("family \U0001f468\u200d\U0001f469\u200d\U0001f467", "family 👨\u200d👩\u200d👧"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),
        ("bad" + LONE_SURROGATE + "byte", "badbyte"),
        ("private\ue000use", "private\ue000use"),
        ("café ñ 日本", "café ñ 日本"),
    ],
)
def test_printable_drops_control_and_format_characters_and_spaces_whitespace(
    value: str, expected: str
) -> None:
    assert make_cleaner("printable")(value) == expected


def test_printable_returns_printable_text_unchanged() -> None:
    text = "already printable"
    assert make_cleaner("printable")(text) is text


@pytest.mark.parametrize("name", sorted(CLEANERS))
@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}, b"bytes"])
def test_every_cleaner_refuses_a_non_string(name: str, value: Any) -> None:
    options = {"allow": {"chars": "a-z"}, "max_length": {"length": 3}}.get(name)
    with pytest.raises(Invalid) as info:
        make_cleaner(name, options)(value)
    assert info.value.reason == "expected a string"
    assert info.value.value is value


# --- allow ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chars", "value", "expected"),
    [
        ("A-Za-z0-9 ", "Hello, World! #42", "Hello World 42"),
        ("a-z_.-", "user-name_1.x@Y", "user-name_.x"),
        ("0-9", "+49 (0) 170-123", "490170123"),
        ("\\]\\[a", "[a]b", "[a]"),
        ("^a", "a^b", "a^"),  # a leading ^ is a character here, not a negation
        ("\\d", "a1\u0662b", "1\u0662"),  # \d is any Unicode digit
        ("a-z", "ÄäZz", "z"),
        ("a-z", "", ""),
    ],
)
def test_allow_keeps_only_the_characters_of_the_class(
    chars: str, value: str, expected: str
) -> None:
    assert make_cleaner("allow", {"chars": chars})(value) == expected


def test_allow_takes_its_class_as_the_scalar_value() -> None:
    assert make_cleaner("allow", {"value": "a-c"})("abcdef") == "abc"
    assert "give 'chars' once" in config_error("allow", {"value": "a", "chars": "b"})


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({}, "cleaner 'allow' needs option 'chars'"),
        ({"chars": ""}, "option 'chars' must be a non-empty character-class body"),
        ({"chars": 5}, "got 5 (int)"),
        ({"chars": ["a"]}, "got ['a'] (list)"),
        ({"chars": "a]b"}, "has an unescaped ']'; write it as '\\]'"),
        ({"chars": "[a-z]"}, "has an unescaped '['"),
        ({"chars": "z-a"}, "is not a valid character class: bad character range z-a"),
        ({"chars": "a\\"}, "is not a valid character class"),
        ({"chars": "a--z"}, "is not a valid character class: Possible set difference"),
        ({"chars": "\\Q"}, "is not a valid character class: bad escape"),
    ],
)
def test_allow_refuses_a_bad_class_when_made(options: dict[str, Any], fragment: str) -> None:
    message = config_error("allow", options)
    assert message.startswith("cleaner 'allow'")
    assert fragment in message


# --- max_length -------------------------------------------------------------------------------


def test_max_length_truncates_to_n_code_points() -> None:
    step = make_cleaner("max_length", {"length": 5})
    assert step("abcdefgh") == "abcde"
    assert step("abc") == "abc"
    assert step("日本語のテキスト") == "日本語のテ"
    same = "12345"
    assert step(same) is same


def test_max_length_takes_its_length_as_the_scalar_value() -> None:
    assert make_cleaner("max_length", {"value": 2})("abc") == "ab"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({}, "cleaner 'max_length' needs option 'length'"),
        ({"length": 0}, "must be a whole number >= 1, got 0 (int)"),
        ({"length": -3}, "got -3 (int)"),
        ({"length": "50"}, "got '50' (str)"),
        ({"length": 2.5}, "got 2.5 (float)"),
        ({"length": True}, "got True (bool)"),
        ({"value": None}, "must be a whole number >= 1, got None (NoneType)"),
    ],
)
def test_max_length_refuses_a_bad_length_when_made(options: dict[str, Any], fragment: str) -> None:
    assert fragment in config_error("max_length", options)


# --- key case ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "camel", "snake", "pascal", "kebab"),
    [
        ("user_id", "userId", "user_id", "UserId", "user-id"),
        ("userId", "userId", "user_id", "UserId", "user-id"),
        ("UserID", "userId", "user_id", "UserId", "user-id"),
        ("HTTPStatus", "httpStatus", "http_status", "HttpStatus", "http-status"),
        ("getHTTPResponseCode", "getHttpResponseCode", "get_http_response_code",
         "GetHttpResponseCode", "get-http-response-code"),
        ("already", "already", "already", "Already", "already"),
        ("already_snake", "alreadySnake", "already_snake", "AlreadySnake", "already-snake"),
        ("Content-Type", "contentType", "content_type", "ContentType", "content-type"),
        ("first name", "firstName", "first_name", "FirstName", "first-name"),
        ("user--name", "userName", "user_name", "UserName", "user-name"),
        ("ID", "id", "id", "Id", "id"),
        ("address1Line", "address1Line", "address1_line", "Address1Line", "address1-line"),
        ("address_1", "address1", "address_1", "Address1", "address-1"),
        ("_id", "_id", "_id", "_Id", "_id"),
        ("__typename", "__typename", "__typename", "__Typename", "__typename"),
        ("_userId_", "_userId_", "_user_id_", "_UserId_", "_user-id_"),
        ("a_b_c", "aBc", "a_b_c", "Abc", "a-b-c"),
        ("aBC", "aBc", "a_bc", "ABc", "a-bc"),
        ("order.id", "order.id", "order.id", "Order.id", "order.id"),
        ("", "", "", "", ""),
        ("-", "-", "-", "-", "-"),
    ],
)  # fmt: skip
def test_key_cases(key: str, camel: str, snake: str, pascal: str, kebab: str) -> None:
    assert KEY_CASES["camel"](key) == camel
    assert KEY_CASES["snake"](key) == snake
    assert KEY_CASES["pascal"](key) == pascal
    assert KEY_CASES["kebab"](key) == kebab
    assert KEY_CASES["none"](key) is key


def test_key_case_names() -> None:
    assert set(KEY_CASES) == {"camel", "snake", "pascal", "kebab", "none"}


def test_key_case_conversion_is_cached_with_a_bound() -> None:
    camel = KEY_CASES["camel"]
    info = getattr(camel, "cache_info", None)
    assert info is not None
    assert info().maxsize is not None
    before = info().hits
    camel("some_repeated_key")
    camel("some_repeated_key")
    assert info().hits >= before + 1


keys = st.text(st.sampled_from("abzAZ09_- .ßİǅǆΣσς") | st.characters(exclude_categories=()))
words = st.lists(st.from_regex(r"\A[a-z][a-z0-9]+\Z"), min_size=1, max_size=5)


@pytest.mark.parametrize("case", sorted(KEY_CASES))
@settings(max_examples=200)
@given(key=keys)
def test_every_key_case_is_idempotent(case: str, key: str) -> None:
    convert = KEY_CASES[case]
    once = convert(key)
    assert convert(once) == once


@settings(max_examples=200)
@given(words)
def test_snake_and_camel_round_trip_for_words_of_two_or_more_letters(parts: list[str]) -> None:
    snake = "_".join(parts)
    camel = KEY_CASES["camel"](snake)
    assert KEY_CASES["snake"](camel) == snake
    assert KEY_CASES["kebab"](camel) == "-".join(parts)
    assert KEY_CASES["camel"](KEY_CASES["pascal"](snake)) == camel


# --- properties of the cleaners ---------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=())) | st.text()


@settings(max_examples=200)
@given(texts)
def test_collapse_spaces_leaves_single_inner_spaces_only(text: str) -> None:
    result = make_cleaner("collapse_spaces")(text)
    assert result == result.strip()
    assert "  " not in result
    assert not any(char.isspace() and char != " " for char in result)


@settings(max_examples=200)
@given(texts)
def test_printable_leaves_no_control_or_format_characters(text: str) -> None:
    result = make_cleaner("printable")(text)
    for char in result:
        assert char in " \u200c\u200d" or unicodedata.category(char) not in {"Cc", "Cf", "Cs"}
        assert char == " " or not char.isspace()
    assert make_cleaner("printable")(result) == result


@settings(max_examples=200)
@given(texts, st.integers(min_value=1, max_value=20))
def test_allow_and_max_length_never_give_more_than_asked(text: str, length: int) -> None:
    allowed = make_cleaner("allow", {"chars": "a-z0-9 "})(text)
    assert re.fullmatch(r"[a-z0-9 ]*", allowed)
    cut = make_cleaner("max_length", {"length": length})(text)
    assert len(cut) == min(length, len(text))
    assert text.startswith(cut)
