"""The service demo's internal service: where forwarded payments end up.

A real aiohttp server on 127.0.0.1 and a free port that stores each
``POST /payments`` under its ``Idempotency-Key`` and answers 201 (200 for a
key it already has: the same payment forwarded twice is stored once).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["InternalService"]


class InternalService:
    """``POST /payments``, kept in ``payments`` by idempotency key; ``requests`` counts posts."""

    def __init__(self) -> None:
        self.payments: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _store(self, request: web.Request) -> web.Response:
        self.requests += 1
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"title": "Idempotency-Key is required"}, status=400)
        if key in self.payments:
            return web.json_response({"stored": key, "duplicate": True}, status=200)
        self.payments[key] = await request.json()
        return web.json_response({"stored": key, "duplicate": False}, status=201)

    async def start(self) -> str:
        """Start on 127.0.0.1 and a free port; return the URL."""
        app = web.Application()
        app.router.add_post("/payments", self._store)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
