"""The service demo's payment provider: signed webhooks out, and an API that misbehaves.

``PaymentProvider`` is two things a real provider is. A sender that posts a
``payment.*`` webhook, signed with the Standard Webhooks scheme, to the service
at a steady rate; every so often it sends one with a bad signature, one in a
currency the service does not take, or the same webhook again. And an API on
127.0.0.1 (an ephemeral port, a real aiohttp server) that answers
``GET /v1/payments/{id}`` with the payment's fee and risk, but fails one request
in ten (503), rate-limits one in fifteen (429 with ``Retry-After: 1``),
answers one in twenty-three too slowly for the client's timeout, and is down
altogether (503) during the outage windows of its ``OutagePlan``. The failures
follow the request count, so every run tells the same story. Like GitHub's or
any API that follows the IETF RateLimit drafts, it also states its quota on
every answer (``RateLimit-Limit``, ``-Remaining``, ``-Reset``): ``QUOTA_LIMIT``
requests per ``QUOTA_WINDOW`` seconds, and a 429 with ``Retry-After`` until the
window ends once they are spent. The service's client reads them into the
``interlink_client_quota_*`` metrics, and the dashboard's quota panels show them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from interlink.demo._local import LocalServer

__all__ = ["QUOTA_LIMIT", "QUOTA_WINDOW", "OutagePlan", "PaymentProvider"]

QUOTA_LIMIT = 300
"""API requests the provider takes per quota window."""
QUOTA_WINDOW = 10.0
"""Seconds of a quota window; the windows follow each other from ``start``."""

_CURRENCIES = ("eur", "usd", "gbp")
_NAMES = ("Ada  Lovelace", "Alan Turing", " Grace Hopper", "Edsger Dijkstra", "Barbara Liskov")


@dataclass(frozen=True)
class OutagePlan:
    """When the provider's API is down: ``start`` seconds in, for ``length`` seconds.

    ``every``: the outage comes back every so many seconds (``None``: once).
    """

    start: float
    length: float
    every: float | None = None

    def down(self, elapsed: float) -> bool:
        """Whether the API is down ``elapsed`` seconds after the provider started."""
        if elapsed < self.start:
            return False
        since = elapsed - self.start
        if self.every is not None:
            since %= self.every
        return since < self.length


@dataclass
class SenderStats:
    """What the sender sent and what the service answered."""

    sent: int = 0
    bad_signatures: int = 0
    unsupported: int = 0
    """Payloads in a currency the service's mapping refuses."""
    resent: int = 0
    """Webhooks sent a second time (the service should answer ``duplicate``)."""
    answers: Counter[int] = field(default_factory=Counter)
    """HTTP statuses the service answered with."""
    undelivered: int = 0
    """Posts that got no answer (the service was not reachable)."""


class PaymentProvider(LocalServer):
    """A simulated payment provider (see the module): ``start``, ``send_webhooks``, ``stop``.

    ``secret``: the ``whsec_`` signing secret shared with the service; ``token``:
    the bearer token its API wants; ``rate``: webhooks per second;
    ``quota_limit`` API requests per ``quota_window`` seconds.
    """

    def __init__(
        self,
        *,
        secret: str,
        token: str,
        rate: float,
        outage: OutagePlan,
        seed: int = 7,
        quota_limit: int = QUOTA_LIMIT,
        quota_window: float = QUOTA_WINDOW,
    ) -> None:
        super().__init__()
        self.quota_limit = quota_limit
        self.quota_window = quota_window
        self._key = base64.b64decode(secret.removeprefix("whsec_"))
        self._wrong_key = hashlib.sha256(self._key).digest()
        self.token = token
        self.rate = rate
        self.outage = outage
        self.sender = SenderStats()
        self.api: Counter[str] = Counter()
        """API answers by kind: ok, error (503), rate_limited (429), slow, outage, ..."""
        self.api_requests = 0
        self._payments: dict[str, dict[str, Any]] = {}
        self._random = random.Random(seed)
        self._started_at = time.monotonic()
        self._window_index = 0
        self._quota_used = 0

    # -- the API ---------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the first webhook was sent (or since ``start``)."""
        return time.monotonic() - self._started_at

    @property
    def down(self) -> bool:
        """Whether the API is in an outage now."""
        return self.outage.down(self.elapsed)

    def _take_quota(self) -> tuple[int, int]:
        """Count one request against the quota: the requests left in the window, and its end.

        Left is negative once the window's quota was spent before this request.
        """
        elapsed = self.elapsed
        window = int(elapsed // self.quota_window)
        if window != self._window_index:
            self._window_index, self._quota_used = window, 0
        self._quota_used += 1
        reset = max(1, math.ceil((window + 1) * self.quota_window - elapsed))
        return self.quota_limit - self._quota_used, reset

    async def _payment(self, request: web.Request) -> web.Response:
        self.api_requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.api["unauthorized"] += 1
            return _problem(401, "a valid bearer token is needed")
        left, reset = self._take_quota()
        if left < 0:
            self.api["quota_exhausted"] += 1
            response = _problem(429, "quota exhausted", retry_after=reset)
        else:
            response = await self._answer(request, self.api_requests)
        response.headers["RateLimit-Limit"] = str(self.quota_limit)
        response.headers["RateLimit-Remaining"] = str(max(0, left))
        response.headers["RateLimit-Reset"] = str(reset)
        return response

    async def _answer(self, request: web.Request, count: int) -> web.Response:
        if self.down:
            self.api["outage"] += 1
            return _problem(503, "down for maintenance")
        if count % 10 == 0:
            self.api["error"] += 1
            return _problem(503, "temporarily unavailable")
        if count % 15 == 0:
            self.api["rate_limited"] += 1
            return _problem(429, "too many requests", retry_after=1)
        payment = self._payments.get(request.match_info["payment_id"])
        if payment is None:
            self.api["not_found"] += 1
            return _problem(404, "no such payment")
        if count % 23 == 0:
            self.api["slow"] += 1
            await asyncio.sleep(1.5)  # longer than the client's 1 s timeout: it gives up
        else:
            self.api["ok"] += 1
            await asyncio.sleep(self._random.uniform(0.005, 0.05))
        fee = 30 + payment["amount"] * 29 // 1000
        risk = ("low", "low", "low", "medium", "high")[count % 5]
        return web.json_response({"id": payment["id"], "fee": fee, "risk": risk})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/payments/{payment_id}", self._payment)

    async def start(self) -> str:
        """Start the API on 127.0.0.1 and a free port; return its URL."""
        url = await super().start()
        self._started_at = time.monotonic()
        return url

    # -- the webhooks ------------------------------------------------------------------------
    def _event(self, number: int) -> tuple[str, bytes, bool]:
        payment_id = f"pay_{number:06d}"
        unsupported = number % 12 == 5
        payment = {
            "id": payment_id,
            "amount": 500 + (number * 7919) % 20000,
            "currency": "xbt" if unsupported else _CURRENCIES[number % len(_CURRENCIES)],
            "customer": {
                "name": _NAMES[number % len(_NAMES)],
                "email": f" Customer{number}@Example.com ",
            },
            "created": int(time.time()),
        }
        self._payments[payment_id] = payment
        event = {
            "type": "payment.refunded" if number % 9 == 4 else "payment.succeeded",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": payment,
        }
        return f"msg_{number:06d}", json.dumps(event).encode(), unsupported

    def _headers(self, webhook_id: str, body: bytes, *, forged: bool) -> dict[str, str]:
        timestamp = str(int(time.time()))
        content = f"{webhook_id}.{timestamp}.".encode() + body
        key = self._wrong_key if forged else self._key
        signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
            "content-type": "application/json",
        }

    async def send_webhooks(self, url: str, stop: asyncio.Event) -> None:
        """Post webhooks to ``url`` at ``rate`` per second until ``stop`` is set.

        One in ten is signed with the wrong key; one in twelve is in a currency the
        service refuses; one in fifteen is a webhook sent before, sent again.
        """
        stats = self.sender
        self._started_at = time.monotonic()  # the outage plan counts from the first webhook
        timeout = aiohttp.ClientTimeout(total=5)
        sent: list[tuple[str, bytes]] = []
        number = 0
        next_at = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                number += 1
                forged = number % 10 == 7
                if number % 15 == 11 and sent:
                    webhook_id, body = sent[0]
                    forged = False
                    stats.resent += 1
                else:
                    webhook_id, body, unsupported = self._event(number)
                    if forged:
                        stats.bad_signatures += 1
                    else:
                        stats.unsupported += unsupported
                        sent = [*sent[-2:], (webhook_id, body)]
                headers = self._headers(webhook_id, body, forged=forged)
                stats.sent += 1
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        stats.answers[response.status] += 1
                        await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    stats.undelivered += 1
                next_at += 1.0 / self.rate
                wait = next_at - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                else:
                    next_at = time.monotonic()  # fell behind: do not burst to catch up


def _problem(status: int, detail: str, *, retry_after: int | None = None) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return web.json_response(
        {"title": detail, "status": status},
        status=status,
        headers=headers,
        content_type="application/problem+json",
    )
