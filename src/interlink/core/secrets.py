"""``Secret``: a value that is never printed.

Tokens, passwords and signing keys travel wrapped, so that a ``repr`` in a log
line, an error message or a debugger shows ``Secret('**********')`` and
nothing else. Only ``reveal()`` gives the value, at the one place that sends it.
"""

from __future__ import annotations

import hmac

__all__ = ["Secret", "reveal"]


class Secret:
    """A string that hides itself from ``repr``, ``str`` and formatting.

    Two secrets compare equal when their values do (in constant time). A
    ``Secret`` is falsy when empty, so ``if token:`` still works.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value itself: call it only where the value is sent, never to log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


def reveal(value: str | Secret) -> str:
    """The plain value of ``value``, whether it was wrapped in a ``Secret`` or not."""
    return value.reveal() if isinstance(value, Secret) else value
