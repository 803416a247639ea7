"""The service demo's internal service: where forwarded payments end up.

A real aiohttp server on 127.0.0.1 and a free port that stores each
``POST /payments`` under its ``Idempotency-Key`` and answers 201 (200 for a
key it already has: the same payment forwarded twice is stored once).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from interlink.demo._local import LocalServer

__all__ = ["InternalService"]


class InternalService(LocalServer):
    """``POST /payments``, kept in ``payments`` by idempotency key; ``requests`` counts posts."""

    def __init__(self) -> None:
        super().__init__()
        self.payments: dict[str, dict[str, Any]] = {}
        self.requests = 0

    async def _store(self, request: web.Request) -> web.Response:
        self.requests += 1
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"title": "Idempotency-Key is required"}, status=400)
        if key in self.payments:
            return web.json_response({"stored": key, "duplicate": True}, status=200)
        self.payments[key] = await request.json()
        return web.json_response({"stored": key, "duplicate": False}, status=201)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/payments", self._store)
