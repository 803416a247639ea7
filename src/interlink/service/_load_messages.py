"""What a pydantic error in ``interlink.yaml`` means, said as "expected ..., found ...".

pydantic's own messages ("Input should be a valid integer, unable to parse
string as an integer") name neither the value found nor, for an unknown key,
the key that was meant. ``model_message`` rewrites each error from its type,
context and input; ``union_message`` makes one message of the branches of a
union that all refused a value; ``shown`` writes a found value short, in YAML's
words, and never a secret's.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from interlink.service._config import ServiceConfig

__all__ = [
    "Loc",
    "close_match",
    "field_type",
    "fields_at",
    "model_message",
    "shown",
    "union_message",
]

Loc = tuple[str | int, ...]

_EXCERPT = 60  # longest excerpt of a found value in a message, in characters


def close_match(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was probably meant to be: same letters in another case, or close."""
    known = list(candidates)
    for candidate in known:
        if candidate.lower() == str(word).lower():
            return candidate
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    return close[0] if close else None


def shown(value: object, *, secret: bool = False) -> str:
    """A found value as a message shows it: short, YAML words for YAML things, secrets hidden."""
    if value is None:
        return "nothing (an empty value)"
    if secret and value not in ("", [], {}):
        kinds: dict[type, str] = {
            str: "a string",
            list: "a list",
            dict: "a mapping",
            bool: "true or false",
            int: "a number",
            float: "a number",
        }
        kind = kinds.get(type(value), "a value")
        return f"{kind} (a secret: not shown)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list) and not value:
        return "an empty list"
    text = repr(value)
    if len(text) > _EXCERPT:
        text = text[: _EXCERPT - 3] + "..."
    return text


_KINDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}
_BOUNDS = {  # pydantic's error type: (its ctx key, the sign)
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def field_type(loc: Loc) -> Any:
    """The annotation the models give to ``loc`` (``None`` when the path leaves the models)."""
    annotation: Any = ServiceConfig
    for part in loc:
        annotation = _unwrap_optional(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return None
            annotation = info.annotation
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    return _unwrap_optional(annotation)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def fields_at(loc: Loc) -> list[str]:
    model = field_type(loc)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _number_kind(loc: Loc) -> str:
    return "an integer" if field_type(loc) is int else "a number"


def _quote_hint(value: object) -> str:
    if isinstance(value, bool):
        return " (YAML reads yes, no, on, off, true and false as booleans: put it in quotes)"
    if isinstance(value, int | float):
        return " (put it in quotes to make it a string)"
    return ""


def model_message(error: Any, loc: Loc, secret: bool) -> str:
    """What pydantic's ``error`` means, as "expected ..., found ..."."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    found = shown(value, secret=secret)
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        name = loc[-1]
        known = fields_at(loc[:-1])
        close = close_match(name, known)
        if close is not None:
            return f"unknown key {name!r} (did you mean {close!r}?)"
        return f"unknown key {name!r} (expected one of: {', '.join(known)})"
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error") or error["msg"])
        if secret and isinstance(value, str) and value:  # validators quote what they refuse
            message = message.replace(repr(value), "the secret (not shown)")
        return message
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        close = close_match(value, re.findall(r"'([^']*)'", expected))
        hint = f" (did you mean {close!r}?)" if close is not None and not secret else ""
        return f"expected {expected}, found {found}{hint}"
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        return f"expected {_number_kind(loc)} {sign} {ctx[name]}, found {found}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return f"expected a non-empty string, found {found}"
    if kind == "too_short":
        limit = ctx.get("min_length")
        return f"expected at least {limit} item{'' if limit == 1 else 's'}, found {found}"
    if kind in _KINDS:
        hint = _quote_hint(value) if kind == "string_type" and not secret else ""
        return f"expected {_KINDS[kind]}, found {found}{hint}"
    text = str(error["msg"])
    return f"{text[0].lower()}{text[1:]}, found {found}"


def union_message(kinds: list[str], value: object, secret: bool) -> str:
    """One message for the branches of a union that all refused ``value``."""
    wanted = [_KINDS.get(kind, kind) for kind in kinds]
    if set(wanted) == {"a string", "a number"}:  # the models' only str | float: a duration
        expected = 'a duration such as "30s" (or a number of seconds)'
    else:
        expected = " or ".join(dict.fromkeys(wanted))
    return f"expected {expected}, found {shown(value, secret=secret)}"
