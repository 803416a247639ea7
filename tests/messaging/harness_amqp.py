"""The RabbitMQ backend in the shared suite: the real broker on loopback, on real time.

Every test gets queue names unique to this run (``t<run>.<n>.<stem>``) and
``close()`` deletes every queue the test's brokers declared: the queues,
their ``.dlq`` and delay queues, and the refusing queues below.

``refuse_publishes(queue)`` makes RabbitMQ itself refuse: publishes meant
for ``queue`` (directly, through one of its delay queues, or as a dead
letter into it) are sent to ``<queue>.refused``, a classic queue declared
with ``x-max-length=0`` and ``x-overflow=reject-publish``, which RabbitMQ
nacks. The backend's real confirm handling turns that into ``PublishError``
/ ``DeliveryError`` while ``queue`` and the delivery stay untouched. (A
policy setting ``max-length`` on the queue itself would need ``rabbitmqctl``,
about 1.5 s a call, and a quorum queue accepts one message past its limit.)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
import pytest
from pamqp.commands import Basic

from interlink.core.clock import SYSTEM_CLOCK
from interlink.messaging._amqp import RabbitBroker
from interlink.messaging._broker import Broker
from tests.messaging.harness import Harness, register
from tests.polling import eventually
from tests.services import RABBITMQ_URL, require_service

RUN = uuid.uuid4().hex[:6]
"""Unique per test process: queue names never meet a previous run's leftovers."""

TEST_OPTIONS = "reconnect_interval=100ms&publish_timeout=2s&confirm_timeout=5s"
REFUSING_ARGUMENTS: dict[str, Any] = {"x-max-length": 0, "x-overflow": "reject-publish"}

_names = itertools.count(1)


def amqp_url(options: str = TEST_OPTIONS) -> str:
    """The test RabbitMQ URL with ``options`` appended to its query."""
    joiner = "&" if "?" in RABBITMQ_URL else "?"
    return f"{RABBITMQ_URL}{joiner}{options}" if options else RABBITMQ_URL


class RefusingRabbitBroker(RabbitBroker):
    """A ``RabbitBroker`` that sends what is meant for a refused queue to its refusing twin."""

    refused: dict[str, str]

    async def _send(
        self, queue: str, target: str, body: bytes, properties: Basic.Properties
    ) -> None:
        await super()._send(queue, self.refused.get(queue, target), body, properties)


async def until(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float, step: float = 0.02
) -> None:
    """Poll ``condition`` on real time until it holds; fail after ``within`` seconds."""
    await eventually(condition, "the condition holding", within, step)


async def delete_queues(names: set[str]) -> None:
    """Delete these queues (missing ones are fine) over a connection of our own."""
    if not names:
        return
    connection = await aiormq.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        for name in sorted(names):
            await channel.queue_delete(name)
    finally:
        await connection.close()


async def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` and return its output; fail the test if it fails.

    Without ``rabbitmqctl`` on this machine (RabbitMQ in a container, say) the
    test is skipped, or fails when ``INTERLINK_REQUIRE_SERVICES=1``.
    """
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl is not installed here"
        if os.environ.get("INTERLINK_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} and INTERLINK_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {args[0]} failed: {err.decode()}"
    return out.decode()


async def close_connections(name: str) -> int:
    """Close (server side, CONNECTION_FORCED) every RabbitMQ connection called ``name``.

    ``rabbitmqctl close_all_connections`` would also cut whoever else uses
    this RabbitMQ; this closes only ours. How many it closed.
    """
    code = (
        "Pids = [P || P <- rabbit_networking:connections(), "
        "{client_properties, Props} <- rabbit_networking:connection_info(P, [client_properties]), "
        f'lists:member({{<<"connection_name">>, longstr, <<"{name}">>}}, Props)], '
        '[rabbit_networking:close_connection(P, "interlink test") || P <- Pids], '
        "length(Pids)."
    )
    return int((await rabbitmqctl("eval", code)).strip())


class CuttableProxy:
    """A TCP proxy in front of RabbitMQ that a test can cut and heal: a real network failure.

    ``cut()`` aborts every connection through it and refuses new ones (they
    are accepted and closed at once, as a dead network path does); ``heal()``
    lets them through again.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self.target = (host, port)
        self.accepting = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
            self._open.discard(writer)

    def cut(self) -> None:
        self.accepting = False
        for writer in tuple(self._open):
            writer.transport.abort()
        self._open.clear()

    def heal(self) -> None:
        self.accepting = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@register
class AmqpHarness(Harness):
    """RabbitMQ on loopback (``tests.services``), unique queue names, everything deleted after."""

    name = "amqp"
    fake_time = False

    def __init__(self, options: str = TEST_OPTIONS) -> None:
        self.clock = SYSTEM_CLOCK
        self.url = amqp_url(options)
        self.refused: dict[str, str] = {}
        self.created: set[str] = set()
        self._brokers: list[RabbitBroker] = []

    def queue(self, stem: str = "q") -> str:
        """A queue name unique to this test and this run."""
        return f"t{RUN}.{next(_names)}.{stem}"

    async def open(self) -> Broker:
        require_service("rabbitmq")
        broker = RefusingRabbitBroker.from_url(self.url, clock=self.clock)
        broker.refused = self.refused
        await broker.start()
        self._brokers.append(broker)
        self.broker = broker
        return broker

    async def another(self, options: str = TEST_OPTIONS, *, url: str | None = None) -> RabbitBroker:
        """One more started broker (its own connection) with ``options``; closed by ``close()``.

        ``url`` replaces the test RabbitMQ URL (``options`` are then ignored).
        """
        require_service("rabbitmq")
        broker = RabbitBroker.from_url(url or amqp_url(options), clock=self.clock)
        self._brokers.append(broker)
        await broker.start()
        return broker

    def _remember(self) -> None:
        for broker in self._brokers:
            self.created.update(broker._arguments)

    async def reopen(self) -> Broker:
        self._remember()
        await self.broker.close()
        return await self.open()

    async def close(self) -> None:
        self._remember()
        for broker in self._brokers:
            await broker.close()
        await delete_queues(self.created | set(self.refused.values()))

    async def refuse_publishes(self, queue: str) -> None:
        refusing = f"{queue}.refused"
        broker = self.broker
        assert isinstance(broker, RabbitBroker)
        await broker._ensure(refusing, REFUSING_ARGUMENTS)
        self.refused[queue] = refusing
