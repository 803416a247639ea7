"""What the health and admin tests share: a config file, its queue handler, polling, webhooks.

The service runs in process (``Service``) on a SQLite broker and inbox in
``tmp_path``, with two clients pointing at a ``FakeUpstream``: ``upstream``
with a circuit breaker, ``plain`` without one. The queue ``orders`` is
handled by ``handle`` below: a body with ``"fail": true`` raises ``Refused``
(a permanent error: dead-lettered at once) unless its ``id`` was ``HEALED``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from interlink.messaging import MessageContext
from tests.webhooks.signing import SECRET, standard_headers

TOKEN = "s3cret-admin-token"
HANDLED: list[str] = []
"""The ids ``handle`` completed, in order."""
HEALED: set[str] = set()
"""Ids that ``handle`` completes even with ``"fail": true``."""


class Refused(Exception):
    """The handler refused the order."""


async def handle(body: dict[str, Any], ctx: MessageContext) -> None:
    if body.get("fail") and body.get("id") not in HEALED:
        raise Refused(f"order {body.get('id')} refused")
    HANDLED.append(str(body.get("id")))


def write_config(
    tmp_path: Path,
    upstream_url: str,
    *,
    admin_token: str | None = TOKEN,
    storage: bool = True,
    readiness_timeout: str = "500ms",
) -> Path:
    token = "" if admin_token is None else f"  admin_token: {admin_token!r}\n"
    inbox = f"storage:\n  url: sqlite:///{tmp_path / 'inbox.db'}\n" if storage else ""
    path = tmp_path / "interlink.yaml"
    path.write_text(
        f"""
service:
  name: ops-test
  listen: 127.0.0.1:0
{token}  readiness_timeout: {readiness_timeout}
  shutdown_timeout: 5s
broker:
  url: sqlite:///{tmp_path / "broker.db"}
{inbox}clients:
  upstream:
    base_url: {upstream_url}
    timeout: 2s
    circuit_breaker: {{failure_rate: 50, window: 10, min_calls: 5, open_for: 30s}}
  plain:
    base_url: {upstream_url}
    retry: {{max_attempts: 2, initial_delay: 10ms}}
webhooks:
  shop:
    path: /webhooks/shop
    scheme: standard
    secrets: ["{SECRET}"]
    publish_to: shop.events
queues:
  orders:
    handler: tests.service.ops_support:handle
    max_attempts: 1
    permanent: [tests.service.ops_support.Refused]
"""
    )
    return path


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post_webhook(
    session: aiohttp.ClientSession, url: str, webhook_id: str, body: bytes, *, good: bool = True
) -> int:
    headers = standard_headers(webhook_id, int(time.time()), body)
    if not good:
        headers["webhook-signature"] = "v1,AAAA"
    async with session.post(f"{url}/webhooks/shop", data=body, headers=headers) as response:
        return response.status
