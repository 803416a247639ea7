"""YAML that remembers where each key was written, so that a mistake names its line.

PyYAML's ``safe_load`` returns plain values and forgets the marks; a loader
that builds ``Located`` dicts (a ``dict`` with the line of the mapping and of
each of its keys) keeps them at no cost to anyone who reads the values as
plain dicts. Two YAML traps are closed on the way: a key written twice is an
error (YAML silently keeps the last one), and the source text of a plain scalar
key is kept, so a value map keyed ``yes:`` or ``off:`` (YAML 1.1 reads them as
booleans) still matches the strings ``"yes"`` and ``"off"``.
"""

from __future__ import annotations

from typing import Any

import yaml

from interlink.transform._errors import MappingError

__all__ = ["Located", "line_of", "load_yaml"]


class Located(dict[Any, Any]):
    """A mapping read from YAML: ``line`` (1-based) of the mapping, ``lines`` of each key.

    ``texts`` holds the source text of keys that YAML resolved to something
    other than a string (``yes`` -> ``True``, ``~`` -> ``None``, ``1`` -> ``1``).
    """

    __slots__ = ("line", "lines", "texts")

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}
        self.texts: dict[Any, str] = {}


def line_of(value: object, key: object = None) -> int | None:
    """The line where ``key`` of ``value`` (or ``value`` itself) was written, if known."""
    if not isinstance(value, Located):
        return None
    if key is not None and key in value.lines:
        return value.lines[key]
    return value.line


class _Loader(yaml.SafeLoader):
    source = "<string>"


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    located = Located(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise MappingError(
                "a mapping key must be a plain value, not a list or a mapping",
                source=loader.source,
                line=line,
            ) from None
        if key in located:
            raise MappingError(
                f"key {key!r} is written twice in the same mapping (first on line "
                f"{located.lines[key]})",
                source=loader.source,
                line=line,
            )
        located[key] = loader.construct_object(value_node, deep=True)
        located.lines[key] = line
        if (
            isinstance(key_node, yaml.ScalarNode)
            and not isinstance(key, str)
            and not key_node.style  # a plain scalar: its text is what the author meant
        ):
            located.texts[key] = key_node.value
    return located


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse ``text``: mappings come back as ``Located``; a syntax error is a ``MappingError``."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise MappingError(f"not valid YAML: {what}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"not valid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
