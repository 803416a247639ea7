"""Several processes on one SQLite file: shared work, and a killed worker's message comes back.

The worker processes are ``tests/messaging/sqlite_consumer_proc.py``, run
with this interpreter; every wait is bounded and only the processes started
here are signalled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from interlink.messaging import open_broker

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # real seconds any one step may take on a slow machine


class Worker:
    """One consumer process and the lines it printed so far (``news`` hears of each)."""

    def __init__(
        self, proc: asyncio.subprocess.Process, stderr: Path, news: asyncio.Condition
    ) -> None:
        self.proc = proc
        self.stderr = stderr
        self.lines: list[str] = []
        self.news = news
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode().strip())
            async with self.news:
                self.news.notify_all()
        async with self.news:
            self.news.notify_all()

    async def wait_for_line(self, prefix: str) -> str:
        """The first line starting with ``prefix``, waiting at most ``WAIT`` seconds."""

        def found() -> bool:
            return self._reader.done() or any(line.startswith(prefix) for line in self.lines)

        await wait_for(self.news, found)
        for line in self.lines:
            if line.startswith(prefix):
                return line
        raise AssertionError(
            f"worker printed no {prefix!r} line; stdout {self.lines}, "
            f"stderr {self.stderr.read_text()[-2000:]}"
        )

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process (if it still runs) and wait for it; its exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), WAIT)
        await asyncio.wait_for(self._reader, WAIT)
        return code


async def wait_for(news: asyncio.Condition, condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds, or ``WAIT`` seconds passed (then it simply returns)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT), news:
            await news.wait_for(condition)


class Workers:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Worker] = []
        self.news = asyncio.Condition()

    async def spawn(self, url: str, queue: str, mode: str) -> Worker:
        stderr = self.tmp_path / f"worker{len(self.started)}.err"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.messaging.sqlite_consumer_proc",
                url,
                queue,
                mode,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        worker = Worker(proc, stderr, self.news)
        self.started.append(worker)
        await worker.wait_for_line("ready")
        return worker


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    made = Workers(tmp_path)
    try:
        yield made
    finally:
        for worker in made.started:
            if worker.proc.returncode is None:
                worker.proc.kill()
            await asyncio.wait_for(worker.proc.wait(), WAIT)
            await asyncio.wait_for(worker._reader, WAIT)


async def test_two_worker_processes_share_one_file_and_handle_each_message_once(
    tmp_path: Path, workers: Workers
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    broker = await open_broker(url)
    try:
        first = await workers.spawn(url, "jobs", "ack")
        second = await workers.spawn(url, "jobs", "ack")
        # Published here, consumed there: the workers see it by polling the file.
        ids = set(await asyncio.gather(*(broker.publish("jobs", {"n": n}) for n in range(200))))

        def acked() -> list[str]:
            return [
                line.split()[1]
                for worker in (first, second)
                for line in worker.lines
                if line.startswith("acked ")
            ]

        await wait_for(workers.news, lambda: len(acked()) >= len(ids))
        assert await first.stop() == 0
        assert await second.stop() == 0
        counts = collections.Counter(acked())
        assert set(counts) == ids  # none lost
        assert max(counts.values()) == 1  # none handled twice
        got = [line for w in (first, second) for line in w.lines if line.startswith("got ")]
        assert all(line.endswith(" 1") for line in got)  # no redelivery was needed
        stats = await broker.stats("jobs")
        assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 0)
    finally:
        await broker.close()


async def test_a_worker_killed_mid_handler_has_its_message_delivered_again(
    tmp_path: Path, workers: Workers
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}?visibility_timeout=2s"
    broker = await open_broker(url)
    try:
        victim = await workers.spawn(url, "jobs", "hang")
        message_id = await broker.publish("jobs", {"n": 1})
        assert await victim.wait_for_line("got ") == f"got {message_id} 1"
        consumer = broker.consume("jobs")
        getting = asyncio.ensure_future(anext(consumer))
        # While the victim lives it renews its lease: past the visibility
        # timeout, nobody else is given the message.
        done, _ = await asyncio.wait([getting], timeout=3.0)
        assert not done
        assert await victim.stop(signal.SIGKILL) == -signal.SIGKILL
        delivery = await asyncio.wait_for(getting, WAIT)
        assert delivery.message.id == message_id
        assert (delivery.message.delivery_count, delivery.message.attempt) == (2, 1)
        await delivery.ack()
        await consumer.cancel()
        stats = await broker.stats("jobs")
        assert (stats.ready, stats.in_flight) == (0, 0)
    finally:
        await broker.close()
