"""Handlers the test config files name (``module:function``)."""

from __future__ import annotations

from typing import Any


async def on_audit(message: Any, ctx: Any) -> None:
    """A queue handler: an async function of the message and its context."""


def not_async(message: Any, ctx: Any) -> None:
    """Not a handler: the builder refuses a function that is not async."""
