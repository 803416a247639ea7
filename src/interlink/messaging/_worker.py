"""``Worker``: handlers per queue, run with retries, dead letters, an inbox and a clean shutdown.

What it guarantees, on every backend:

- a message is acked only after its handler returned, or after its retry or
  dead letter is durable; a refused retry or dead letter is never an ack
  (dramatiq PR#545), the message is released or left to come back;
- retry delays are stored by the broker, never slept on here (Celery's and
  Dramatiq's in-RAM ETAs are what this rules out);
- with an inbox, a handler runs at most once per (handler, message id) to
  completion, and a failed run releases its key so the retry does the work;
- on ``stop()`` (or SIGTERM with ``install_signal_handlers``) it stops
  fetching, gives back what was fetched but not started, lets running
  handlers finish within ``graceful_timeout``, then cancels the rest and
  gives them back too.

Per-key ordering (``ordering=``) holds within one worker process: two
processes consuming one queue can each handle one message of a key at the
same time. Route a key to one process (a queue per partition) when order
must hold across processes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError
from interlink.messaging._broker import Broker
from interlink.messaging._handler import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_MAX_ATTEMPTS,
    Handler,
    HandlerFunc,
    build_handler,
)
from interlink.messaging._inbox import Inbox, open_inbox
from interlink.messaging._observe import HandlerStats, WorkerEvents
from interlink.messaging._runner import _Runner
from interlink.resilience import _validate as check

__all__ = ["Worker"]

_log = logging.getLogger("interlink.messaging")

# A handler that ignores cancellation must not hang the shutdown forever.
_CANCEL_WAIT = 5.0


class Worker:
    """Runs handlers for queues of one broker.

    ``inbox`` (an ``Inbox``, or a URL for ``open_inbox`` such as
    ``"sqlite:///app.db"``) turns on the idempotent consumer. ``clock``
    defaults to the broker's. ``graceful_timeout`` (seconds or ``"30s"``) is
    how long ``stop()`` lets running handlers finish. ``claim_lease`` is how
    long an inbox claim outlives a dead worker (renewed every third of it while
    the handler runs). ``name`` labels logs.

    Register handlers with ``@worker.handler(queue, ...)`` or
    ``worker.add_handler(queue, func, ...)``, then ``await worker.run()`` (until
    stopped), ``async with worker:`` or ``await worker.start()`` /
    ``await worker.stop()``.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        inbox: Inbox | str | None = None,
        clock: Clock | None = None,
        graceful_timeout: float | str = 30.0,
        claim_lease: float | str = 30.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(broker, Broker):
            check.fail("Worker", "broker", "a Broker (see open_broker)", broker)
        if inbox is not None and not isinstance(inbox, str) and not isinstance(inbox, Inbox):
            check.fail("Worker", "inbox", "an Inbox, an inbox URL or None", inbox)
        self.broker = broker
        self.clock: Clock = clock or broker.clock
        self.graceful_timeout = check.seconds(
            "Worker", "graceful_timeout", graceful_timeout, allow_zero=True, strings=True
        )
        self.claim_lease = check.seconds(
            "Worker", "claim_lease", claim_lease, allow_zero=False, strings=True
        )
        self.name = name or "worker"
        self.events = WorkerEvents()
        """Subscribe to ``WorkerEvent``s: ``worker.events.subscribe(listener)``."""
        self._inbox_url = inbox if isinstance(inbox, str) else None
        self.inbox: Inbox | None = inbox if not isinstance(inbox, str) else None
        self._handlers: dict[str, Handler] = {}
        self._runners: list[_Runner] = []
        self._started = False
        self._stopping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._signals: dict[int, Any] = {}  # signal -> the Python handler it had before

    # -- registration -----------------------------------------------------------
    def handler(
        self,
        queue: str,
        *,
        name: str | None = None,
        concurrency: int = 1,
        prefetch: int | None = None,
        retry: object = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        dead_letter_queue: str | None = None,
        permanent: object = (),
        model: Any = None,
        transform: Any = None,
        ordering: str = "block",
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: handle messages of ``queue`` with ``async def f(body, ctx)``.

        - ``name``: the handler's name in the idempotency key, dead letters and
          stats (default ``"<queue>:<function name>"``; set it to keep keys
          stable across renames).
        - ``concurrency`` (1): messages handled at once.
        - ``prefetch`` (= concurrency): unsettled deliveries held at once; a
          slow handler stops fetching. Raise it to hide broker round trips.
        - ``retry``: a ``RetrySchedule``, a list of delays (``["1s", "1m"]``,
          the last repeats) or a mapping of exponential options; default 15 s
          x2 up to 1 h with equal jitter (see ``RetrySchedule``).
        - ``max_attempts`` (5): attempts including the first; then the DLQ.
        - ``dead_letter_queue`` (``<queue>.dlq``).
        - ``permanent``: exception types (or dotted names) that go straight to
          the DLQ without retry. Invalid JSON and ``model`` validation errors
          always do, and ``Reject`` does.
        - ``model``: a pydantic model (or any type pydantic validates); the
          handler gets the validated value, never an invalid one.
        - ``transform``: a ``Transformer`` (an ``interlink.transform.Mapping``,
          a ``ModelTransformer``, anything with ``transform(item)``) run on the
          decoded body before ``model`` validates it. A ``TransformError`` is
          permanent: the message goes to the DLQ at once, its error naming the
          field and the reason; the transformer counts its failures.
        - ``ordering`` ("block"): messages sharing a ``key=`` are handled one
          at a time in order; while one waits for a retry, "block" holds the
          key's later messages back until it is settled, "continue" lets them
          pass it. Per worker process.
        - ``delivery_limit`` (10): deliveries of one attempt that ended without
          a settle (the process died) before the message is dead-lettered with
          reason ``"delivery_limit"``: a handler that kills its process is not
          run forever. RabbitMQ's quorum default is 20 but counts requeues
          too; ten crashes of one message are past any accident.
        """

        def register(func: HandlerFunc) -> HandlerFunc:
            self.add_handler(
                queue,
                func,
                name=name,
                concurrency=concurrency,
                prefetch=prefetch,
                retry=retry,
                max_attempts=max_attempts,
                dead_letter_queue=dead_letter_queue,
                permanent=permanent,
                model=model,
                transform=transform,
                ordering=ordering,
                delivery_limit=delivery_limit,
            )
            return func

        return register

    def add_handler(self, queue: str, func: HandlerFunc, **options: Any) -> Handler:
        """Register ``func`` for ``queue``; options as for ``handler``. Returns the checked ``Handler``.

        ``ConfigError`` for a bad option, a second handler on the same queue or
        with the same name, or a registration after ``start``.
        """
        if self._started:
            raise ConfigError(f"worker {self.name}: register handlers before start()")
        made = build_handler(queue, func, **options)
        for other in self._handlers.values():
            if other.queue == made.queue:
                raise ConfigError(
                    f"worker {self.name}: queue {made.queue!r} already has handler {other.name!r}"
                )
        if made.name in self._handlers:
            raise ConfigError(f"worker {self.name}: a handler is already named {made.name!r}")
        self._handlers[made.name] = made
        return made

    @property
    def handlers(self) -> tuple[Handler, ...]:
        """The registered handlers, in registration order."""
        return tuple(self._handlers.values())

    # -- lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Started and not stopped (or stopping)."""
        return self._started and self._stopping is None

    async def start(self) -> None:
        """Open the inbox (if given as a URL) and start consuming every handler's queue."""
        if self._stopping is not None:
            raise ConfigError(f"worker {self.name} was stopped; make a new Worker to start again")
        if self._started:
            return
        if not self._handlers:
            raise ConfigError(f"worker {self.name}: no handlers registered")
        if self._inbox_url is not None and self.inbox is None:
            self.inbox = await open_inbox(self._inbox_url, clock=self.clock)
        self._started = True
        self._stopped.clear()
        self._runners = [_Runner(self, h) for h in self._handlers.values()]
        for runner in self._runners:
            runner.start()
        _log.info("worker %s: started (%d handlers)", self.name, len(self._runners))

    async def stop(self, *, graceful_timeout: float | None = None) -> None:
        """Stop gracefully; idempotent, and concurrent calls wait for the same stop.

        Stop fetching; release deliveries fetched but not started; wait up to
        ``graceful_timeout`` (default the worker's) for running handlers to
        finish and settle; cancel the rest, release their inbox keys and give
        their messages back (not counted as attempts). A message whose give
        back fails stays unacknowledged and is redelivered after its lease.
        """
        if not self._started:
            return
        if self._stopping is None:
            timeout = self.graceful_timeout if graceful_timeout is None else graceful_timeout
            self._stopping = asyncio.ensure_future(self._stop(timeout))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        for runner in self._runners:
            await runner.stop_fetching()
        # The runners' serving tasks: ``concurrency`` each, ended by now unless handling.
        tasks = {task for runner in self._runners for task in runner.tasks}
        if tasks:  # pragma: no branch - empty only if something outside cancelled them all
            await self._wait(tasks, grace)
        late = {task for task in tasks if not task.done()}
        if late:
            _log.warning(
                "worker %s: %d handlers still running after %.1fs; cancelling them",
                self.name,
                len(late),
                grace,
            )
            for runner in self._runners:  # only handlers: a settle under way is not cut
                runner.cancel_handlers()
            _, stuck = await asyncio.wait(late, timeout=_CANCEL_WAIT)
            if stuck:
                _log.error(
                    "worker %s: %d handlers ignore cancellation; leaving them",
                    self.name,
                    len(stuck),
                )
        if self._inbox_url is not None and self.inbox is not None:
            await self.inbox.close()
        self._stopped.set()
        _log.info("worker %s: stopped", self.name)

    async def _wait(self, tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
        """Wait for ``tasks`` on the worker's clock, at most ``grace`` seconds."""
        everything = asyncio.ensure_future(asyncio.wait(set(tasks)))
        deadline = asyncio.ensure_future(self.clock.sleep(grace))
        try:
            await asyncio.wait({everything, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (everything, deadline):
                waiter.cancel()
            await asyncio.gather(everything, deadline, return_exceptions=True)

    async def run(self, *, handle_signals: bool = False) -> None:
        """Start, then wait until ``stop()`` has finished (from a signal or another task).

        ``handle_signals=True`` installs SIGTERM and SIGINT handlers for the
        duration (see ``install_signal_handlers``).
        """
        await self.start()
        if handle_signals:
            self.install_signal_handlers()
        try:
            await self._stopped.wait()
        finally:
            if handle_signals:
                self.remove_signal_handlers()
            if not self._stopped.is_set():  # cancelled from outside: stop cleanly anyway
                await self.stop()

    def install_signal_handlers(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Make these signals call ``stop()`` (on the running loop; Unix only).

        A second signal while stopping changes nothing: the graceful timeout
        still bounds the wait.
        """
        loop = asyncio.get_running_loop()
        for signum in signals:
            if signum not in self._signals:
                self._signals[signum] = signal.getsignal(signum)
            loop.add_signal_handler(signum, self._on_signal, signum)

    def remove_signal_handlers(self) -> None:
        """Undo ``install_signal_handlers``: the handlers from before are back."""
        loop = asyncio.get_running_loop()
        for signum, previous in self._signals.items():
            loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)
        self._signals.clear()

    def _on_signal(self, signum: int) -> None:
        _log.info("worker %s: signal %d, stopping", self.name, signum)
        if self._stopping is None:
            task = asyncio.ensure_future(self.stop())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- observability ---------------------------------------------------------------
    def stats(self) -> dict[tuple[str, str], HandlerStats]:
        """Counters per ``(queue, handler name)`` (zeros before start)."""
        if not self._runners:
            return {(h.queue, h.name): HandlerStats(h.queue, h.name) for h in self.handlers}
        return {(r.h.queue, r.h.name): r.stats() for r in self._runners}

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._started else "new")
        return f"<Worker {self.name} handlers={len(self._handlers)} {state}>"
