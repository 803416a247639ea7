"""What the metrics tests share: a config exercising every metric, a scripted run, parsing.

The service runs in process (``Service``) on a SQLite broker in ``tmp_path``
with clients pointing at a ``FakeUpstream`` (and one at a closed port). The
script (``scripted_run``) does, once each, what every metric counts; the
``EXPECTED`` values below follow from it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from interlink.core.errors import CircuitOpenError, ClientError, HttpStatusError, RejectedError
from interlink.observability import MetricsRecorder
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream, Reply
from tests.client.client_support import closed_port
from tests.polling import eventually
from tests.service.ops_support import post_webhook
from tests.webhooks.signing import SECRET

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def write_config(tmp_path: Path, upstream_url: str, *, metrics: bool = True) -> Path:
    (tmp_path / "mapping.yaml").write_text("name: pay\nfields:\n  amount: {convert: int}\n")
    path = tmp_path / "interlink.yaml"
    path.write_text(
        f"""
service:
  name: metrics-test
  listen: 127.0.0.1:0
  readiness_timeout: 5s
  shutdown_timeout: 5s
broker:
  url: sqlite:///{tmp_path / "broker.db"}
clients:
  api:
    base_url: {upstream_url}
    retry: {{max_attempts: 2, initial_delay: 1ms, max_delay: 1ms}}
  guarded:
    base_url: {upstream_url}
    retry: {{max_attempts: 1}}
    circuit_breaker: {{failure_rate: 50}}
  limited:
    base_url: {upstream_url}
    retry: {{max_attempts: 1}}
    rate_limit: {{rate: 0.001, burst: 1}}
  narrow:
    base_url: {upstream_url}
    retry: {{max_attempts: 1}}
    bulkhead: {{max_concurrent: 1}}
  stingy:
    base_url: {upstream_url}
    retry: {{max_attempts: 3, initial_delay: 1ms}}
    retry_budget: {{ratio: 0.0, min_per_second: 0.0}}
  dead:
    base_url: http://127.0.0.1:{closed_port()}
    timeout: 2s
    retry: {{max_attempts: 1}}
webhooks:
  shop:
    path: /webhooks/shop
    scheme: standard
    secrets: ["{SECRET}"]
    publish_to: inbound
queues:
  orders:
    handler: tests.service.ops_support:handle
    max_attempts: 1
    permanent: [tests.service.ops_support.Refused]
  pay:
    forward: {{client: api, path: /payments}}
    transform: mapping.yaml
    max_attempts: 1
observability:
  metrics: {{enabled: {"true" if metrics else "false"}}}
"""
    )
    return path


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by (name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def exposition_text(recorder: MetricsRecorder) -> str:
    """What ``recorder`` alone serves (its own registry, as ``/metrics`` has)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(recorder)
    return generate_latest(registry).decode()


def exposition(recorder: MetricsRecorder) -> Samples:
    """``exposition_text``, parsed."""
    return samples(exposition_text(recorder))


def key(name: str, **labels: str) -> tuple[str, Labels]:
    return (name, tuple(sorted(labels.items())))


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, got), value in found.items()
        if sample == name and set(labels.items()) <= set(got)
    )


async def scrape(session: aiohttp.ClientSession, service: Service) -> Samples:
    async with session.get(f"{service.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(await response.text())


async def scripted_run(
    service: Service, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> Samples:
    """Do what every metric counts, once; return the scrape once the workers are done."""
    quota = {"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"}
    upstream.route("POST", "/payments").reply(Reply(201, headers=quota))
    upstream.route("GET", "/flaky").reply(503, 200)
    upstream.route("GET", "/missing").reply(404)
    upstream.route("GET", "/ok").reply(200)
    upstream.route("GET", "/down").reply(503)
    upstream.route("GET", "/slow").reply(Reply(200, delay=0.3))

    # Webhooks: two accepted (stored in "inbound", which no handler reads), one forged.
    for n in range(2):
        body = json.dumps({"n": n}).encode()
        assert await post_webhook(session, service.url, f"wh{n}", body) == 200
    assert await post_webhook(session, service.url, "wh9", b"{}", good=False) == 401

    # Messages: two handled, one refused (dead-lettered); one forwarded, one untransformable.
    broker = service.broker
    for order in ({"id": "a"}, {"id": "b"}, {"id": "c", "fail": True}):
        await broker.publish("orders", json.dumps(order).encode())
    for amount in (5, "x"):
        await broker.publish("pay", json.dumps({"amount": amount}).encode())

    clients = service.clients
    assert await clients["api"].get("/flaky") is None  # 503, one retry, 200
    with pytest.raises(HttpStatusError):
        await clients["api"].get("/missing")  # 404: an answer, not retried
    breaker = clients["guarded"].pipeline.breaker
    assert breaker is not None
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        await clients["guarded"].get("/ok")  # refused by the breaker
    await clients["limited"].get("/ok")
    with pytest.raises(RejectedError):
        await clients["limited"].get("/ok")  # no token left
    results = await asyncio.gather(
        clients["narrow"].get("/slow"), clients["narrow"].get("/slow"), return_exceptions=True
    )
    assert sum(isinstance(r, RejectedError) for r in results) == 1, results
    with pytest.raises(HttpStatusError):
        await clients["stingy"].get("/down")  # 503; its retry is refused by the budget
    with pytest.raises(ClientError):
        await clients["dead"].get("/ok")  # connection refused: no status

    found: Samples = {}
    done: dict[tuple[str, str], float] = {}

    async def settled() -> bool:
        found.clear()
        found.update(await scrape(session, service))
        done.clear()
        done.update(
            {
                (queue, outcome): total(
                    found, "interlink_messages_total", queue=queue, outcome=outcome
                )
                for queue in ("orders", "pay")
                for outcome in ("acked", "dead_lettered")
            }
        )
        return done == {
            ("orders", "acked"): 2,
            ("orders", "dead_lettered"): 1,
            ("pay", "acked"): 1,
            ("pay", "dead_lettered"): 1,
        }

    await eventually(settled, lambda: f"every message settled: {done}", 15, step=0.05)
    return found
