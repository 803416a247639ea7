"""What the demos' simulated servers share: an aiohttp app on 127.0.0.1 and a free port."""

from __future__ import annotations

from abc import ABC, abstractmethod

from aiohttp import web

__all__ = ["LocalServer"]


class LocalServer(ABC):
    """``start`` serves the routes ``add_routes`` puts on a new app and returns the URL;
    ``stop`` is idempotent."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Put this server's routes on ``app``."""

    async def start(self) -> str:
        """Start on 127.0.0.1 and a free port; return the URL."""
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
