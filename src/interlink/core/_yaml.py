"""YAML that remembers where each key and value was written, so that a mistake names its place.

PyYAML's ``safe_load`` returns plain values and forgets the marks; this loader
builds ``Located`` dicts and ``LocatedList`` lists instead, which read as plain
dicts and lists but also carry the line and column (both 1-based) of the
mapping or list itself, of each key and of each value. Two YAML traps are
closed on the way:

- a key written twice is a problem (YAML silently keeps the last one): with
  ``strict=True`` loading stops with a ``YamlError``; otherwise the first value
  is kept and the problem is recorded on the mapping (``Located.problems``), so
  that a caller can report it with every other mistake of the file;
- the source text of a plain scalar key is kept (``Located.texts``), so that a
  key written ``yes:``, ``off:`` or ``1:`` (YAML 1.1 reads them as a boolean or
  a number) can still be read as the string its author meant.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import yaml

__all__ = ["Located", "LocatedList", "Mark", "YamlError", "line_of", "load_yaml"]


class Mark(NamedTuple):
    """A place in the text: ``line`` and ``column``, both 1-based."""

    line: int
    column: int


class YamlError(Exception):
    """The text is not valid YAML (or, loading strictly, repeats a key): ``message`` and place."""

    def __init__(self, message: str, mark: Mark | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark

    @property
    def line(self) -> int | None:
        """The 1-based line of the problem, when known."""
        return None if self.mark is None else self.mark.line


class Located(dict[Any, Any]):
    """A mapping read from YAML, with the places it was written.

    ``mark`` is where the mapping starts, ``keys[k]`` where key ``k`` is
    written, ``values[k]`` where its value starts. ``texts`` holds the source
    text of plain scalar keys that YAML resolved to something other than a
    string (``yes`` -> ``True``, ``~`` -> ``None``, ``1`` -> ``1``).
    ``problems`` lists what was wrong with the mapping's keys when loaded
    leniently: ``(mark, key, message)``, ``key`` being ``None`` when the key
    itself could not be built (a list or a mapping used as a key).
    """

    __slots__ = ("keys_at", "mark", "problems", "texts", "values_at")

    def __init__(self, mark: Mark | None = None) -> None:
        super().__init__()
        self.mark = mark
        self.keys_at: dict[Any, Mark] = {}
        self.values_at: dict[Any, Mark] = {}
        self.texts: dict[Any, str] = {}
        self.problems: list[tuple[Mark, Any, str]] = []

    @property
    def line(self) -> int | None:
        """The 1-based line where the mapping starts, when known."""
        return None if self.mark is None else self.mark.line

    @property
    def lines(self) -> dict[Any, int]:
        """The 1-based line of each key."""
        return {key: mark.line for key, mark in self.keys_at.items()}


class LocatedList(list[Any]):
    """A list read from YAML: ``mark`` where it starts, ``items_at[i]`` where item ``i`` starts."""

    __slots__ = ("items_at", "mark")

    def __init__(self, mark: Mark | None = None) -> None:
        super().__init__()
        self.mark = mark
        self.items_at: list[Mark] = []


def line_of(value: object, key: object = None) -> int | None:
    """The line where ``key`` of ``value`` (or ``value`` itself) was written, if known."""
    if not isinstance(value, Located):
        return None
    if key is not None:
        try:
            return value.keys_at[key].line
        except (KeyError, TypeError):  # not a key of it, or not hashable
            pass
    return value.line


def _mark(yaml_mark: yaml.Mark) -> Mark:
    return Mark(yaml_mark.line + 1, yaml_mark.column + 1)


class _Loader(yaml.SafeLoader):
    strict = True
    locate_lists = True


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    located = Located(_mark(node.start_mark))
    for key_node, value_node in node.value:
        at = _mark(key_node.start_mark)
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            message = "a mapping key must be a plain value, not a list or a mapping"
            if loader.strict:
                raise YamlError(message, at) from None
            located.problems.append((at, None, message))
            continue
        if key in located:
            message = (
                f"key {key!r} is written twice in the same mapping (first on line "
                f"{located.keys_at[key].line})"
            )
            if loader.strict:
                raise YamlError(message, at)
            located.problems.append((at, key, message))
            continue
        located[key] = loader.construct_object(value_node, deep=True)
        located.keys_at[key] = at
        located.values_at[key] = _mark(value_node.start_mark)
        if (
            isinstance(key_node, yaml.ScalarNode)
            and not isinstance(key, str)
            and not key_node.style  # a plain scalar: its text is what the author meant
        ):
            located.texts[key] = key_node.value
    return located


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> list[Any]:
    if not loader.locate_lists:
        return [loader.construct_object(item, deep=True) for item in node.value]
    located = LocatedList(_mark(node.start_mark))
    for item in node.value:
        located.append(loader.construct_object(item, deep=True))
        located.items_at.append(_mark(item.start_mark))
    return located


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_yaml(text: str, *, strict: bool = True, locate_lists: bool = True) -> Any:
    """Parse ``text``: mappings come back as ``Located``, lists as ``LocatedList``.

    With ``locate_lists=False`` lists are plain ``list`` (for callers that show
    a value's type name in their messages).

    Invalid YAML raises ``YamlError`` (``not valid YAML: ...``) with the place
    of the problem. A key written twice, or a list or mapping used as a key,
    raises too when ``strict``; otherwise it is recorded in the mapping's
    ``problems`` and loading goes on.
    """
    try:
        loader = _Loader(text)  # the reader checks every character here already
    except yaml.reader.ReaderError as exc:
        raise YamlError(f"not valid YAML: {exc.reason}", _position(text, exc.position)) from None
    loader.strict = strict
    loader.locate_lists = locate_lists
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlError(f"not valid YAML: {what}", None if mark is None else _mark(mark)) from None
    finally:
        loader.dispose()


def _position(text: str, index: int) -> Mark:
    """The place of character ``index`` of ``text``."""
    line = text.count("\n", 0, index)
    return Mark(line + 1, index - (text.rfind("\n", 0, index) + 1) + 1)
