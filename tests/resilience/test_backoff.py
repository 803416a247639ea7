"""Backoff delays (behaviour 14: jitter survives the cap) and Retry-After parsing (behaviour 13)."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from interlink.resilience import parse_retry_after
from interlink.resilience._backoff import capped_exponential, jittered_delay

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _delays(jitter: str, retry: int, *, count: int = 10_000, previous: float = 0.1) -> list[float]:
    rng = random.Random(20260101)
    return [
        jittered_delay(
            jitter,
            retry,
            initial=0.1,
            multiplier=2.0,
            cap=5.0,
            rng=rng,
            previous=previous,
        )
        for _ in range(count)
    ]


def _assert_spread(delays: list[float], low: float, high: float) -> None:
    assert all(low <= d <= high for d in delays)
    assert statistics.stdev(delays) > 0
    most_common_count = Counter(delays).most_common(1)[0][1]
    assert most_common_count <= len(delays) // 100


def test_full_jitter_at_the_cap_spreads_over_zero_to_cap() -> None:
    delays = _delays("full", 20)
    _assert_spread(delays, 0.0, 5.0)
    # Spread over the whole range, not bunched near the cap.
    assert min(delays) < 0.5
    assert max(delays) > 4.5


def test_equal_jitter_at_the_cap_spreads_over_half_cap_to_cap() -> None:
    delays = _delays("equal", 20)
    _assert_spread(delays, 2.5, 5.0)
    assert min(delays) < 2.6
    assert max(delays) > 4.9


def test_decorrelated_jitter_at_the_cap_stays_spread() -> None:
    # The previous sleep was at the cap: AWS's min(cap, U(base, 3 * prev)) would put
    # two thirds of these exactly on the cap.
    delays = _delays("decorrelated", 20, previous=5.0)
    _assert_spread(delays, 0.1, 5.0)


def test_decorrelated_jitter_grows_from_the_previous_sleep() -> None:
    delays = _delays("decorrelated", 1, count=1_000, previous=0.1)
    assert all(0.1 <= d <= 0.3 for d in delays)


def test_no_jitter_gives_the_capped_exponential() -> None:
    assert [_delays("none", n, count=1)[0] for n in (1, 2, 3, 6, 7, 20)] == [
        0.1,
        0.2,
        0.4,
        3.2,
        5.0,
        5.0,
    ]


def test_capped_exponential_does_not_overflow_for_huge_retry_numbers() -> None:
    assert capped_exponential(100_000, 0.5, 2.0, 10.0) == 10.0


def test_zero_initial_delay_never_waits() -> None:
    assert capped_exponential(100_000, 0.0, 2.0, 10.0) == 0.0


def test_full_jitter_below_the_cap_stays_under_the_exponential() -> None:
    delays = _delays("full", 3, count=1_000)
    assert all(0.0 <= d <= 0.4 for d in delays)
    assert statistics.stdev(delays) > 0


# -- Retry-After (behaviour 13) ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("0", 0.0), (" 120 ", 120.0), ("1.5", 1.5)],
)
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_http_date_is_relative_to_now() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True)
    assert parse_retry_after(later, now=NOW) == pytest.approx(90.0)


def test_retry_after_rfc_850_and_asctime_dates_are_accepted() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=NOW) == pytest.approx(30.0)
    assert parse_retry_after("Thu Jan  1 00:00:30 2026", now=NOW) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_falls_back() -> None:
    assert parse_retry_after("Wed, 31 Dec 2025 23:59:00 GMT", now=NOW) is None


@pytest.mark.parametrize(
    "value",
    ["", "soon", "-5", "3 seconds", "1e3", "Thu, 99 Foo 2026 00:00:30 GMT", "inf", "nan"],
)
def test_malformed_or_negative_retry_after_falls_back(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None
