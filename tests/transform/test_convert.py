"""Converters: what each accepts, what it refuses and why, and how bad options are reported."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from interlink.core.errors import ConfigError
from interlink.transform._convert import CONVERTERS, make_converter
from interlink.transform._errors import Invalid

LONE_SURROGATE = json.loads('"\\udcff"')  # what json.loads gives for a non-UTF-8 escape
BERLIN = ZoneInfo("Europe/Berlin")


def reason(step: Any, value: Any) -> str:
    """The reason ``step`` gives for refusing ``value`` (fails the test if it accepts it)."""
    with pytest.raises(Invalid) as info:
        step(value)
    assert info.value.value is value
    return info.value.reason


def config_error(name: str, options: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        make_converter(name, options)
    return str(info.value)


# --- names and options -----------------------------------------------------------------------


def test_the_converters_are_exactly_the_documented_six() -> None:
    assert set(CONVERTERS) == {"str", "int", "float", "decimal", "bool", "datetime"}


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("datetim", "datetime"), ("integer", "int"), ("flaot", "float"), ("Decimal", "decimal")],
)
def test_an_unknown_converter_suggests_the_closest_name(name: str, suggestion: str) -> None:
    message = config_error(name)
    assert f"unknown converter {name!r}" in message
    assert f"did you mean {suggestion!r}?" in message


def test_an_unknown_converter_with_no_close_name_lists_them_all() -> None:
    message = config_error("uuid")
    assert "unknown converter 'uuid'" in message
    assert "bool, datetime, decimal, float, int, str" in message


def test_a_config_error_is_a_value_error_too() -> None:
    with pytest.raises(ValueError, match="unknown converter"):
        make_converter("nope")


def test_options_must_be_a_mapping() -> None:
    message = config_error("int", ["min", 0])  # type: ignore[arg-type]
    assert "options must be a mapping" in message
    assert "list" in message


def test_none_and_empty_options_and_a_null_value_mean_no_options() -> None:
    for options in (None, {}, {"value": None}):
        assert make_converter("int", options)("7") == 7


@pytest.mark.parametrize("name", ["str", "bool"])
def test_converters_without_options_refuse_any(name: str) -> None:
    assert f"converter {name!r} takes no options; got option 'min'" in config_error(
        name, {"min": 1}
    )
    assert "takes no options; got 3" in config_error(name, {"value": 3})


@pytest.mark.parametrize(
    ("name", "option", "suggestion"),
    [("int", "mni", "min"), ("float", "maximum", "max"), ("decimal", "place", "places")],
)
def test_an_unknown_option_is_named_with_a_suggestion(
    name: str, option: str, suggestion: str
) -> None:
    message = config_error(name, {option: 1})
    assert f"converter {name!r}: unknown option {option!r}" in message
    assert f"did you mean {suggestion!r}?" in message


def test_an_unknown_option_with_no_close_name_lists_the_options() -> None:
    message = config_error("datetime", {"zone": "UTC"})
    assert "unknown option 'zone' (expected one of: assume, format, unit)" in message


@pytest.mark.parametrize(
    ("name", "options", "expected", "found"),
    [
        ("int", {"min": "3"}, "option 'min' must be a whole number", "'3' (str)"),
        ("int", {"max": 2.5}, "option 'max' must be a whole number", "2.5 (float)"),
        ("int", {"min": True}, "option 'min' must be a whole number", "True (bool)"),
        ("float", {"min": "0"}, "option 'min' must be a finite number", "'0' (str)"),
        ("float", {"max": math.inf}, "option 'max' must be a finite number", "inf (float)"),
        ("decimal", {"min": "abc"}, "option 'min' must be a finite number", "'abc' (str)"),
        ("decimal", {"max": "NaN"}, "option 'max' must be a finite number", "'NaN' (str)"),
        ("decimal", {"places": -1}, "option 'places' must be at least 0", "-1"),
        ("decimal", {"places": "2"}, "option 'places' must be a whole number", "'2' (str)"),
        ("decimal", {"places": 1.5}, "option 'places' must be a whole number", "1.5 (float)"),
        ("decimal", {"places": False}, "option 'places' must be a whole number", "False"),
    ],
)
def test_a_bad_option_value_names_the_option_what_was_expected_and_what_was_found(
    name: str, options: dict[str, Any], expected: str, found: str
) -> None:
    message = config_error(name, options)
    assert f"converter {name!r}: {expected}" in message
    assert found in message


@pytest.mark.parametrize("name", ["int", "float", "decimal"])
def test_min_above_max_is_refused(name: str) -> None:
    assert "option 'min' (5) is greater than option 'max' (1)" in config_error(
        name, {"min": 5, "max": 1}
    )


def test_an_integral_float_is_accepted_as_a_whole_number_option() -> None:
    step = make_converter("int", {"min": 1.0})
    assert step(1) == 1
    assert reason(step, 0) == "less than the minimum 1"


# --- str --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        ("", ""),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        (1e20, "1e+20"),
        (Decimal("12.50"), "12.50"),
        (10**400, "1" + "0" * 400),
    ],
)
def test_str_accepts_text_and_finite_numbers(value: Any, expected: str) -> None:
    result = make_converter("str")(value)
    assert result == expected
    assert type(result) is str


def test_str_returns_a_string_unchanged_and_a_subclass_as_a_plain_string() -> None:
    class Tag(str):
        pass

    text = "unchanged"
    step = make_converter("str")
    assert step(text) is text
    converted = step(Tag("x"))
    assert converted == "x"
    assert type(converted) is str


def test_str_passes_a_lone_surrogate_through_as_is() -> None:
    # Text is not judged by the converter; the ``printable`` cleaner drops such characters.
    assert make_converter("str")("a" + LONE_SURROGATE) == "a\udcff"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "expected text or a number, not a boolean"),
        (False, "expected text or a number, not a boolean"),
        ([1], "expected text or a number"),
        ({"a": 1}, "expected text or a number"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("-Infinity"), "not a finite number"),
    ],
)
def test_str_refuses_booleans_containers_and_non_finite_numbers(value: Any, why: str) -> None:
    assert reason(make_converter("str"), value) == why


def test_str_refuses_an_int_too_long_to_write_and_writes_a_long_one() -> None:
    step = make_converter("str")
    assert reason(step, 10**5000) == "too many digits"
    assert step(10**4000) == "1" + "0" * 4000


# --- int --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (-3, -3),
        ("42", 42),
        (" -7 \n", -7),
        ("+3", 3),
        ("007", 7),
        (2.0, 2),
        (-0.0, 0),
        (Decimal("3"), 3),
        (Decimal("3.000"), 3),
        (Decimal("1E+3"), 1000),
        (10**400, 10**400),
    ],
)
def test_int_accepts_whole_numbers_in_any_form(value: Any, expected: int) -> None:
    result = make_converter("int")(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1_000", "expected a whole number"),
        ("1.0", "expected a whole number"),
        ("", "expected a whole number"),
        ("  ", "expected a whole number"),
        ("12abc", "expected a whole number"),
        ("0x10", "expected a whole number"),
        ("1e3", "expected a whole number"),
        ("\u0661\u0662", "expected a whole number"),  # Arabic-Indic digits: int() takes them
        ("- 1", "expected a whole number"),
        (LONE_SURROGATE, "expected a whole number"),
        (2.5, "not a whole number"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (Decimal("2.5"), "not a whole number"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("sNaN"), "not a finite number"),
        (Decimal("1E+5000"), "too many digits"),
        (True, "expected a whole number, not a boolean"),
        (False, "expected a whole number, not a boolean"),
        ([1], "expected a whole number"),
        ({}, "expected a whole number"),
    ],
)
def test_int_refuses_anything_but_a_whole_number(value: Any, why: str) -> None:
    assert reason(make_converter("int"), value) == why


def test_int_digit_strings_up_to_pythons_limit_and_beyond() -> None:
    step = make_converter("int")
    assert step("9" * 4000) == 10**4000 - 1
    assert reason(step, "9" * 5000) == "too many digits"
    assert reason(step, " -" + "9" * 5000 + " ") == "too many digits"
    assert reason(step, "9" * 5000 + "x") == "expected a whole number"


def test_int_bounds_are_inclusive_and_checked_after_conversion() -> None:
    step = make_converter("int", {"min": 0, "max": 10})
    assert step("0") == 0
    assert step(10.0) == 10
    assert reason(step, "-1") == "less than the minimum 0"
    assert reason(step, 11) == "greater than the maximum 10"
    assert reason(step, 10**400) == "greater than the maximum 10"


def test_int_with_only_one_bound() -> None:
    assert make_converter("int", {"max": 5})(-(10**30)) == -(10**30)
    assert reason(make_converter("int", {"min": 5}), 4) == "less than the minimum 5"


# --- float ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (-0.25, -0.25),
        (2, 2.0),
        (10**300, 1e300),
        ("1.5", 1.5),
        (" -2.5e3 ", -2500.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("7", 7.0),
        (Decimal("0.1"), 0.1),
    ],
)
def test_float_accepts_finite_numbers_and_numeric_text(value: Any, expected: float) -> None:
    result = make_converter("float")(value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
        ("NaN", "not a finite number"),
        ("nan", "not a finite number"),
        (" -Infinity ", "not a finite number"),
        ("inf", "not a finite number"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        ("1e400", "number too large"),
        (10**400, "number too large"),
        (Decimal("1e400"), "number too large"),
        ("1_000.5", "expected a number"),
        ("0x10", "expected a number"),
        ("", "expected a number"),
        ("1,5", "expected a number"),
        (LONE_SURROGATE, "expected a number"),
        (True, "expected a number, not a boolean"),
        ([1.0], "expected a number"),
    ],
)
def test_float_refuses_non_finite_and_non_numbers(value: Any, why: str) -> None:
    assert reason(make_converter("float"), value) == why


def test_float_bounds_accept_ints_and_floats() -> None:
    step = make_converter("float", {"min": 0, "max": 1.5})
    assert step("1.5") == 1.5
    assert reason(step, -0.1) == "less than the minimum 0"
    assert reason(step, 2) == "greater than the maximum 1.5"


# --- decimal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", "12.50"),  # the exponent is kept: two places stay two places
        (" 3 ", "3"),
        ("-0.001", "-0.001"),
        ("1e3", "1E+3"),
        (0.1, "0.1"),  # via repr, not the binary expansion
        (1e-7, "1E-7"),
        (42, "42"),
        (Decimal("9.99"), "9.99"),
    ],
)
def test_decimal_accepts_text_ints_floats_and_decimals(value: Any, expected: str) -> None:
    result = make_converter("decimal")(value)
    assert result == Decimal(expected)
    assert str(result) == str(Decimal(expected))
    assert type(result) is Decimal


def test_decimal_keeps_a_huge_int_exact() -> None:
    assert make_converter("decimal")(10**400) == Decimal(10**400)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("NaN", "not a finite number"),
        ("sNaN", "not a finite number"),
        ("-Infinity", "not a finite number"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("sNaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        ("1_000", "expected a decimal number"),
        ("12.50 EUR", "expected a decimal number"),
        (LONE_SURROGATE, "expected a decimal number"),
        (True, "expected a decimal number, not a boolean"),
        ({"amount": 1}, "expected a decimal number"),
    ],
)
def test_decimal_refuses_non_finite_and_non_numbers(value: Any, why: str) -> None:
    assert reason(make_converter("decimal"), value) == why


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        ("2.675", 2, "2.68"),  # half-even: 7 is odd, so up
        ("2.665", 2, "2.66"),  # half-even: 6 is even, so down
        (2.675, 2, "2.68"),  # the float as written, not 2.67499999...
        ("0.125", 2, "0.12"),
        ("-0.125", 2, "-0.12"),
        ("0.135", 2, "0.14"),
        ("2.5", 0, "2"),
        ("3.5", 0, "4"),
        (1, 2, "1.00"),
        (Decimal("1.5"), 3, "1.500"),
    ],
)
def test_decimal_places_rounds_half_even(value: Any, places: int, expected: str) -> None:
    result = make_converter("decimal", {"places": places})(value)
    assert str(result) == expected


def test_decimal_places_ignores_the_threads_decimal_context() -> None:
    step = make_converter("decimal", {"places": 2})
    with localcontext() as context:
        context.prec = 3
        context.rounding = ROUND_UP
        assert str(step("123456.785")) == "123456.78"


def test_decimal_places_refuses_a_number_too_long_to_quantize() -> None:
    step = make_converter("decimal", {"places": 2})
    assert reason(step, "1e200") == "too many digits"
    assert str(step("1e50")) == "1" + "0" * 50 + ".00"


def test_decimal_takes_places_as_its_scalar_option() -> None:
    assert str(make_converter("decimal", {"value": 1})("0.25")) == "0.2"
    assert "give 'places' once" in config_error("decimal", {"value": 1, "places": 2})


def test_decimal_bounds_compare_exactly() -> None:
    step = make_converter("decimal", {"min": "0.1", "max": 0.3, "places": 2})
    assert step("0.10") == Decimal("0.10")
    assert reason(step, "0.09") == "less than the minimum 0.1"
    # the bounds apply to the rounded result
    assert step("0.304") == Decimal("0.30")
    assert reason(step, "0.306") == "greater than the maximum 0.3"


# --- bool -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["true", "TRUE", "True", " yes ", "Y", "y", "on", "ON", "1", "t", "T", "\ttrue\n"],
)
def test_bool_true_spellings(spelling: str) -> None:
    assert make_converter("bool")(spelling) is True


@pytest.mark.parametrize(
    "spelling", ["false", "FALSE", "False", " no ", "N", "n", "off", "Off", "0", "f", "F"]
)
def test_bool_false_spellings(spelling: str) -> None:
    assert make_converter("bool")(spelling) is False


def test_bool_takes_booleans_and_the_ints_zero_and_one() -> None:
    step = make_converter("bool")
    assert step(True) is True
    assert step(False) is False
    assert step(1) is True
    assert step(0) is False


@pytest.mark.parametrize(
    "value", ["", "maybe", "2", "-1", "yes please", "nein", 2, -1, 1.0, 0.0, [], {}, LONE_SURROGATE]
)
def test_bool_refuses_everything_else(value: Any) -> None:
    assert reason(make_converter("bool"), value) == "expected true or false"


# --- datetime: text ---------------------------------------------------------------------------


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", utc(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00z", utc(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00+00:00", utc(2024, 5, 1, 12)),
        ("2024-05-01T14:00:00+02:00", utc(2024, 5, 1, 12)),
        ("2024-05-01T06:30:00-05:30", utc(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00.5Z", utc(2024, 5, 1, 12, 0, 0, 500000)),
        ("2024-05-01T12:00:00.123456Z", utc(2024, 5, 1, 12, 0, 0, 123456)),
        ("2024-05-01 12:00", utc(2024, 5, 1, 12)),
        ("2024-05-01", utc(2024, 5, 1)),
        ("2024-05-01T12:00:00", utc(2024, 5, 1, 12)),  # naive: assume UTC by default
        ("  2024-05-01T12:00:00Z \n", utc(2024, 5, 1, 12)),
        ("2024-01-01T00:30:00+01:00", utc(2023, 12, 31, 23, 30)),
    ],
)
def test_datetime_reads_iso_8601_into_aware_utc(text: str, expected: datetime) -> None:
    result = make_converter("datetime")(text)
    assert result == expected
    assert result.tzinfo is UTC
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15T12:00:00", utc(2024, 1, 15, 11)),  # CET, +01:00
        ("2024-07-15T12:00:00", utc(2024, 7, 15, 10)),  # CEST, +02:00
        ("2024-05-01", utc(2024, 4, 30, 22)),  # midnight in Berlin
        # 02:30 on 31 March 2024 does not exist (clocks jump 02:00 -> 03:00): read at +01:00
        ("2024-03-31T02:30:00", utc(2024, 3, 31, 1, 30)),
        # 02:30 on 27 October 2024 happens twice: the first one (+02:00) is taken
        ("2024-10-27T02:30:00", utc(2024, 10, 27, 0, 30)),
        ("2024-10-27T03:30:00", utc(2024, 10, 27, 2, 30)),
        # an explicit offset wins over assume
        ("2024-07-15T12:00:00Z", utc(2024, 7, 15, 12)),
    ],
)
def test_datetime_reads_naive_values_in_the_assumed_zone(text: str, expected: datetime) -> None:
    result = make_converter("datetime", {"assume": "Europe/Berlin"})(text)
    assert result == expected
    assert result.tzinfo is UTC


def test_datetime_assume_error_refuses_naive_values_only() -> None:
    step = make_converter("datetime", {"assume": "error"})
    assert step("2024-05-01T12:00:00+02:00") == utc(2024, 5, 1, 10)
    assert reason(step, "2024-05-01T12:00:00") == "no time zone in the value (assume: error)"
    assert reason(step, "2024-05-01") == "no time zone in the value (assume: error)"
    assert reason(step, datetime(2024, 5, 1)) == "no time zone in the value (assume: error)"
    assert step(1714564800) == utc(2024, 5, 1, 12)  # an epoch is always UTC


def test_datetime_assume_utc_is_case_insensitive() -> None:
    assert make_converter("datetime", {"assume": "utc"})("2024-05-01T12:00") == utc(2024, 5, 1, 12)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not a date", "not an ISO 8601 date/time"),
        ("2024-13-01", "not an ISO 8601 date/time"),
        ("2024-02-30", "not an ISO 8601 date/time"),
        ("2024-05-01T25:00", "not an ISO 8601 date/time"),
        ("2024-05-01T23:59:60Z", "not an ISO 8601 date/time"),  # no leap seconds
        ("NaN", "not an ISO 8601 date/time"),
        ("", "not an ISO 8601 date/time"),
        ("1.5e9", "not an ISO 8601 date/time"),
        (LONE_SURROGATE, "not an ISO 8601 date/time"),
        ("2024-05-01T12:00" + LONE_SURROGATE, "not an ISO 8601 date/time"),
        ("9999-12-31T23:00:00-05:00", "date out of range"),
        ("0001-01-01T00:30:00+01:00", "date out of range"),
    ],
)
def test_datetime_refuses_text_that_is_not_a_date(text: str, why: str) -> None:
    assert reason(make_converter("datetime"), text) == why


def test_datetime_out_of_range_after_the_assumed_zone() -> None:
    step = make_converter("datetime", {"assume": "Europe/Berlin"})
    assert reason(step, "0001-01-01T00:30:00") == "date out of range"


# --- datetime: Python values ------------------------------------------------------------------


def test_datetime_takes_aware_datetimes_to_utc_and_keeps_utc_ones() -> None:
    step = make_converter("datetime")
    moment = utc(2024, 5, 1, 12)
    assert step(moment) is moment
    assert step(datetime(2024, 5, 1, 14, tzinfo=BERLIN)) == moment
    assert step(datetime(2024, 5, 1, 14, tzinfo=BERLIN)).tzinfo is UTC
    assert step(datetime(2024, 5, 1, 12, tzinfo=ZoneInfo("UTC"))).tzinfo is UTC
    assert step(datetime(2024, 5, 1, 7, tzinfo=timezone(timedelta(hours=-5)))) == moment


def test_datetime_takes_naive_datetimes_and_dates_in_the_assumed_zone() -> None:
    berlin = make_converter("datetime", {"assume": "Europe/Berlin"})
    assert berlin(datetime(2024, 5, 1, 14)) == utc(2024, 5, 1, 12)
    assert berlin(date(2024, 5, 1)) == utc(2024, 4, 30, 22)
    assert make_converter("datetime")(date(2024, 5, 1)) == utc(2024, 5, 1)


# --- datetime: epochs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, utc(1970, 1, 1)),
        (1714564800, utc(2024, 5, 1, 12)),
        (1714564800.5, utc(2024, 5, 1, 12, 0, 0, 500000)),
        (-86400, utc(1969, 12, 31)),
        (1714564800123, utc(2024, 5, 1, 12, 0, 0, 123000)),  # >= 1e11: milliseconds
        (1714564800123.5, utc(2024, 5, 1, 12, 0, 0, 123500)),
        (-1714564800123, utc(1915, 9, 2, 11, 59, 59, 877000)),
        (99_999_999_999, utc(5138, 11, 16, 9, 46, 39)),  # just under 1e11: still seconds
        (100_000_000_000, utc(1973, 3, 3, 9, 46, 40)),  # 1e11: milliseconds
        ("1714564800", utc(2024, 5, 1, 12)),
        (" 1714564800123 ", utc(2024, 5, 1, 12, 0, 0, 123000)),
        ("1714564800.25", utc(2024, 5, 1, 12, 0, 0, 250000)),
        ("-86400", utc(1969, 12, 31)),
        ("20240501", utc(1970, 8, 23, 6, 21, 41)),  # all digits: an epoch, not a date
        (Decimal("1714564800.000001"), utc(2024, 5, 1, 12, 0, 0, 1)),
    ],
)
def test_datetime_reads_epochs_with_unit_auto(value: Any, expected: datetime) -> None:
    result = make_converter("datetime")(value)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("s", 1714564800, utc(2024, 5, 1, 12)),
        ("s", "1714564800.5", utc(2024, 5, 1, 12, 0, 0, 500000)),
        ("ms", 1000, utc(1970, 1, 1, 0, 0, 1)),  # small, but the unit says ms
        ("ms", 1714564800123, utc(2024, 5, 1, 12, 0, 0, 123000)),
        ("ms", "1714564800123.456", utc(2024, 5, 1, 12, 0, 0, 123456)),
        ("ms", 1.5, utc(1970, 1, 1, 0, 0, 0, 1500)),
        ("us", 1714564800123456, utc(2024, 5, 1, 12, 0, 0, 123456)),
        ("us", "1714564800123456", utc(2024, 5, 1, 12, 0, 0, 123456)),
        ("us", 1.5, utc(1970, 1, 1, 0, 0, 0, 2)),  # half-even to the microsecond
        ("s", Decimal("0.0000025"), utc(1970, 1, 1, 0, 0, 0, 2)),
        ("s", Decimal("0.0000035"), utc(1970, 1, 1, 0, 0, 0, 4)),
    ],
)
def test_datetime_unit_fixes_the_epoch_scale(unit: str, value: Any, expected: datetime) -> None:
    assert make_converter("datetime", {"unit": unit})(value) == expected


@pytest.mark.parametrize(
    ("unit", "value", "why"),
    [
        ("auto", 10**400, "date out of range"),
        ("auto", -(10**400), "date out of range"),
        ("auto", 1e300, "date out of range"),
        ("s", 253402300800, "date out of range"),  # year 10000
        ("s", -62135596801, "date out of range"),  # before year 1
        ("s", 1714564800123, "date out of range"),  # milliseconds read as seconds
        ("auto", Decimal("1e999999"), "date out of range"),
        ("auto", math.nan, "not a finite number"),
        ("auto", math.inf, "not a finite number"),
        ("auto", Decimal("NaN"), "not a finite number"),
        ("auto", Decimal("sNaN"), "not a finite number"),
        ("auto", True, "expected a date/time, not a boolean"),
        ("ms", False, "expected a date/time, not a boolean"),
        ("auto", [2024, 5, 1], "expected an ISO 8601 date/time or an epoch number"),
        ("auto", {"year": 2024}, "expected an ISO 8601 date/time or an epoch number"),
    ],
)
def test_datetime_refuses_bad_epochs(unit: str, value: Any, why: str) -> None:
    assert reason(make_converter("datetime", {"unit": unit}), value) == why


def test_datetime_refuses_a_5000_digit_epoch_string() -> None:
    assert reason(make_converter("datetime"), "9" * 5000) == "date out of range"


def test_datetime_accepts_the_first_and_last_representable_seconds() -> None:
    step = make_converter("datetime", {"unit": "s"})
    assert step(-62135596800) == utc(1, 1, 1)
    assert step(253402300799) == utc(9999, 12, 31, 23, 59, 59)


# --- datetime: format -------------------------------------------------------------------------


def test_datetime_format_parses_with_strptime_in_the_assumed_zone() -> None:
    step = make_converter("datetime", {"format": "%d/%m/%Y %H:%M", "assume": "Europe/Berlin"})
    assert step("01/05/2024 14:00") == utc(2024, 5, 1, 12)
    assert step(" 01/05/2024 14:00 ") == utc(2024, 5, 1, 12)
    assert reason(step, "2024-05-01T12:00:00Z") == "not a date/time in the format '%d/%m/%Y %H:%M'"
    assert reason(step, "31/02/2024 10:00") == "not a date/time in the format '%d/%m/%Y %H:%M'"
    assert reason(step, LONE_SURROGATE) == "not a date/time in the format '%d/%m/%Y %H:%M'"


def test_datetime_format_with_an_offset_gives_that_instant() -> None:
    step = make_converter("datetime", {"format": "%Y%m%d %H%M %z", "assume": "error"})
    assert step("20240501 1400 +0200") == utc(2024, 5, 1, 12)


def test_datetime_format_reads_digit_strings_by_the_format_but_numbers_as_epochs() -> None:
    step = make_converter("datetime", {"format": "%Y%m%d"})
    assert step("20240501") == utc(2024, 5, 1)
    assert step(1714564800) == utc(2024, 5, 1, 12)
    assert step(utc(2024, 5, 1)) == utc(2024, 5, 1)


# --- datetime: options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"unit": "msec"}, ["option 'unit' must be one of auto, s, ms, us", "'msec'", "'ms'?"]),
        ({"unit": "seconds"}, ["option 'unit' must be one of auto, s, ms, us", "'seconds'"]),
        ({"unit": 1000}, ["option 'unit' must be one of", "1000 (int)"]),
        ({"assume": "Europe/Berlim"}, ["unknown time zone 'Europe/Berlim'", "IANA name"]),
        ({"assume": "../etc/passwd"}, ["unknown time zone '../etc/passwd'"]),
        ({"assume": ""}, ["option 'assume' must be a time zone name", "'' (str)"]),
        ({"assume": 2}, ["option 'assume' must be a time zone name", "2 (int)"]),
        ({"format": "%Q"}, ["option 'format' '%Q' is not a strptime format", "bad directive"]),
        ({"format": "%d %"}, ["option 'format' '%d %' is not a strptime format", "stray %"]),
        ({"format": ""}, ["option 'format' must be a strptime format", "'' (str)"]),
        ({"format": ["%Y"]}, ["option 'format' must be a strptime format", "(list)"]),
        ({"value": "ms"}, ["takes its options as a mapping (unit, assume, format)", "'ms'"]),
    ],
)
def test_datetime_bad_options_are_config_errors(
    options: dict[str, Any], fragments: list[str]
) -> None:
    message = config_error("datetime", options)
    assert message.startswith("converter 'datetime'")
    for fragment in fragments:
        assert fragment in message


# --- properties -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**450), max_value=10**450)
    | st.floats()
    | st.text()
    | st.text(st.characters(exclude_categories=()))  # lone surrogates included
    | st.from_regex(r"\A\s*[+-]?[0-9]{1,40}(\.[0-9]{0,12})?([eE][+-]?[0-9]{1,4})?\s*\Z")
    | st.sampled_from(["NaN", "inf", "-Infinity", "sNaN", "1_000", "9" * 5000, "2024-05-01"])
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.timezones())
    | st.decimals()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


def outcome(step: Any, value: Any) -> Any:
    """What ``step`` returns for ``value``, or the ``Invalid`` it raises (anything else fails)."""
    try:
        return step(value)
    except Invalid as error:
        return error


CASES: list[tuple[str, dict[str, Any], type]] = [
    ("str", {}, str),
    ("int", {}, int),
    ("int", {"min": 0, "max": 100}, int),
    ("float", {}, float),
    ("float", {"min": -1.5}, float),
    ("decimal", {}, Decimal),
    ("decimal", {"places": 2, "max": "1e6"}, Decimal),
    ("bool", {}, bool),
    ("datetime", {}, datetime),
    ("datetime", {"unit": "ms", "assume": "Europe/Berlin"}, datetime),
    ("datetime", {"unit": "us", "assume": "error"}, datetime),
    ("datetime", {"format": "%Y-%m-%d %H:%M"}, datetime),
]


@pytest.mark.parametrize(("name", "options", "kind"), CASES)
@settings(max_examples=200)
@given(value=json_values)
def test_every_converter_returns_its_type_or_raises_invalid(
    name: str, options: dict[str, Any], kind: type, value: Any
) -> None:
    result = outcome(make_converter(name, options), value)
    if isinstance(result, Invalid):
        assert result.reason
        assert result.value is value
        return
    assert type(result) is kind
    if kind is datetime:
        assert result.tzinfo is UTC
    if kind is float:
        assert math.isfinite(result)
    if kind is Decimal:
        assert result.is_finite()


@settings(max_examples=200)
@given(st.integers(min_value=-(10**4000), max_value=10**4000))
def test_int_reads_back_what_str_writes(number: int) -> None:
    assert make_converter("int")(make_converter("str")(number)) == number


@settings(max_examples=200)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_and_decimal_read_back_what_str_writes(number: float) -> None:
    text = make_converter("str")(number)
    assert make_converter("float")(text) == number
    assert make_converter("decimal")(text) == make_converter("decimal")(number)


@settings(max_examples=200)
@given(st.datetimes(timezones=st.timezones()))
def test_datetime_reads_back_its_isoformat_as_the_same_instant(moment: datetime) -> None:
    step = make_converter("datetime")
    try:
        expected = moment.astimezone(UTC)
    except OverflowError:
        assert reason(step, moment.isoformat()) == "date out of range"
        return
    assert step(moment.isoformat()) == expected
    assert step(moment) == expected


@settings(max_examples=200)
@given(st.integers(min_value=-62135596800 * 10**6, max_value=253402300799 * 10**6))
@example(39670821185300)  # "39670821.185300" s: once read as the basic-format date 3967-08-21
def test_datetime_epoch_microseconds_are_exact(micros: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert make_converter("datetime", {"unit": "us"})(micros) == expected
    assert make_converter("datetime", {"unit": "us"})(str(micros)) == expected
    seconds = Decimal(micros).scaleb(-6)
    assert make_converter("datetime", {"unit": "s"})(str(seconds)) == expected
