"""A worker process for the SQLite cross-process tests: consume one queue, report on stdout.

``python -m tests.messaging.sqlite_consumer_proc URL QUEUE MODE``. It prints
``ready`` once consuming, then per delivery ``got <id> <delivery_count>``,
and in ``ack`` mode ``acked <id>`` after the ack returned. In ``hang`` mode it
never settles (the handler "runs" until the process is killed). SIGTERM
closes the broker and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from interlink.messaging import open_broker


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, queue: str, mode: str) -> None:
    broker = await open_broker(url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def consume() -> None:
        async with broker.consume(queue, prefetch=20) as consumer:
            say("ready")
            async for delivery in consumer:
                say(f"got {delivery.message.id} {delivery.message.delivery_count}")
                if mode == "hang":
                    await asyncio.Event().wait()
                await delivery.ack()
                say(f"acked {delivery.message.id}")

    task = asyncio.create_task(consume())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
