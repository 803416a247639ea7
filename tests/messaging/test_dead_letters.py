"""What a dead letter records of its failure: ``describe_failure`` and its caps."""

from __future__ import annotations

from interlink.messaging import describe_failure


def test_a_long_error_message_and_traceback_are_capped() -> None:
    failure = describe_failure(
        ValueError("x" * 10_000),
        handler="h",
        attempts=3,
        first_failed_at=1.0,
        last_failed_at=2.0,
        reason="permanent",
    )
    assert failure.error_type == "ValueError"
    assert failure.error_message == "x" * 2_000 + "..."
    assert failure.traceback.startswith("...\n")
    assert len(failure.traceback) == len("...\n") + 8_000
    assert failure.traceback.endswith("x\n")
    assert (failure.attempts, failure.reason) == (3, "permanent")


def test_a_short_error_is_kept_whole_and_named_with_its_module() -> None:
    class Invalid(Exception):
        pass

    failure = describe_failure(
        Invalid("bad"), handler="h", attempts=1, first_failed_at=1.0, last_failed_at=1.0
    )
    assert failure.error_type == f"{__name__}.{Invalid.__qualname__}"
    assert failure.error_message == "bad"
    assert not failure.traceback.startswith("...")
