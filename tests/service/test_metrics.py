"""/metrics: the service's live counters in the Prometheus text format, bounded labels."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.observability.metrics_support import samples
from tests.polling import eventually
from tests.webhooks.signing import SECRET, standard_headers

CONFIG = """
service: {{listen: "127.0.0.1:0"}}
broker: {{url: "sqlite:///{db}"}}
clients:
  internal:
    base_url: "{upstream}"
    retry: {{max_attempts: 1}}
    circuit_breaker: {{failure_rate: 50}}
webhooks:
  pay: {{path: /hooks/pay, scheme: standard, secrets: ["{secret}"], publish_to: pay}}
queues:
  pay:
    forward: {{client: internal, path: /payments}}
    transform: mapping.yaml
    max_attempts: 1
"""


async def test_metrics_count_webhooks_messages_transform_failures_and_client_calls(
    tmp_path: Path,
) -> None:
    (tmp_path / "mapping.yaml").write_text("name: pay\nfields:\n  amount: {convert: int}\n")
    async with FakeUpstream() as upstream:
        upstream.route("POST", "/payments").reply(201)
        path = tmp_path / "interlink.yaml"
        path.write_text(CONFIG.format(db=tmp_path / "i.db", upstream=upstream.url, secret=SECRET))
        async with Service(load_config(path)) as service, aiohttp.ClientSession() as session:
            for n, amount in enumerate([5, "x", 7]):
                body = json.dumps({"amount": amount}).encode()
                headers = standard_headers(f"m{n}", int(time.time()), body)
                async with session.post(f"{service.url}/hooks/pay", data=body, headers=headers):
                    pass
            bad = standard_headers("m9", int(time.time()), b"{}", key=b"wrong-key-wrong-key")
            async with session.post(f"{service.url}/hooks/pay", data=b"{}", headers=bad) as r:
                assert r.status == 401
            found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

            def messages(outcome: str) -> float | None:
                labels = (("handler", "pay:forward"), ("outcome", outcome), ("queue", "pay"))
                return found.get(("interlink_messages_total", labels))

            async def settled() -> bool:
                async with session.get(f"{service.url}/metrics") as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain")
                    found.clear()
                    found.update(samples(await r.text()))
                return messages("acked") == 2 and messages("dead_lettered") == 1

            await eventually(settled, lambda: f"every payment settled: {found}", 10, 0.05)
    webhooks = "interlink_webhooks_received_total"
    assert found[(webhooks, (("outcome", "accepted"), ("reason", ""), ("source", "pay")))] == 3
    assert (
        found[
            (
                webhooks,
                (("outcome", "rejected"), ("reason", "no_matching_signature"), ("source", "pay")),
            )
        ]
        == 1
    )
    dead = (
        "interlink_messages_total",
        (("handler", "pay:forward"), ("outcome", "dead_lettered"), ("queue", "pay")),
    )
    assert found[dead] == 1
    assert (
        found[("interlink_transform_failures_total", (("field", "amount"), ("transformer", "pay")))]
        == 1
    )
    assert found[("interlink_client_calls_total", (("client", "internal"),))] == 2
    assert (
        found[("interlink_client_breaker_state", (("client", "internal"), ("state", "closed")))]
        == 1
    )
