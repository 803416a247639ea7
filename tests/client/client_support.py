"""What the ApiClient and transport tests share: fast pipelines, a closed port, a tiny Auth."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from interlink.client import ApiClient
from interlink.client._models import Auth, Request, Response, Send
from interlink.testing import FakeUpstream, Received

TRANSPORTS = ["aiohttp", "httpx"]

FAST: dict[str, Any] = {
    "retry": {"max_attempts": 3, "initial_delay": 0.001, "max_delay": 0.005},
    "timeout": 5.0,
}
"""Three attempts a few milliseconds apart, and no breaker: retries without waiting."""


def make_client(upstream: FakeUpstream, transport: str, **kwargs: Any) -> ApiClient:
    kwargs.setdefault("resilience", FAST)
    return ApiClient(upstream.url, transport=transport, **kwargs)


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingToken:
    """An ``Auth`` that sends ``Bearer token-<n>`` and moves to the next n on refresh."""

    def __init__(self, *, refreshes: bool = True) -> None:
        self.generation = 1
        self.refreshes = refreshes
        self.refresh_calls = 0
        self.applied = 0

    async def apply(self, request: Request, send: Send) -> None:
        self.applied += 1
        request.headers["Authorization"] = f"Bearer token-{self.generation}"

    async def refresh(self, request: Request, response: Response, send: Send) -> bool:
        self.refresh_calls += 1
        if self.refreshes:
            self.generation += 1
        return self.refreshes


async def attempt(auth: Auth, send: Send, request: Request) -> Response:
    """One attempt as the client makes it: apply the credentials, then send."""
    await auth.apply(request, send)
    return await send(request)


def get(upstream: FakeUpstream, path: str = "/things", **extra: Any) -> Request:
    """A GET of ``path`` on ``upstream``."""
    return Request("GET", upstream.url + path, **extra)


def expect_token(token: str) -> Callable[[Received], int]:
    """A reply that answers 200 only to ``Authorization: Bearer <token>``, 401 otherwise."""
    return lambda received: (
        200 if received.headers.get("Authorization") == f"Bearer {token}" else 401
    )


def answering(upstream: FakeUpstream, path: str) -> FakeUpstream:
    """``upstream`` with ``path`` answering 200 to any method unless a test scripts it."""
    upstream.route("*", path)
    return upstream
