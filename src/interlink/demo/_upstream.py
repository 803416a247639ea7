"""A small HTTP upstream whose health the demo scripts: healthy, flaky, down or slow.

It is a real aiohttp server on 127.0.0.1 and an ephemeral port, so the demo's
calls cross a real socket. (The general-purpose, fault-injecting
``interlink.testing.FakeUpstream`` comes with the API client.)
"""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web

from interlink.demo._local import LocalServer

__all__ = ["DemoUpstream", "Mode"]

Mode = Literal["healthy", "flaky", "down", "slow"]


class DemoUpstream(LocalServer):
    """``GET /orders/{id}`` answering according to ``mode``.

    ``flaky`` fails every ``fail_every``-th request with a 503 (deterministic,
    so the demo tells the same story every run); ``down`` always answers 503;
    ``slow`` answers after ``latency`` seconds.
    """

    def __init__(self, *, fail_every: int = 4, latency: float = 0.3) -> None:
        super().__init__()
        self.mode: Mode = "healthy"
        self.fail_every = fail_every
        self.latency = latency
        self.requests = 0

    async def _order(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.mode == "down" or (self.mode == "flaky" and self.requests % self.fail_every == 0):
            return web.json_response({"error": "unavailable"}, status=503)
        if self.mode == "slow":
            await asyncio.sleep(self.latency)
        return web.json_response({"id": request.match_info["order_id"], "status": "paid"})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/orders/{order_id}", self._order)
