"""The upstream ``bench/client.py`` measures against: a raw ASGI app on uvicorn.

No framework: ``app`` is a plain ``async def app(scope, receive, send)``
answering ``GET /orders/1`` with a small JSON body (404 for anything else), so
the server's own work per request is as small as uvicorn (uvloop, httptools)
can make it and the clients' costs dominate what the benchmark sees.

Run as a script it is the server process the benchmark starts: it binds
``127.0.0.1`` on a free port itself (no window between choosing a port and
binding it), writes ``port=<n>`` as its first line on stdout, then serves
until SIGTERM/SIGINT or until its stdin closes (so it stops with the
benchmark even if the benchmark dies without cleaning up).

Imported by ``bench/client.py``, it also gives the benchmark's side:
``start_upstream`` (start this script, wait with a deadline until it accepts
connections, and stop it by its PID whatever happens), ``Placement`` (which
CPUs the two processes may run on) and ``cpu_seconds`` (the upstream's CPU
time, from ``/proc``).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH = "/orders/1"
BODY = b'{"id":1,"status":"shipped","currency":"EUR","total":"19.99","items":2}'
_OK_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]
_NOT_FOUND = b'{"error":"not found"}'
_NOT_FOUND_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_NOT_FOUND)).encode()),
]
# Long enough that the benchmark's idle pooled connections survive between its cases
# (uvicorn's default is 5 s), so no case pays for reconnecting another case's pool.
KEEP_ALIVE_SECONDS = 300
STARTUP_SECONDS = 15.0
STOP_SECONDS = 5.0


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /orders/1`` → 200 with ``BODY``; anything else → 404."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == PATH:
        status, headers, body = 200, _OK_HEADERS, BODY
    else:
        status, headers, body = 404, _NOT_FOUND_HEADERS, _NOT_FOUND
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(target: Any, *, factory: bool = False) -> int:
    """Serve ``target`` (an ASGI app, or a factory of one) on a free loopback port.

    Writes ``port=<n>`` as the first line on stdout, then serves (uvicorn,
    uvloop, httptools, one process) until SIGTERM/SIGINT or until stdin
    closes, so the server stops with the benchmark that started it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        target,
        factory=factory,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        interface="asgi3",  # every app served here is one (some are plain functions)
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)

    def stop_when_stdin_closes() -> None:
        sys.stdin.buffer.read()
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    sys.stdout.write(f"port={sock.getsockname()[1]}\n")
    sys.stdout.flush()
    server.run(sockets=[sock])
    return 0


def main() -> int:
    return serve(app)


# --- used by bench/client.py, in the benchmark's process -----------------------------------


class Placement:
    """Which CPUs the benchmark process and the upstream may run on, case by case.

    ``free()``: both may run anywhere. A sequential request is a ping-pong the
    scheduler serves best by waking the other process on the same core; pinned
    to separate CPUs of this VM, a few percent of requests waited ~4 ms for
    the other vCPU to wake (p99 ~4 ms against ~0.2 ms free). ``split()`` (with
    ``pin`` and two CPUs or more): the benchmark on the first CPU, the
    upstream on the second. At 64 tasks both processes are busy, and left
    free the scheduler sometimes put them on one core: raw aiohttp then
    measured ~13k requests/s instead of ~20k, from one run to the next.
    """

    __slots__ = ("_all", "_pair", "_upstream")

    def __init__(self, upstream_pid: int, *, pin: bool) -> None:
        self._upstream = upstream_pid
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._all = set(usable)
        self._pair = (usable[0], usable[1]) if pin and len(usable) >= 2 else None

    def describe(self) -> str:
        if self._pair is None:
            return "not pinned: the scheduler places both processes"
        bench, upstream = self._pair
        return (
            "sequential cases not pinned (the scheduler places both processes); 64-task"
            f" cases: the benchmark process pinned to CPU {bench}, the upstream to CPU {upstream}"
        )

    def free(self) -> None:
        if self._pair is not None:
            os.sched_setaffinity(0, self._all)
            os.sched_setaffinity(self._upstream, self._all)

    def split(self) -> None:
        if self._pair is not None:
            os.sched_setaffinity(0, {self._pair[0]})
            os.sched_setaffinity(self._upstream, {self._pair[1]})


@contextmanager
def start_upstream() -> Iterator[tuple[str, int]]:
    """Start ``_upstream_app.py`` in its own process; yield its base URL and PID; always stop it."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = _read_port(process)
        _wait_until_accepting(process, port)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        _stop(process)


def _read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
    if not ready:
        raise RuntimeError(f"the upstream did not report its port within {STARTUP_SECONDS} s")
    line = process.stdout.readline().strip()
    if not line.startswith("port="):
        raise RuntimeError(f"the upstream wrote {line!r} instead of its port")
    return int(line.removeprefix("port="))


def _wait_until_accepting(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the upstream exited with {process.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the upstream did not accept connections within {STARTUP_SECONDS} s")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) the upstream has used so far; None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
