"""The admin API's request and response bodies, as pydantic models (its OpenAPI schemas).

``_admin`` serves them; keeping every field typed and described here is what
makes ``/admin/openapi.json`` precise enough for a client generator and for
schemathesis.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

__all__ = [
    "MAX_LIMIT",
    "UNION_TAGS",
    "BreakerInfo",
    "BreakerList",
    "BreakerWindow",
    "DeadLetterDetail",
    "DeadLetterFilter",
    "DeadLetterList",
    "DeadLetterSummary",
    "FieldError",
    "Problem",
    "PurgeResult",
    "QueueInfo",
    "QueueList",
    "RecentRequest",
    "ReplayIds",
    "ReplayMatching",
    "ReplayRequest",
    "ReplayResult",
    "Replayed",
    "WebhookInfo",
    "WebhookList",
]

MAX_LIMIT: Final = 1000
"""The most dead letters one list or replay takes."""

QueueName = Annotated[str, Field(min_length=1, max_length=200)]
ErrorType = Annotated[str, Field(min_length=1, max_length=500)]
Id = Annotated[str, Field(min_length=1, max_length=500)]


class FieldError(BaseModel):
    """One invalid part of a request."""

    loc: list[str | int] = Field(description="Where: ['query', 'limit'], ['body', 'ids', 0].")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="The kind of error (pydantic's error type).")


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer of the admin API."""

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="The status's reason phrase.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="What went wrong, for a person.")
    errors: list[FieldError] | None = Field(None, description="422: each invalid part.")


class QueueInfo(BaseModel):
    """One queue now."""

    name: str
    ready: int | None = Field(description="Messages deliverable now (null: unknown).")
    delayed: int | None = Field(description="Messages waiting for a retry delay (null: unknown).")
    in_flight: int | None = Field(description="Delivered and not yet settled (null: unknown).")
    oldest_age_seconds: float | None = Field(
        description="Seconds since the oldest ready message was published (null: none ready)."
    )
    dead_letters: int = Field(description="Dead letters from this queue.")
    dead_letter_queue: str = Field(description="The queue its dead letters go to.")


class QueueList(BaseModel):
    """Every queue of the config: ``queues:``, then the webhook sources' ``publish_to``."""

    items: list[QueueInfo]


class DeadLetterSummary(BaseModel):
    """One dead letter, without its message body and traceback."""

    id: str = Field(description="The dead letter's own id.")
    message_id: str = Field(description="The id of the message that died.")
    source_queue: str = Field(description="The queue a replay sends it back to.")
    dead_letter_queue: str
    dead_lettered_at: dt.datetime
    error_type: str = Field(description="The qualified class name of the last error.")
    error_message: str
    reason: str = Field(description="exhausted, permanent, delivery_limit or rejected.")
    attempts: int
    handler: str


class DeadLetterDetail(DeadLetterSummary):
    """One dead letter: the original message and the whole failure."""

    headers: dict[str, str]
    content_type: str
    body: JsonValue = Field(None, description="A JSON body, parsed (null when body_base64 is set).")
    body_base64: str | None = Field(
        None, description="A body that is not JSON, base64-encoded (null for a JSON body)."
    )
    body_text: str | None = Field(
        None,
        description=(
            "A body that is not JSON but is UTF-8 text, as text: a webhook, stored as the"
            " provider sent it (body_base64 holds it too)."
        ),
    )
    published_at: dt.datetime
    attempt: int
    delivery_count: int
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime
    traceback: str


class DeadLetterList(BaseModel):
    """Dead letters matching the filters, oldest first."""

    items: list[DeadLetterSummary]
    count: int = Field(description="How many are listed (at most limit).")
    limit: int


class DeadLetterFilter(BaseModel):
    """Dead letters to match: every given field must match (none given: every dead letter)."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = Field(None, description="The source queue.")
    dlq: QueueName | None = Field(None, description="The dead-letter queue.")
    error_type: ErrorType | None = Field(None, description="The error's qualified class name.")


class ReplayIds(BaseModel):
    """Replay exactly these dead letters (an unknown id: 404, nothing replayed)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Id] = Field(min_length=1, max_length=MAX_LIMIT, description="Dead letter ids.")


class ReplayMatching(BaseModel):
    """Replay the oldest dead letters matching ``filter`` (``{}``: any), at most ``limit``."""

    model_config = ConfigDict(extra="forbid")

    filter: DeadLetterFilter
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="At most this many, oldest first.")


def _replay_kind(value: object) -> str | None:
    """Which body it is: ``ids`` if it has that key, else ``filter``; ``None``: not an object."""
    if isinstance(value, ReplayIds) or (isinstance(value, dict) and "ids" in value):
        return "ids"
    return "filter" if isinstance(value, dict | ReplayMatching) else None


UNION_TAGS: Final = frozenset({"ids", "filter"})
"""The tags ``ReplayRequest`` adds to an error's location (``_admin`` drops them)."""

ReplayRequest = Annotated[
    Annotated[ReplayIds, Tag("ids")] | Annotated[ReplayMatching, Tag("filter")],
    Discriminator(
        _replay_kind,
        custom_error_type="replay_request",
        custom_error_message='expected an object: {"ids": [...]} or {"filter": {...}}',
    ),
]
"""``{"ids": [...]}`` or ``{"filter": {...}, "limit": n}`` (told apart by the key ``ids``)."""


class Replayed(BaseModel):
    """A dead letter sent back to its queue."""

    dead_letter_id: str
    message_id: str


class ReplayResult(BaseModel):
    """What a replay sent back, in order."""

    replayed: list[Replayed]
    count: int


class PurgeResult(BaseModel):
    """How many dead letters a purge deleted."""

    purged: int


BreakerState = Literal["closed", "open", "half_open", "forced_open", "disabled", "metrics_only"]


class BreakerWindow(BaseModel):
    """The breaker's sliding window now."""

    failure_rate: float = Field(description="Percentage of failed calls in the window.")
    slow_call_rate: float = Field(description="Percentage of slow calls in the window.")
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    not_permitted_calls: int = Field(description="Calls rejected since the last reset.")


class BreakerInfo(BaseModel):
    """One client's circuit breaker and recent health."""

    client: str
    state: BreakerState | None = Field(description="null: the client's pipeline has no breaker.")
    error_rate: float = Field(description="Percentage of the client's last 100 calls that failed.")
    requests: int = Field(description="Calls since the service started.")
    failures: int = Field(description="Failed calls since the service started.")
    window: BreakerWindow | None


class BreakerList(BaseModel):
    """Every client's breaker."""

    items: list[BreakerInfo]


class RecentRequest(BaseModel):
    """One of a source's latest requests."""

    at: dt.datetime
    outcome: Literal["accepted", "duplicate", "rejected", "too_large", "unavailable"]
    webhook_id: str | None = Field(description="The provider's id, once verified.")
    receipt: str | None = Field(description="accepted, duplicate: the receipt answered.")
    reason: str | None = Field(description="rejected: why the signature did not verify.")
    client: str | None = Field(
        default=None, description="rejected, too_large: the sender's address, as the server saw it."
    )


class WebhookInfo(BaseModel):
    """One webhook source since the service started."""

    source: str
    path: str
    scheme: str
    queue: str
    accepted: int
    duplicates: int
    handshakes: int
    too_large: int
    unavailable: int = Field(description="Not stored (the broker failed): answered 503.")
    rejected: dict[str, int] = Field(description="Signature rejections by reason.")
    rejected_total: int
    last_received_at: dt.datetime | None
    last_accepted_at: dt.datetime | None
    recent: list[RecentRequest] = Field(description="The latest requests, newest first.")


class WebhookList(BaseModel):
    """Every webhook source."""

    items: list[WebhookInfo]
