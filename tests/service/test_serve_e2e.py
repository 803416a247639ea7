"""`interlink serve` as a real process: webhooks in, transformed, forwarded, dead-lettered,
replayed through the admin API; on SQLite and on RabbitMQ; readiness follows the broker;
SIGTERM drains without losing a message.

Every wait polls with a deadline; every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from interlink.testing import FakeUpstream, Received, Reply
from tests.messaging.harness_amqp import CuttableProxy, delete_queues, rabbitmqctl
from tests.observability.metrics_support import samples, total
from tests.polling import eventually
from tests.services import RABBITMQ_URL, require_service
from tests.webhooks.signing import SECRET, standard_headers

SCRIPT = Path(sys.executable).parent / "interlink"
TOKEN = "e2e-admin-token"
STARTED = re.compile(r'service \S+ started(?: on (http://[^\s"]+))?')

MAPPING = """
name: payments
fields:
  id: {source: data.id, template: "pay_{value}"}
  amount: {source: data.amount, convert: int}
  currency: {source: data.currency, clean: [strip, upper]}
"""


def write_config(tmp_path: Path, broker_url: str, queue: str, **queue_settings: Any) -> Path:
    settings = {"max_attempts": 2, "retry_delays": ["100ms"], "concurrency": 4}
    settings.update(queue_settings)
    lines = "\n".join(f"    {key}: {json.dumps(value)}" for key, value in settings.items())
    (tmp_path / "payments.yaml").write_text(MAPPING)
    path = tmp_path / "interlink.yaml"
    path.write_text(
        f"""
service:
  name: e2e
  listen: 127.0.0.1:0
  admin_token: ${{E2E_ADMIN_TOKEN}}
  shutdown_timeout: 10s
  readiness_timeout: 500ms
broker:
  url: "{broker_url}"
clients:
  internal:
    base_url: ${{E2E_UPSTREAM}}
    timeout: 2s
    retry: {{max_attempts: 2, initial_delay: 10ms, max_delay: 50ms}}
webhooks:
  payments:
    path: /webhooks/payments
    scheme: standard
    secrets: ["${{E2E_SECRET}}"]
    publish_to: {queue}
queues:
  {queue}:
    forward: {{client: internal, method: POST, path: /payments}}
    transform: payments.yaml
{lines}
"""
    )
    return path


class ServeProcess:
    """`interlink serve -c path` in its own process; its log kept for failure messages."""

    def __init__(self, config: Path, upstream: str, command: str = "serve", *args: str) -> None:
        self.config = config
        self.command = command
        self.args = args
        self.env = {
            **os.environ,
            "E2E_ADMIN_TOKEN": TOKEN,
            "E2E_UPSTREAM": upstream,
            "E2E_SECRET": SECRET,
        }
        self.log: list[str] = []
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, within: float = 30.0) -> str:
        self.process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            self.command,
            "-c",
            str(self.config),
            *self.args,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(found))
        try:
            self.url = await asyncio.wait_for(found, within)
        except TimeoutError:
            raise AssertionError(f"the service did not start: {self.text}") from None
        return self.url

    async def _read(self, found: asyncio.Future[str]) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            match = STARTED.search(line)
            if match and not found.done():
                found.set_result(match[1] or "")
        if not found.done():
            found.set_exception(AssertionError(f"the service exited: {self.text}"))

    @property
    def text(self) -> str:
        return "\n".join(self.log[-40:])

    async def terminate(self, within: float = 30.0) -> int:
        """SIGTERM, then the exit code (a hang past ``within`` fails the test, after a kill)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"no exit {within}s after SIGTERM: {self.text}") from None
        if self._reader is not None:
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader


async def until(condition: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    await eventually(condition, what, within, step=0.05)


def event(n: int, amount: object = 100) -> bytes:
    return json.dumps(
        {
            "type": "payment.succeeded",
            "data": {"id": f"p{n}", "amount": amount, "currency": " usd "},
        }
    ).encode()


async def send(session: aiohttp.ClientSession, url: str, n: int, body: bytes) -> int:
    headers = standard_headers(f"msg_{n}", int(time.time()), body)
    async with session.post(f"{url}/webhooks/payments", data=body, headers=headers) as response:
        return response.status


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def the_flow(tmp_path: Path, upstream: FakeUpstream, broker_url: str, queue: str) -> None:
    """Webhooks in; all forwarded but one, which the upstream refuses until it is 'fixed';
    that one is dead-lettered, replayed through the admin API, and forwarded."""
    fixed = False
    accepted: list[str] = []

    def answer(received: Received) -> Reply:
        body = received.json()
        if body["id"] == "pay_p3" and not fixed:
            return Reply(500, json={"error": "p3 is cursed"})
        accepted.append(body["id"])
        return Reply(201, json={"ok": True})

    upstream.route("POST", "/payments").reply(answer)
    service = ServeProcess(write_config(tmp_path, broker_url, queue), upstream.url)
    url = await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(1, 6):
                assert await send(session, url, n, event(n)) == 200, service.text
            assert await send(session, url, 1, event(1)) == 200  # a repeat: stored once
            await until(
                lambda: {f"pay_p{n}" for n in (1, 2, 4, 5)} <= set(accepted), 20, "forwarded"
            )
            first = upstream.received(path="/payments")[0]
            assert first.json() == {"id": "pay_p1", "amount": 100, "currency": "USD"}
            assert first.headers["Idempotency-Key"] == "payments:msg_1"

            async def dead_letters() -> list[dict[str, Any]]:
                async with session.get(f"{url}/admin/dead-letters", headers=admin()) as r:
                    assert r.status == 200, await r.text()
                    listed: list[dict[str, Any]] = (await r.json())["items"]
                    return listed

            await until(lambda: _nonempty(dead_letters()), 20, "dead-lettered")
            [letter] = await dead_letters()
            assert letter["message_id"] == "payments:msg_3"
            assert "500" in letter["error_message"]

            fixed = True
            async with session.post(
                f"{url}/admin/dead-letters/replay", json={"ids": [letter["id"]]}, headers=admin()
            ) as r:
                assert r.status == 200, await r.text()
            await until(lambda: "pay_p3" in accepted, 20, "replayed and forwarded")
            assert sorted(accepted) == [f"pay_p{n}" for n in range(1, 6)]  # each once
            async with session.get(f"{url}/admin/queues", headers=admin("wrong")) as r:
                assert r.status == 401
            async with session.get(f"{url}/admin/queues") as r:
                assert r.status == 401
        assert await service.terminate() == 0, service.text
    finally:
        await service.kill()


async def _nonempty(items: Awaitable[list[Any]]) -> bool:
    return bool(await items)


async def test_serve_on_sqlite_forwards_dead_letters_and_replays(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    await the_flow(tmp_path, upstream, f"sqlite:///{tmp_path / 'interlink.db'}", "payments")


async def rabbit_queues_with(prefix: str) -> set[str]:
    listed = await rabbitmqctl("list_queues", "-q", "--no-table-headers", "name")
    return {name.strip() for name in listed.splitlines() if name.strip().startswith(prefix)}


async def test_serve_on_rabbitmq_forwards_dead_letters_and_replays(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    require_service("rabbitmq")
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    try:
        await the_flow(tmp_path, upstream, RABBITMQ_URL, f"{prefix}.payments")
    finally:
        await delete_queues(await rabbit_queues_with(prefix))


async def test_readiness_follows_the_broker(tmp_path: Path, upstream: FakeUpstream) -> None:
    require_service("rabbitmq")
    proxy = CuttableProxy()
    port = await proxy.start()
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    broker_url = (
        f"amqp://guest:guest@127.0.0.1:{port}/?reconnect_interval=100ms&publish_timeout=500ms"
    )
    service = ServeProcess(write_config(tmp_path, broker_url, f"{prefix}.q"), upstream.url)
    try:
        url = await service.start()
        async with aiohttp.ClientSession() as session:

            async def ready(expected: int) -> bool:
                async with session.get(f"{url}/readyz") as r:
                    return r.status == expected

            await until(lambda: ready(200), 10, "ready")
            proxy.cut()
            await until(lambda: ready(503), 15, "unready without the broker")
            async with session.get(f"{url}/livez") as r:
                assert r.status == 200  # alive all the same
            proxy.heal()
            await until(lambda: ready(200), 30, "ready again")
        assert await service.terminate() == 0, service.text
    finally:
        await service.kill()
        await proxy.close()
        await delete_queues(await rabbit_queues_with(prefix))


async def test_sigterm_drains_and_a_restart_loses_nothing(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    ids: list[str] = []

    def slow(received: Received) -> Reply:
        ids.append(received.json()["id"])
        return Reply(201, delay=0.2)

    upstream.route("POST", "/payments").reply(slow)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'interlink.db'}", "payments")
    first = ServeProcess(config, upstream.url)
    url = await first.start()
    count = 30
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(count):
                assert await send(session, url, n, event(n)) == 200
        await until(lambda: len(ids) >= 4, 20, "handling")
        assert await first.terminate() == 0, first.text  # in-flight ones finish first
        handled_before = len(set(ids))
        assert handled_before < count, "everything was handled before SIGTERM: nothing tested"
        second = ServeProcess(config, upstream.url)
        await second.start()
        try:
            await until(lambda: len(set(ids)) == count, 60, "all handled after the restart")
            assert set(ids) == {f"pay_p{n}" for n in range(count)}
            assert await second.terminate() == 0, second.text
        finally:
            await second.kill()
    finally:
        await first.kill()


async def test_serve_and_a_separate_worker_share_one_sqlite_file(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """`interlink worker` beside `interlink serve` on one file: together, each payment goes out once.

    The worker serves its health and its own metrics on ``--listen``: what
    the two processes count adds up to every payment once.
    """
    ids: list[str] = []

    def slow(received: Received) -> Reply:
        ids.append(received.json()["id"])
        return Reply(201, delay=0.05)

    upstream.route("POST", "/payments").reply(slow)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'interlink.db'}", "payments")
    server = ServeProcess(config, upstream.url)
    worker = ServeProcess(config, upstream.url, "worker", "--listen", "127.0.0.1:0")
    count = 40
    try:
        url = await server.start()
        worker_url = await worker.start()
        assert worker_url.startswith("http://127.0.0.1:"), worker.text
        assert worker_url != url
        async with aiohttp.ClientSession() as session:
            for n in range(count):
                assert await send(session, url, n, event(n)) == 200
            await until(lambda: len(ids) >= count, 60, "all forwarded")
            assert sorted(ids) == sorted(f"pay_p{n}" for n in range(count))  # each once
            async with session.get(f"{worker_url}/readyz") as response:
                assert response.status == 200
            async with session.post(f"{worker_url}/webhooks/payments", data=b"{}") as response:
                assert response.status == 404  # no webhooks on a worker
            counted: dict[str, float] = {}

            async def each_counted_once() -> bool:
                for where in (url, worker_url):
                    async with session.get(f"{where}/metrics") as response:
                        assert response.status == 200
                        text = await response.text()
                    counted[where] = total(
                        samples(text), "interlink_messages_total", queue="payments", outcome="acked"
                    )
                return sum(counted.values()) == count

            # A process counts a message once it has settled it, just after the forward.
            await until(each_counted_once, 10, f"{count} acked between the two: {counted}")
        assert counted[worker_url] > 0, "the worker handled nothing: its metrics went untested"
        assert await worker.terminate() == 0, worker.text
        assert await server.terminate() == 0, server.text
    finally:
        await worker.kill()
        await server.kill()
