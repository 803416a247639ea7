"""What a webhook handler gets: ``ReceivedWebhook``, rebuilt from the stored message.

The receiver publishes the raw body as the message body, with message id
``"<source>:<webhook id>"`` (a source name holds no ``:``), and what else it
learnt on receipt in one ``x-interlink-webhook`` header (scheme, signed
timestamp, receipt time and id), beside the request headers it forwards. ``webhook_handler`` turns a handler of ``(ReceivedWebhook, ctx)``
into one the ``Worker`` runs, so a webhook is retried and dead-lettered like
any message, and verified once, on receipt (a retry hours later must not fail
a freshness check: pitfall 6 of research/webhooks.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from interlink.messaging._context import MessageContext
from interlink.messaging._handler import HandlerFunc, InvalidPayloadError

__all__ = ["HEADER_WEBHOOK", "ReceivedWebhook", "receipt_header", "webhook_handler"]

HEADER_WEBHOOK: Final = "x-interlink-webhook"
"""What the receiver learnt, in one header (one per webhook is cheaper to store than four):
``scheme=standard; timestamp=1800000000; received_at=1800000000.25; receipt=<id>``
(``timestamp=-`` when the scheme signs none)."""


def receipt_header(scheme: str, timestamp: int | None, received_at: float, receipt: str) -> str:
    """The value of ``HEADER_WEBHOOK``."""
    stamp = "-" if timestamp is None else timestamp
    return f"scheme={scheme}; timestamp={stamp}; received_at={received_at!r}; receipt={receipt}"


def _parse_receipt(value: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in value.split("; "))


_OURS: Final = "x-interlink-"


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """A verified webhook as stored: handed to a ``webhook_handler`` function.

    ``id`` is the provider's id (``VerifiedWebhook.id``), ``message_id`` is
    ``"<source>:<id>"``; ``timestamp`` the signed unix time or ``None``;
    ``received_at`` the receiver's wall time (unix seconds) when it verified
    it; ``receipt_id`` what the provider was answered; ``headers`` the
    forwarded request headers (lower-case names); ``body`` the raw bytes.
    """

    source: str
    id: str
    message_id: str
    scheme: str
    timestamp: int | None
    received_at: float
    receipt_id: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not JSON."""
        return json.loads(self.body)

    @classmethod
    def from_message(cls, ctx: MessageContext) -> ReceivedWebhook:
        """Rebuild it from a stored message; ``InvalidPayloadError`` when the message is no webhook."""
        headers = ctx.message.headers
        source, colon, webhook_id = ctx.message.id.partition(":")
        try:
            if not colon or not webhook_id:
                raise KeyError("message id '<source>:<webhook id>'")
            facts = _parse_receipt(headers[HEADER_WEBHOOK])
            stamp = facts["timestamp"]
            return cls(
                source=source,
                id=webhook_id,
                message_id=ctx.message.id,
                scheme=facts["scheme"],
                timestamp=None if stamp == "-" else int(stamp),
                received_at=float(facts["received_at"]),
                receipt_id=facts["receipt"],
                body=ctx.message.body,
                headers={k: v for k, v in headers.items() if not k.startswith(_OURS)},
            )
        except (KeyError, ValueError) as exc:
            raise InvalidPayloadError(
                f"message {ctx.message.id!r} was not stored by the webhook receiver"
                f" (header {exc} missing or malformed)",
                queue=ctx.message.queue,
            ) from None


WebhookFunc = Callable[[ReceivedWebhook, MessageContext], Awaitable[object]]


def webhook_handler(func: WebhookFunc) -> HandlerFunc:
    """Adapt ``async def f(webhook: ReceivedWebhook, ctx)`` to a ``Worker`` handler.

    Use it under ``@worker.handler(queue, ...)``: retries, dead-lettering and
    the inbox apply as to any message, and ``ctx.idempotency_key`` is stable
    for the webhook (its message id is ``"<source>:<webhook id>"``). A message
    that the receiver did not store is dead-lettered at once.
    """

    @functools.wraps(func)
    async def handle(body: Any, ctx: MessageContext) -> object:
        return await func(ReceivedWebhook.from_message(ctx), ctx)

    return handle
