"""A registered handler: its settings, checked once at registration, and its body decoding.

Settings arrive from Python or from YAML through the service config, so they
accept config spellings too: durations as ``"10s"``, a retry schedule as a
list or a mapping, permanent exceptions as dotted names.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from interlink.core.errors import ConfigError, MessagingError, TransformError
from interlink.messaging._context import MessageContext
from interlink.messaging._message import Message, validate_queue_name
from interlink.messaging._retry_schedule import RetrySchedule
from interlink.observability import _tracing as tracing
from interlink.resilience import _validate as check

__all__ = ["ORDERINGS", "Handler", "HandlerFunc", "InvalidPayloadError", "build_handler"]

HandlerFunc = Callable[[Any, MessageContext], Awaitable[object]]
"""``async def handle(body, ctx) -> None``."""

ORDERINGS = ("block", "continue")

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_DELIVERY_LIMIT = 10

_OWNER = "handler"
_MAX_SHOWN_ERRORS = 5
_DOTTED = re.compile(r"\b(?:\w+\.)+(\w+)")


class InvalidPayloadError(MessagingError):
    """A message body that is not valid JSON or does not validate against the handler's model.

    Permanent: the handler is never called with it and it is dead-lettered at
    once (reason ``"permanent"``). ``errors`` holds pydantic's error list
    (``loc``, ``msg``, ``type``), empty for a JSON syntax error.
    """

    def __init__(self, message: str, *, queue: str = "", errors: Sequence[Any] = ()) -> None:
        super().__init__(message, queue=queue)
        self.errors = list(errors)


InvalidPayloadError.__module__ = "interlink.messaging"  # the name a dead letter records


@dataclass(frozen=True, slots=True)
class Handler:
    """One handler as registered on a ``Worker`` (read ``Worker.handler`` for the meaning)."""

    queue: str
    name: str
    func: HandlerFunc
    concurrency: int
    prefetch: int
    schedule: RetrySchedule
    max_attempts: int
    dead_letter_queue: str | None
    permanent: tuple[type[BaseException], ...]
    model: Any
    ordering: str
    delivery_limit: int
    transform: Any = None
    _adapter: pydantic.TypeAdapter[Any] | None = field(default=None, repr=False)

    def decode(self, message: Message) -> Any:
        """The body the handler gets: decoded, transformed, validated.

        ``InvalidPayloadError`` when it cannot be decoded or validated,
        ``TransformError`` when the transform refuses it: both permanent.
        """
        try:
            value = message.decode()
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise InvalidPayloadError(
                f"message body is not valid JSON: {exc}", queue=message.queue
            ) from exc
        if self.transform is not None:
            if tracing.enabled():  # observability (tracing): the transform span
                value = tracing.transform(self.transform, value)
            else:
                value = self.transform.transform(value)
        if self._adapter is None:
            return value
        try:
            return self._adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise InvalidPayloadError(
                _describe_validation(exc, self.model), queue=message.queue, errors=exc.errors()
            ) from exc

    def is_permanent(self, error: BaseException) -> bool:
        """Whether ``error`` is a declared permanent exception type, an ``InvalidPayloadError``
        or a ``TransformError``."""
        return isinstance(error, (self.permanent, InvalidPayloadError, TransformError))


def _describe_validation(exc: pydantic.ValidationError, model: Any) -> str:
    """``message body does not validate as Order: qty: Input should be ... (input: 'x')``."""
    errors = exc.errors()
    # A class by its name; a generic such as list[app.models.Line] as "list[Line]".
    name = model.__name__ if isinstance(model, type) else _DOTTED.sub(r"\1", repr(model))
    parts = []
    for err in errors[:_MAX_SHOWN_ERRORS]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        shown = repr(err.get("input"))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        parts.append(f"{loc}: {err.get('msg', 'invalid')} (input: {shown})")
    more = len(errors) - _MAX_SHOWN_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    return f"message body does not validate as {name} ({count}): " + "; ".join(parts)


def _permanent_types(value: object) -> tuple[type[BaseException], ...]:
    items: Sequence[object]
    if value is None:
        return ()
    if isinstance(value, type | str):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        check.fail(_OWNER, "permanent", "exception classes or their dotted names", value)
    out: list[type[BaseException]] = []
    for item in items:
        resolved = _resolve(item) if isinstance(item, str) else item
        if not (isinstance(resolved, type) and issubclass(resolved, BaseException)):
            check.fail(_OWNER, "permanent", "exception classes or their dotted names", item)
        out.append(resolved)
    return tuple(out)


def _resolve(dotted: str) -> object:
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        import builtins

        if hasattr(builtins, dotted):
            return getattr(builtins, dotted)
        raise ConfigError(f"handler permanent: no builtin exception named {dotted!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"handler permanent: cannot import {module_name!r} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"handler permanent: {module_name!r} has no {attr!r}") from None


def _is_async(func: object) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - an async __call__ is what we look for
    return call is not None and inspect.iscoroutinefunction(call)


def build_handler(
    queue: str,
    func: HandlerFunc,
    *,
    name: str | None = None,
    concurrency: int = 1,
    prefetch: int | None = None,
    retry: object = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dead_letter_queue: str | None = None,
    permanent: object = (),
    model: Any = None,
    transform: Any = None,
    ordering: str = "block",
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> Handler:
    """Check every setting and return the ``Handler``; ``ConfigError`` names the first bad one."""
    validate_queue_name(queue)
    if not callable(func) or not _is_async(func):
        check.fail(_OWNER, "func", "an async function (body, ctx) -> None", func)
    if name is None:  # the queue keeps same-named functions on two queues apart
        name = f"{queue}:{getattr(func, '__name__', type(func).__name__)}"
    elif not isinstance(name, str) or not name.strip():
        check.fail(_OWNER, "name", "a non-empty string", name)
    workers = check.count(_OWNER, "concurrency", concurrency)
    fetch = workers if prefetch is None else check.count(_OWNER, "prefetch", prefetch)
    check.ordered(_OWNER, "prefetch", fetch, ">=", "concurrency", workers)
    if dead_letter_queue is not None:
        validate_queue_name(dead_letter_queue)
    adapter: pydantic.TypeAdapter[Any] | None = None
    if model is not None:
        try:
            adapter = pydantic.TypeAdapter(model)
        except (pydantic.PydanticUserError, TypeError) as exc:
            raise ConfigError(
                f"handler model {model!r} is not a type pydantic can validate"
            ) from exc
    if transform is not None and not callable(getattr(transform, "transform", None)):
        check.fail(_OWNER, "transform", "a Transformer (an object with transform(item))", transform)
    return Handler(
        queue=queue,
        name=name,
        func=func,
        concurrency=workers,
        prefetch=int(fetch),
        schedule=RetrySchedule.coerce(retry),
        max_attempts=check.count(_OWNER, "max_attempts", max_attempts),
        dead_letter_queue=dead_letter_queue,
        permanent=_permanent_types(permanent),
        model=model,
        ordering=check.one_of(_OWNER, "ordering", ordering, ORDERINGS),
        delivery_limit=check.count(_OWNER, "delivery_limit", delivery_limit),
        transform=transform,
        _adapter=adapter,
    )
