"""SIGKILL the receiver under a stream of webhooks: nothing answered 2xx is lost or done twice.

A real receiver process (uvicorn, SQLite broker with synchronous=FULL) gets
signed webhooks from concurrent senders that retry every failure, as
providers do. When a random share of them has been accepted the process is
killed with SIGKILL and restarted on the same listening socket. Then a worker
with an inbox processes the queue. Every webhook that got a 2xx must be
processed exactly once, and every one a sender saw fail must have been
accepted on a retry.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from interlink.messaging import MemoryInbox, MessageContext, Worker, open_broker
from interlink.webhooks import ReceivedWebhook, webhook_handler
from tests.polling import eventually
from tests.webhooks.receiver_proc import QUEUE
from tests.webhooks.signing import standard_headers

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = 300
SENDERS = 16
DEADLINE = 60.0  # seconds for the whole stream; it normally takes a few
BODY = b'{"type":"payment.succeeded","data":{"amount":4200,"currency":"eur"}}' + b" " * 900


class Receiver:
    """The receiver process, restartable on one listening socket the test owns."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/webhooks/crash"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.webhooks.receiver_proc", self.broker_url, str(fd)],
            cwd=ROOT,
            pass_fds=(fd,),
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:  # pragma: no cover - only on a hang
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr and not self.proc.stderr.closed:
            self.proc.stderr.close()
        self.sock.close()


async def wait_ready(session: aiohttp.ClientSession, receiver: Receiver) -> None:
    async def answering() -> bool:
        assert receiver.proc is not None
        if receiver.proc.poll() is not None:
            raise AssertionError(f"the receiver exited: {receiver.proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            async with session.get(receiver.url) as response:
                return response.status == 405
        except aiohttp.ClientError:
            return False

    await eventually(answering, "the receiver started", DEADLINE, step=0.02)


async def test_sigkill_under_load_loses_no_acknowledged_webhook_and_repeats_none(
    tmp_path: Path,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    kill_after = rng.randrange(WEBHOOKS // 4, 3 * WEBHOOKS // 4)
    broker_url = f"sqlite:///{tmp_path}/hooks.db"
    receiver = Receiver(broker_url)
    ids = [f"msg_{seed}_{n}" for n in range(WEBHOOKS)]
    pending = list(reversed(ids))
    accepted: dict[str, int] = {}  # id -> failures seen before its 2xx
    failures: Counter[str] = Counter()
    restarted = asyncio.Event()
    kill_now = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=10)

    async def sender(session: aiohttp.ClientSession) -> None:
        while pending:
            webhook_id = pending.pop()
            while True:
                assert time.monotonic() < stop_at, f"seed {seed}: {webhook_id} never accepted"
                headers = standard_headers(webhook_id, int(time.time()), BODY)
                try:
                    async with session.post(receiver.url, data=BODY, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if ok:
                    accepted[webhook_id] = failures[webhook_id]
                    if len(accepted) >= kill_after:
                        kill_now.set()
                    break
                failures[webhook_id] += 1  # the provider retries, a little later
                await asyncio.sleep(0.01)

    async def killer(session: aiohttp.ClientSession) -> None:
        await kill_now.wait()
        receiver.kill()
        receiver.start()
        await wait_ready(session, receiver)
        restarted.set()

    try:
        receiver.start()
        connector = aiohttp.TCPConnector(limit=SENDERS)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await wait_ready(session, receiver)
            stop_at = time.monotonic() + DEADLINE
            await asyncio.gather(killer(session), *(sender(session) for _ in range(SENDERS)))
    finally:
        receiver.stop()

    assert receiver.kills == 1
    assert restarted.is_set()
    assert set(accepted) == set(ids), f"seed {seed}"
    assert sum(failures.values()) > 0, f"seed {seed}: the kill hit no request in flight"

    effects: Counter[str] = Counter()
    broker = await open_broker(broker_url)
    worker = Worker(broker, inbox=MemoryInbox(clock=broker.clock))

    @worker.handler(QUEUE, concurrency=8)
    @webhook_handler
    async def on_payment(webhook: ReceivedWebhook, ctx: MessageContext) -> None:
        effects[webhook.id] += 1

    try:
        async with worker:

            async def drained() -> bool:
                stats = await broker.stats(QUEUE)
                return len(effects) == WEBHOOKS and stats.ready == 0 and stats.in_flight == 0

            await eventually(
                drained,
                lambda: f"drained (seed {seed}: {len(effects)} processed)",
                DEADLINE,
                step=0.02,
            )
    finally:
        await broker.close()
    assert set(effects) == set(ids), f"seed {seed}"
    assert max(effects.values()) == 1, f"seed {seed}: {effects.most_common(3)}"
    if os.environ.get("INTERLINK_TEST_VERBOSE"):  # pragma: no cover - a debugging aid
        print(f"seed {seed}: kill after {kill_after}, {sum(failures.values())} failures")


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fd passing")
