"""Checks for the policies' constructor arguments, with one wording for every ``ConfigError``.

Each check returns the value (as ``float`` for numbers) or raises
``ConfigError("<Owner> <arg> must be <what was expected>, got <what was found>")``,
for example ``"CircuitBreaker failure_rate must be a percentage in (0, 100], got 0"``.
The owner and the argument come first and are separated by spaces, so that
``Pipeline.from_dict`` can tell which dotted key a message is about.

``bool`` is never taken for a number, although Python makes it an ``int``:
``Retry(max_attempts=True)`` is a mistake, not one attempt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn, TypeGuard, TypeVar

from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError

__all__ = [
    "callable_or_none",
    "count",
    "fail",
    "instance_or_none",
    "number",
    "one_of",
    "ordered",
    "percentage",
    "seconds",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=str)


def fail(owner: str, arg: str, expected: str, found: object) -> NoReturn:
    """Raise the ``ConfigError`` every check raises: owner, argument, expected, found."""
    raise ConfigError(f"{owner} {arg} must be {expected}, got {found!r}")


def number(
    owner: str,
    arg: str,
    value: object,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
    unit: str = "",
) -> float:
    """A real number (not a bool) between ``low`` (finite) and ``high``.

    The default range is ``[0, inf)``: finite and not negative. ``high=math.inf``
    with ``high_inclusive=True`` admits ``math.inf`` itself (no limit). ``unit``
    only words the message: ``"tokens"`` gives "a finite number of tokens >= 1".
    """
    if _is_real(value) and _within(value, low, high, low_inclusive, high_inclusive):
        return float(value)
    noun = f"number of {unit}" if unit else "number"
    fail(owner, arg, _expected(noun, low, high, low_inclusive, high_inclusive), value)


def percentage(owner: str, arg: str, value: object, *, allow_100: bool = True) -> float:
    """A share in ``(0, 100]`` (or ``(0, 100)`` with ``allow_100=False``)."""
    if _is_real(value) and _within(value, 0.0, 100.0, False, allow_100):
        return float(value)
    fail(owner, arg, _expected("percentage", 0.0, 100.0, False, allow_100), value)


def seconds(
    owner: str,
    arg: str,
    value: object,
    *,
    allow_zero: bool,
    allow_inf: bool = False,
    strings: bool = False,
) -> float:
    """A duration in seconds: ``>= 0`` (``> 0`` unless ``allow_zero``), finite unless ``allow_inf``.

    With ``strings=True`` a duration string such as ``"250ms"`` or ``"1m30s"`` is
    read by ``interlink.core.parse_duration``; otherwise only numbers are taken.
    """
    found = value
    if strings and isinstance(value, str):
        try:
            value = parse_duration(value)
        except ConfigError:
            value = math.nan  # fails the range check below, reported with the string
    if _is_real(value) and _within(value, 0.0, math.inf, allow_zero, allow_inf):
        return float(value)
    expected = _expected("number of seconds", 0.0, math.inf, allow_zero, allow_inf)
    if strings:
        expected += " or a duration string like '250ms'"
    fail(owner, arg, expected, found)


def count(owner: str, arg: str, value: object, *, minimum: int = 1) -> int:
    """An ``int`` (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(owner, arg, f"an integer >= {minimum}", value)
    return value


def ordered(
    owner: str, arg: str, value: float, relation: Literal[">=", "<="], other: str, bound: float
) -> None:
    """Check ``value <relation> bound``, where ``bound`` is the (checked) argument ``other``."""
    holds = value >= bound if relation == ">=" else value <= bound
    if not holds:
        fail(owner, arg, f"{relation} {other} ({bound!r})", value)


def one_of(owner: str, arg: str, value: object, options: Sequence[S]) -> S:
    """One of the strings in ``options``."""
    for option in options:
        if value == option and isinstance(value, str):
            return option
    said = [repr(option) for option in options]
    fail(owner, arg, ", ".join(said[:-1]) + f" or {said[-1]}", value)


def instance_or_none(owner: str, arg: str, value: object, kind: type[T]) -> T | None:
    """``None`` or an instance of ``kind``."""
    if value is None or isinstance(value, kind):
        return value
    article = "an" if kind.__name__[:1] in "AEIOU" else "a"
    fail(owner, arg, f"{article} {kind.__name__} or None", value)


def callable_or_none(
    owner: str, arg: str, value: F | None, *, what: str = "a callable"
) -> F | None:
    """``None`` or a callable; ``what`` words the expected call, e.g. ``"a predicate (result) -> bool"``."""
    if value is not None and not callable(value):
        fail(owner, arg, f"{what} or None", value)
    return value


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _within(value: Any, low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> bool:
    # Written so that NaN, which compares false to everything, is never within.
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    return bool(above and below)


def _expected(noun: str, low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    if high != math.inf:
        opening, closing = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        return f"a {noun} in {opening}{_show(low)}, {_show(high)}{closing}"
    floor = f"{'>=' if low_inclusive else '>'} {_show(low)}"
    if high_inclusive:
        return f"a {noun} {floor} (math.inf for no limit)"
    return f"a finite {noun} {floor}"


def _show(bound: float) -> str:
    """``1`` for 1.0 and ``2.5`` for 2.5: bounds read as people write them."""
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))
