"""The admin API under ``/admin``: queues, dead letters, circuit breakers, webhook sources.

A FastAPI app the service mounts at ``/admin``; its OpenAPI document is
``/admin/openapi.json``. Every request, the document included, needs
``Authorization: Bearer <service.admin_token>`` (compared in constant time);
without it, or with a wrong one, the answer is 401 with ``WWW-Authenticate:
Bearer``. With no token configured the admin API is off: everything under
``/admin`` is 404, never open.

Endpoints (paths relative to ``/admin``):

- ``GET /queues``: per configured queue, depth (ready, delayed), in flight,
  oldest age and the number of dead letters;
- ``GET /dead-letters`` (filters ``queue``, ``dlq``, ``error_type``, ``limit``),
  ``GET /dead-letters/{id}`` (the message and the failure, traceback included),
  ``POST /dead-letters/replay`` (``{"ids": [...]}``, or ``{"filter": {"queue":
  ..., "dlq": ..., "error_type": ...}, "limit": n}``, ``{"filter": {}}``: any),
  ``POST /dead-letters/{id}/replay``, ``DELETE /dead-letters`` (query ``id``
  repeated, and/or the filters; both given: the ids that match; neither:
  ``all=true`` is required), ``DELETE /dead-letters/{id}``;
- ``GET /breakers``, ``GET /breakers/{client}``, ``POST
  /breakers/{client}/open|close|reset``: state and window figures, forced
  open, closed, reset;
- ``GET /webhooks``: per source, counts by outcome, rejections by reason,
  the last request and the latest ones.

Every error is an RFC 9457 problem (``application/problem+json``): 404 for
an unknown dead letter, client or path, 409 for a client without a
breaker, 422 (with ``errors``) for a bad filter or body, 503 when the broker
does not answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from interlink import __version__
from interlink.client import ApiClient
from interlink.core.errors import ConfigError, DeadLetterNotFoundError, MessagingError
from interlink.messaging import DeadLetter
from interlink.messaging._dead_letters import matches
from interlink.messaging._message import show_body
from interlink.resilience import CircuitBreaker
from interlink.service._admin_models import (
    MAX_LIMIT,
    UNION_TAGS,
    BreakerInfo,
    BreakerList,
    BreakerWindow,
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterSummary,
    Problem,
    PurgeResult,
    QueueInfo,
    QueueList,
    RecentRequest,
    Replayed,
    ReplayIds,
    ReplayRequest,
    ReplayResult,
    WebhookInfo,
    WebhookList,
)
from interlink.service._health import ServiceView, configured_queues

__all__ = ["PROBLEM_JSON", "admin_app", "http_problem"]

PROBLEM_JSON: Final = "application/problem+json"
_REALM: Final = 'Bearer realm="interlink admin"'
_PURGE_PAGE: Final = 1000
_RETRY_AFTER: Final = "5"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- problems -----------------------------------------------------------------------------
class ProblemError(Exception):
    """Answer with a problem: ``status``, ``detail`` and extra response headers."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _problem_body(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    # ensure_ascii: a lone surrogate that came in a JSON body cannot break the answer.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


class _Json(JSONResponse):
    """JSON that stays valid UTF-8 whatever strings it holds (lone surrogates are escaped)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode()


def _problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = _problem_body(status, detail, errors)
    return Response(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        if len(loc) >= 3 and loc[0] == "body" and loc[1] in UNION_TAGS:
            del loc[1]  # the replay body's branch ("ids" or "filter"), not a place in it
        errors.append(
            {"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
        )
    return errors


async def http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's ``HTTPException`` (404, 405...) as a problem: an exception handler for the
    service's own app, so that a path no route serves answers like the admin API does."""
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it only
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    return _problem(exc.status_code, detail, headers=headers)


# -- authentication -----------------------------------------------------------------------
async def _off(scope: Scope, receive: Receive, send: Send) -> None:
    """The admin API without a token: 404 for everything."""
    if scope["type"] != "http":
        return
    await _respond_problem(send, 404, "the admin API is off: no service.admin_token is set", {})


async def _respond_problem(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = _problem_body(status, detail)
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Guard:
    """Let a request through to ``app`` only with the bearer token (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = None
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    given = value
                    break
            if given is None:
                await _respond_problem(
                    send, 401, "the admin API needs a bearer token", {"www-authenticate": _REALM}
                )
                return
            scheme, _, credentials = given.strip().partition(b" ")
            ok = hmac.compare_digest(credentials.strip(), self._token)
            if scheme.lower() != b"bearer" or not ok:
                await _respond_problem(
                    send,
                    401,
                    "the bearer token is not the admin token",
                    {"www-authenticate": f'{_REALM}, error="invalid_token"'},
                )
                return
        await self.app(scope, receive, send)


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="service.admin_token of the service's config file.",
)


async def _authenticated(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Documents the bearer scheme in the OpenAPI; ``_Guard`` has already checked the token."""


# -- request parts ------------------------------------------------------------------------
QueueFilter = Annotated[
    str | None,
    Query(
        description="Only dead letters from this source queue.",
        min_length=1,
        max_length=200,
    ),
]
DlqFilter = Annotated[
    str | None,
    Query(
        description="Only dead letters in this dead-letter queue.",
        min_length=1,
        max_length=200,
    ),
]
ErrorTypeFilter = Annotated[
    str | None,
    Query(
        description="Only dead letters whose error has this qualified class name "
        "(a builtin without its module: 'ValueError'; else 'myapp.errors.Invalid').",
        min_length=1,
        max_length=500,
    ),
]
_PATH_SEGMENT: Final = r"^[^/\x00-\x1f\x7f]+$"  # one path segment, no control characters
_ASCII_ID: Final = r"^[!-~]+$"  # printable ASCII: 100 of them fit in a URL, percent-encoded
_MAX_QUERY_IDS: Final = 100

DeadLetterId = Annotated[
    str, Path(description="The dead letter's id.", max_length=500, pattern=_PATH_SEGMENT)
]
ClientName = Annotated[
    str, Path(description="The name of one of clients:.", max_length=500, pattern=_PATH_SEGMENT)
]


# -- conversions ------------------------------------------------------------------------------
def _at(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, dt.UTC)


def _summary(record: DeadLetter) -> dict[str, Any]:
    failure = record.failure
    return {
        "id": record.id,
        "message_id": record.message.id,
        "source_queue": record.source_queue,
        "dead_letter_queue": record.dead_letter_queue,
        "dead_lettered_at": _at(record.dead_lettered_at),
        "error_type": failure.error_type,
        "error_message": failure.error_message,
        "reason": failure.reason,
        "attempts": failure.attempts,
        "handler": failure.handler,
    }


def _detail(record: DeadLetter) -> DeadLetterDetail:
    message = record.message
    shown = show_body(message.body, message.content_type)
    failure = record.failure
    return DeadLetterDetail(
        **_summary(record),
        headers=dict(message.headers),
        content_type=message.content_type,
        body=shown.json,
        body_base64=shown.base64,
        body_text=shown.text,
        published_at=_at(message.published_at),
        attempt=message.attempt,
        delivery_count=message.delivery_count,
        first_failed_at=_at(failure.first_failed_at),
        last_failed_at=_at(failure.last_failed_at),
        traceback=failure.traceback,
    )


def _breaker_info(client: ApiClient) -> BreakerInfo:
    health = client.health()
    breaker = client.pipeline.breaker
    window = None
    if breaker is not None:
        metrics = breaker.metrics()
        window = BreakerWindow(
            failure_rate=metrics.failure_rate,
            slow_call_rate=metrics.slow_call_rate,
            buffered_calls=metrics.buffered_calls,
            failed_calls=metrics.failed_calls,
            slow_calls=metrics.slow_calls,
            not_permitted_calls=metrics.not_permitted_calls,
        )
    return BreakerInfo(
        client=client.name,
        state=None if breaker is None else breaker.state.value,
        error_rate=health.error_rate,
        requests=health.requests,
        failures=health.failures,
        window=window,
    )


# -- the app ------------------------------------------------------------------------------------
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in (
        (400, "A body that cannot be read (not UTF-8, not JSON)."),
        (401, "No bearer token, or not the admin token."),
        (404, "Not found."),
        (422, "A bad filter, path parameter or body."),
        (503, "The broker does not answer."),
    )
}


def admin_app(service: ServiceView) -> ASGIApp:
    """The admin API of ``service``, to mount at ``/admin`` (see the module docstring).

    Nothing is read from ``service`` until a request comes. With no
    ``service.admin_token`` the app answers 404 to everything.
    """
    token = service.config.service.admin_token
    if not token:
        return _off
    return _Guard(_build(service), token)


def _build(service: ServiceView) -> FastAPI:
    api = FastAPI(
        title="interlink admin",
        version=__version__,
        description="Operate an interlink service: queues, dead letters, circuit breakers, "
        "webhook sources. Every request needs the bearer token service.admin_token.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(_authenticated)],
        responses=_ERRORS,
        default_response_class=_Json,
    )

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
                servers=api.servers,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            schema["security"] = [{"adminToken": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    _handlers(api)
    _queues(api, service)
    _dead_letters(api, service)
    _breakers(api, service)
    _webhooks(api, service)
    return api


def _handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _field_errors(exc)
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors) or "the request"
        return _problem(422, f"invalid {where}", errors=errors)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = await http_problem(request, exc)
        if exc.status_code == 405:  # every method of the path, not just the first route's
            response.headers["allow"] = ", ".join(_allowed(api, request))
        return response

    @api.exception_handler(ProblemError)
    async def problem(request: Request, exc: ProblemError) -> Response:
        return _problem(exc.status, exc.detail, headers=exc.headers)

    @api.exception_handler(DeadLetterNotFoundError)
    async def not_found(request: Request, exc: DeadLetterNotFoundError) -> Response:
        return _problem(404, str(exc))

    @api.exception_handler(ConfigError)
    async def bad_argument(request: Request, exc: ConfigError) -> Response:
        return _problem(422, str(exc))

    @api.exception_handler(MessagingError)
    async def unavailable(request: Request, exc: MessagingError) -> Response:
        return _problem(
            503, f"the broker did not answer: {exc}", headers={"retry-after": _RETRY_AFTER}
        )


def _allowed(api: FastAPI, request: Request) -> list[str]:
    """The methods of the path: those of its literal routes if it has any (OpenAPI's rule)."""
    matching = [
        route
        for route in api.router.routes
        if isinstance(route, Route)
        and route.methods
        and route.matches(request.scope)[0] is not Match.NONE
    ]
    literal = [route for route in matching if "{" not in route.path]
    return sorted({method for route in literal or matching for method in route.methods or ()})


def _queues(api: FastAPI, service: ServiceView) -> None:
    @api.get("/queues", response_model=QueueList, tags=["queues"], summary="Every queue now")
    async def queues() -> QueueList:
        broker = service.broker
        names = configured_queues(service.config)
        stats = await asyncio.gather(*(broker.stats(name) for name in names))
        counts = await asyncio.gather(*(broker.dead_letters.count(queue=n) for n in names))
        listed = []
        for name, stat, count in zip(names, stats, counts, strict=True):
            queue_config = service.config.queues.get(name)
            dlq = (queue_config.dead_letter_queue if queue_config else None) or f"{name}.dlq"
            listed.append(
                QueueInfo(
                    name=name,
                    ready=stat.ready,
                    delayed=stat.delayed,
                    in_flight=stat.in_flight,
                    oldest_age_seconds=stat.oldest_age,
                    dead_letters=count,
                    dead_letter_queue=dlq,
                )
            )
        return QueueList(items=listed)


def _dead_letters(api: FastAPI, service: ServiceView) -> None:
    tags: list[str | Any] = ["dead letters"]

    @api.get("/dead-letters", response_model=DeadLetterList, tags=tags, summary="List")
    async def list_dead_letters(
        queue: QueueFilter = None,
        dlq: DlqFilter = None,
        error_type: ErrorTypeFilter = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="At most this many, oldest first.")
        ] = 100,
    ) -> DeadLetterList:
        records = await service.broker.dead_letters.list(
            queue=queue, dead_letter_queue=dlq, error_type=error_type, limit=limit
        )
        return DeadLetterList(
            items=[DeadLetterSummary(**_summary(r)) for r in records],
            count=len(records),
            limit=limit,
        )

    @api.post("/dead-letters/replay", response_model=ReplayResult, tags=tags, summary="Replay many")
    async def replay_many(request: Annotated[ReplayRequest, Body()]) -> ReplayResult:
        if isinstance(request, ReplayIds):
            return await _replay(service, list(dict.fromkeys(request.ids)))
        wanted = request.filter
        records = await service.broker.dead_letters.list(
            queue=wanted.queue,
            dead_letter_queue=wanted.dlq,
            error_type=wanted.error_type,
            limit=request.limit,
        )
        return await _replay(service, [record.id for record in records])

    @api.get(
        "/dead-letters/{dead_letter_id}", response_model=DeadLetterDetail, tags=tags, summary="Show"
    )
    async def show(dead_letter_id: DeadLetterId) -> DeadLetterDetail:
        return _detail(await service.broker.dead_letters.get(dead_letter_id))

    @api.post(
        "/dead-letters/{dead_letter_id}/replay",
        response_model=ReplayResult,
        tags=tags,
        summary="Replay one",
    )
    async def replay_one(dead_letter_id: DeadLetterId) -> ReplayResult:
        return await _replay(service, [dead_letter_id])

    @api.delete("/dead-letters", response_model=PurgeResult, tags=tags, summary="Purge")
    async def purge(
        id: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=300, pattern=_ASCII_ID)]] | None,
            Query(
                description="Dead letter ids (repeat the parameter, at most 100; purge others "
                "one by one with DELETE /dead-letters/{id}).",
                max_length=_MAX_QUERY_IDS,
            ),
        ] = None,
        queue: QueueFilter = None,
        dlq: DlqFilter = None,
        error_type: ErrorTypeFilter = None,
        all: Annotated[
            bool,
            Query(description="Required to purge without an id or a filter: every dead letter."),
        ] = False,
    ) -> PurgeResult:
        if id is None and queue is None and dlq is None and error_type is None and not all:
            raise ProblemError(422, "give id, a filter (queue, dlq, error_type) or all=true")
        if id is not None:
            return PurgeResult(purged=await _purge_ids(service, id, queue, dlq, error_type))
        return PurgeResult(purged=await _purge_matching(service, queue, dlq, error_type))

    @api.delete(
        "/dead-letters/{dead_letter_id}", response_model=PurgeResult, tags=tags, summary="Purge one"
    )
    async def purge_one(dead_letter_id: DeadLetterId) -> PurgeResult:
        return PurgeResult(purged=await _purge_ids(service, [dead_letter_id], None, None, None))


async def _replay(service: ServiceView, ids: Sequence[str]) -> ReplayResult:
    sent = await service.broker.dead_letters.replay(ids)  # unknown id: 404, nothing moved
    replayed = [Replayed(dead_letter_id=d, message_id=m) for d, m in zip(ids, sent, strict=True)]
    return ReplayResult(replayed=replayed, count=len(replayed))


async def _purge_ids(
    service: ServiceView,
    ids: Sequence[str],
    queue: str | None,
    dlq: str | None,
    error_type: str | None,
) -> int:
    """Purge those of ``ids`` that match the filters; 404 (nothing purged) for an unknown id."""
    dead_letters = service.broker.dead_letters
    found: list[DeadLetter] = []
    missing: list[str] = []
    for dead_letter_id in dict.fromkeys(ids):
        try:
            found.append(await dead_letters.get(dead_letter_id))
        except DeadLetterNotFoundError:
            missing.append(dead_letter_id)
    if missing:
        listed = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ProblemError(404, f"no dead letter with id {listed}; nothing was purged")
    doomed = [record.id for record in found if matches(record, queue, dlq, error_type)]
    return await dead_letters.purge(doomed) if doomed else 0


async def _purge_matching(
    service: ServiceView, queue: str | None, dlq: str | None, error_type: str | None
) -> int:
    dead_letters = service.broker.dead_letters
    if error_type is None:
        return await dead_letters.purge(queue=queue, dead_letter_queue=dlq)
    purged = 0  # purge has no error_type filter: list a page, purge it, again
    while True:
        page = await dead_letters.list(
            queue=queue, dead_letter_queue=dlq, error_type=error_type, limit=_PURGE_PAGE
        )
        if not page:
            return purged
        gone = await dead_letters.purge([record.id for record in page])
        purged += gone
        if gone == 0:  # pragma: no cover - listed but gone already (a concurrent purge)
            return purged


def _breakers(api: FastAPI, service: ServiceView) -> None:
    tags: list[str | Any] = ["breakers"]

    def client_named(name: str) -> ApiClient:
        client = service.clients.get(name)
        if client is None:
            known = ", ".join(sorted(service.clients)) or "none"
            raise ProblemError(404, f"no client named {name!r} (clients: {known})")
        return client

    def breaker_of(name: str) -> tuple[ApiClient, CircuitBreaker]:
        client = client_named(name)
        breaker = client.pipeline.breaker
        if breaker is None:
            raise ProblemError(409, f"client {name!r} has no circuit breaker")
        return client, breaker

    conflict = {
        409: {
            "description": "The client has no circuit breaker.",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    }

    @api.get("/breakers", response_model=BreakerList, tags=tags, summary="Every client's breaker")
    async def breakers() -> BreakerList:
        return BreakerList(items=[_breaker_info(c) for c in service.clients.values()])

    @api.get("/breakers/{client}", response_model=BreakerInfo, tags=tags, summary="One")
    async def breaker(client: ClientName) -> BreakerInfo:
        return _breaker_info(client_named(client))

    def action(verb: str, name: str, summary: str, act: Callable[[CircuitBreaker], None]) -> None:
        async def endpoint(client: ClientName) -> BreakerInfo:
            found, breaker = breaker_of(client)
            act(breaker)
            return _breaker_info(found)

        api.post(
            f"/breakers/{{client}}/{verb}",
            response_model=BreakerInfo,
            tags=tags,
            summary=summary,
            name=name,
            responses=conflict,  # type: ignore[arg-type]
        )(endpoint)

    action(
        "open",
        "force_open",
        "Force open: reject every call until close or reset",
        CircuitBreaker.force_open,
    )
    action("close", "close", "Close, with a fresh window", CircuitBreaker.close)
    action(
        "reset",
        "reset",
        "Reset: closed as if new, rejection count cleared",
        CircuitBreaker.reset,
    )


def _webhooks(api: FastAPI, service: ServiceView) -> None:
    @api.get("/webhooks", response_model=WebhookList, tags=["webhooks"], summary="Every source")
    async def webhooks() -> WebhookList:
        receiver = service.receiver
        if receiver is None:
            return WebhookList(items=[])
        listed = []
        for name, source in receiver.sources.items():
            stats = receiver.stats[name]
            listed.append(
                WebhookInfo(
                    source=name,
                    path=source.path,
                    scheme=source.scheme,
                    queue=source.queue,
                    accepted=stats.accepted,
                    duplicates=stats.duplicates,
                    handshakes=stats.handshakes,
                    too_large=stats.too_large,
                    unavailable=stats.unavailable,
                    rejected=dict(stats.rejected),
                    rejected_total=sum(stats.rejected.values()),
                    last_received_at=None
                    if stats.last_received_at is None
                    else _at(stats.last_received_at),
                    last_accepted_at=None
                    if stats.last_accepted_at is None
                    else _at(stats.last_accepted_at),
                    recent=[
                        RecentRequest(
                            at=_at(event.at),
                            outcome=event.outcome,
                            webhook_id=event.webhook_id,
                            receipt=event.receipt,
                            reason=event.reason,
                            client=event.client,
                        )
                        for event in reversed(stats.recent)
                    ],
                )
            )
        return WebhookList(items=listed)
