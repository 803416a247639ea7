"""What a handler sees besides the body (``MessageContext``) and what it may raise to steer.

``RetryLater`` and ``Reject`` are signals, not errors: a handler raises them
from any depth (FastStream's ``Nack``/``Reject`` shape) to say "not now" or
"never". Every other exception is a failure that the handler's retry
schedule, ``max_attempts`` and ``permanent=`` decide about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from interlink.core.clock import Clock
from interlink.messaging._message import Message

__all__ = ["MessageContext", "Reject", "RetryLater"]


class RetryLater(Exception):
    """Raise from a handler to have the message tried again.

    ``delay`` (seconds) overrides the retry schedule for this one wait; ``None``
    uses the schedule. It counts as a failed attempt: once ``max_attempts`` is
    reached the message is dead-lettered (reason ``"exhausted"``), so a
    handler that always says "later" cannot loop forever.
    """

    def __init__(
        self, reason: str = "retry requested by the handler", *, delay: float | None = None
    ) -> None:
        super().__init__(reason)
        if delay is not None and (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise ValueError(f"RetryLater delay must be None or finite seconds >= 0, got {delay!r}")
        self.delay = None if delay is None else float(delay)


class Reject(Exception):
    """Raise from a handler to dead-letter the message at once, without retrying.

    ``reason`` is kept in the dead letter's error message; the failure's
    ``reason`` field is ``"rejected"``.
    """

    def __init__(self, reason: str = "rejected by the handler") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MessageContext:
    """The delivery being handled, as the handler's second argument.

    ``attempt`` is 1 on the first try and grows with each retry; ``delivery_count``
    also counts redeliveries after a crash. ``idempotency_key`` is
    ``"<handler>:<message id>"``: stable across retries, redeliveries and
    replays of the same message, distinct per handler, so use it as the key of
    any side effect that must happen once (an ``Idempotency-Key`` header, a
    unique column). ``headers`` include ``traceparent``/``tracestate`` when the
    publisher set them. ``clock`` is the worker's clock.
    """

    message: Message
    handler: str
    clock: Clock

    @property
    def message_id(self) -> str:
        """The message id (kept through retries, dead-lettering and replay)."""
        return self.message.id

    @property
    def queue(self) -> str:
        """The queue the message came from."""
        return self.message.queue

    @property
    def attempt(self) -> int:
        """1 on the first try, +1 per retry; a replay from the DLQ starts again at 1."""
        return self.message.attempt

    @property
    def delivery_count(self) -> int:
        """Every delivery of this attempt budget, including redeliveries after crashes."""
        return self.message.delivery_count

    @property
    def headers(self) -> Mapping[str, str]:
        """The message headers (read only)."""
        return self.message.headers

    @property
    def idempotency_key(self) -> str:
        """``"<handler>:<message id>"``: the key for effects that must happen once."""
        return f"{self.handler}:{self.message.id}"


# The names a dead letter records (``Failure.error_type``): the public ones.
RetryLater.__module__ = "interlink.messaging"
Reject.__module__ = "interlink.messaging"
