"""Fallback: a value or a handler's answer replaces chosen errors; cancellation never does."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from interlink.core.errors import CircuitOpenError, ConfigError, RejectedError
from interlink.resilience import Fallback, ResilienceEvent
from interlink.testing import FakeClock


async def fail_with(error: BaseException) -> str:
    raise error


async def succeed() -> str:
    return "fresh"


async def test_a_value_replaces_a_failure() -> None:
    fallback = Fallback("cached")
    assert await fallback.call(fail_with, RuntimeError("down")) == "cached"
    assert await fallback.call(succeed) == "fresh"


async def test_a_falsy_value_is_a_value() -> None:
    assert await Fallback(None).call(fail_with, RuntimeError()) is None
    assert await Fallback("").call(fail_with, RuntimeError()) == ""


async def test_a_handler_is_told_which_error_it_replaces() -> None:
    seen: list[BaseException] = []

    def handler(exc: Exception) -> str:
        seen.append(exc)
        return f"default after {type(exc).__name__}"

    error = CircuitOpenError("payments breaker open", retry_after=3.0)
    fallback = Fallback(handler=handler)
    assert await fallback.call(fail_with, error) == "default after CircuitOpenError"
    assert seen == [error]


async def test_an_async_handler_is_awaited() -> None:
    async def handler(exc: Exception) -> str:
        await asyncio.sleep(0)
        return f"async {exc}"

    assert await Fallback(handler=handler).call(fail_with, KeyError("k")) == "async 'k'"


async def test_only_chosen_errors_fall_back() -> None:
    by_type = Fallback("x", on=RejectedError)
    assert await by_type.call(fail_with, CircuitOpenError("open")) == "x"
    with pytest.raises(ValueError, match="bad input"):
        await by_type.call(fail_with, ValueError("bad input"))

    by_tuple = Fallback("y", on=(KeyError, TimeoutError))
    assert await by_tuple.call(fail_with, TimeoutError()) == "y"
    with pytest.raises(ZeroDivisionError):
        await by_tuple.call(fail_with, ZeroDivisionError())

    by_predicate = Fallback("z", on=lambda exc: getattr(exc, "status", 0) >= 500)
    http_error = RuntimeError("HTTP 503")
    http_error.status = 503  # type: ignore[attr-defined]
    assert await by_predicate.call(fail_with, http_error) == "z"
    with pytest.raises(RuntimeError, match="no status"):
        await by_predicate.call(fail_with, RuntimeError("no status"))


async def test_cancellation_never_falls_back() -> None:
    fallback = Fallback("never", on=lambda exc: True)
    with pytest.raises(asyncio.CancelledError):
        await fallback.call(fail_with, asyncio.CancelledError())

    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.Event().wait()
        return "unreachable"

    task = asyncio.create_task(fallback.call(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_base_exceptions_other_than_cancellation_pass_through() -> None:
    class Shutdown(BaseException):
        pass

    with pytest.raises(Shutdown):
        await Fallback("never", on=lambda exc: True).call(fail_with, Shutdown())


async def test_a_failing_handler_raises_its_own_error_with_the_original_as_context() -> None:
    def handler(exc: Exception) -> str:
        raise LookupError("no cached copy either")

    original = RuntimeError("down")
    with pytest.raises(LookupError) as caught:
        await Fallback(handler=handler).call(fail_with, original)
    assert caught.value.__context__ is original


async def test_it_emits_applied_with_the_error_type(clock: FakeClock) -> None:
    seen: list[ResilienceEvent] = []
    by_value = Fallback("cached", name="profile", clock=clock)
    by_value.events.subscribe(seen.append)
    await by_value.call(fail_with, TimeoutError())
    await by_value.call(succeed)
    by_handler = Fallback(handler=lambda exc: "h", clock=clock)
    by_handler.events.subscribe(seen.append)
    await by_handler.call(fail_with, KeyError())
    assert [(e.kind, e.policy, dict(e.attributes)) for e in seen] == [
        ("fallback.applied", "profile", {"error": "TimeoutError", "handler": False}),
        ("fallback.applied", "fallback", {"error": "KeyError", "handler": True}),
    ]


async def test_it_works_as_a_decorator_and_has_a_readable_repr() -> None:
    fallback = Fallback([], name="list")

    @fallback
    async def items() -> list[int]:
        raise ConnectionError

    assert await items() == []
    assert repr(fallback) == "Fallback([], name='list')"
    assert repr(Fallback(handler=repr)).startswith("Fallback(handler=<built-in function repr>")
    # help(Fallback) shows a readable default for the optional value.
    assert repr(inspect.signature(Fallback).parameters["value"].default) == "<no value>"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "Fallback needs exactly one of value and handler, got neither"),
        (("v",), {"handler": str}, "Fallback needs exactly one of value and handler, got both"),
        (
            (),
            {"handler": "not callable"},
            "Fallback handler must be a callable (error) -> value or None, got 'not callable'",
        ),
        (
            ("v",),
            {"on": 42},
            "Fallback on must be an exception type, a tuple of them or a predicate",
        ),
        (("v",), {"on": ()}, "Fallback on must name at least one exception type, got ()"),
        (("v",), {"on": asyncio.CancelledError}, "cancellation is never handled"),
        (("v",), {"on": (ValueError, "oops")}, "Fallback on must hold Exception subclasses"),
    ],
)
def test_bad_arguments_are_config_errors(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Fallback(*args, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
