"""Cleaners (the ``clean:`` steps of a mapping field) and key case conversion (``keys: {case:}``).

A cleaner takes a string and returns a string: ``strip``, ``collapse_spaces``, ``lower``,
``upper``, ``printable``, ``allow`` (keep only the characters of a class, such as
``"A-Za-z0-9 "``) and ``max_length``. Like converters they are made once, when the mapping
loads, with every option checked then (``make_cleaner("allow", {"chars": "a-z"})``), and
raise only ``Invalid`` on a value (anything but a string).

``KEY_CASES`` rewrites the keys of a free-form object (metadata, headers) into one case:
``camel``, ``snake``, ``pascal``, ``kebab`` or ``none``. The acronym rule: **an acronym is
a word like any other**, written with only its first letter capitalised where the case
capitalises words. A key splits into words at ``_``, ``-`` and whitespace, before a
capital that follows anything but a capital (``userId`` -> user, Id) and before the last
capital of a run of capitals that a lower case letter follows (``HTTPStatus`` -> HTTP,
Status). So ``camel("UserID") == "userId"``, ``pascal("http_status") ==
"HttpStatus"``, ``snake("HTTPStatus") == "http_status"``. Digits stay in their word
(``address1`` stays one word). Leading and trailing underscores are kept (``_id`` and
``id`` are different keys). A consequence of the rule, kept on purpose: single-letter
words after the first read back as one acronym, so ``camel("a_b_c")`` is ``"aBc"``, which
``camel`` leaves alone the next time. Every case function is idempotent
(``camel(camel(k)) == camel(k)``), and results are cached, since the same keys repeat on
every record.

Written by hand because no library fits: pydantic's alias generators split only at
underscores for camel and pascal case (``to_camel("UserID") == "userid"``,
``to_pascal("userId") == "Userid"``), and the cleaners are a handful of ``str`` methods that
must be steps with options checked when the mapping loads.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from collections.abc import Callable
from typing import Any

from interlink.core.errors import ConfigError
from interlink.transform._convert import Step, _options, make_step
from interlink.transform._errors import Invalid

__all__ = ["CLEANERS", "KEY_CASES", "STR_METHODS", "make_cleaner"]

_EXPECTED = "expected a string"

# Whitespace that ``printable`` turns into a space: what ``str.isspace`` calls whitespace,
# except the C0 "information separators" (FS, GS, RS, US), which are control characters.
_NOT_SPACE = frozenset("\x1c\x1d\x1e\x1f")
# Format characters ``printable`` keeps: zero-width (non-)joiners are part of the spelling
# of Persian, Indic scripts and emoji sequences; every other format character is dropped.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def _no_options(name: str, options: dict[str, Any]) -> None:
    _options(name, options, (), kind="cleaner")


# --- the option-less cleaners -----------------------------------------------------------------


def _strip(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise Invalid(_EXPECTED, value)


def _collapse_spaces(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    raise Invalid(_EXPECTED, value)


def _lower(value: Any) -> str:
    if isinstance(value, str):
        return value.lower()
    raise Invalid(_EXPECTED, value)


def _upper(value: Any) -> str:
    if isinstance(value, str):
        return value.upper()
    raise Invalid(_EXPECTED, value)


def _printable(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(_EXPECTED, value)
    if value.isprintable():
        return value
    category = unicodedata.category
    kept: list[str] = []
    for char in value:
        if char.isprintable() or char in _KEEP_FORMAT:
            kept.append(char)
        elif char.isspace() and char not in _NOT_SPACE:
            kept.append(" ")
        elif category(char) not in _DROP_CATEGORIES:
            kept.append(char)  # private use and unassigned (say, emoji newer than Python)
    return "".join(kept)


def _simple(name: str, step: Step) -> Callable[[dict[str, Any]], Step]:
    def factory(options: dict[str, Any]) -> Step:
        _no_options(name, options)
        return step

    return factory


# --- allow ------------------------------------------------------------------------------------


def _make_allow(options: dict[str, Any]) -> Step:
    found = _options("allow", options, ("chars",), "chars", kind="cleaner")
    if "chars" not in found:
        raise ConfigError(
            "cleaner 'allow' needs option 'chars': the characters to keep, as a "
            "character-class body like 'A-Za-z0-9 _.-'"
        )
    chars = found["chars"]
    if not isinstance(chars, str) or not chars:
        raise ConfigError(
            "cleaner 'allow': option 'chars' must be a non-empty character-class body like "
            f"'A-Za-z0-9 _.-', got {chars!r} ({type(chars).__name__})"
        )
    escaped = False
    for char in chars:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "[]":
            raise ConfigError(
                f"cleaner 'allow': option 'chars' {chars!r} has an unescaped {char!r}; "
                f"write it as '\\{char}' (the value is the inside of [...], without brackets)"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            pattern = re.compile(f"[^{chars}]+")
    except (re.error, FutureWarning) as error:
        raise ConfigError(
            f"cleaner 'allow': option 'chars' {chars!r} is not a valid character class: {error}"
        ) from None
    sub = pattern.sub

    def allow(value: Any) -> str:
        if isinstance(value, str):
            return sub("", value)
        raise Invalid(_EXPECTED, value)

    return allow


# --- max_length -------------------------------------------------------------------------------


def _make_max_length(options: dict[str, Any]) -> Step:
    found = _options("max_length", options, ("length",), "length", kind="cleaner")
    if "length" not in found:
        raise ConfigError("cleaner 'max_length' needs option 'length': a whole number >= 1")
    length = found["length"]
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(
            "cleaner 'max_length': option 'length' must be a whole number >= 1, "
            f"got {length!r} ({type(length).__name__})"
        )

    def max_length(value: Any) -> str:
        if isinstance(value, str):
            return value[:length]
        raise Invalid(_EXPECTED, value)

    return max_length


# --- registry ---------------------------------------------------------------------------------

CLEANERS: dict[str, Callable[[dict[str, Any]], Step]] = {
    "strip": _simple("strip", _strip),
    "collapse_spaces": _simple("collapse_spaces", _collapse_spaces),
    "lower": _simple("lower", _lower),
    "upper": _simple("upper", _upper),
    "printable": _simple("printable", _printable),
    "allow": _make_allow,
    "max_length": _make_max_length,
}
"""Cleaner name -> factory: ``CLEANERS[name](options)`` checks the options, returns the step."""


def make_cleaner(name: str, options: dict[str, Any] | None = None) -> Step:
    """The cleaner step ``name`` with ``options``; ``ConfigError`` for a bad name or option.

    A scalar option (``{max_length: 50}`` in YAML) may come as ``{"value": 50}``.

    >>> make_cleaner("max_length", {"value": 3})("abcdef")
    'abc'
    """
    return make_step("cleaner", CLEANERS, name, options)


# --- key case ---------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s_\-]+")
_CACHE_SIZE = 4096


def _words(text: str) -> list[str]:
    """Split ``text`` into words: see the module docstring for the rule."""
    words: list[str] = []
    for chunk in _SEPARATORS.split(text):
        size = len(chunk)
        start = 0
        for index in range(1, size):
            if chunk[index].isupper() and (
                not chunk[index - 1].isupper() or (index + 1 < size and chunk[index + 1].islower())
            ):
                words.append(chunk[start:index])
                start = index
        if chunk:
            words.append(chunk[start:])
    return words


def _capitalised(word: str) -> str:
    # upper(), not title(): a titlecase letter (U+01C5) is neither upper nor lower case,
    # so it would not start a word when the result is split again.
    return word[:1].upper() + word[1:].lower()


def _render_snake(words: list[str]) -> str:
    return "_".join(word.lower() for word in words)


def _render_kebab(words: list[str]) -> str:
    return "-".join(word.lower() for word in words)


def _render_camel(words: list[str]) -> str:
    return words[0].lower() + "".join(_capitalised(word) for word in words[1:])


def _render_pascal(words: list[str]) -> str:
    return "".join(_capitalised(word) for word in words)


def _key_case(render: Callable[[list[str]], str]) -> Callable[[str], str]:
    def once(text: str) -> str:
        core = text.strip("_")
        words = _words(core)
        if not words:
            return text
        head = text[: len(text) - len(text.lstrip("_"))]
        tail = text[len(text.rstrip("_")) :] if core else ""
        return head + render(words) + tail

    @functools.lru_cache(maxsize=_CACHE_SIZE)
    def convert(text: str) -> str:
        # Applied until nothing changes, so that the result is stable however Unicode case
        # mapping behaves (``"ß".upper()`` is ``"SS"``); one round is enough for ordinary keys.
        result = once(text)
        for _ in range(8):
            again = once(result)
            if again == result:
                break
            result = again
        return result

    return convert


def _same(text: str) -> str:
    return text


KEY_CASES: dict[str, Callable[[str], str]] = {
    "camel": _key_case(_render_camel),
    "snake": _key_case(_render_snake),
    "pascal": _key_case(_render_pascal),
    "kebab": _key_case(_render_kebab),
    "none": _same,
}
"""Key case name -> function rewriting one key; every function is idempotent."""


STR_METHODS: dict[Step, str] = {_strip: "strip", _lower: "lower", _upper: "upper"}
"""Cleaners that are one ``str`` method: a compiled mapping calls the method on a ``str``."""
