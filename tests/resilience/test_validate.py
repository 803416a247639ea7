"""The argument checks every policy shares: what each takes, and how each refusal reads."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.core.errors import ConfigError
from interlink.resilience import RetryBudget
from interlink.resilience import _validate as check


def refusal(message: str) -> Any:
    """``pytest.raises`` for a ``ConfigError`` whose whole text is ``message``."""
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


# -- fail --------------------------------------------------------------------


def test_a_refusal_names_the_owner_the_argument_the_expectation_and_the_value() -> None:
    with refusal("Retry idempotent must be True or False, got 'yes'"):
        check.fail("Retry", "idempotent", "True or False", "yes")


def test_a_refusal_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="Owner arg must be"):
        check.fail("Owner", "arg", "something", None)


# -- number ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, 1, 2.5, 1e300])
def test_a_number_is_by_default_finite_and_not_negative(value: float) -> None:
    taken = check.number("Owner", "arg", value)
    assert taken == value
    assert type(taken) is float


@pytest.mark.parametrize("value", [-0.1, math.inf, -math.inf, math.nan, "1", None, True, False])
def test_a_number_outside_the_default_range_or_not_a_number_is_refused(value: object) -> None:
    with refusal(f"Owner arg must be a finite number >= 0, got {value!r}"):
        check.number("Owner", "arg", value)


def test_a_number_with_an_exclusive_floor_refuses_the_floor() -> None:
    assert check.number("Owner", "arg", 0.5, low_inclusive=False) == 0.5
    with refusal("Owner arg must be a finite number > 0, got 0"):
        check.number("Owner", "arg", 0, low_inclusive=False)


def test_a_unit_words_the_expectation() -> None:
    with refusal("RateLimiter burst must be a finite number of tokens >= 1, got 0.5"):
        check.number("RateLimiter", "burst", 0.5, low=1.0, unit="tokens")


def test_a_bounded_number_reads_as_an_interval_with_its_ends() -> None:
    assert check.number("Owner", "arg", 2.5, high=2.5, high_inclusive=True) == 2.5
    with refusal("Owner arg must be a number in [0, 2.5], got 3"):
        check.number("Owner", "arg", 3, high=2.5, high_inclusive=True)
    with refusal("Owner arg must be a number in (1, 2), got 2"):
        check.number("Owner", "arg", 2, low=1.0, high=2.0, low_inclusive=False)


def test_an_inclusive_infinite_ceiling_admits_infinity_but_not_nan() -> None:
    assert check.number("Owner", "arg", math.inf, high_inclusive=True) == math.inf
    with refusal("Owner arg must be a number >= 0 (math.inf for no limit), got nan"):
        check.number("Owner", "arg", math.nan, high_inclusive=True)


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 10), st.floats(10, 100))
def test_a_number_is_taken_exactly_when_it_lies_in_the_range(
    value: float, low: float, high: float
) -> None:
    inside = low <= value < high
    try:
        taken = check.number("Owner", "arg", value, low=low, high=high)
    except ConfigError:
        assert not inside
    else:
        assert inside
        assert taken == value


# -- percentage --------------------------------------------------------------


@pytest.mark.parametrize("value", [0.001, 50, 100])
def test_a_percentage_is_above_0_and_up_to_100(value: float) -> None:
    assert check.percentage("Owner", "rate", value) == value


@pytest.mark.parametrize("value", [0, -1, 100.5, math.nan, True, "50%"])
def test_a_percentage_outside_0_to_100_is_refused(value: object) -> None:
    with refusal(f"Owner rate must be a percentage in (0, 100], got {value!r}"):
        check.percentage("Owner", "rate", value)


def test_a_percentage_that_must_stay_below_100_refuses_100() -> None:
    assert check.percentage("Hedge", "percentile", 99.9, allow_100=False) == 99.9
    with refusal("Hedge percentile must be a percentage in (0, 100), got 100"):
        check.percentage("Hedge", "percentile", 100, allow_100=False)


# -- seconds -----------------------------------------------------------------


def test_seconds_may_be_zero_only_when_allowed() -> None:
    assert check.seconds("Owner", "delay", 0, allow_zero=True) == 0.0
    with refusal("Owner delay must be a finite number of seconds > 0, got 0"):
        check.seconds("Owner", "delay", 0, allow_zero=False)


@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan, True, None, "5s"])
def test_seconds_that_are_negative_infinite_or_not_a_number_are_refused(value: object) -> None:
    with refusal(f"Owner delay must be a finite number of seconds >= 0, got {value!r}"):
        check.seconds("Owner", "delay", value, allow_zero=True)


def test_infinite_seconds_mean_no_limit_when_allowed() -> None:
    assert check.seconds("Owner", "max_wait", math.inf, allow_zero=True, allow_inf=True) == math.inf
    with refusal("Owner max_wait must be a number of seconds >= 0 (math.inf for no limit), got -1"):
        check.seconds("Owner", "max_wait", -1, allow_zero=True, allow_inf=True)


@pytest.mark.parametrize(("text", "expected"), [("250ms", 0.25), ("1m30s", 90.0), ("0s", 0.0)])
def test_duration_strings_are_read_when_allowed(text: str, expected: float) -> None:
    assert check.seconds("Retry", "max_delay", text, allow_zero=True, strings=True) == expected


@pytest.mark.parametrize("text", ["soon", "10", "-1s"])
def test_a_malformed_duration_string_is_refused_as_it_was_written(text: str) -> None:
    with refusal(
        "Retry max_delay must be a finite number of seconds >= 0 or a duration string "
        f"like '250ms', got {text!r}"
    ):
        check.seconds("Retry", "max_delay", text, allow_zero=True, strings=True)


def test_a_zero_duration_string_is_refused_when_zero_is() -> None:
    with refusal(
        "RetryBudget ttl must be a finite number of seconds > 0 or a duration string "
        "like '250ms', got '0s'"
    ):
        check.seconds("RetryBudget", "ttl", "0s", allow_zero=False, strings=True)


# -- count -------------------------------------------------------------------


def test_a_count_is_an_integer_of_at_least_the_minimum() -> None:
    assert check.count("Owner", "window", 1) == 1
    assert check.count("Owner", "slots", 0, minimum=0) == 0
    with refusal("Owner window must be an integer >= 1, got 0"):
        check.count("Owner", "window", 0)


@pytest.mark.parametrize("value", [2.0, True, "3", None])
def test_a_count_refuses_floats_bools_and_strings(value: object) -> None:
    with refusal(f"Owner window must be an integer >= 1, got {value!r}"):
        check.count("Owner", "window", value)


# -- ordered -----------------------------------------------------------------


def test_an_argument_may_equal_the_bound_set_by_another() -> None:
    check.ordered("Retry", "max_delay", 5.0, ">=", "initial_delay", 5.0)
    check.ordered("Hedge", "min_samples", 5, "<=", "window", 5)


def test_an_argument_on_the_wrong_side_of_another_names_both() -> None:
    with refusal("Retry max_delay must be >= initial_delay (5.0), got 1.0"):
        check.ordered("Retry", "max_delay", 1.0, ">=", "initial_delay", 5.0)
    with refusal("Hedge min_samples must be <= window (5), got 6"):
        check.ordered("Hedge", "min_samples", 6, "<=", "window", 5)


# -- one_of ------------------------------------------------------------------


def test_one_of_returns_the_option_given() -> None:
    assert check.one_of("Owner", "mode", "time", ("count", "time")) == "time"


def test_one_of_lists_the_options_when_refusing() -> None:
    with refusal("Owner mode must be 'count' or 'time', got 'sliding'"):
        check.one_of("Owner", "mode", "sliding", ("count", "time"))
    with refusal("Owner jitter must be 'none', 'full' or 'equal', got 3"):
        check.one_of("Owner", "jitter", 3, ("none", "full", "equal"))


# -- instance_or_none --------------------------------------------------------


def test_an_instance_or_none_is_returned_as_it_is() -> None:
    budget = RetryBudget()
    assert check.instance_or_none("Retry", "budget", budget, RetryBudget) is budget
    assert check.instance_or_none("Retry", "budget", None, RetryBudget) is None


def test_a_wrong_kind_of_object_is_refused_with_its_class_name() -> None:
    with refusal("Retry budget must be a RetryBudget or None, got 0.2"):
        check.instance_or_none("Retry", "budget", 0.2, RetryBudget)
    with refusal("Retry random must be a Random or None, got 42"):
        check.instance_or_none("Retry", "random", 42, random.Random)


def test_a_class_name_starting_with_a_vowel_takes_an() -> None:
    class Item:
        pass

    with refusal("Owner item must be an Item or None, got 1"):
        check.instance_or_none("Owner", "item", 1, Item)


# -- callable_or_none --------------------------------------------------------


def test_a_callable_or_none_is_returned_as_it_is() -> None:
    assert check.callable_or_none("Owner", "hook", len) is len
    assert check.callable_or_none("Owner", "hook", None) is None


def test_something_not_callable_is_refused_with_the_expected_call() -> None:
    with refusal("Owner hook must be a callable or None, got 3"):
        check.callable_or_none("Owner", "hook", 3)  # type: ignore[arg-type]
    with refusal("Retry retry_on_result must be a predicate (result) -> bool or None, got 'x'"):
        predicate = "a predicate (result) -> bool"
        check.callable_or_none("Retry", "retry_on_result", "x", what=predicate)  # type: ignore[arg-type]
