"""What the logging tests share: captured JSON lines, a config file, a handler that logs and calls."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interlink.client import ApiClient
from interlink.messaging import MessageContext
from interlink.observability import configure_logging

_log = logging.getLogger("tests.observability.handler")

CLIENTS: dict[str, ApiClient] = {}
"""The client ``handle`` calls (set by a test before the service starts)."""


async def handle(body: dict[str, Any], ctx: MessageContext) -> None:
    """Log a line, call the upstream with ``CLIENTS["upstream"]``, log another."""
    _log.info("handling order %s", body.get("id"))
    await CLIENTS["upstream"].post("/events", json=body)
    _log.info("handled order %s", body.get("id"))


class Captured:
    """Every line ``configure_logging`` wrote to a buffer, parsed as JSON."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def matching(self, event_part: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if event_part in str(line.get("event", ""))]


def capture_json_logs(level: str = "debug", redact: tuple[str, ...] = ()) -> Iterator[Captured]:
    """Install ``configure_logging`` on a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved_level = root.level
    captured = Captured()
    handler = configure_logging(level=level, format="json", redact=redact, stream=captured.buffer)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interlink.yaml"
    path.write_text(text)
    return path
