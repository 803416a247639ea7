"""``RetrySchedule``: the waits a user configures are the waits a message gets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.core.errors import ConfigError
from interlink.messaging import RetrySchedule


def test_default_is_15s_doubling_to_one_hour_with_equal_jitter() -> None:
    schedule = RetrySchedule.default()
    assert schedule == RetrySchedule()
    assert [schedule.nominal(n) for n in range(1, 6)] == [15.0, 30.0, 60.0, 120.0, 240.0]
    assert schedule.nominal(100) == 3600.0
    assert schedule.window(1) == (7.5, 15.0)
    assert schedule.max_delay == 3600.0
    assert not schedule.is_fixed


def test_fixed_list_is_followed_and_its_last_wait_repeats() -> None:
    schedule = RetrySchedule.fixed(["1s", 10, "1m"])
    assert [schedule.delay(n) for n in range(1, 6)] == [1.0, 10.0, 60.0, 60.0, 60.0]
    assert schedule.window(2) == (10.0, 10.0)
    assert schedule.is_fixed
    assert schedule.max_delay == 60.0
    assert repr(schedule) == "RetrySchedule.fixed([1.0, 10.0, 60.0])"


def test_exponential_without_jitter_doubles_and_stops_at_the_cap() -> None:
    schedule = RetrySchedule.exponential("1s", 2.0, "5s", "none")
    assert [schedule.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert schedule.delay(10_000) == 5.0  # no overflow for a huge attempt number


@given(attempt=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_equal_jitter_stays_between_half_and_all_of_the_capped_wait(
    attempt: int, seed: int
) -> None:
    schedule = RetrySchedule.exponential(2.0, 2.0, 100.0, "equal", random=random.Random(seed))
    low, high = schedule.window(attempt)
    assert high == min(100.0, 2.0 * 2 ** (attempt - 1))
    assert low == high / 2
    assert low <= schedule.delay(attempt) <= high <= 100.0


@given(attempt=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_full_jitter_never_exceeds_the_cap(attempt: int, seed: int) -> None:
    schedule = RetrySchedule.exponential(1.0, 3.0, 30.0, "full", random=random.Random(seed))
    assert schedule.window(attempt)[0] == 0.0
    assert 0.0 <= schedule.delay(attempt) <= min(30.0, 3.0 ** (attempt - 1))


def test_config_values_become_schedules() -> None:
    assert RetrySchedule.coerce(None) == RetrySchedule.default()
    given_one = RetrySchedule.fixed([1])
    assert RetrySchedule.coerce(given_one) is given_one
    assert RetrySchedule.coerce(["1s", "2s"]) == RetrySchedule.fixed([1, 2])
    assert RetrySchedule.coerce(
        {"initial": "1s", "multiplier": 3, "max_delay": "1m", "jitter": "full"}
    ) == RetrySchedule.exponential(1, 3, 60, "full")
    assert hash(RetrySchedule.coerce(["1s"])) == hash(RetrySchedule.fixed([1.0]))
    assert RetrySchedule.default() != "something else"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: RetrySchedule.fixed([]), "RetrySchedule delays must be a non-empty list"),
        (lambda: RetrySchedule.fixed("1s"), "RetrySchedule delays must be a non-empty list"),
        (lambda: RetrySchedule.fixed([1, -1]), "RetrySchedule delays[1] must be"),
        (lambda: RetrySchedule.fixed(["soon"]), "RetrySchedule delays[0] must be"),
        (lambda: RetrySchedule.exponential(-1), "RetrySchedule initial must be"),
        (lambda: RetrySchedule.exponential(1, 0.5), "RetrySchedule multiplier must be"),
        (lambda: RetrySchedule.exponential(10, 2, 5), "RetrySchedule max_delay must be >= initial"),
        (lambda: RetrySchedule.exponential(1, 2, 5, "wild"), "RetrySchedule jitter must be"),
        (lambda: RetrySchedule.exponential(float("nan")), "RetrySchedule initial must be"),
        (lambda: RetrySchedule.coerce({"initail": "1s"}), "has no option 'initail'"),
        (lambda: RetrySchedule.coerce("10s"), "handler retry must be a RetrySchedule"),
        (lambda: RetrySchedule.coerce(5), "handler retry must be a RetrySchedule"),
    ],
)
def test_bad_schedules_are_refused_with_the_argument_named(make: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        make()  # type: ignore[operator]


def test_repr_of_exponential_shows_its_settings() -> None:
    assert repr(RetrySchedule.exponential(1, 2, 8, "none")) == (
        "RetrySchedule.exponential(initial=1.0, multiplier=2.0, max_delay=8.0, jitter='none')"
    )
