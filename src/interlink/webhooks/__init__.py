"""Webhooks in: verify every major provider's signature, and receive them without losing one.

``verify(scheme, secrets=..., headers=..., body=...)`` is a pure function that
returns a ``VerifiedWebhook`` or raises ``SignatureError``. ``WebhookReceiver``
is an ASGI app that verifies each ``WebhookSource``'s webhooks, answers the
providers' handshakes, and answers 2xx only once a webhook is durably
published to its queue; ``webhook_handler`` adapts a function of
``(ReceivedWebhook, ctx)`` to the ``Worker`` that processes them.
"""

from interlink.core.errors import SignatureError, WebhookError
from interlink.webhooks import schemes as _schemes
from interlink.webhooks._receipts import ReceiptLog
from interlink.webhooks._received import ReceivedWebhook, webhook_handler
from interlink.webhooks._receiver import (
    RECENT_WEBHOOKS,
    AnsweredListener,
    RecentWebhook,
    SourceStats,
    WebhookReceiver,
)
from interlink.webhooks._scheme import (
    REASONS,
    SCHEMES,
    Handshake,
    Scheme,
    VerifiedWebhook,
    register_scheme,
)
from interlink.webhooks._source import (
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_MAX_BODY,
    WebhookSource,
    sources_from_config,
)
from interlink.webhooks._verify import build_scheme, verify

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_MAX_BODY",
    "REASONS",
    "RECENT_WEBHOOKS",
    "SCHEMES",
    "AnsweredListener",
    "Handshake",
    "ReceiptLog",
    "ReceivedWebhook",
    "RecentWebhook",
    "Scheme",
    "SignatureError",
    "SourceStats",
    "VerifiedWebhook",
    "WebhookError",
    "WebhookReceiver",
    "WebhookSource",
    "build_scheme",
    "register_scheme",
    "sources_from_config",
    "verify",
    "webhook_handler",
]

del _schemes
