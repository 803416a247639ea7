"""``/livez``, ``/readyz`` and ``/health``: the service's health, in the shapes operators expect.

- ``/livez``: the process answers; no dependency is checked, so a slow
  broker never gets a live process restarted. Always ``200 {"status": "pass"}``.
- ``/readyz``: whether this process can do its work now: the broker answers a
  ping, the inbox (``storage:``) answers a ping when this process runs
  workers with one, and the shared state (``state:``, in process) is there.
  The checks run concurrently, each within ``service.readiness_timeout``, and
  the answer is cached for a second, so a probe storm costs one round of
  pings a second. ``200`` when every check passes, else ``503``.
- ``/health``: the full report, ``application/health+json``
  (draft-inadarei-api-health-check): ``status`` ``pass``/``warn``/``fail`` and
  a ``checks`` object keyed ``component:measurement`` whose values are lists
  of check objects (``observedValue``, ``observedUnit``, ``status``,
  ``time``, ``output`` on trouble): the readiness checks
  (``broker:responseTime``, ``storage:responseTime``, ``state:responseTime``,
  in ms), ``uptime`` (s), ``queue:<name>`` (depth: ready + delayed, with
  ``ready``, ``delayed``, ``inFlight``, ``oldestAge``), ``dlq:<name>`` (its
  dead letters; ``warn`` when there are any), ``client:<name>`` (error rate
  in %, with ``breakerState``; ``warn`` while the breaker is open, half open
  or forced open) and ``webhook:<source>`` (seconds since the last webhook
  stored, with ``lastReceivedAt``, ``lastAcceptedAt``, ``accepted``,
  ``rejected``). A queue or DLQ that cannot be read is ``warn`` (the broker
  check says whether it is reachable). ``503`` only when the status is
  ``fail``: a reachability check failed.

Every body is ``application/health+json`` with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interlink import __version__
from interlink.client import ApiClient
from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.messaging import Broker, Worker
from interlink.service._config import ServiceConfig
from interlink.webhooks import WebhookReceiver

__all__ = [
    "HEALTH_JSON",
    "READY_CACHE_SECONDS",
    "ServiceView",
    "configured_queues",
    "health_routes",
]

HEALTH_JSON: Final = "application/health+json"
READY_CACHE_SECONDS: Final = 1.0
"""How long a ``/readyz`` answer is reused."""

_PASS, _WARN, _FAIL = "pass", "warn", "fail"
_RANK: Final = {_PASS: 0, _WARN: 1, _FAIL: 2}
_MAX_OUTPUT = 300
_HEADERS: Final = {"cache-control": "no-store"}

Check = dict[str, Any]
"""One check object of the health+json body."""


class ServiceView(Protocol):
    """What health and admin read from the running ``Service`` (``_runtime``)."""

    @property
    def config(self) -> ServiceConfig: ...

    @property
    def broker(self) -> Broker:
        """The open broker; raises before the service started."""
        ...

    @property
    def worker(self) -> Worker | None: ...

    @property
    def clients(self) -> Mapping[str, ApiClient]: ...

    @property
    def receiver(self) -> WebhookReceiver | None: ...

    @property
    def started_at(self) -> float: ...


def configured_queues(config: ServiceConfig) -> list[str]:
    """The queues the config names: ``queues:``, then the webhook sources' ``publish_to``."""
    names = dict.fromkeys(config.queues)
    for source in config.webhooks.values():
        names.setdefault(source.publish_to)
    return list(names)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    stamp = dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= _MAX_OUTPUT else text[: _MAX_OUTPUT - 3] + "..."


def _check(status: str, component_type: str, **fields: Any) -> Check:
    check: Check = {"componentType": component_type, "status": status, "time": _now_iso()}
    check.update({key: value for key, value in fields.items() if value is not None})
    return check


def _overall(checks: Mapping[str, list[Check]]) -> str:
    worst = _PASS
    for entries in checks.values():
        for entry in entries:
            if _RANK[entry["status"]] > _RANK[worst]:
                worst = entry["status"]
    return worst


async def _within(seconds: float, work: Callable[[], Awaitable[Any]]) -> Any:
    async with asyncio.timeout(seconds):
        return await work()


def _failed(component_type: str, timeout: float, exc: BaseException, **fields: Any) -> Check:
    late = isinstance(exc, TimeoutError)
    output = f"no answer within {timeout:g}s" if late else _describe(exc)
    return _check(_FAIL, component_type, output=output, **fields)


# -- the reachability checks (readyz and health) ---------------------------------------------
async def _broker_check(service: ServiceView, limit: float) -> Check:
    try:
        seconds = await _within(limit, lambda: service.broker.ping())
    except Exception as exc:
        return _failed("datastore", limit, exc)
    return _check(_PASS, "datastore", observedValue=round(seconds * 1000, 3), observedUnit="ms")


async def _storage_check(service: ServiceView, limit: float) -> Check | None:
    """The inbox's round trip; ``None`` when this process has no inbox to check."""
    if service.config.storage.url is None or service.worker is None:
        return None
    inbox = service.worker.inbox
    if inbox is None:
        return _check(_FAIL, "datastore", output="the inbox is not open")
    ping: Callable[[], Awaitable[float]] | None = getattr(inbox, "ping", None)
    if ping is None:
        return _check(_PASS, "datastore", output=f"{type(inbox).__name__} has no ping()")
    try:
        seconds = await _within(limit, ping)
    except Exception as exc:
        return _failed("datastore", limit, exc)
    return _check(_PASS, "datastore", observedValue=round(seconds * 1000, 3), observedUnit="ms")


def _state_check(service: ServiceView) -> Check:
    # memory:// is the only state backend: it lives in this process, so it is there.
    url = service.config.state.url
    return _check(_PASS, "component", observedValue=0.0, observedUnit="ms", output=url)


async def _readiness(service: ServiceView) -> dict[str, list[Check]]:
    timeout = float(service.config.service.readiness_timeout)
    broker, storage = await asyncio.gather(
        _broker_check(service, timeout), _storage_check(service, timeout)
    )
    checks = {"broker:responseTime": [broker]}
    if storage is not None:
        checks["storage:responseTime"] = [storage]
    checks["state:responseTime"] = [_state_check(service)]
    return checks


# -- the observations (health only) -----------------------------------------------------------
async def _queue_check(service: ServiceView, queue: str, limit: float) -> Check:
    try:
        stats = await _within(limit, lambda: service.broker.stats(queue))
    except Exception as exc:
        failed = _failed("queue", limit, exc, componentId=queue)
        failed["status"] = _WARN  # the broker check says whether it is reachable
        return failed
    depth = None
    if stats.ready is not None or stats.delayed is not None:
        depth = (stats.ready or 0) + (stats.delayed or 0)
    check = _check(_PASS, "queue", componentId=queue, observedUnit="messages")
    check.update(
        observedValue=depth,  # null: the backend cannot count (RabbitMQ's delayed messages)
        ready=stats.ready,
        delayed=stats.delayed,
        inFlight=stats.in_flight,
        oldestAge=None if stats.oldest_age is None else round(stats.oldest_age, 3),
    )
    return check


async def _dlq_check(service: ServiceView, queue: str, limit: float) -> Check:
    try:
        count = await _within(limit, lambda: service.broker.dead_letters.count(queue=queue))
    except Exception as exc:
        failed = _failed("queue", limit, exc, componentId=queue)
        failed["status"] = _WARN
        return failed
    status = _WARN if count else _PASS
    output = f"{count} dead letter{'' if count == 1 else 's'} from {queue!r}" if count else None
    return _check(
        status,
        "queue",
        componentId=queue,
        observedValue=count,
        observedUnit="messages",
        output=output,
    )


def _client_check(client: ApiClient) -> Check:
    health = client.health()
    status = _PASS if health.healthy else _WARN
    check = _check(
        status,
        "component",
        componentId=client.name,
        observedValue=round(health.error_rate, 3),
        observedUnit="%",
        output=None if health.healthy else f"circuit breaker {health.breaker_state}",
    )
    check.update(
        breakerState=health.breaker_state, requests=health.requests, failures=health.failures
    )
    return check


def _webhook_checks(receiver: WebhookReceiver | None) -> dict[str, list[Check]]:
    checks: dict[str, list[Check]] = {}
    if receiver is None:
        return checks
    now = time.time()
    for name, stats in receiver.stats.items():
        last = stats.last_accepted_at
        check = _check(_PASS, "component", componentId=name, observedUnit="s")
        check.update(
            observedValue=None if last is None else round(max(0.0, now - last), 3),
            lastReceivedAt=_iso(stats.last_received_at),
            lastAcceptedAt=_iso(last),
            accepted=stats.accepted,
            rejected=sum(stats.rejected.values()),
        )
        checks[f"webhook:{name}"] = [check]
    return checks


async def health_report(service: ServiceView) -> dict[str, Any]:
    """The ``/health`` body: every check, run concurrently, each within the timeout."""
    timeout = float(service.config.service.readiness_timeout)
    queues = configured_queues(service.config)
    ready, queue_checks, dlq_checks = await asyncio.gather(
        _readiness(service),
        asyncio.gather(*(_queue_check(service, q, timeout) for q in queues)),
        asyncio.gather(*(_dlq_check(service, q, timeout) for q in queues)),
    )
    checks: dict[str, list[Check]] = dict(ready)
    if service.started_at:
        uptime = max(0.0, time.time() - service.started_at)
        checks["uptime"] = [
            _check(_PASS, "system", observedValue=round(uptime, 3), observedUnit="s")
        ]
    for queue, check in zip(queues, queue_checks, strict=True):
        checks[f"queue:{queue}"] = [check]
    for queue, check in zip(queues, dlq_checks, strict=True):
        checks[f"dlq:{queue}"] = [check]
    for name, client in service.clients.items():
        checks[f"client:{name}"] = [_client_check(client)]
    checks.update(_webhook_checks(service.receiver))
    return {
        "status": _overall(checks),
        "serviceId": service.config.service.name,
        "releaseId": __version__,
        "description": f"interlink service {service.config.service.name!r}",
        "checks": checks,
    }


def _answer(body: Mapping[str, Any]) -> Response:
    status = 503 if body["status"] == _FAIL else 200
    return JSONResponse(dict(body), status_code=status, media_type=HEALTH_JSON, headers=_HEADERS)


def health_routes(service: ServiceView, *, clock: Clock = SYSTEM_CLOCK) -> list[Route]:
    """The ``/livez``, ``/readyz`` and ``/health`` routes of ``service`` (GET and HEAD).

    Nothing is read from ``service`` until a request comes, so the routes
    can be built before the service starts (``/readyz`` is 503 until then).
    ``clock`` times the ``/readyz`` cache.
    """
    cached: list[tuple[float, dict[str, Any]]] = []
    lock = asyncio.Lock()

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": _PASS}, media_type=HEALTH_JSON, headers=_HEADERS)

    async def readyz(request: Request) -> Response:
        async with lock:  # one round of checks at a time; those waiting reuse its answer
            if not cached or clock.monotonic() - cached[0][0] >= READY_CACHE_SECONDS:
                checks = await _readiness(service)
                cached[:] = [(clock.monotonic(), {"status": _overall(checks), "checks": checks})]
            body = cached[0][1]
        return _answer(body)

    async def health(request: Request) -> Response:
        return _answer(await health_report(service))

    return [
        Route("/livez", livez, methods=["GET"], name="livez"),
        Route("/readyz", readyz, methods=["GET"], name="readyz"),
        Route("/health", health, methods=["GET"], name="health"),
    ]
