"""RabbitMQ layout and wire format of the ``amqp://`` backend: queues, delay levels, headers.

Pure functions and constants, no I/O, so the layout can be read (and
tested) in one place.

**Queues.** For a queue ``orders`` the backend declares:

- ``orders``: durable quorum queue, ``x-delivery-limit`` (URL option
  ``delivery_limit``, default 20, RabbitMQ 4's own default), dead-lettering
  to ``orders.dlq`` with the ``at-least-once`` strategy (which RabbitMQ only
  allows with ``x-overflow=reject-publish``). A message delivered more than
  the limit without being settled (a handler that crashes its process) is
  moved to the DLQ by RabbitMQ itself, and no dead letter is lost in transit.
- ``orders.dlq``: durable quorum queue holding dead letters. Its delivery
  limit is set huge on purpose: dead letters are *browsed* (fetched without
  ack, then given back), which counts as a delivery, and RabbitMQ 4 would
  otherwise drop a dead letter after 20 looks at it.
- ``orders.delay.<ms>ms``: one quorum queue per delay level, with a
  queue-level ``x-message-ttl`` of that many milliseconds and dead-lettering
  back to ``orders`` (``x-dead-letter-exchange ""``, routing key ``orders``,
  ``at-least-once``). Every message in it has the same TTL, so the head always
  expires first: no head-of-line blocking (per-message TTL would block,
  dramatiq PR#458). Nobody consumes it, so no unacked message is held and
  RabbitMQ's ``consumer_timeout`` never fires (dramatiq#827). It carries
  ``x-expires`` = TTL + 10 min, so a level nobody uses any more disappears
  on its own; the broker re-declares a level at least every 5 minutes while
  it publishes to it (publishes do not reset ``x-expires``; a re-declare
  does), so a queue never expires under a waiting message.

**Delay levels.** A delay is rounded *up* to the next level of a geometric
grid of 15 levels per doubling (``1000 * 2**(k/15)`` ms): never early, at
most 4.7 % late, powers of two seconds exact. That bounds the number of
delay queues per source (at most 466 levels from 1 ms to 2**21 s, ~24 days;
a retry schedule with jitter uses a handful) where exact delays would create
one queue per distinct value. A delay above the top level goes through the
top level repeatedly: the message carries its due time and the consumer
sends it round again until it is due, without handing it out.

**Headers.** ``attempt`` travels as ``x-interlink-attempt``, the first
publish's wall time as ``x-interlink-published-at``, the deliveries of
earlier attempts (and of releases) as ``x-interlink-deliveries``; RabbitMQ's
own ``x-delivery-count`` (quorum queues) counts this queue stay's
redeliveries, so ``delivery_count = deliveries + x-delivery-count + 1``.
The message id is the AMQP ``message_id`` and the content type the AMQP
``content_type``. A dead letter is the original body with the original
headers plus ``x-interlink-dl-*`` fields for the failure. Times travel as ``repr()``
strings: pamqp encodes a Python float as a 32-bit float, which would move a
Unix time by about a minute.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from interlink.core.errors import ConfigError

if TYPE_CHECKING:
    from aiormq.abc import DeliveredMessage

__all__ = [
    "DELAY_GRACE_MS",
    "DELAY_REFRESH_SECONDS",
    "DLQ_ARGUMENTS",
    "H_ATTEMPT",
    "H_DELIVERIES",
    "H_DUE_AT",
    "H_PUBLISHED_AT",
    "MAX_DELAY_MS",
    "RESERVED",
    "check_delay",
    "check_header_names",
    "delay_level_ms",
    "delay_queue",
    "delay_queue_arguments",
    "source_arguments",
    "tag_of",
    "text_header",
]

H_ATTEMPT: Final = "x-interlink-attempt"
H_PUBLISHED_AT: Final = "x-interlink-published-at"
H_DELIVERIES: Final = "x-interlink-deliveries"
H_DUE_AT: Final = "x-interlink-due-at"

# Dead-letter fields (only on messages in a dead-letter queue).
H_DL_ID: Final = "x-interlink-dl-id"
H_DL_SOURCE: Final = "x-interlink-dl-source-queue"
H_DL_AT: Final = "x-interlink-dl-at"
H_DL_ERROR_TYPE: Final = "x-interlink-dl-error-type"
H_DL_ERROR_MESSAGE: Final = "x-interlink-dl-error-message"
H_DL_TRACEBACK: Final = "x-interlink-dl-traceback"
H_DL_HANDLER: Final = "x-interlink-dl-handler"
H_DL_ATTEMPTS: Final = "x-interlink-dl-attempts"
H_DL_FIRST_FAILED: Final = "x-interlink-dl-first-failed-at"
H_DL_LAST_FAILED: Final = "x-interlink-dl-last-failed-at"
H_DL_REASON: Final = "x-interlink-dl-reason"
H_DL_DELIVERY_COUNT: Final = "x-interlink-dl-delivery-count"

RESERVED: Final = frozenset(
    {
        H_ATTEMPT,
        H_PUBLISHED_AT,
        H_DELIVERIES,
        H_DUE_AT,
        "x-delivery-count",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)
"""Headers the backend and RabbitMQ keep for themselves: not shown in ``Message.headers``."""

_STEPS: Final = 15  # levels per doubling: rounding up costs at most 2**(1/15) - 1 = 4.7 %
_TOP_K: Final = 21 * _STEPS  # 2**21 s: the last level below RabbitMQ's 2**31 - 1 ms TTL cap
MAX_DELAY_MS: Final = 1000 * 2**21
"""The longest single delay level (~24.3 days); longer delays go round it again."""

DELAY_GRACE_MS: Final = 600_000
"""A delay queue's ``x-expires`` is its TTL plus this."""
DELAY_REFRESH_SECONDS: Final = 300.0
"""Re-declare a delay queue at least this often while publishing to it (half the grace)."""

DLQ_ARGUMENTS: Final[dict[str, Any]] = {
    "x-queue-type": "quorum",
    # browsing counts as a delivery: never let RabbitMQ drop a dead letter for it
    "x-delivery-limit": 1_000_000_000,
}


def delay_level_ms(delay: float) -> int:
    """The delay level (milliseconds) for ``delay`` seconds: 0 for none, else the next one up.

    Levels are ``ceil(1000 * 2**(k/15))`` ms for integer ``k``, capped at
    ``MAX_DELAY_MS``: a level is never below the delay asked for (except at
    the cap) and at most 4.7 % above it.
    """
    ms = delay * 1000.0
    if ms <= 0.0:
        return 0
    if ms <= 1.0:
        return 1
    k = math.ceil(_STEPS * math.log2(ms / 1000.0) - 1e-9)
    if k >= _TOP_K:
        return MAX_DELAY_MS
    return max(1, math.ceil(1000.0 * math.pow(2.0, k / _STEPS) - 1e-6))


def check_delay(delay: object) -> float:
    """``delay`` as seconds, or a ``ConfigError``: a number, finite and >= 0."""
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ConfigError(f"delay must be a number of seconds, got {delay!r}")
    if not math.isfinite(delay) or delay < 0:
        raise ConfigError(f"delay must be finite and >= 0 seconds, got {delay!r}")
    return float(delay)


def delay_queue(queue: str, level_ms: int) -> str:
    """The delay queue that holds ``queue``'s messages for ``level_ms`` milliseconds."""
    return f"{queue}.delay.{level_ms}ms"


def source_arguments(dead_letter_queue: str, delivery_limit: int) -> dict[str, Any]:
    """Arguments of a consumed queue: quorum, delivery limit, at-least-once DLX to its DLQ."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def delay_queue_arguments(queue: str, level_ms: int) -> dict[str, Any]:
    """Arguments of ``queue``'s delay queue for ``level_ms``: TTL, expiry, DLX back to ``queue``."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": level_ms,
        "x-expires": level_ms + DELAY_GRACE_MS,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def text_header(value: object) -> str:
    """A header value another producer sent as something else than a string, as text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def check_header_names(headers: dict[str, Any]) -> None:
    """``ConfigError`` for a header name longer than AMQP's 128 bytes (pamqp would cut it)."""
    for name in headers:
        if len(name) > 32 and len(name.encode()) > 128:
            raise ConfigError(f"header name {name[:40]!r}... is longer than 128 bytes of UTF-8")


def tag_of(raw: DeliveredMessage) -> int:
    """The delivery tag of a message delivered by ``basic.deliver`` or ``basic.get``."""
    return getattr(raw.delivery, "delivery_tag", None) or 0
