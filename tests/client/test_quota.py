"""Upstream quota headers: every family parsed, the standard preferred, nothing raised."""

from __future__ import annotations

import dataclasses
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from interlink.client import Quota, parse_quota

NOW = 1_700_000_000.0


def test_newest_draft_reports_remaining_and_reset_and_the_limit_of_the_named_policy() -> None:
    quota = parse_quota(
        {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'}, now=NOW
    )
    assert quota == Quota(
        limit=100, remaining=50, reset=30.0, policy='"default";q=100;w=60', observed_at=NOW
    )


def test_newest_draft_reports_the_policy_with_the_fewest_requests_left() -> None:
    quota = parse_quota(
        {
            "RateLimit": '"burst";r=8;t=1, "daily";r=3;t=3600',
            "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400',
        },
        now=NOW,
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (1000, 3, 3600.0)
    assert quota.policy == '"daily";q=1000;w=86400'


def test_newest_draft_breaks_a_tie_in_remaining_with_the_later_reset() -> None:
    quota = parse_quota({"RateLimit": '"a";r=0;t=1, "b";r=0;t=60, "c";r=0;t=5'}, now=NOW)
    assert quota is not None
    assert (quota.policy, quota.remaining, quota.reset) == ("b", 0, 60.0)


def test_newest_draft_without_a_policy_header_names_the_policy_and_leaves_limit_unknown() -> None:
    quota = parse_quota({"RateLimit": '"default";r=7;t=2'}, now=NOW)
    assert quota == Quota(limit=None, remaining=7, reset=2.0, policy="default", observed_at=NOW)


def test_newest_draft_accepts_unquoted_policy_names() -> None:
    quota = parse_quota(
        {"RateLimit": "default;r=5;t=9", "RateLimit-Policy": "default;q=20;w=60"}, now=NOW
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (20, 5, 9.0)


def test_newest_draft_policy_names_may_hold_commas_semicolons_and_escaped_quotes() -> None:
    quota = parse_quota(
        {
            "RateLimit": r'"per user, \"pro\";tier";r=4;t=10',
            "RateLimit-Policy": r'"per user, \"pro\";tier";q=40;w=60',
        },
        now=NOW,
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (40, 4, 10.0)


def test_newest_draft_member_without_usable_counters_is_skipped() -> None:
    quota = parse_quota({"RateLimit": '"broken";r=lots;t=soon, "fine";r=9;t=3'}, now=NOW)
    assert quota is not None
    assert (quota.policy, quota.remaining, quota.reset) == ("fine", 9, 3.0)


def test_newest_draft_member_with_only_a_reset_is_used_for_the_reset() -> None:
    quota = parse_quota({"RateLimit": '"window";t=12'}, now=NOW)
    assert quota is not None
    assert (quota.remaining, quota.reset, quota.policy) == (None, 12.0, "window")


def test_draft_07_dictionary_form_is_read() -> None:
    quota = parse_quota(
        {"RateLimit": "limit=100, remaining=50, reset=30", "RateLimit-Policy": "100;w=60"}, now=NOW
    )
    assert quota == Quota(limit=100, remaining=50, reset=30.0, policy="100;w=60", observed_at=NOW)


def test_the_policy_whose_quota_is_the_limit_is_the_one_reported() -> None:
    quota = parse_quota(
        {"RateLimit": "limit=50, remaining=1, reset=7", "RateLimit-Policy": "10;w=1, 50;w=60"},
        now=NOW,
    )
    assert quota is not None
    assert quota.policy == "50;w=60"


def test_without_a_policy_matching_the_limit_the_first_policy_is_reported() -> None:
    quota = parse_quota(
        {"RateLimit": "limit=7, remaining=1, reset=7", "RateLimit-Policy": "10;w=1, 50;w=60"},
        now=NOW,
    )
    assert quota is not None
    assert quota.policy == "10;w=1"


def test_older_drafts_separate_fields_are_read() -> None:
    quota = parse_quota(
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "59"}, now=NOW
    )
    assert quota == Quota(limit=100, remaining=99, reset=59.0, policy=None, observed_at=NOW)


def test_a_limit_header_announcing_its_policies_gives_the_limit_and_the_policy() -> None:
    quota = parse_quota(
        {"RateLimit-Limit": "100, 10;w=1, 100;w=60", "RateLimit-Remaining": "3"}, now=NOW
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.policy) == (100, 3, "100;w=60")


def test_github_epoch_reset_becomes_seconds_from_now() -> None:
    quota = parse_quota(
        {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(NOW) + 1800),
        },
        now=NOW,
    )
    assert quota == Quota(limit=5000, remaining=4999, reset=1800.0, policy=None, observed_at=NOW)
    assert quota.resets_at == NOW + 1800


def test_epoch_milliseconds_reset_becomes_seconds_from_now() -> None:
    quota = parse_quota({"X-RateLimit-Reset": str(int(NOW * 1000) + 2500)}, now=NOW)
    assert quota is not None
    assert quota.reset == pytest.approx(2.5)


def test_epoch_reset_in_the_past_means_the_window_already_reset() -> None:
    quota = parse_quota({"X-RateLimit-Reset": str(int(NOW) - 5)}, now=NOW)
    assert quota is not None
    assert quota.reset == 0.0


def test_small_reset_values_are_delta_seconds_even_with_decimals() -> None:
    quota = parse_quota({"X-RateLimit-Reset": "1.25"}, now=NOW)
    assert quota is not None
    assert quota.reset == 1.25


def test_discord_reset_after_is_preferred_over_its_epoch_reset() -> None:
    quota = parse_quota(
        {"X-RateLimit-Reset": f"{NOW + 100:.3f}", "X-RateLimit-Reset-After": "64.57"}, now=NOW
    )
    assert quota is not None
    assert quota.reset == 64.57


def test_http_date_reset_becomes_seconds_from_now() -> None:
    quota = parse_quota({"X-RateLimit-Reset": formatdate(NOW + 90, usegmt=True)}, now=NOW)
    assert quota is not None
    assert quota.reset == 90.0


def test_http_date_reset_in_the_past_means_the_window_already_reset() -> None:
    quota = parse_quota({"RateLimit-Reset": formatdate(NOW - 90, usegmt=True)}, now=NOW)
    assert quota is not None
    assert quota.reset == 0.0


def test_standard_fields_win_over_x_fields_when_both_are_sent() -> None:
    quota = parse_quota(
        {
            "RateLimit": "limit=100, remaining=10, reset=5",
            "RateLimit-Limit": "200",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "30",
            "X-RateLimit-Reset": "50",
        },
        now=NOW,
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (100, 10, 5.0)


def test_older_standard_fields_win_over_x_fields() -> None:
    quota = parse_quota(
        {
            "RateLimit-Limit": "200",
            "RateLimit-Remaining": "20",
            "RateLimit-Reset": "2",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "30",
            "X-RateLimit-Reset": "50",
        },
        now=NOW,
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (200, 20, 2.0)


def test_a_malformed_standard_field_falls_back_to_the_x_field() -> None:
    quota = parse_quota(
        {
            "RateLimit": "limit=lots, remaining=10, reset=-3",
            "RateLimit-Remaining": "x",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Reset": "50",
        },
        now=NOW,
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.reset) == (300, 10, 50.0)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "-1", "1e3", "abc", "12abc", "9" * 16, "1.5", "0x10", "١٢٣"],
)
def test_a_malformed_limit_is_skipped_and_the_rest_kept(value: str) -> None:
    quota = parse_quota({"X-RateLimit-Limit": value, "X-RateLimit-Remaining": "4"}, now=NOW)
    assert quota == Quota(limit=None, remaining=4, reset=None, policy=None, observed_at=NOW)


@pytest.mark.parametrize("value", ["-3", "soon", "1e9", "9" * 30, "Mon, 99 Foo 2024 99:99:99 GMT"])
def test_a_malformed_reset_is_skipped(value: str) -> None:
    quota = parse_quota({"RateLimit-Reset": value, "RateLimit-Remaining": "1"}, now=NOW)
    assert quota is not None
    assert (quota.reset, quota.remaining) == (None, 1)


def test_responses_without_rate_limit_headers_have_no_quota() -> None:
    assert parse_quota({"Content-Type": "application/json", "Retry-After": "3"}, now=NOW) is None


def test_rate_limit_headers_that_are_all_malformed_give_no_quota() -> None:
    headers = {"RateLimit": "garbage", "X-RateLimit-Remaining": "many", "RateLimit-Policy": ""}
    assert parse_quota(headers, now=NOW) is None


def test_header_names_match_whatever_their_case() -> None:
    expected = Quota(limit=10, remaining=2, reset=3.0, policy=None, observed_at=NOW)
    plain = {"x-ratelimit-limit": "10", "X-RATELIMIT-REMAINING": "2", "X-Ratelimit-Reset": "3"}
    assert parse_quota(plain, now=NOW) == expected
    multi = CIMultiDict(plain)
    assert parse_quota(multi, now=NOW) == expected


def test_a_header_sent_on_several_lines_is_read_as_one_list() -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("RateLimit", '"burst";r=9;t=1')
    headers.add("RateLimit", '"daily";r=2;t=600')
    quota = parse_quota(headers, now=NOW)
    assert quota is not None
    assert (quota.policy, quota.remaining) == ("daily", 2)


def test_remaining_above_limit_is_reported_as_the_server_said() -> None:
    quota = parse_quota({"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "25"}, now=NOW)
    assert quota is not None
    assert (quota.limit, quota.remaining) == (10, 25)


def test_a_quota_is_immutable_and_knows_when_it_resets() -> None:
    quota = Quota(limit=1, remaining=0, reset=None, policy=None, observed_at=NOW)
    assert quota.resets_at is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        quota.remaining = 5  # type: ignore[misc]


_NAMES = st.sampled_from(
    [
        "RateLimit",
        "ratelimit-policy",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RATELIMIT-RESET",
        "X-RateLimit-Limit",
        "x-ratelimit-remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Reset-After",
        "Content-Type",
    ]
)
# Mostly characters that matter to the parser, so the examples reach its corners.
_VALUES = st.one_of(
    st.text(),
    st.text(alphabet='0123456789;=,"\\ .-rtqwlimitsGMTMon:', max_size=40),
)


@given(headers=st.dictionaries(_NAMES, _VALUES, max_size=8), now=st.floats(0, 4e9))
def test_parse_quota_never_raises_and_reports_well_typed_values(
    headers: dict[str, str], now: float
) -> None:
    quota = parse_quota(headers, now=now)
    if quota is None:
        return
    assert quota.observed_at == now
    assert quota.limit is None or (isinstance(quota.limit, int) and quota.limit >= 0)
    assert quota.remaining is None or (isinstance(quota.remaining, int) and quota.remaining >= 0)
    assert quota.reset is None or quota.reset >= 0.0
    assert quota.policy is None or isinstance(quota.policy, str)


@given(limit=st.integers(0, 10**12), remaining=st.integers(0, 10**12))
def test_limit_and_remaining_are_reported_as_sent_whatever_their_order(
    limit: int, remaining: int
) -> None:
    quota = parse_quota({"RateLimit": f"limit={limit}, remaining={remaining}, reset=1"}, now=NOW)
    assert quota is not None
    assert (quota.limit, quota.remaining) == (limit, remaining)
