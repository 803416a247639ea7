"""What the ApiClient and transport tests share: fast pipelines, a closed port, a tiny Auth."""

from __future__ import annotations

import socket
from typing import Any

from interlink.client import ApiClient
from interlink.client._models import Request, Response, Send
from interlink.testing import FakeUpstream

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
