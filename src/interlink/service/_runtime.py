"""``Service``: one checked config file, running: broker, clients, webhooks in, workers, HTTP.

``interlink serve`` runs the HTTP side (webhook sources, health, metrics,
admin) and the workers in one process; ``interlink worker`` runs workers
alone, so that receiving and processing scale apart, and serves only health
and metrics, when it is given an address (``--listen``,
``service.worker_listen``; without one it counts no metrics, which no one
could scrape). Several processes on the same SQLite
file or the same RabbitMQ cooperate: the broker hands each message to one.

Start order is the order of dependence (broker, clients, receiver, workers,
then the listening socket), and stop order the reverse, so that nothing is
accepted that cannot be stored and nothing stored is left half handled: on
SIGTERM the socket stops accepting and open requests finish, then the
workers stop fetching and give in-flight messages ``shutdown_timeout`` to
finish (what is left goes back to the broker, not counted as an attempt),
then connections close and the process exits 0.

uvicorn serves the HTTP side; its own signal handling is turned off, because
the service's shutdown has more to do than the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable, Generator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount

from interlink.client import ApiClient
from interlink.core.errors import ConfigError
from interlink.messaging import Broker, Worker, open_broker
from interlink.observability._logging import REDACTOR, RequestIdMiddleware, config_secrets
from interlink.observability._metrics import MetricsRecorder
from interlink.observability._tracing import configure_tracing
from interlink.service._build import build_client, build_queue, build_sources
from interlink.service._config import ServiceConfig, split_listen
from interlink.service._load import LoadedConfig
from interlink.service._metrics import watch_service
from interlink.webhooks import WebhookReceiver, WebhookSource

__all__ = ["Service"]

_log = logging.getLogger("interlink.service")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: ``Service.run`` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Service:
    """Everything one config file describes, started and stopped as one.

    ``http``: serve the HTTP side (webhooks, health, metrics, admin) on
    ``listen``, else on ``service.listen``; ``workers``: run the queues'
    handlers (only ``queues`` when given). Without ``http`` (``interlink
    worker``), the process serves only its operations side (``/livez``,
    ``/readyz``, ``/health``, ``/metrics``) on ``listen``, else on
    ``service.worker_listen``, and nothing when neither is set. Use ``async with Service(load_config(path))
    as service:`` or ``await service.run()``, which returns after SIGTERM or
    SIGINT once everything has stopped.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        http: bool = True,
        workers: bool = True,
        queues: Sequence[str] | None = None,
        listen: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.config: ServiceConfig = loaded.config
        if queues is not None:
            unknown = sorted(set(queues) - set(self.config.queues))
            if unknown:
                known = ", ".join(sorted(self.config.queues)) or "none"
                raise ConfigError(
                    f"no queue named {', '.join(unknown)} in the config (queues: {known})"
                )
        self.http = http
        section = self.config.service
        # Where the HTTP side listens, and the setting that said so (for the error if it cannot).
        self.listen: str | None
        if listen is not None:
            try:
                split_listen(listen)
            except ValueError as exc:
                raise ConfigError(f"listen: {exc}") from None
            self.listen, self._listen_setting = listen, "listen"
        elif http:
            self.listen, self._listen_setting = section.listen, "service.listen"
        else:
            self.listen, self._listen_setting = section.worker_listen, "service.worker_listen"
        self.run_workers = workers
        self.queues = list(self.config.queues if queues is None else queues)
        self.clients: dict[str, ApiClient] = {}
        self.sources: list[WebhookSource] = build_sources(self.config) if http else []
        self.receiver: WebhookReceiver | None = None
        self.worker: Worker | None = None
        self._broker: Broker | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.started_at: float = 0.0
        self.url = ""
        self.app: Starlette | None = None
        """The whole HTTP side as an ASGI app (built by ``start``)."""
        self._started = False
        self._stopped = asyncio.Event()
        self._stop_tracing: Callable[[], None] | None = None  # observability (tracing)
        # observability (metrics): made by ``_start`` unless observability.metrics.enabled is false
        # or the process serves no HTTP (``watch_service``).
        self.metrics: MetricsRecorder | None = None

    @property
    def broker(self) -> Broker:
        """The broker (opened by ``start``)."""
        if self._broker is None:
            raise RuntimeError("the service is not started")
        return self._broker

    # -- the HTTP side -------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        from interlink.service._admin import admin_app, http_problem
        from interlink.service._health import health_routes
        from interlink.service._metrics import metrics_route

        routes: list[BaseRoute] = [*health_routes(self)]
        if self.metrics is not None:  # observability (metrics): /metrics only when enabled
            routes.append(metrics_route(self))
        if self.receiver is not None:
            routes += self.receiver.routes()
        if self.http:  # a worker's HTTP side is the operations one: no admin
            routes.append(Mount("/admin", app=admin_app(self)))
        # Every error the service itself answers (404, 405) is problem+json, as the admin API's.
        app = Starlette(routes=routes, exception_handlers={HTTPException: http_problem})
        # observability (logs): bind and echo X-Request-ID around every request.
        app.add_middleware(RequestIdMiddleware)
        return app

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open everything in order of dependence; on any failure, close what was opened."""
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        # observability (logs): this config's secrets and names never reach a log line.
        REDACTOR.add_names(config.observability.logging.redact)
        REDACTOR.add_secrets(config_secrets(config))
        # observability (tracing): the OTel SDK from observability.tracing (none: nothing).
        self._stop_tracing = configure_tracing(
            config.observability.tracing, service_name=config.service.name
        )
        self._broker = await open_broker(config.broker.url)
        for name, client_config in config.clients.items():
            client = build_client(name, client_config)
            await client.__aenter__()
            self.clients[name] = client
        if self.sources:
            self.receiver = WebhookReceiver(self.sources, broker=self._broker)
            await self.receiver.start()
        # observability (metrics): watch the clients and the receiver (None when disabled).
        self.metrics = watch_service(self)
        if self.run_workers and self.queues:
            self.worker = Worker(
                self._broker,
                inbox=config.storage.url,
                graceful_timeout=config.service.shutdown_timeout,
                name=config.service.name,
            )
            for name in self.queues:
                setup = build_queue(
                    name,
                    config.queues[name],
                    base_dir=self.loaded.base_dir,
                    clients=self.clients,
                )
                self.worker.add_handler(setup.queue, setup.func, **setup.options)
            if self.metrics is not None:  # observability (metrics): before the worker fetches
                self.metrics.watch_worker(self.worker)
            await self.worker.start()
        if self.listen is not None:
            self.app = self._build_app()
            await self._listen(self.listen)
        self.started_at = time.time()
        _log.info(
            "service %s started%s", config.service.name, f" on {self.url}" if self.url else ""
        )

    async def _listen(self, address: str) -> None:
        section = self.config.service
        host, port = split_listen(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"{self._listen_setting}: cannot listen on {address}: {exc}"
            ) from None
        sock.listen(2048)
        sock.setblocking(False)
        self._socket = sock
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{port}"
        assert self.app is not None
        server = _Server(
            uvicorn.Config(
                self.app,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=max(1, int(section.shutdown_timeout)),
            )
        )
        self._server = server
        self._serving = asyncio.create_task(server.serve(sockets=[sock]), name="interlink-http")
        while not server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, drain, close; safe to call twice and after a failed start."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving
        if self._socket is not None:
            self._socket.close()
        if self.worker is not None:
            await self.worker.stop()
        if self.receiver is not None and self._broker is not None:
            with contextlib.suppress(Exception):
                await self.receiver.close()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        if self.metrics is not None:  # observability (metrics): unsubscribe from the hooks
            self.metrics.close()
        if self._broker is not None:
            await self._broker.close()
        if self._stop_tracing is not None:  # observability (tracing): flush what is batched
            self._stop_tracing()
        _log.info("service %s stopped", self.config.service.name)

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            # What start made (modules, config, clients, the app) lives as long as the process:
            # out of the collector's sight from now on, so that a full collection, which
            # visits every tracked object, visits only what requests and messages made. On the
            # traced webhook receiver it took a full collection from about 26 ms to 3 ms
            # (docs/performance.md, "Tracing and metrics on ingest").
            gc.freeze()
            await stop.wait()
            _log.info("service %s: stopping", self.config.service.name)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
