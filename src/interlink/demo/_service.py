"""The service demo (``interlink demo``): the whole service, live, against a provider that misbehaves.

On 127.0.0.1, each on a free port, it starts a simulated payment provider
(signed webhooks out at a steady rate, a flaky API with an outage window), a
simulated internal service, and the interlink ``Service`` in this process,
configured from ``examples/demo.yaml``: the demo only sets the ``DEMO_*``
environment variables the file reads (ports, URLs, the signing secret, the
admin token, a SQLite broker in a temporary folder). The service verifies the
webhooks, queues them, transforms each with ``examples/payment_mapping.yaml``,
and its handler (``interlink.demo.payments``) enriches the payment through the
provider's API and forwards it to the internal service.

The story, over ``duration`` seconds: steady traffic, with the API's blips
absorbed by the client's retries; an outage, which opens the breaker while
the queue holds the messages for later; the recovery, when probes close the
breaker and the queue drains; the provider stops sending and the last
messages drain. Along the way forged webhooks are refused (401) and payments
in a currency the mapping refuses land in the dead-letter queue. On a
terminal a rich ``Live`` view shows it; otherwise a progress line every few
seconds, and a summary at the end either way. The summary ends with one
webhook's trace (``_traces``): the demo traces into memory unless the config
or the application set tracing up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live

from interlink.core.errors import ConfigError
from interlink.demo._internal import InternalService
from interlink.demo._provider import OutagePlan, PaymentProvider
from interlink.demo._report import ServiceDemoReport, progress_line, render, summary
from interlink.messaging import Broker, open_broker
from interlink.resilience import ResilienceEvent

if TYPE_CHECKING:
    from interlink.demo._traces import TraceKeeper
    from interlink.service._config import ServiceConfig
    from interlink.service._runtime import Service

__all__ = ["ServiceDemo", "default_config", "run_service_demo"]

_PROVIDER = "provider"
_INTERNAL = "internal"
_MAX_DEAD_LETTERS_READ = 100


def default_config() -> Path:
    """``examples/demo.yaml`` of this checkout, else of the current folder, else the wheel's.

    A wheel carries the examples in ``interlink/demo/examples`` (pyproject.toml).
    """
    here = Path(__file__).resolve()
    for folder in (here.parents[3] / "examples", Path.cwd() / "examples", here.parent / "examples"):
        candidate = folder / "demo.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "cannot find examples/demo.yaml: run the demo from a checkout of interlink, "
        "or give the file with --config"
    )


def _state(value: Any) -> str:
    return str(getattr(value, "value", value))


class ServiceDemo:
    """One run of the demo; ``await demo.run()`` returns the ``ServiceDemoReport``.

    ``duration``: seconds to run (``None``: until ``stop()``, or Ctrl-C with
    ``handle_signals``). ``rate``: webhooks per second. ``outage``: when the
    provider's API is down (default: from 30% to 50% of ``duration``; without
    one, 8 s every minute from 15 s in). ``config``: the service's config file
    (default ``examples/demo.yaml``). ``listen``: ``host:port`` of the
    service's HTTP side (default: a free port on loopback), for a Prometheus or
    a browser pointed at it ahead of the run. While it runs, ``report`` holds the
    latest figures and ``service`` the running ``Service``; ``provider`` and
    ``internal`` are the simulated upstreams.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        duration: float | None = None,
        rate: float = 5.0,
        outage: OutagePlan | None = None,
        config: Path | str | None = None,
        listen: str | None = None,
        handle_signals: bool = False,
        tick: float = 0.25,
        progress_every: float = 2.0,
    ) -> None:
        if duration is not None and not duration > 0:
            raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
        if not rate > 0:
            raise ConfigError(f"rate must be a positive number of webhooks a second, got {rate!r}")
        if listen is not None:
            from interlink.service._config import split_listen

            try:
                split_listen(listen)
            except ValueError as exc:
                raise ConfigError(f"listen: {exc}") from None
        self.console = console or Console()
        self.duration = duration
        if outage is None:
            outage = (
                OutagePlan(start=15.0, length=8.0, every=60.0)
                if duration is None
                else OutagePlan(start=0.3 * duration, length=max(2.0, 0.2 * duration))
            )
        self.config_path = Path(config) if config is not None else default_config()
        self.listen = listen
        self.handle_signals = handle_signals
        self.tick = tick
        self.progress_every = progress_every
        self.report = ServiceDemoReport(duration=duration, config_path=str(self.config_path))
        self.report.admin_token = secrets.token_urlsafe(12)
        self._secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self._token = f"sk_test_{secrets.token_hex(8)}"
        self.provider = PaymentProvider(
            secret=self._secret, token=self._token, rate=rate, outage=outage
        )
        self.internal = InternalService()
        self.service: Service | None = None
        self._source = ""
        self._stop = asyncio.Event()
        self._stop_sending = asyncio.Event()
        self._started = time.monotonic()
        self._live: Live | None = None

    def stop(self) -> None:
        """End the run (the demo then stops everything and prints its summary)."""
        self._stop.set()

    # -- output ------------------------------------------------------------------------------
    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True, markup=False)
        with contextlib.suppress(Exception):  # a pipe sees each line as it comes
            self.console.file.flush()

    def _say(self, line: str) -> None:
        """A notable event: into the live view's log, or printed at once."""
        stamped = f"[{time.monotonic() - self._started:5.1f}s] {line}"
        self.report.events.append(stamped)
        if self._live is None:
            self._print(stamped)

    def _on_client_event(self, event: ResilienceEvent) -> None:
        if event.kind == "retry.delay":
            self.report.client_retries += 1
        elif event.kind == "circuit_breaker.transition":
            old, new = _state(event.attributes["from"]), _state(event.attributes["to"])
            self.report.transitions.append((time.monotonic() - self._started, old, new))
            self.report.breaker = new
            why = event.attributes.get("reason")
            client = event.policy.partition(".")[0]
            self._say(f"breaker of {client}: {old} -> {new}" + (f" ({why})" if why else ""))

    def _on_log(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self._say(f"log {record.levelname.lower()}: {record.getMessage()}")

    # -- the run ---------------------------------------------------------------------------------
    async def run(self) -> ServiceDemoReport:
        """Start everything, show it until the end, stop everything, print the summary."""
        from interlink.service._load import check_config

        try:
            from interlink.service._runtime import Service
        except ImportError as exc:  # pragma: no cover - depends on what is installed
            raise ConfigError(
                f"the service demo needs the service extra: pip install 'interlink[service]' ({exc})"
            ) from None
        with (
            tempfile.TemporaryDirectory(prefix="interlink-demo-") as folder,
            _quiet_logs(self._on_log),
            self._signals(),
        ):
            try:
                await self.provider.start()
                await self.internal.start()
                environ = {
                    **os.environ,
                    "DEMO_LISTEN": "127.0.0.1:0" if self.listen is None else self.listen,
                    "DEMO_BROKER_URL": _broker_url(folder),
                    "DEMO_PROVIDER_URL": self.provider.url,
                    "DEMO_PROVIDER_TOKEN": self._token,
                    "DEMO_INTERNAL_URL": self.internal.url,
                    "DEMO_WEBHOOK_SECRET": self._secret,
                    "DEMO_ADMIN_TOKEN": self.report.admin_token,
                }
                loaded = check_config(self.config_path, environ=environ)
                self._source, self.report.queue = _shape(loaded.config)
                service = self.service = Service(loaded)
                # Before the service starts tracing (or not) as its config says.
                keeper, stop_tracing = _keep_traces(loaded.config)
                try:
                    await service.start()
                    await self._show(service)
                finally:
                    self.report.phase = "Stopping: the service finishes what it is handling."
                    try:
                        await service.stop()
                    finally:
                        stop_tracing()  # exports what is batched
                    await self._final_sample(service, loaded.config.broker.url)
                    if keeper is not None:
                        from interlink.demo._traces import webhook_trace

                        self.report.trace = webhook_trace(keeper)
            finally:
                await self.provider.stop()
                await self.internal.stop()
        for line in summary(self.report):
            self._print(line)
        return self.report

    async def _show(self, service: Service) -> None:
        report = self.report
        path = service.config.webhooks[self._source].path
        report.urls = {
            "webhooks": f"{service.url}{path}",
            "health": f"{service.url}/health",
            "metrics": f"{service.url}/metrics" if _serves(service, "/metrics") else "",
            "admin": f"{service.url}/admin/queues",
        }
        unsubscribe: list[Callable[[], None]] = []
        for name in (_PROVIDER, _INTERNAL):
            pipeline = service.clients[name].pipeline
            for part in (pipeline.retry, pipeline.breaker):
                if part is not None:
                    unsubscribe.append(part.events.subscribe(self._on_client_event))
        self._started = time.monotonic()
        sender = asyncio.create_task(
            self.provider.send_webhooks(report.urls["webhooks"], self._stop_sending),
            name="demo-provider",
        )
        try:
            if self.console.is_terminal:
                width = self.console.width
                with Live(
                    render(report, width), console=self.console, refresh_per_second=4
                ) as live:
                    self._live = live
                    await self._loop(service)
                    live.update(render(report, width))
                self._live = None
            else:
                self._print(f"interlink service demo: {service.url} (config {self.config_path})")
                self._print(f"  webhooks: {report.urls['webhooks']}")
                self._print(f"  health:   {report.urls['health']}")
                if report.urls["metrics"]:
                    self._print(f"  metrics:  {report.urls['metrics']}")
                self._print(
                    f"  admin:    {report.urls['admin']} "
                    f"(Authorization: Bearer {report.admin_token})"
                )
                await self._loop(service)
        finally:
            self._stop_sending.set()
            with contextlib.suppress(Exception):
                await sender
            for stop in unsubscribe:
                stop()

    async def _loop(self, service: Service) -> None:
        duration = self.duration
        drain_at = None if duration is None else duration - min(6.0, 0.15 * duration)
        next_progress = self.progress_every
        was_down = False
        while not self._stop.is_set():
            elapsed = self.report.elapsed = time.monotonic() - self._started
            if duration is not None and elapsed >= duration:
                break
            down = self.provider.down
            if down != was_down:
                was_down = down
                self._say(
                    "provider API: outage begins, every request gets a 503"
                    if down
                    else "provider API: back up"
                )
            if drain_at is not None and elapsed >= drain_at and not self._stop_sending.is_set():
                self._stop_sending.set()
                self._say("provider: stops sending webhooks; the queue drains")
            await self._sample(service)
            self.report.phase = self._phase(down)
            if self._live is not None:
                self._live.update(render(self.report, self.console.width))
            elif elapsed >= next_progress:
                next_progress += self.progress_every
                self._print(progress_line(self.report))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick)
        self.report.elapsed = time.monotonic() - self._started
        await self._sample(service)

    def _phase(self, down: bool) -> str:
        r = self.report
        if self._stop_sending.is_set():
            return "The provider stopped sending: the last messages drain from the queue."
        if down:
            return (
                "Provider outage: its API answers 503 to everything. The breaker opens and calls "
                "fail fast; the queue keeps the payments and tries them again later."
            )
        if r.transitions and (r.breaker != "closed" or r.waiting):
            return (
                "The provider is back: the breaker lets probes through and closes, "
                "and the queue drains the backlog."
            )
        return (
            "Steady traffic: the provider's API fails now and then (503, 429 with Retry-After, "
            "too slow); the client's retries absorb it. Forged webhooks get a 401; payments in "
            "an unsupported currency go to the dead-letter queue."
        )

    async def _sample(self, service: Service) -> None:
        """Copy the parts' counters into the report."""
        r, provider = self.report, self.provider
        sent = provider.sender
        r.sent, r.sent_bad_signatures, r.resent = sent.sent, sent.bad_signatures, sent.resent
        r.sent_unsupported, r.undelivered = sent.unsupported, sent.undelivered
        if service.receiver is not None:
            stats = service.receiver.stats[self._source]
            r.accepted, r.duplicates = stats.accepted, stats.duplicates
            r.rejected = dict(stats.rejected)
        if service.worker is not None:
            for (name, _), handler in service.worker.stats().items():
                if name == r.queue:
                    r.handled, r.queue_retries = handler.acked, handler.retried
        r.provider_requests = provider.api_requests
        r.provider_answers = dict(provider.api)
        r.breaker = service.clients[_PROVIDER].health().breaker_state or "none"
        r.forwarded = len(self.internal.payments)
        try:
            await self._sample_queue(service.broker)
        except Exception:  # the broker is closing: keep the last figures
            return

    async def _sample_queue(self, broker: Broker) -> None:
        r = self.report
        queue = await broker.stats(r.queue)
        r.waiting = (queue.ready or 0) + (queue.delayed or 0)
        r.in_flight = queue.in_flight or 0
        r.max_waiting = max(r.max_waiting, r.waiting)
        dead = queue.dead_letters or 0
        if dead > r.dead_letters:
            await self._read_dead_letters(broker, r.dead_letters, dead)
        r.dead_letters = dead

    async def _final_sample(self, service: Service, broker_url: str) -> None:
        """The figures once the service stopped: the queue as the broker kept it."""
        await self._sample(service)
        with contextlib.suppress(Exception):  # no figures is better than no summary
            broker = await open_broker(broker_url)
            try:
                await self._sample_queue(broker)
            finally:
                await broker.close()

    async def _read_dead_letters(self, broker: Broker, seen: int, now: int) -> None:
        """Say why the new dead letters failed (the first hundred; after that, count them)."""
        if seen >= _MAX_DEAD_LETTERS_READ:
            return
        records = await broker.dead_letters.list(
            queue=self.report.queue, limit=min(now, _MAX_DEAD_LETTERS_READ)
        )
        reasons = self.report.dead_letter_reasons
        for record in records[seen:]:
            message = record.failure.error_message
            text = message.splitlines()[0] if message else record.failure.error_type
            reasons[text] = reasons.get(text, 0) + 1
            self._say(f"dead letter {record.message.id}: {text}")

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM end the run gracefully; a second one interrupts as usual."""
        if not self.handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        wanted = (signal.SIGINT, signal.SIGTERM)

        def first() -> None:
            self.stop()
            for sig in wanted:
                loop.remove_signal_handler(sig)

        for sig in wanted:
            loop.add_signal_handler(sig, first)
        try:
            yield
        finally:
            for sig in wanted:
                loop.remove_signal_handler(sig)


def _keep_traces(config: ServiceConfig) -> tuple[TraceKeeper | None, Callable[[], None]]:
    """Trace into a ``TraceKeeper`` (ratio 1.0), for the summary's trace; and its shutdown.

    Not when the config sends its traces somewhere itself (``exporter`` not
    ``none``, or ``OTEL_TRACES_EXPORTER`` when it sets none) or a tracer
    provider is set already (the application's): the demo then leaves tracing
    as it is, and its summary draws no trace.
    """
    from interlink.demo._traces import TraceKeeper
    from interlink.observability import configure_tracing, tracing_enabled
    from interlink.observability._tracing import exporter_kind

    tracing = config.observability.tracing
    if exporter_kind(tracing, os.environ) != "none" or tracing_enabled():
        return None, lambda: None
    keeper = TraceKeeper()
    settings = tracing.model_copy(update={"sampling_ratio": 1.0})
    return keeper, configure_tracing(settings, service_name=config.service.name, exporter=keeper)


def _serves(service: Service, path: str) -> bool:
    """Whether the service's HTTP side has a route at ``path``."""
    routes = [] if service.app is None else service.app.routes
    return any(getattr(route, "path", None) == path for route in routes)


def _broker_url(folder: str) -> str:
    """A SQLite broker in ``folder`` (an absolute path: ``sqlite:////...``)."""
    return f"sqlite:///{Path(folder).resolve() / 'demo.db'}"


def _shape(config: ServiceConfig) -> tuple[str, str]:
    """The webhook source and queue the demo watches; ``ConfigError`` if the file lacks them."""
    missing = [name for name in (_PROVIDER, _INTERNAL) if name not in config.clients]
    if missing or not config.webhooks:
        raise ConfigError(
            "the demo's config needs clients named provider and internal and one webhook source "
            "(start from examples/demo.yaml)"
        )
    source, settings = next(iter(config.webhooks.items()))
    if settings.scheme != "standard" or settings.publish_to not in config.queues:
        raise ConfigError(
            f"webhooks.{source}: the demo's provider signs with the standard scheme and the "
            "source must publish to one of queues: (start from examples/demo.yaml)"
        )
    return source, settings.publish_to


class _Forward(logging.Handler):
    def __init__(self, sink: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink(record)


@contextlib.contextmanager
def _quiet_logs(sink: Callable[[logging.LogRecord], None]) -> Iterator[None]:
    """interlink's and uvicorn's logs go to ``sink`` instead of stderr while the demo runs.

    The demo's failures are on purpose (forged webhooks, an outage): their warnings
    would scroll the view away. Errors still show, as events.
    """
    handler = _Forward(sink)
    saved: list[tuple[logging.Logger, bool, int]] = []
    for name in ("interlink", "uvicorn", "aiohttp"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)


async def run_service_demo(
    console: Console | None = None,
    *,
    duration: float | None = None,
    rate: float = 5.0,
    config: Path | str | None = None,
    listen: str | None = None,
    handle_signals: bool = False,
) -> ServiceDemoReport:
    """Run the service demo (see ``ServiceDemo``) and return what it counted."""
    demo = ServiceDemo(
        console,
        duration=duration,
        rate=rate,
        config=config,
        listen=listen,
        handle_signals=handle_signals,
    )
    return await demo.run()
