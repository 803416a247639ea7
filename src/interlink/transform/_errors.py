"""The errors of a transformation: ``Invalid`` inside a step, ``TransformError`` outside.

A converter or cleaner knows what is wrong with a value but not where the value
sits in the record; the compiled mapping knows where. So a step raises the
cheap internal ``Invalid(reason, value)`` and the mapping turns it into a
``TransformError`` with the field's dotted path.
"""

from __future__ import annotations

import pydantic

from interlink.core.errors import MappingError, TransformError

__all__ = [
    "EXCERPT",
    "Invalid",
    "MappingError",
    "TransformError",
    "excerpt",
    "from_validation",
    "join_path",
    "path_of",
]

EXCERPT = 80
"""The longest excerpt of an offending value an error carries, in characters."""


class Invalid(Exception):
    """A step refused a value: ``reason`` says why. Internal: never leaves a mapping."""

    def __init__(self, reason: str, value: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """A short ``repr`` of ``value`` for an error message, cut to ``limit`` characters."""
    try:
        text = repr(value)
    except Exception:  # a user object whose __repr__ fails
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def join_path(head: str, tail: str) -> str:
    """``customer`` + ``name`` -> ``customer.name``; ``lines`` + ``[2].qty`` -> ``lines[2].qty``."""
    if not tail:
        return head
    if not head:
        return tail
    if tail[0] == "[":
        return head + tail
    return f"{head}.{tail}"


def path_of(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted path: ``("lines", 2, "qty")`` -> ``lines[2].qty``."""
    path = ""
    for part in loc:
        path = join_path(path, f"[{part}]" if isinstance(part, int) else str(part))
    return path


def from_validation(exc: pydantic.ValidationError, what: str) -> TransformError:
    """The first of pydantic's errors as a ``TransformError`` (``what``: "input", "output")."""
    first = exc.errors()[0]
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return TransformError(
        path_of(first["loc"]),
        f"the {what} does not validate: {first['msg']}{more}",
        excerpt(first.get("input")),
    )
