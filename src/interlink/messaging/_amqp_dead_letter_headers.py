"""The ``x-interlink-dl-*`` headers of the RabbitMQ backend: a dead letter, written and read.

A dead-lettered message keeps its own headers and gains these, which
``failure_headers`` writes (when a delivery is dead-lettered) and
``dead_letter_of`` reads back (when a dead-letter queue is browsed). A
message RabbitMQ dead-lettered by itself carries ``x-death`` instead, which
``dead_letter_of`` reads as well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from aiormq.abc import DeliveredMessage

from interlink.messaging._amqp_topology import (
    H_ATTEMPT,
    H_DELIVERIES,
    H_DL_AT,
    H_DL_ATTEMPTS,
    H_DL_DELIVERY_COUNT,
    H_DL_ERROR_MESSAGE,
    H_DL_ERROR_TYPE,
    H_DL_FIRST_FAILED,
    H_DL_HANDLER,
    H_DL_ID,
    H_DL_LAST_FAILED,
    H_DL_REASON,
    H_DL_SOURCE,
    H_DL_TRACEBACK,
    H_PUBLISHED_AT,
    RESERVED,
    text_header,
)
from interlink.messaging._dead_letters import DeadLetter, Failure
from interlink.messaging._message import (
    HEADER_FIRST_FAILED_AT,
    OCTET_STREAM,
    Message,
    new_message_id,
)

__all__ = ["dead_letter_of", "failure_headers"]

_DL_PREFIX = "x-interlink-dl-"
_WHY = {
    "delivery_limit": "it was delivered more often than the queue's x-delivery-limit without "
    "being settled (a consumer that crashed or kept giving it back)",
    "rejected": "a consumer rejected it without requeueing",
    "expired": "its TTL ran out",
    "maxlen": "the queue was over its length limit",
}


def _float(value: Any, default: float) -> float:
    try:
        return float(text_header(value) if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return default


def _int(value: Any, default: int) -> int:
    return int(_float(value, default))


def dead_letter_of(raw: DeliveredMessage, dead_letter_queue: str) -> DeadLetter:
    """The ``DeadLetter`` a message browsed from ``dead_letter_queue`` stands for."""
    properties = raw.header.properties
    headers: dict[str, Any] = dict(properties.headers or {})
    message_id = properties.message_id or ""
    attempt = max(_int(headers.get(H_ATTEMPT, 1), 1), 1)
    user = {
        name: value if isinstance(value, str) else text_header(value)
        for name, value in headers.items()
        if name not in RESERVED and not name.startswith(_DL_PREFIX)
    }
    own_id = headers.get(H_DL_ID)
    if own_id is not None:
        dead_letter_id = f"{dead_letter_queue}:{text_header(own_id)}"
        source = text_header(headers.get(H_DL_SOURCE, ""))
        dead_lettered_at = _float(headers.get(H_DL_AT), 0.0)
        failure = Failure(
            error_type=text_header(headers.get(H_DL_ERROR_TYPE, "")),
            error_message=text_header(headers.get(H_DL_ERROR_MESSAGE, "")),
            traceback=text_header(headers.get(H_DL_TRACEBACK, "")),
            handler=text_header(headers.get(H_DL_HANDLER, "")),
            attempts=_int(headers.get(H_DL_ATTEMPTS), attempt),
            first_failed_at=_float(headers.get(H_DL_FIRST_FAILED), dead_lettered_at),
            last_failed_at=_float(headers.get(H_DL_LAST_FAILED), dead_lettered_at),
            reason=text_header(headers.get(H_DL_REASON, "exhausted")),
        )
        delivery_count = _int(headers.get(H_DL_DELIVERY_COUNT), attempt)
    else:
        # dead-lettered by RabbitMQ itself; x-death lists the most recent death first
        deaths = headers.get("x-death")
        death: dict[str, Any] = {}
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            death = deaths[0]
        why = text_header(death.get("reason", "rejected"))
        fallback = dead_letter_queue[:-4] if dead_letter_queue.endswith(".dlq") else ""
        source = text_header(death.get("queue") or fallback)
        when = death.get("time")
        dead_lettered_at = float(when.timestamp()) if isinstance(when, dt.datetime) else 0.0
        seed = repr((message_id, source, why, dead_lettered_at, death.get("count"))).encode()
        dead_letter_id = f"{dead_letter_queue}:{hashlib.sha256(seed + raw.body).hexdigest()[:32]}"
        failure = Failure(
            error_type=f"rabbitmq.{why}",
            error_message=f"RabbitMQ dead-lettered it from {source!r}: "
            + _WHY.get(why, f"reason {why!r}"),
            traceback="",
            handler="",
            attempts=attempt,
            first_failed_at=_float(headers.get(HEADER_FIRST_FAILED_AT), dead_lettered_at),
            last_failed_at=dead_lettered_at,
            reason="delivery_limit" if why == "delivery_limit" else "rejected",
        )
        # how often the source delivered it is not in the message: count the one we know of
        delivery_count = _int(headers.get(H_DELIVERIES), attempt - 1) + 1
    message = Message(
        id=message_id,
        queue=source,
        body=raw.body,
        headers=user,
        content_type=properties.content_type or OCTET_STREAM,
        attempt=attempt,
        delivery_count=max(delivery_count, attempt),
        published_at=_float(headers.get(H_PUBLISHED_AT), 0.0),
    )
    return DeadLetter(
        id=dead_letter_id,
        message=message,
        failure=failure,
        source_queue=source,
        dead_letter_queue=dead_letter_queue,
        dead_lettered_at=dead_lettered_at,
    )


def failure_headers(message: Message, failure: Failure, dead_lettered_at: float) -> dict[str, Any]:
    """The headers that record ``failure`` on ``message``'s copy in a dead-letter queue."""
    return {
        H_DL_ID: new_message_id(),
        H_DL_SOURCE: message.queue,
        H_DL_AT: repr(dead_lettered_at),
        H_DL_DELIVERY_COUNT: message.delivery_count,
        H_DL_ERROR_TYPE: failure.error_type,
        H_DL_ERROR_MESSAGE: failure.error_message,
        H_DL_TRACEBACK: failure.traceback,
        H_DL_HANDLER: failure.handler,
        H_DL_ATTEMPTS: failure.attempts,
        H_DL_FIRST_FAILED: repr(float(failure.first_failed_at)),
        H_DL_LAST_FAILED: repr(float(failure.last_failed_at)),
        H_DL_REASON: failure.reason,
    }
