"""The message: what a broker stores and a handler receives, the same on every backend.

A body is stored as bytes. ``bytes`` (and ``bytearray``/``memoryview``) go as
they are, with ``content_type`` ``application/octet-stream``; anything else is
encoded as compact JSON (``application/json``), with datetimes, UUIDs,
decimals and pydantic models turned into their JSON forms. ``decode_body``
gives back what the handler should see: the parsed JSON, or the bytes.

Header values are strings. Names starting with ``x-interlink-`` are reserved
for the runtime; ``traceparent``/``tracestate`` and every other header travel
unchanged through publish, retry, dead-lettering and replay.
"""

from __future__ import annotations

import binascii
import datetime as dt
import decimal
import enum
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from interlink.core.errors import ConfigError

__all__ = [
    "HEADER_FIRST_FAILED_AT",
    "HEADER_LAST_ERROR",
    "HEADER_ORDERING_KEY",
    "HEADER_REPLAYED_FROM",
    "JSON",
    "OCTET_STREAM",
    "Message",
    "ShownBody",
    "decode_body",
    "encode_body",
    "new_message_id",
    "show_body",
    "validate_headers",
    "validate_queue_name",
]

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

HEADER_REPLAYED_FROM = "replayed-from"
"""Set on a message replayed from the dead-letter queue: the dead letter's id."""
HEADER_FIRST_FAILED_AT = "x-interlink-first-failed-at"
"""Wall seconds of the first failed attempt, carried from retry to retry."""
HEADER_LAST_ERROR = "x-interlink-last-error"
"""``Type: message`` of the previous attempt's error (capped), for the next attempt."""
HEADER_ORDERING_KEY = "x-interlink-key"
"""The ordering key given at publish: one key's messages are handled in order."""

_MAX_QUEUE_NAME = 200


@dataclass(frozen=True, slots=True)
class Message:
    """One message as delivered.

    ``attempt`` is 1 on the first delivery and grows by one with each retry the
    runtime schedules; ``delivery_count`` counts every delivery, including
    redeliveries after a consumer crashed or a lease expired, so it is never
    below ``attempt``. ``published_at`` is the wall time (Unix seconds) of the
    first publish; a retry keeps it.
    """

    id: str
    queue: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON
    attempt: int = 1
    delivery_count: int = 1
    published_at: float = 0.0

    def decode(self) -> Any:
        """The body as the handler sees it: parsed JSON, or the raw bytes."""
        return decode_body(self.body, self.content_type)


def new_message_id() -> str:
    """A fresh, unique message id (32 hex digits: a random UUID 4 without dashes)."""
    # What uuid.uuid4().hex gives, in a third of its time: that call cost more
    # than the rest of a publish on the SQLite backend.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_body(body: object) -> tuple[bytes, str]:
    """``(bytes, content_type)`` for a body given to ``publish``.

    Raises ``ConfigError`` naming the type when the body cannot be encoded, so a
    bad publish fails before anything is stored.
    """
    if isinstance(body, bytes):
        return body, OCTET_STREAM
    if isinstance(body, bytearray | memoryview):
        return bytes(body), OCTET_STREAM
    try:
        text = json.dumps(
            body, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot publish a {type(body).__name__} body: {exc}; "
            "pass bytes, or a value JSON can encode"
        ) from exc
    return text.encode(), JSON


def decode_body(body: bytes, content_type: str) -> Any:
    """Parse a stored body back: JSON for ``application/json``, else the bytes.

    A JSON body that does not parse raises ``ValueError`` (the runtime treats it
    as a permanent failure: retrying cannot fix it).
    """
    if content_type == JSON:
        return json.loads(body)
    return body


@dataclass(frozen=True, slots=True)
class ShownBody:
    """A stored body as an operator reads it (``show_body``).

    ``is_json``: it is JSON, parsed into ``json``. Otherwise ``base64`` holds
    it exactly, and ``text`` too when it is UTF-8 (a webhook, stored as the
    provider sent it).
    """

    is_json: bool
    json: Any = None
    text: str | None = None
    base64: str | None = None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def show_body(body: bytes, content_type: str) -> ShownBody:
    """How the admin API and ``interlink dlq`` show a dead letter's body.

    JSON when the content type says so (parameters such as ``charset`` aside)
    and the bytes are strict JSON (no ``NaN``): another publisher on RabbitMQ
    can label anything JSON.
    """
    if content_type.split(";")[0].strip().lower() == JSON:
        try:
            return ShownBody(True, json.loads(body, parse_constant=_no_constants))
        except (ValueError, RecursionError):
            pass
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return ShownBody(False, text=text, base64=binascii.b2a_base64(body, newline=False).decode())


def validate_queue_name(queue: object) -> str:
    """The queue name, or a ``ConfigError`` saying what is wrong with it."""
    if not isinstance(queue, str) or not queue:
        raise ConfigError(f"a queue name must be a non-empty string, got {queue!r}")
    if len(queue) > _MAX_QUEUE_NAME:
        raise ConfigError(
            f"queue name {queue[:40]!r}... is longer than {_MAX_QUEUE_NAME} characters"
        )
    if not queue.isprintable() or any(ch.isspace() for ch in queue):
        raise ConfigError(f"queue name {queue!r} holds whitespace or control characters")
    return queue


def validate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of the headers, or a ``ConfigError`` naming the first bad one."""
    if headers is None:
        return {}
    if headers.__class__ is dict and "" not in headers:
        try:  # every name and value a str, checked in C: str.join refuses anything else
            "".join(headers)
            "".join(headers.values())
        except TypeError:
            pass  # the loop below names the first bad one
        else:
            return dict(headers)
    if not isinstance(headers, Mapping):
        raise ConfigError(f"headers must be a mapping of str to str, got {type(headers).__name__}")
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"header names must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise ConfigError(
                f"header {key!r} must be a string, got {type(value).__name__}; "
                "convert it before publishing"
            )
        out[key] = value
    return out
