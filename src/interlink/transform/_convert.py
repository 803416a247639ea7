"""Converters: the ``convert:`` step of a mapping field (``str``, ``int``, ``float``, ``decimal``,
``bool``, ``datetime``).

A converter is made once, when the mapping loads (``make_converter("int", {"min": 0})``), and
then called once per field per record. So the factory checks every option up front (a bad
option is a ``ConfigError`` naming it, what was expected and what was found) and returns a
closure built for exactly those options; the common case (the value already has the target
type, or an ISO 8601 string for ``datetime``) costs a type check and a call. A step raises
only ``Invalid(reason, value)``: whatever Python would raise on a hostile value (a
5000-digit string, ``1e400``, ``NaN``, an epoch in the year 300000, a lone surrogate) is
turned into a reason a person can act on.

Written by hand because no library fits: pydantic coerces per model field, not as a step
with its own options, and its lax mode reads ``True`` as ``1`` and ``"1_000"`` and ``"1.0"``
as whole numbers; ``dateutil`` guesses at formats where a mapping should be strict.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from interlink.core.errors import ConfigError
from interlink.transform._errors import Invalid

__all__ = ["CONVERTERS", "PASSTHROUGH", "Step", "make_converter", "make_step"]

Step = Callable[[Any], Any]
"""One value in, one value out; raises ``Invalid(reason, value)`` on a bad value, nothing else."""

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_isfinite = math.isfinite
_fromisoformat = datetime.fromisoformat
_fromtimestamp = datetime.fromtimestamp

# Text forms, ASCII digits only: int("١٢") and float("1_000") are Python's idea, not JSON's.
_INT_TEXT = re.compile(r"\s*([+-]?[0-9]+)\s*")
_NUMBER_TEXT = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*")
_NON_FINITE_TEXT = re.compile(r"\s*[+-]?(?:s?nan|inf|infinity)\s*", re.IGNORECASE)
_EPOCH_TEXT = re.compile(r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*")

_BOOL_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
    "t": True,
    "f": False,
    "y": True,
    "n": False,
}

# Epoch arithmetic on Decimals: enough precision for any epoch a datetime can hold, in
# microseconds, whatever decimal context the calling thread has set.
_EPOCH_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
_MAX_EPOCH_DIGITS = 20  # 1e20 microseconds is already past year 9999; anything larger is out
_MS_THRESHOLD = 100_000_000_000  # unit auto: |x| >= 1e11 is milliseconds (1e11 s is year 5138)
_UNIT_MICROS = {"s": Decimal(1_000_000), "ms": Decimal(1_000), "us": Decimal(1)}
_UNITS = ("auto", "s", "ms", "us")
_DECIMAL_HEADROOM = 100  # a quantized decimal may have this many digits before the point


def _int_digit_limit() -> int:
    limit = sys.get_int_max_str_digits()
    return limit if limit > 0 else 4300


# --- option checking (make time) -------------------------------------------------------------


def _options(
    name: str,
    options: dict[str, Any] | None,
    allowed: tuple[str, ...],
    scalar: str | None = None,
    *,
    kind: str = "converter",
) -> dict[str, Any]:
    """Check ``options`` for step ``name``: a mapping of known keys; ``"value"`` -> ``scalar``."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(
            f"{kind} {name!r}: options must be a mapping, got {type(options).__name__} {options!r}"
        )
    found = dict(options)
    if "value" in found:
        value = found.pop("value")
        if scalar is not None:
            if scalar in found:
                raise ConfigError(f"{kind} {name!r}: give {scalar!r} once, not also as a value")
            found[scalar] = value
        elif value is not None:
            if allowed:
                raise ConfigError(
                    f"{kind} {name!r} takes its options as a mapping "
                    f"({', '.join(allowed)}), not a single value; got {value!r}"
                )
            raise ConfigError(f"{kind} {name!r} takes no options; got {value!r}")
    for key in found:
        if key not in allowed:
            if not allowed:
                raise ConfigError(f"{kind} {name!r} takes no options; got option {key!r}")
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"expected one of: {', '.join(sorted(allowed))}"
            )
            raise ConfigError(f"{kind} {name!r}: unknown option {key!r} ({hint})")
    return found


def _found(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _whole_option(name: str, key: str, value: object, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(
                f"converter {name!r}: option {key!r} must be a whole number, got {_found(value)}"
            )
    if minimum is not None and value < minimum:
        raise ConfigError(
            f"converter {name!r}: option {key!r} must be at least {minimum}, got {value!r}"
        )
    return value


def _number_option(name: str, key: str, value: object) -> int | float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not _isfinite(value))
    ):
        raise ConfigError(
            f"converter {name!r}: option {key!r} must be a finite number, got {_found(value)}"
        )
    return value


def _decimal_option(name: str, key: str, value: object) -> Decimal:
    number: Decimal | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float) and _isfinite(value):
        number = Decimal(repr(value))
    elif isinstance(value, Decimal) and value.is_finite():
        number = value
    elif isinstance(value, str) and (match := _NUMBER_TEXT.fullmatch(value)):
        try:
            number = Decimal(match[1])
        except (ArithmeticError, ValueError):
            number = None
    if number is None:
        raise ConfigError(
            f"converter {name!r}: option {key!r} must be a finite number, got {_found(value)}"
        )
    return number


def _check_range(name: str, low: Any, high: Any) -> None:
    if low is not None and high is not None and low > high:
        raise ConfigError(
            f"converter {name!r}: option 'min' ({low}) is greater than option 'max' ({high})"
        )


def _bounded(step: Step, low: Any, high: Any) -> Step:
    """``step`` followed by a range check; ``step`` itself when there are no bounds."""
    if low is None and high is None:
        return step
    below = f"less than the minimum {low}"
    above = f"greater than the maximum {high}"

    def bounded(value: Any) -> Any:
        number = step(value)
        if low is not None and number < low:
            raise Invalid(below, value)
        if high is not None and number > high:
            raise Invalid(above, value)
        return number

    return bounded


# --- str --------------------------------------------------------------------------------------


def _to_str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        raise Invalid("expected text or a number, not a boolean", value)
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:
            raise Invalid("too many digits", value) from None
    if isinstance(value, float):
        if _isfinite(value):
            return float.__repr__(value)
        raise Invalid("not a finite number", value)
    if isinstance(value, Decimal):
        if value.is_finite():
            return str(value)
        raise Invalid("not a finite number", value)
    raise Invalid("expected text or a number", value)


def _make_str(options: dict[str, Any]) -> Step:
    _options("str", options, ())
    return _to_str


# --- int --------------------------------------------------------------------------------------


def _int_slow(value: Any) -> int:
    if isinstance(value, str):
        match = _INT_TEXT.fullmatch(value)
        if match is None:
            raise Invalid("expected a whole number", value)
        try:
            return int(match[1])
        except ValueError:
            if len(match[1].lstrip("+-")) > _int_digit_limit():
                raise Invalid("too many digits", value) from None
            raise Invalid("expected a whole number", value) from None
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise Invalid("not a whole number" if _isfinite(value) else "not a finite number", value)
    if isinstance(value, bool):
        raise Invalid("expected a whole number, not a boolean", value)
    if isinstance(value, int):
        return int(value)  # an int subclass (IntEnum) as a plain int
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Invalid("not a finite number", value)
        if value.adjusted() >= _int_digit_limit():
            raise Invalid("too many digits", value)
        if value != value.to_integral_value():
            raise Invalid("not a whole number", value)
        return int(value)
    raise Invalid("expected a whole number", value)


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit() and value.isascii():  # "42": the usual text
        try:
            return int(value)
        except ValueError:  # more digits than Python converts: the slow path says so
            pass
    return _int_slow(value)


def _ranged(
    name: str, step: Step, option: Callable[[str, str, object], Any]
) -> Callable[[dict[str, Any]], Step]:
    """The factory of a number converter whose options are ``min`` and ``max``."""

    def factory(options: dict[str, Any]) -> Step:
        found = _options(name, options, ("min", "max"))
        low = option(name, "min", found["min"]) if "min" in found else None
        high = option(name, "max", found["max"]) if "max" in found else None
        _check_range(name, low, high)
        return _bounded(step, low, high)

    return factory


# --- float ------------------------------------------------------------------------------------


def _text_reason(text: str, otherwise: str) -> str:
    return "not a finite number" if _NON_FINITE_TEXT.fullmatch(text) else otherwise


def _float_slow(value: Any) -> float:
    if isinstance(value, str):
        match = _NUMBER_TEXT.fullmatch(value)
        if match is None:
            raise Invalid(_text_reason(value, "expected a number"), value)
        number = float(match[1])
        if not _isfinite(number):
            raise Invalid("number too large", value)
        return number
    if isinstance(value, bool):
        raise Invalid("expected a number, not a boolean", value)
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise Invalid("number too large", value) from None
    if isinstance(value, float):
        if _isfinite(value):
            return float(value)
        raise Invalid("not a finite number", value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Invalid("not a finite number", value)
        number = float(value)
        if not _isfinite(number):
            raise Invalid("number too large", value)
        return number
    raise Invalid("expected a number", value)


def _to_float(value: Any) -> float:
    if type(value) is float and value - value == 0.0:  # finite: inf - inf and nan are nan
        return value
    return _float_slow(value)


# --- decimal ----------------------------------------------------------------------------------


def _decimal_slow(value: Any) -> Decimal:
    if isinstance(value, str):
        match = _NUMBER_TEXT.fullmatch(value)
        if match is None:
            raise Invalid(_text_reason(value, "expected a decimal number"), value)
        try:
            number = Decimal(match[1])
        except (ArithmeticError, ValueError):  # an exponent beyond what Decimal can hold
            raise Invalid("number too large", value) from None
        if not number.is_finite():  # a context without the InvalidOperation trap gives NaN
            raise Invalid("expected a decimal number", value)
        return number
    if isinstance(value, bool):
        raise Invalid("expected a decimal number, not a boolean", value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if _isfinite(value):
            return Decimal(float.__repr__(value))  # 0.1 -> Decimal("0.1"), as it was written
        raise Invalid("not a finite number", value)
    if isinstance(value, Decimal):
        if value.is_finite():
            return value
        raise Invalid("not a finite number", value)
    raise Invalid("expected a decimal number", value)


def _to_decimal(value: Any) -> Decimal:
    if type(value) is Decimal and value.is_finite():
        return value
    if type(value) is str and value.isascii() and value.replace(".", "", 1).isdigit():  # "12.50"
        return Decimal(value)
    return _decimal_slow(value)


def _make_decimal(options: dict[str, Any]) -> Step:
    found = _options("decimal", options, ("places", "min", "max"), "places")
    low = _decimal_option("decimal", "min", found["min"]) if "min" in found else None
    high = _decimal_option("decimal", "max", found["max"]) if "max" in found else None
    _check_range("decimal", low, high)
    if "places" not in found:
        return _bounded(_to_decimal, low, high)
    places = _whole_option("decimal", "places", found["places"], minimum=0)
    quantum = Decimal(1).scaleb(-places)
    context = Context(
        prec=places + _DECIMAL_HEADROOM, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation]
    )
    quantize = Decimal.quantize

    def to_places(value: Any) -> Decimal:
        number = _to_decimal(value)
        try:
            return quantize(number, quantum, None, context)  # positional: twice as fast
        except InvalidOperation:
            raise Invalid("too many digits", value) from None

    return _bounded(to_places, low, high)


# --- bool -------------------------------------------------------------------------------------


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str):
        result = _BOOL_WORDS.get(value)
        if result is None:
            result = _BOOL_WORDS.get(value.strip().lower())
            if result is None:
                raise Invalid("expected true or false", value)
        return result
    if isinstance(value, int) and not isinstance(value, bool) and (value == 0 or value == 1):
        return value == 1
    raise Invalid("expected true or false", value)


def _make_bool(options: dict[str, Any]) -> Step:
    _options("bool", options, ())
    return _to_bool


# --- datetime ---------------------------------------------------------------------------------


def _epoch_micros(number: Decimal, unit: str, value: object) -> datetime:
    """The UTC datetime ``number`` ``unit``s after the epoch, exact to the microsecond."""
    if number.adjusted() > _MAX_EPOCH_DIGITS:
        raise Invalid("date out of range", value)
    if unit == "auto":
        unit = "ms" if abs(number) >= _MS_THRESHOLD else "s"
    micros = _EPOCH_CONTEXT.to_integral_value(_EPOCH_CONTEXT.multiply(number, _UNIT_MICROS[unit]))
    try:
        return _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        raise Invalid("date out of range", value) from None


def _make_epoch(unit: str) -> Callable[[Any, object], datetime]:
    """A function (number, original value) -> UTC datetime for int/float/Decimal epochs."""

    def from_epoch(number: Any, value: object) -> datetime:
        if type(number) is int and (
            unit == "s" or (unit == "auto" and -_MS_THRESHOLD < number < _MS_THRESHOLD)
        ):  # whole seconds: exact through fromtimestamp, and the usual case
            try:
                return _fromtimestamp(number, _UTC)
            except (OverflowError, ValueError, OSError):
                raise Invalid("date out of range", value) from None
        if type(number) is int or type(number) is float:
            if type(number) is float and not _isfinite(number):
                raise Invalid("not a finite number", value)
            which = unit
            if which == "auto":
                which = "ms" if abs(number) >= _MS_THRESHOLD else "s"
            try:
                if which == "s":
                    return _EPOCH + timedelta(0, number)
                if which == "ms":
                    return _EPOCH + timedelta(0, 0, 0, number)
                return _EPOCH + timedelta(0, 0, number)
            except OverflowError:
                raise Invalid("date out of range", value) from None
        # Decimal
        if not number.is_finite():
            raise Invalid("not a finite number", value)
        return _epoch_micros(number, unit, value)

    return from_epoch


def _check_format(fmt: object) -> str:
    if not isinstance(fmt, str) or not fmt:
        raise ConfigError(
            "converter 'datetime': option 'format' must be a strptime format like "
            f"'%d/%m/%Y %H:%M', got {_found(fmt)}"
        )
    try:
        datetime.strptime("", fmt)
    except ValueError as error:
        if "does not match format" not in str(error):
            raise ConfigError(
                f"converter 'datetime': option 'format' {fmt!r} is not a strptime format: {error}"
            ) from None
    return fmt


def _zone(assume: object) -> tzinfo | None:
    """The zone for naive values; ``None`` for ``assume: error``."""
    if not isinstance(assume, str) or not assume:
        raise ConfigError(
            "converter 'datetime': option 'assume' must be a time zone name like 'UTC' or "
            f"'Europe/Berlin', or 'error', got {_found(assume)}"
        )
    if assume == "error":
        return None
    if assume.upper() == "UTC":
        return _UTC
    try:
        return ZoneInfo(assume)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"converter 'datetime': option 'assume': unknown time zone {assume!r} "
            "(expected an IANA name like 'Europe/Berlin', 'UTC', or 'error')"
        ) from None


def _make_datetime(options: dict[str, Any]) -> Step:
    found = _options("datetime", options, ("unit", "assume", "format"))
    unit = found.get("unit", "auto")
    if unit not in _UNITS:
        close = difflib.get_close_matches(str(unit), _UNITS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"converter 'datetime': option 'unit' must be one of {', '.join(_UNITS)}, "
            f"got {_found(unit)}{hint}"
        )
    zone = _zone(found.get("assume", "UTC"))
    fmt = _check_format(found["format"]) if "format" in found else None
    from_epoch = _make_epoch(unit)
    strptime = datetime.strptime

    if zone is None:

        def naive(moment: datetime, value: object) -> datetime:
            raise Invalid("no time zone in the value (assume: error)", value)

    elif zone is _UTC:

        def naive(moment: datetime, value: object) -> datetime:
            return moment.replace(tzinfo=_UTC)

    else:

        def naive(moment: datetime, value: object) -> datetime:
            try:
                return moment.replace(tzinfo=zone).astimezone(_UTC)
            except OverflowError:
                raise Invalid("date out of range", value) from None

    def to_utc(moment: datetime, value: object) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return naive(moment.replace(tzinfo=None), value)
        try:
            return moment.astimezone(_UTC)
        except OverflowError:
            raise Invalid("date out of range", value) from None

    def parse_text(value: str) -> datetime:
        if fmt is not None:
            try:
                return strptime(value.strip(), fmt)
            except (ValueError, OverflowError):
                raise Invalid(f"not a date/time in the format {fmt!r}", value) from None
        match = _EPOCH_TEXT.fullmatch(value)
        if match is not None:
            return from_epoch(Decimal(match[1]), value)
        text = value.strip()
        try:
            return _fromisoformat(text)
        except ValueError:
            pass
        try:  # RFC 3339 allows a lower case "t" and "z"
            return _fromisoformat(text.upper())
        except ValueError:
            raise Invalid("not an ISO 8601 date/time", value) from None

    def slow(value: Any) -> datetime:
        if isinstance(value, str):
            moment = parse_text(value)
        elif isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, bool):
            raise Invalid("expected a date/time, not a boolean", value)
        elif isinstance(value, int | float | Decimal):
            number = value if type(value) in (int, float) else _plain_number(value)
            return from_epoch(number, value)
        else:
            raise Invalid("expected an ISO 8601 date/time or an epoch number", value)
        if moment.tzinfo is _UTC:
            return moment
        return to_utc(moment, value)

    if fmt is not None:
        return slow

    seconds = unit in ("s", "auto")

    def to_datetime(value: Any) -> datetime:
        # Extended-format ISO text ("2024-05-01..."), the usual case, straight to fromisoformat.
        # Any other text goes the slow way, which reads an epoch number first: fromisoformat
        # would take "39670821.1853" (unit s) for the basic-format date 3967-08-21.
        if type(value) is str and value[4:5] == "-":
            try:
                moment = _fromisoformat(value)
            except ValueError:
                return slow(value)
        elif type(value) is datetime:
            moment = value
        elif type(value) is int and seconds and -_MS_THRESHOLD < value < _MS_THRESHOLD:
            try:  # whole seconds (unit s, or auto below the milliseconds threshold)
                return _fromtimestamp(value, _UTC)
            except (OverflowError, ValueError, OSError):
                raise Invalid("date out of range", value) from None
        elif type(value) is int or type(value) is float:
            return from_epoch(value, value)
        else:
            return slow(value)
        zone = moment.tzinfo
        if zone is _UTC:
            return moment
        if type(zone) is timezone:  # a fixed offset, as ISO 8601 text gives: never naive
            try:
                return moment.astimezone(_UTC)
            except OverflowError:
                raise Invalid("date out of range", value) from None
        return to_utc(moment, value)

    return to_datetime


def _plain_number(value: int | float | Decimal) -> int | float | Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return int(value)
    return float(value)


# --- registry ---------------------------------------------------------------------------------

CONVERTERS: dict[str, Callable[[dict[str, Any]], Step]] = {
    "str": _make_str,
    "int": _ranged("int", _to_int, _whole_option),
    "float": _ranged("float", _to_float, _number_option),
    "decimal": _make_decimal,
    "bool": _make_bool,
    "datetime": _make_datetime,
}
"""Converter name -> factory: ``CONVERTERS[name](options)`` checks the options, returns the step."""


def make_converter(name: str, options: dict[str, Any] | None = None) -> Step:
    """The converter step ``name`` with ``options``; ``ConfigError`` for a bad name or option.

    >>> make_converter("int", {"min": 0})("42")
    42
    """
    return make_step("converter", CONVERTERS, name, options)


def make_step(
    kind: str,
    registry: dict[str, Callable[[dict[str, Any]], Step]],
    name: str,
    options: dict[str, Any] | None,
) -> Step:
    """The step ``name`` of ``registry`` (converters or cleaners) built with ``options``."""
    factory = registry.get(name) if isinstance(name, str) else None
    if factory is None:
        close = difflib.get_close_matches(str(name), registry, n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"expected one of: {', '.join(sorted(registry))}"
        )
        raise ConfigError(f"unknown {kind} {name!r} ({hint})")
    return factory(options if options is not None else {})


PASSTHROUGH: dict[Step, type] = {_to_int: int, _to_str: str, _to_bool: bool}
"""Steps that return a value of exactly this type unchanged: a compiled mapping skips the call."""
