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


def test_publish_error_says_which_message_and_why() -> None:
    err = errors.PublishError("not confirmed", queue="orders", message_id="m1", reason="timeout")
    assert isinstance(err, errors.MessagingError)
    assert (err.queue, err.message_id, err.reason) == ("orders", "m1", "timeout")


def test_delivery_error_names_the_message_left_unacknowledged() -> None:
    err = errors.DeliveryError("could not dead-letter", queue="orders", message_id="m2")
    assert isinstance(err, errors.MessagingError)
    assert (err.queue, err.message_id) == ("orders", "m2")


def test_an_unknown_dead_letter_is_a_key_error_with_a_readable_message() -> None:
    err = errors.DeadLetterNotFoundError("dl-9", queue="orders.dlq")
    assert isinstance(err, KeyError)
    assert str(err) == "no dead letter with id 'dl-9'"
    assert err.dead_letter_id == "dl-9"
