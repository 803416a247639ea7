"""From the checked file to the parts that run: clients, webhook sources, queue handlers.

Each builder turns one section of ``ServiceConfig`` into the object the
library already has (``ApiClient``, ``WebhookSource``, a handler for
``Worker.add_handler``), and raises ``ConfigError`` whose message starts with
the dotted key of what is wrong. Nothing here opens a connection, so
``check_built`` can run every builder for ``interlink check-config``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pydantic

from interlink.client import (
    ApiClient,
    ApiKey,
    BasicAuth,
    BearerToken,
    OAuth2ClientCredentials,
)
from interlink.client._models import Auth
from interlink.core.errors import ConfigError, MappingError
from interlink.messaging import MessageContext
from interlink.messaging._handler import build_handler
from interlink.resilience import Pipeline
from interlink.service._config import (
    AuthConfig,
    ClientConfig,
    QueueConfig,
    ServiceConfig,
    WebhookConfig,
)
from interlink.transform import Mapping as TransformMapping
from interlink.webhooks import SCHEMES, WebhookSource

__all__ = [
    "HandlerContext",
    "QueueSetup",
    "build_client",
    "build_queue",
    "build_source",
    "build_sources",
    "check_built",
    "import_object",
]

_KEYED = re.compile(r"^(?P<key>[A-Za-z_][\w.\-\[\]]*): (?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class HandlerContext(MessageContext):
    """A handler's context in the service: the message, plus the named API clients."""

    clients: Mapping[str, ApiClient] = field(default_factory=dict)


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _within(key: str, error: ConfigError) -> ConfigError:
    """``error`` under ``key``: ``retry.max_attempts: ...`` -> ``clients.x.retry.max_attempts: ...``."""
    text = str(error)
    if text.startswith((f"{key}.", f"{key}:")):
        return ConfigError(text)
    return ConfigError(f"{key}: {text}")


def import_object(dotted: str, key: str) -> Any:
    """``module:attribute`` imported; ``ConfigError`` under ``key`` naming what failed."""
    module_name, _, attribute = dotted.partition(":")
    if not module_name or not attribute:
        raise _fail(key, f"expected module:attribute, found {dotted!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing while it loads
        raise _fail(key, f"cannot import {module_name!r}: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise _fail(key, f"{module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    return target


# -- clients ----------------------------------------------------------------------------
def _auth(config: AuthConfig) -> Auth:
    if config.type == "bearer":
        assert config.token is not None
        return BearerToken(config.token)
    if config.type == "api_key":
        assert config.key is not None
        if config.query:
            return ApiKey(config.key, header=None, query=config.query)
        return ApiKey(config.key, header=config.header or "X-API-Key")
    if config.type == "basic":
        return BasicAuth(config.username or "", config.password or "")
    scope = config.scope
    return OAuth2ClientCredentials(
        config.token_url or "",
        config.client_id or "",
        config.client_secret or "",
        scope=" ".join(scope) if isinstance(scope, list) else scope,
    )


def build_client(name: str, config: ClientConfig) -> ApiClient:
    """The ``ApiClient`` of ``clients.<name>`` (not yet opened: no connection made)."""
    key = f"clients.{name}"
    try:
        auth = None if config.auth is None else _auth(config.auth)
    except ConfigError as exc:
        raise _within(f"{key}.auth", exc) from None
    resilience = config.resilience()
    if resilience is not None:
        try:  # built here first only for its errors' dotted keys (retry.max_attempts: ...)
            Pipeline.from_dict(resilience, name=name)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(f"{key}.{text}" if _KEYED.match(text) else f"{key}: {text}") from None
    try:
        return ApiClient(
            config.base_url,
            name=name,
            auth=auth,
            timeout=config.timeout,
            headers=config.headers or None,
            transport=config.transport,
            resilience=resilience,
        )
    except ConfigError as exc:
        raise _within(key, exc) from None


# -- webhooks ---------------------------------------------------------------------------
def build_source(name: str, config: WebhookConfig) -> WebhookSource:
    """The ``WebhookSource`` of ``webhooks.<name>``."""
    try:
        return WebhookSource.from_config(name, config.settings())
    except ConfigError as exc:
        text = str(exc)
        if "unknown webhook scheme" in text:
            close = difflib.get_close_matches(config.scheme, sorted(SCHEMES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(
                f"webhooks.{name}.scheme",
                f"unknown scheme {config.scheme!r}{hint}; known: {', '.join(sorted(SCHEMES))}",
            ) from None
        raise _within(f"webhooks.{name}", exc) from None


def build_sources(config: ServiceConfig) -> list[WebhookSource]:
    """Every ``webhooks:`` source; ``ConfigError`` for the first that cannot be built."""
    return [build_source(name, source) for name, source in config.webhooks.items()]


# -- queues -----------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueSetup:
    """What ``Worker.add_handler`` needs for one queue: the function and its options."""

    queue: str
    func: Callable[[Any, MessageContext], Awaitable[object]]
    options: dict[str, Any]


def _transform(value: str, key: str, base_dir: Path) -> Any:
    if value.endswith((".yaml", ".yml")):
        path = Path(value)
        if not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _fail(key, f"cannot read the mapping {value!r}: {why}") from None
        try:  # errors name the mapping file as the config wrote it, and its line
            return TransformMapping.from_yaml(text, source=value)
        except MappingError as exc:
            raise _fail(key, str(exc)) from None
    target = import_object(value, key)
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise _fail(key, f"cannot create {value!r}: {exc}") from None
    if not callable(getattr(target, "transform", None)):
        raise _fail(key, f"{value!r} is not a transformer (no transform(item) method)")
    return target


class _JsonBody:
    """Parse a JSON body stored as bytes, then run ``inner`` (the queue's transform) on it.

    A webhook source stores the provider's raw body (bytes, so that it stays
    exactly as signed); a queue it feeds must still hand its transform, model,
    handler or forward the JSON, as it would a body published as JSON. A body
    that is not JSON (a form-encoded webhook) is left as bytes (a ``forward``
    sends it on as received, with its content type).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The queue's transformer's name (``json`` without one): spans and metrics show it."""
        return "json" if self.inner is None else str(getattr(self.inner, "name", "transform"))

    def transform(self, value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        return value if self.inner is None else self.inner.transform(value)


def _jsonable(body: Any) -> Any:
    if isinstance(body, pydantic.BaseModel):
        return body.model_dump(mode="json")
    return body


def _forwarder(
    queue: str, client_name: str, method: str, path: str, clients: Mapping[str, ApiClient]
) -> Callable[[Any, MessageContext], Awaitable[object]]:
    async def forward(body: Any, ctx: MessageContext) -> None:
        client = clients[client_name]
        if isinstance(body, bytes | bytearray):
            # Not JSON (a form-encoded webhook, as Twilio and Slack commands send): on as
            # received, byte for byte, with the content type it came with.
            kind = next(
                (v for k, v in ctx.message.headers.items() if k.lower() == "content-type"),
                "application/octet-stream",
            )
            await client.request(
                method,
                path,
                content=bytes(body),
                headers={"Content-Type": kind},
                idempotency_key=ctx.message.id,
                raw=True,
            )
            return
        await client.request(
            method, path, json=_jsonable(body), idempotency_key=ctx.message.id, raw=True
        )

    forward.__name__ = "forward"
    forward.__qualname__ = f"forward[{queue} -> {client_name}]"
    return forward


def _with_clients(
    func: Callable[[Any, HandlerContext], Awaitable[object]], clients: Mapping[str, ApiClient]
) -> Callable[[Any, MessageContext], Awaitable[object]]:
    async def handle(body: Any, ctx: MessageContext) -> object:
        return await func(body, HandlerContext(ctx.message, ctx.handler, ctx.clock, clients))

    handle.__name__ = getattr(func, "__name__", "handler")
    return handle


def build_queue(
    name: str,
    config: QueueConfig,
    *,
    base_dir: Path,
    clients: Mapping[str, ApiClient],
) -> QueueSetup:
    """The handler of ``queues.<name>`` and its worker options (checked by ``build_handler``)."""
    key = f"queues.{name}"
    if config.forward is not None:
        target = config.forward.client
        if target not in clients:
            known = ", ".join(sorted(clients)) or "none configured"
            raise _fail(f"{key}.forward.client", f"no client named {target!r} (clients: {known})")
        func = _forwarder(name, target, config.forward.method, config.forward.path, clients)
        handler_name = f"{name}:forward"
    else:
        assert config.handler is not None
        user = import_object(config.handler, f"{key}.handler")
        if not (
            inspect.iscoroutinefunction(user)
            or inspect.iscoroutinefunction(
                getattr(user, "__call__", None)  # noqa: B004 - an async __call__ is what we look for
            )
        ):
            raise _fail(f"{key}.handler", f"{config.handler!r} is not an async function")
        func = _with_clients(user, clients)
        handler_name = f"{name}:{config.handler.partition(':')[2]}"
    options: dict[str, Any] = {
        "name": handler_name,
        "concurrency": config.concurrency,
        "prefetch": config.prefetch,
        "max_attempts": config.max_attempts,
        "dead_letter_queue": config.dead_letter_queue,
        "permanent": list(config.permanent),
        "ordering": config.ordering,
        "delivery_limit": config.delivery_limit,
    }
    if config.retry_delays is not None:
        options["retry"] = list(config.retry_delays)
    inner = None
    if config.transform is not None:
        inner = _transform(config.transform, f"{key}.transform", base_dir)
    options["transform"] = _JsonBody(inner)
    if config.model is not None:
        options["model"] = import_object(config.model, f"{key}.model")
    try:
        build_handler(name, func, **options)
    except ConfigError as exc:
        raise _within(key, exc) from None
    return QueueSetup(name, func, options)


# -- everything, for check-config -------------------------------------------------------
def check_built(config: ServiceConfig, base_dir: Path) -> list[tuple[str, str]]:
    """Run every builder; each failure as ``(dotted key, message)``, in file order."""
    problems: list[tuple[str, str]] = []

    def note(error: ConfigError, default_key: str) -> None:
        text = str(error)
        match = _KEYED.match(text)
        if match is not None and match["key"].split(".")[0] in (
            "clients",
            "webhooks",
            "queues",
        ):
            problems.append((match["key"], match["rest"]))
        else:
            problems.append((default_key, text))

    clients: dict[str, ApiClient] = {}
    for name, client in config.clients.items():
        try:
            clients[name] = build_client(name, client)
        except ConfigError as exc:
            note(exc, f"clients.{name}")
            clients[name] = cast(ApiClient, None)  # reported once, not again by its queues
    for name, source in config.webhooks.items():
        try:
            build_source(name, source)
        except ConfigError as exc:
            note(exc, f"webhooks.{name}")
    for name, queue in config.queues.items():
        try:
            build_queue(name, queue, base_dir=base_dir, clients=clients)
        except ConfigError as exc:
            note(exc, f"queues.{name}")
    return problems
