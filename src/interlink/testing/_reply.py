"""``Reply``, ``Received`` and ``send_reply``: what ``FakeUpstream`` answers and records.

Anchor: issue 3, "A fake upstream for tests". Split from ``_upstream.py``,
which holds the server, its routes and its records. Every fault a test can
inject is a field of ``Reply``, checked when the test builds it (not
mid-request), and ``send_reply`` writes it on the wire with aiohttp's
response objects, stepping past them only to cut a body short or reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import math
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, MultiDict

from interlink.core.errors import ConfigError

__all__ = ["Received", "Reply", "send_reply"]

_EMPTY_STATUSES = frozenset({204, 304})


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"Reply {name} must be seconds as a finite number >= 0, got {value!r}")


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer of ``FakeUpstream``; every option can be combined unless noted.

    - ``status``: the HTTP status, 200-599 (default 200).
    - ``json``: a body encoded as JSON (``Content-Type: application/json``);
      ``None`` means no JSON body (send ``body="null"`` for a JSON null).
    - ``body``: raw bytes, or a str sent as UTF-8 ``text/plain`` (default empty).
    - ``headers``: a mapping or a list of pairs (for repeated names); they win
      over the defaults above.
    - ``delay``: seconds before the status line and headers (latency, slow headers).
    - ``retry_after``: sets ``Retry-After``: seconds (a number) or a str sent
      as is (an HTTP date).
    - ``reset``: close the connection with an RST instead of answering.
    - ``truncate``: send the headers with the full ``Content-Length`` (or a
      chunked body), then only this many body bytes, then close.
    - ``body_delay``: seconds between the headers and the body.
    - ``chunks``: the body as these chunks, chunked transfer encoding.
    - ``chunk_delay``: seconds between two chunks.
    """

    status: int = 200
    _: KW_ONLY
    json: Any = None
    body: bytes | str = b""
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    delay: float = 0.0
    retry_after: float | str | None = None
    reset: bool = False
    truncate: int | None = None
    body_delay: float = 0.0
    chunks: Sequence[bytes] | None = None
    chunk_delay: float = 0.0
    payload: bytes = field(init=False, repr=False, compare=False)
    """The encoded body (from ``json``, ``body`` or the joined ``chunks``)."""

    def __post_init__(self) -> None:
        status = self.status
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ConfigError(f"Reply status must be an int from 200 to 599, got {status!r}")
        for name in ("delay", "body_delay", "chunk_delay"):
            _check_seconds(name, getattr(self, name))
        if not isinstance(self.retry_after, str | None):
            _check_seconds("retry_after", self.retry_after)
        object.__setattr__(self, "payload", self._encode())
        if self.reset and (self.payload or self.truncate is not None):
            raise ConfigError(
                "Reply(reset=True) closes the connection without answering: "
                "drop body, json, chunks and truncate"
            )
        if self.payload and status in _EMPTY_STATUSES:
            raise ConfigError(f"Reply status {status} cannot have a body")
        truncate = self.truncate
        if truncate is not None:
            # A chunked body cut after its last chunk is still cut: the final 0-chunk never comes.
            longest = len(self.payload) if self.chunks is not None else len(self.payload) - 1
            if (
                isinstance(truncate, bool)
                or not isinstance(truncate, int)
                or not 0 <= truncate <= longest
            ):
                raise ConfigError(
                    f"Reply truncate cuts the body short: an int from 0 to {longest} "
                    f"for a body of {len(self.payload)} bytes, got {truncate!r}"
                )
        self.response_headers()  # a bad header fails here, not mid-request

    def _encode(self) -> bytes:
        given = [
            name
            for name, present in [
                ("json", self.json is not None),
                ("body", self.body not in (b"", "")),
                ("chunks", self.chunks is not None),
            ]
            if present
        ]
        if len(given) > 1:
            raise ConfigError(
                f"Reply takes one of json, body and chunks, got {' and '.join(given)}"
            )
        if self.chunks is not None:
            if isinstance(self.chunks, bytes | str) or not all(
                isinstance(chunk, bytes) and chunk for chunk in self.chunks
            ):
                raise ConfigError(
                    f"Reply chunks must be a list of non-empty bytes, got {self.chunks!r}"
                )
            return b"".join(self.chunks)
        if self.json is not None:
            try:
                return _json.dumps(self.json).encode()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"Reply json is not JSON-serializable: {exc}") from None
        if isinstance(self.body, str):
            return self.body.encode()
        if not isinstance(self.body, bytes):
            raise ConfigError(f"Reply body must be bytes or str, got {self.body!r}")
        return self.body

    def response_headers(self) -> CIMultiDict[str]:
        """The headers this reply sends (before aiohttp adds Content-Length and Date)."""
        headers: CIMultiDict[str] = CIMultiDict()
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers or ()
        try:
            for name, value in pairs:
                if not isinstance(name, str) or not isinstance(value, str):
                    raise TypeError
                headers.add(name, value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Reply headers must be a mapping or pairs of str, got {self.headers!r}"
            ) from None
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(self.body, str) and self.body:
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        if self.retry_after is not None:
            retry_after = self.retry_after
            text = retry_after if isinstance(retry_after, str) else _seconds_text(retry_after)
            headers["Retry-After"] = text
        return headers


@dataclass(frozen=True, slots=True)
class Received:
    """One request as ``FakeUpstream`` received it.

    ``path`` is decoded and without the query; ``raw_path`` is the target as
    sent (path and query, still percent-encoded); ``query`` holds every query
    pair; ``at`` is ``time.monotonic()`` once the whole body had arrived;
    ``path_params`` are the route's ``{name}`` values; ``connection`` is the
    1-based number of the TCP connection it came on.
    """

    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes
    at: float
    path_params: dict[str, str] = field(default_factory=dict)
    raw_path: str = ""
    connection: int = 0

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header, or ``None``."""
        return self.headers.get("Idempotency-Key")

    def json(self) -> Any:
        """The body decoded as JSON (``ValueError`` if it is not JSON)."""
        return _json.loads(self.body)

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def __repr__(self) -> str:
        return f"Received({self.method} {self.raw_path or self.path}, {len(self.body)} bytes)"


async def send_reply(request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
    """Answer ``request`` with ``reply``, faults included (the handler's job in ``FakeUpstream``).

    A fault that closes the connection returns a response aiohttp can no
    longer send; it treats that as a client that went away and stays quiet.
    """
    if reply.delay:
        await asyncio.sleep(reply.delay)
    if reply.reset:
        # SO_LINGER 0 turns the close into an RST, as a crashed or firewalled upstream sends.
        sock = request.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.protocol.force_close()
        return web.Response()
    headers = reply.response_headers()
    streamed = reply.chunks is not None or reply.truncate is not None or reply.body_delay > 0
    if not streamed or request.method == "HEAD":
        return web.Response(status=reply.status, body=reply.payload, headers=headers)
    response = web.StreamResponse(status=reply.status, headers=headers)
    parts: Sequence[bytes]
    if reply.chunks is not None:
        response.enable_chunked_encoding()
        parts = reply.chunks
    else:
        response.content_length = len(reply.payload)
        parts = [reply.payload]
    await response.prepare(request)
    if reply.body_delay:
        await response.write(b"")  # puts the buffered headers on the wire
        await asyncio.sleep(reply.body_delay)
    limit = reply.truncate
    sent = 0
    for index, part in enumerate(parts):
        if index and reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        piece = part if limit is None else part[: max(limit - sent, 0)]
        await response.write(piece)  # an empty piece still flushes the headers
        sent += len(piece)
        if limit is not None and sent >= limit:
            break
    if limit is None:
        await response.write_eof()
    else:
        request.protocol.force_close()  # FIN before the declared length or the last chunk
    return response
