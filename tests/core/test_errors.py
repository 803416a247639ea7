from __future__ import annotations

import pytest

from interlink.core import errors


def test_every_public_error_derives_from_the_one_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.InterlinkError), name


def test_the_tree_in_the_docstring_names_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} missing from the error tree drawn in errors.py"


@pytest.mark.parametrize(
    "cls",
    [
        errors.CircuitOpenError,
        errors.CircuitForcedOpenError,
        errors.BulkheadFullError,
        errors.RateLimitedError,
        errors.ThrottledLocallyError,
    ],
)
def test_rejections_are_resilience_errors_with_retry_after(cls: type[errors.RejectedError]) -> None:
    err = cls("busy", retry_after=1.5, policy="payments")
    assert isinstance(err, errors.RejectedError)
    assert err.retry_after == 1.5
    assert err.policy == "payments"
    assert str(err) == "busy"


def test_timeouts_can_be_caught_as_builtin_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise errors.DeadlineExceededError("too late")
    with pytest.raises(TimeoutError):
        raise errors.AttemptTimeoutError("too slow")


def test_retry_exhausted_reports_attempts_elapsed_and_last_result() -> None:
    err = errors.RetryExhaustedError(
        "gave up", attempts=3, elapsed=1.25, last_result={"status": 503}
    )
    assert (err.attempts, err.elapsed, err.last_result, err.retry_after) == (
        3,
        1.25,
        {"status": 503},
        None,
    )
