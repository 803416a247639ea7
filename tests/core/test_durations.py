from __future__ import annotations

import pytest

from interlink.core import ConfigError, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1m30s", 90.0),
        ("100us", 0.0001),
        (" 10S ", 10.0),
        ("0s", 0.0),
    ],
)
def test_duration_strings_with_units_become_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("number", [0, 3, 2.5])
def test_numbers_are_taken_as_seconds(number: float) -> None:
    assert parse_duration(number) == float(number)


@pytest.mark.parametrize("bad", ["5", "five seconds", "5 sec", "-5s", "5x", "", "ms", "1h-", "1.s"])
def test_a_bad_string_raises_config_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)
    assert "250ms" in str(info.value) or "non-negative" in str(info.value)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, None, [1]])
def test_non_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_zero_can_be_refused() -> None:
    with pytest.raises(ConfigError, match="greater than zero"):
        parse_duration("0ms", allow_zero=False)
    assert parse_duration("1ms", allow_zero=False) == pytest.approx(0.001)


def test_config_error_is_a_value_error_and_an_interlink_error() -> None:
    from interlink.core import InterlinkError

    with pytest.raises(ValueError, match="invalid duration") as info:
        parse_duration("soon")
    assert isinstance(info.value, InterlinkError)
