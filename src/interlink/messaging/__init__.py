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
from interlink.messaging._dead_letters import DeadLetter, DeadLetters, Failure, describe_failure
from interlink.messaging._memory import MemoryBroker
from interlink.messaging._message import (
    HEADER_REPLAYED_FROM,
    Message,
    decode_body,
    encode_body,
    new_message_id,
)
from interlink.messaging._sqlite import SqliteBroker

__all__ = [
    "HEADER_REPLAYED_FROM",
    "Broker",
    "Consumer",
    "DeadLetter",
    "DeadLetters",
    "Delivery",
    "Failure",
    "MemoryBroker",
    "Message",
    "QueueStats",
    "SqliteBroker",
    "decode_body",
    "default_dead_letter_queue",
    "describe_failure",
    "encode_body",
    "new_message_id",
    "open_broker",
]
