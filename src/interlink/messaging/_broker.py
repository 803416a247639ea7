"""The ``Broker`` contract every backend keeps, and ``open_broker`` that picks one by URL.

A broker stores messages per queue and hands them out as ``Delivery``
objects. A delivery is settled exactly once, in one of four ways, and each
returns only when the broker has made it durable:

- ``ack()``: done, remove it;
- ``retry(delay)``: deliver it again after ``delay`` seconds as attempt + 1
  (the delay is stored by the broker, never held in this process's memory);
- ``dead_letter(failure)``: move it, with why, to a dead-letter queue;
- ``release(delay)``: give it back untouched (shutdown, or a duplicate that is
  still being handled elsewhere); the attempt count does not grow.

If settling fails it raises ``DeliveryError`` and the message stays
unacknowledged, so the broker delivers it again: a failure to move a message
never loses it (dramatiq PR#545 is the bug this rules out).

Backends by URL scheme: ``memory://`` (in process, for tests), ``sqlite:///``
(the embedded default) and ``amqp://`` / ``amqps://`` (RabbitMQ, the
``rabbitmq`` extra).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlsplit

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.core.errors import ConfigError, DeliveryError
from interlink.messaging._dead_letters import DeadLetters, Failure
from interlink.messaging._message import Message
from interlink.observability._tracing import trace_publish

__all__ = [
    "BACKENDS",
    "Broker",
    "Consumer",
    "Delivery",
    "QueueStats",
    "open_broker",
    "url_options",
]


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What a queue holds now. ``None`` where the backend cannot know.

    ``ready``: deliverable now; ``delayed``: waiting for a retry delay or a
    ``delay=`` publish; ``in_flight``: delivered and not yet settled;
    ``oldest_age``: seconds since the oldest ready message was published;
    ``dead_letters``: records in the queue's dead-letter queue(s).
    """

    queue: str
    ready: int | None
    delayed: int | None
    in_flight: int | None
    oldest_age: float | None
    dead_letters: int | None


class Delivery(ABC):
    """One delivered message, to be settled exactly once.

    Subclasses implement ``_ack``, ``_retry``, ``_dead_letter`` and
    ``_release``; this base makes a second settle a ``RuntimeError`` (a bug in
    the caller) and a failed settle leave the delivery unsettled, so the
    caller may try another way (a failed retry publish, then a release).
    """

    __slots__ = ("_settled", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._settled = False

    @property
    def settled(self) -> bool:
        """Whether this delivery was acked, retried, dead-lettered or released."""
        return self._settled

    def _check(self, action: str) -> None:
        if self._settled:
            raise RuntimeError(
                f"message {self.message.id} from {self.message.queue!r} was already settled; "
                f"cannot {action} it"
            )

    async def ack(self) -> None:
        """It was handled: remove it for good."""
        self._check("ack")
        await self._ack()
        self._settled = True

    async def retry(self, delay: float, *, headers: Mapping[str, str] | None = None) -> None:
        """Deliver it again after ``delay`` seconds as the next attempt.

        ``headers`` are merged over the message's own. Returns once the retry
        is durable and this delivery is acked; raises ``DeliveryError`` (and
        stays unsettled) otherwise.
        """
        self._check("retry")
        if delay < 0:
            raise ValueError(f"retry delay must be >= 0 seconds, got {delay}")
        await self._retry(delay, dict(headers or {}))
        self._settled = True

    async def dead_letter(self, failure: Failure, *, dead_letter_queue: str | None = None) -> None:
        """Move it to ``dead_letter_queue`` (default ``<queue>.dlq``) with ``failure``.

        Returns once the dead letter is durable and this delivery is acked;
        raises ``DeliveryError`` (and stays unsettled) otherwise.
        """
        self._check("dead-letter")
        dlq = dead_letter_queue or default_dead_letter_queue(self.message.queue)
        await self._dead_letter(failure, dlq)
        self._settled = True

    async def release(self, delay: float = 0.0) -> None:
        """Give it back without counting an attempt; deliverable again after ``delay``."""
        self._check("release")
        await self._release(max(0.0, delay))
        self._settled = True

    async def extend(self) -> None:
        """Renew this delivery's lease now (backends with leases also renew on their own)."""
        return  # backends without leases (RabbitMQ) have nothing to renew

    @abstractmethod
    async def _ack(self) -> None: ...

    @abstractmethod
    async def _retry(self, delay: float, headers: dict[str, str]) -> None: ...

    @abstractmethod
    async def _dead_letter(self, failure: Failure, dead_letter_queue: str) -> None: ...

    @abstractmethod
    async def _release(self, delay: float) -> None: ...

    def __repr__(self) -> str:
        m = self.message
        return (
            f"<{type(self).__name__} {m.queue}/{m.id} attempt={m.attempt} settled={self._settled}>"
        )


def default_dead_letter_queue(queue: str) -> str:
    """The dead-letter queue a queue uses unless told otherwise: ``<queue>.dlq``."""
    return f"{queue}.dlq"


class Consumer(ABC):
    """A stream of deliveries from one queue, at most ``prefetch`` unsettled at a time.

    ``async for delivery in consumer`` yields them. ``cancel()`` stops fetching:
    deliveries fetched but not yet yielded are released at once (not counted
    as attempts) and the iteration ends; deliveries already yielded stay valid
    and must still be settled. Also an async context manager that cancels on
    exit.
    """

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    @abstractmethod
    async def cancel(self) -> None:
        """Stop fetching and release what was fetched but not handed out."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cancel()


class Broker(ABC):
    """Durable queues with delayed delivery, leases and dead letters.

    ``publish`` returns only once the message is durable on this backend (a
    committed SQLite transaction, a RabbitMQ publisher confirm); otherwise it
    raises ``PublishError`` and the message must be treated as not sent.
    """

    url: str
    """The URL it was opened with, password redacted."""

    clock: Clock = SYSTEM_CLOCK

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # observability (tracing): every backend's publish gets the PRODUCER span that
        # puts a traceparent into the message headers (a no-op call when nobody traces).
        trace_publish(cls)

    @abstractmethod
    async def start(self) -> None:
        """Connect / open storage. ``open_broker`` calls it; idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections and storage. Idempotent; unsettled deliveries come back later."""

    @abstractmethod
    async def publish(
        self,
        queue: str,
        body: object,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        key: str | None = None,
    ) -> str:
        """Store a message durably; return its id (generated when not given).

        ``bytes`` bodies go as they are, anything else as JSON. ``delay``
        (seconds) holds it back that long. ``key`` is an ordering key: the
        runtime handles one key's messages in order. A bad argument raises
        ``ConfigError`` before anything is stored; a publish that did not
        become durable raises ``PublishError``.
        """

    @abstractmethod
    def consume(self, queue: str, *, prefetch: int = 10) -> Consumer:
        """A consumer of ``queue`` holding at most ``prefetch`` unsettled deliveries."""

    @abstractmethod
    async def stats(self, queue: str) -> QueueStats:
        """Depth, delayed, in flight, oldest age and dead letters of ``queue``."""

    @abstractmethod
    async def ping(self) -> float:
        """Check the backend answers; the round trip in seconds. Raises when it does not."""

    @property
    @abstractmethod
    def dead_letters(self) -> DeadLetters:
        """Inspect, replay and purge this broker's dead letters."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


BACKENDS: dict[str, tuple[str, str, str]] = {
    "memory": ("interlink.messaging._memory", "MemoryBroker", ""),
    "sqlite": ("interlink.messaging._sqlite", "SqliteBroker", ""),
    "amqp": ("interlink.messaging._amqp", "RabbitBroker", "rabbitmq"),
    "amqps": ("interlink.messaging._amqp", "RabbitBroker", "rabbitmq"),
}
"""URL scheme -> (module, class, the extra that installs its dependency)."""


def url_options(url: str, known: Mapping[str, str]) -> dict[str, str]:
    """The query options of ``url``, checked against ``known`` (name -> what it takes).

    An unknown or repeated option is a ``ConfigError`` that lists the known ones.
    """
    out: dict[str, str] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in known:
            listing = ", ".join(f"{k} ({v})" for k, v in sorted(known.items())) or "none"
            raise ConfigError(f"unknown option {name!r} in broker URL; known options: {listing}")
        if name in out:
            raise ConfigError(f"option {name!r} is given twice in the broker URL")
        out[name] = value
    return out


async def open_broker(url: str, *, clock: Clock | None = None) -> Broker:
    """Open (and start) the broker ``url`` names.

    ``memory://`` gives a fresh in-process broker (``memory://name`` the same
    one for every caller in this process); ``sqlite:///relative.db`` or
    ``sqlite:////absolute.db`` the embedded default; ``amqp://user:pass@host/vhost``
    RabbitMQ. An unknown scheme is a ``ConfigError`` naming the known ones.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"a broker URL looks like scheme://..., got {url!r}; "
            f"schemes: {', '.join(sorted(BACKENDS))}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in BACKENDS:
        raise ConfigError(
            f"unknown broker scheme {scheme!r} in {url.split('@')[-1]!r}; "
            f"known schemes: {', '.join(sorted(BACKENDS))}"
        )
    module_name, class_name, extra = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - depends on what is installed
        raise ConfigError(
            f"the {scheme}:// broker needs an extra: pip install 'interlink[{extra}]' ({exc})"
        ) from exc
    cls = getattr(module, class_name)
    broker: Broker = cls.from_url(url, clock=clock or SYSTEM_CLOCK)
    try:
        await broker.start()
    except BaseException:
        await broker.close()
        raise
    return broker


def settle_error(action: str, message: Message, exc: BaseException) -> DeliveryError:
    """The ``DeliveryError`` for a failed settle, naming the message and the cause."""
    return DeliveryError(
        f"could not {action} message {message.id} from {message.queue!r}: {exc}; "
        "it stays unacknowledged and will be delivered again",
        queue=message.queue,
        message_id=message.id,
    )
