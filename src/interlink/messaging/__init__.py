"""Messaging that loses nothing: brokers, the worker runtime, dead letters and the inbox.

``open_broker(url)`` opens a backend by URL (``memory://``, ``sqlite:///``,
``amqp://``); every backend keeps the ``Broker`` contract (``_broker.py``).
"""

from interlink.messaging._broker import (
    Broker,
    Consumer,
    Delivery,
    QueueStats,
    default_dead_letter_queue,
    open_broker,
)
from interlink.messaging._context import MessageContext, Reject, RetryLater
from interlink.messaging._dead_letters import DeadLetter, DeadLetters, Failure, describe_failure
from interlink.messaging._handler import Handler, InvalidPayloadError
from interlink.messaging._inbox import (
    ClaimLostError,
    ClaimResult,
    Inbox,
    MemoryInbox,
    open_inbox,
)
from interlink.messaging._inbox_sqlite import SqliteInbox
from interlink.messaging._memory import MemoryBroker
from interlink.messaging._message import (
    HEADER_REPLAYED_FROM,
    Message,
    decode_body,
    encode_body,
    new_message_id,
)
from interlink.messaging._observe import HandlerStats, WorkerEvent, WorkerEvents
from interlink.messaging._retry_schedule import RetrySchedule
from interlink.messaging._runner import DeliveryLimitError
from interlink.messaging._sqlite import SqliteBroker
from interlink.messaging._worker import Worker

__all__ = [
    "HEADER_REPLAYED_FROM",
    "Broker",
    "ClaimLostError",
    "ClaimResult",
    "Consumer",
    "DeadLetter",
    "DeadLetters",
    "Delivery",
    "DeliveryLimitError",
    "Failure",
    "Handler",
    "HandlerStats",
    "Inbox",
    "InvalidPayloadError",
    "MemoryBroker",
    "MemoryInbox",
    "Message",
    "MessageContext",
    "QueueStats",
    "Reject",
    "RetryLater",
    "RetrySchedule",
    "SqliteBroker",
    "SqliteInbox",
    "Worker",
    "WorkerEvent",
    "WorkerEvents",
    "decode_body",
    "default_dead_letter_queue",
    "describe_failure",
    "encode_body",
    "new_message_id",
    "open_broker",
    "open_inbox",
]


def __getattr__(name: str) -> object:
    # RabbitBroker needs aio-pika (the ``rabbitmq`` extra): imported on first use only,
    # so ``import interlink.messaging`` works without it (and it stays out of ``__all__``).
    if name == "RabbitBroker":
        from interlink.messaging._amqp import RabbitBroker

        return RabbitBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
