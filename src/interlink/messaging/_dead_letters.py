"""Dead letters: what a message that could not be handled leaves behind, and the API over them.

A dead letter keeps the original message (body, headers, id) and why it
died: the error's type, message and a traceback excerpt, how many attempts
ran, when the first and the last failed, the queue it came from and the
handler that gave up. ``DeadLetters`` (``broker.dead_letters``) lists, shows,
replays and purges them; every backend implements it over its own storage.
"""

from __future__ import annotations

import traceback as _traceback
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from interlink.core.errors import ConfigError
from interlink.messaging._message import Message

__all__ = ["DeadLetter", "DeadLetters", "Failure", "describe_failure"]

_List = list  # ``DeadLetters.list`` shadows the builtin inside the class

_MAX_ERROR_MESSAGE = 2_000
_MAX_TRACEBACK = 8_000


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message is being dead-lettered, as the runtime saw it.

    ``error_type`` is the qualified class name (``"myapp.errors.Invalid"``);
    ``error_message`` and ``traceback`` are capped excerpts; ``reason`` is
    ``"exhausted"`` (every attempt failed), ``"permanent"`` (a declared
    permanent error, or a body that does not validate: no retry),
    ``"delivery_limit"`` (delivered too often without being settled, e.g. a
    handler that crashes its process) or ``"rejected"`` (the handler said so).
    """

    error_type: str
    error_message: str
    traceback: str
    handler: str
    attempts: int
    first_failed_at: float
    last_failed_at: float
    reason: str = "exhausted"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: the original message and the failure that ended it.

    ``id`` is the dead letter's own id (a message replayed and dead-lettered
    again leaves a second record); ``dead_letter_queue`` is the DLQ that holds
    it; ``source_queue`` the queue a replay goes back to; ``dead_lettered_at``
    wall seconds.
    """

    id: str
    message: Message
    failure: Failure
    source_queue: str
    dead_letter_queue: str
    dead_lettered_at: float


def describe_failure(
    error: BaseException,
    *,
    handler: str,
    attempts: int,
    first_failed_at: float,
    last_failed_at: float,
    reason: str = "exhausted",
) -> Failure:
    """A ``Failure`` for ``error``, with its message and traceback capped."""
    cls = type(error)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    text = "".join(_traceback.format_exception(error))
    if len(text) > _MAX_TRACEBACK:
        text = "...\n" + text[-_MAX_TRACEBACK:]
    message = str(error)
    if len(message) > _MAX_ERROR_MESSAGE:
        message = message[:_MAX_ERROR_MESSAGE] + "..."
    return Failure(
        error_type=name,
        error_message=message,
        traceback=text,
        handler=handler,
        attempts=attempts,
        first_failed_at=first_failed_at,
        last_failed_at=last_failed_at,
        reason=reason,
    )


def check_limit(limit: int) -> None:
    """``ConfigError`` unless ``limit`` (of ``DeadLetters.list``) is an integer >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"limit must be an integer >= 0, got {limit!r}")


def check_id_list(dead_letter_ids: Sequence[str] | None, operation: str) -> None:
    """``ConfigError`` when ``operation`` (``"replay"``, ``"purge"``) was given one string."""
    if isinstance(dead_letter_ids, str):
        raise ConfigError(f"{operation} takes a list of dead letter ids, not one string")


def matches(
    record: DeadLetter,
    queue: str | None,
    dead_letter_queue: str | None = None,
    error_type: str | None = None,
) -> bool:
    """Whether ``record`` passes the ``DeadLetters`` filters (``None``: any)."""
    return (
        (queue is None or record.source_queue == queue)
        and (dead_letter_queue is None or record.dead_letter_queue == dead_letter_queue)
        and (error_type is None or record.failure.error_type == error_type)
    )


class DeadLetters(ABC):
    """The dead-letter queues of one broker: inspect, replay, purge.

    Filters combine with AND: ``queue`` is the source queue, ``dead_letter_queue``
    the DLQ, ``error_type`` the exact qualified class name. Results are oldest
    first.
    """

    @abstractmethod
    async def list(
        self,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> _List[DeadLetter]:
        """Dead letters matching the filters, oldest first, at most ``limit``."""

    @abstractmethod
    async def get(self, dead_letter_id: str) -> DeadLetter:
        """One dead letter; ``DeadLetterNotFoundError`` when there is none with that id."""

    @abstractmethod
    async def count(self, *, queue: str | None = None, dead_letter_queue: str | None = None) -> int:
        """How many dead letters match."""

    @abstractmethod
    async def replay(self, dead_letter_ids: Sequence[str]) -> _List[str]:
        """Send each back to its source queue, then remove it; the message ids sent.

        The replayed message keeps its id, body and headers, gains the header
        ``replayed-from: <dead letter id>`` and starts a fresh attempt budget
        (attempt 1). The publish is confirmed before the record is removed, so
        a crash in between leaves both (a duplicate the inbox absorbs), never
        neither. An unknown id raises ``DeadLetterNotFoundError`` before
        anything is replayed.
        """

    @abstractmethod
    async def purge(
        self,
        dead_letter_ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> int:
        """Delete the given dead letters (or every one matching the filters); how many went."""
