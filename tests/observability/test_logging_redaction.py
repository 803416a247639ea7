"""Redaction: a service whose config is full of secrets never shows one in a log line or an error.

The service runs accepted, rejected and failing webhooks (the upstream
answers 500 and echoes every request header, and the raw token, in its
body), failing client calls (401 echoing the decoded Basic credentials; a
refused connection with the api key in the query), admin calls with good
and bad tokens; every line logged at debug level is captured, with every
error raised, the dead letters the admin API lists and ``/metrics``. None
contains any secret string of the config, and neither does any span (run
with the SDK's tracer provider and interlink's lean one, exporting into
memory).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlink.core.errors import ClientError
from interlink.observability import REDACTED, REDACTOR, Redactor, bound
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream, Received, Reply
from tests.client.client_support import closed_port
from tests.observability.logging_support import Captured, capture_json_logs, write
from tests.polling import eventually
from tests.webhooks.signing import KEY, SECRET, standard_headers

BEARER = "bearer-TOKEN-7d3e21ab90"
PASSWORD = "basic-PASSWORD-5c6b11"
API_KEY = "apikey-KEY-91ac0f"
ADMIN = "admin-TOKEN-4f8a9c1e22"
SESSION = "session-VALUE-3391aa"  # in a header named only by observability.logging.redact
SECRETS = [BEARER, PASSWORD, API_KEY, ADMIN, SESSION, SECRET, SECRET.removeprefix("whsec_")]

_log = logging.getLogger("interlink.tests.redaction")


@pytest.fixture
def logs() -> Iterator[Captured]:
    yield from capture_json_logs(level="debug")


def _config(tmp_path: Path, upstream: str) -> Path:
    return write(
        tmp_path,
        f"""
service:
  name: redaction-test
  listen: 127.0.0.1:0
  admin_token: {ADMIN}
broker:
  url: sqlite:///{tmp_path / "broker.db"}
clients:
  bearer:
    base_url: {upstream}
    auth: {{type: bearer, token: {BEARER}}}
    headers: {{X-Shop-Session: {SESSION}}}
    retry: {{max_attempts: 2, initial_delay: 10ms}}
  basic:
    base_url: {upstream}
    auth: {{type: basic, username: bob, password: {PASSWORD}}}
  keyed:
    base_url: http://127.0.0.1:{closed_port()}
    auth: {{type: api_key, key: {API_KEY}, query: api_key}}
    retry: {{max_attempts: 1}}
webhooks:
  shop:
    path: /webhooks/shop
    scheme: standard
    secrets: ["{SECRET}"]
    publish_to: orders
queues:
  orders:
    forward: {{client: bearer, method: POST, path: /events}}
    max_attempts: 2
    retry_delays: [10ms]
observability:
  logging:
    redact: [X-Shop-Session]
""",
    )


def _echo(status: int) -> Any:
    """A reply that puts every request header, the decoded Basic pair and the token in its body."""

    def reply(received: Received) -> Reply:
        auth = received.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        decoded = base64.b64decode(credentials).decode() if scheme == "Basic" else credentials
        return Reply(
            status,
            json={"headers": dict(received.headers), "seen": decoded, "query": str(received.query)},
        )

    return reply


async def _post(http: aiohttp.ClientSession, webhook_id: str, body: bytes, **extra: str) -> int:
    headers = {**standard_headers(webhook_id, int(time.time()), body, key=KEY), **extra}
    async with http.post("/webhooks/shop", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_no_secret_of_the_config_reaches_a_log_line_or_an_error(
    tmp_path: Path, logs: Captured, spans: InMemorySpanExporter
) -> None:
    shown: list[str] = []  # everything a person could read: errors, API answers

    def keep(error: BaseException) -> None:
        shown.extend([str(error), repr(error), *map(str, error.args)])
        shown.append(str(getattr(error, "body_excerpt", "")))
        shown.append(str(getattr(error, "url", "")))
        _log.warning("call failed: %s", error, exc_info=error)
        structlog.get_logger("interlink.tests").error(
            "call failed", error=error, headers=getattr(error, "headers", None)
        )

    async with FakeUpstream() as upstream:
        events = upstream.route("POST", "/events")
        events.reply(200, _echo(500))  # o-1 accepted; o-2 always fails: dead letter
        upstream.route("GET", "/private").reply(_echo(401))
        async with (
            Service(load_config(_config(tmp_path, upstream.url))) as service,
            aiohttp.ClientSession(base_url=service.url) as http,
        ):
            # accepted, rejected (bad signature; a secret in a header), failing webhooks
            assert await _post(http, "evt_1", b'{"id": "o-1"}') == 200
            bad = {"webhook-signature": "v1,AAAA", "Authorization": f"Bearer {BEARER}"}
            assert await _post(http, "evt_x", b'{"id": "o-x"}', **bad) == 401
            assert await _post(http, "evt_2", b'{"id": "o-2"}', **{"X-Request-ID": "r-2"}) == 200
            dead = "dead-lettered shop:evt_2"
            await eventually(lambda: bool(logs.matching(dead)), "dead-lettered")
            assert events.calls == 5  # 2 message attempts of 2 client attempts each, after o-1

            # failing client calls, inside a request id
            with bound(correlation_id="calls"):
                for client, path in (("basic", "/private"), ("keyed", "/anything")):
                    with pytest.raises(ClientError) as caught:
                        await service.clients[client].get(path)
                    keep(caught.value)
            # free text with the raw values: only the registered secrets give them away
            _log.error("an upstream said %s", {"seen": PASSWORD, "note": f"uses {BEARER}"})
            structlog.get_logger("interlink.tests").info(
                "what was sent",
                request_headers={"Authorization": f"Bearer {BEARER}", "X-Shop-Session": SESSION},
                asgi_headers=[(b"authorization", f"Basic {PASSWORD}".encode())],
            )

            # the admin API, with a bad then a good token
            async with http.get(
                "/admin/queues", headers={"Authorization": "Bearer wrong-token"}
            ) as response:
                assert response.status == 401
                shown.append(await response.text())
            admin = {"Authorization": f"Bearer {ADMIN}"}
            async with http.get("/admin/dead-letters", headers=admin) as response:
                assert response.status == 200
                listing = await response.text()
                assert "evt_2" in listing
                shown.append(listing)
            async with http.get("/metrics") as response:
                shown.append(await response.text())

    text = logs.text
    lines = logs.lines()  # every line is JSON
    assert len(lines) >= 8
    (line,) = logs.matching(dead)
    assert line["correlation_id"] == "r-2"
    assert line["message_id"] == "shop:evt_2"
    assert REDACTED in line["event"]  # the echoed headers were there, and were redacted
    assert logs.matching("webhook rejected")
    assert len(logs.matching("call failed")) == 4
    (said,) = logs.matching("an upstream said")
    assert said["event"] == f"an upstream said {{'seen': '{REDACTED}', 'note': 'uses {REDACTED}'}}"
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in the logs"
        for item in shown:
            assert secret not in item, f"{secret!r} in {item[:300]!r}"
    # the decoded Basic credentials and the upstream's echo were still worth reading
    assert "answered 401 Unauthorized" in text
    assert "answered 500" in text
    # every span: its name, status, attributes, and its events' (the retries', exceptions')
    recorded = spans.get_finished_spans()
    names = {span.name for span in recorded}
    assert {"POST /webhooks/shop", "process orders", "send orders.dlq", "GET"} <= names, names
    assert {"keyed GET", "basic GET", "bearer POST"} <= names, names  # the failing calls
    for span in recorded:
        parts = [span.name, str(span.status.description), *map(str, span.attributes.values())]
        for event in span.events:
            parts += [event.name, *map(str, (event.attributes or {}).values())]
        for secret in SECRETS:
            for part in parts:
                assert secret not in part, f"{secret!r} in span {span.name!r}: {part[:300]!r}"


# -- the processor itself -------------------------------------------------------------------
def test_keys_at_any_depth_and_header_lists_are_redacted() -> None:
    redactor = Redactor(names=["X-Shop-Session"])
    data = {
        "Authorization": "Bearer a",
        "nested": {"deeper": [{"client_secret": "s", "ok": 1}], "Set-Cookie": "sid=1"},
        "headers": [("Cookie", "a=b"), ("Accept", "*/*"), ("X-Api-Key", "k")],
        "asgi": [(b"proxy-authorization", b"Basic x"), (b"host", b"h")],
        "refresh_token": "r",
        "webhookSignature": "v1,x",
        "x-shop-session": "s",
        "API-KEY": "k",
        "count": 3,
        "none": None,
    }
    assert redactor.redact(data) == {
        "Authorization": REDACTED,
        "nested": {"deeper": [{"client_secret": REDACTED, "ok": 1}], "Set-Cookie": REDACTED},
        "headers": [("Cookie", REDACTED), ("Accept", "*/*"), ("X-Api-Key", REDACTED)],
        "asgi": [("proxy-authorization", REDACTED), ("host", "h")],
        "refresh_token": REDACTED,
        "webhookSignature": REDACTED,
        "x-shop-session": REDACTED,
        "API-KEY": REDACTED,
        "count": 3,
        "none": None,
    }


def test_free_text_loses_secrets_credentials_and_secret_pairs() -> None:
    redactor = Redactor(secrets=["hunter2-long", "abc"])  # too short to be registered: "abc"
    assert redactor.scrub("password is hunter2-long") == f"password is {REDACTED}"
    assert redactor.scrub("Authorization: Bearer xyz") == f"Authorization: {REDACTED} {REDACTED}"
    assert redactor.scrub('{"token": "t1", "id": 7}') == f'{{"token": "{REDACTED}", "id": 7}}'
    assert redactor.scrub("GET /x?api_key=k1&page=2") == f"GET /x?api_key={REDACTED}&page=2"
    assert redactor.scrub("abc and reason=signature") == "abc and reason=signature"
    assert redactor.scrub(redactor.scrub("token=t")) == f"token={REDACTED}"
    assert redactor.redact(ValueError("secret=s1")) == f"secret={REDACTED}"
    assert redactor.redact(b"Bearer abcd") == f"Bearer {REDACTED}"


def test_the_service_registers_its_configs_secrets(tmp_path: Path) -> None:
    from interlink.observability import config_secrets

    found = config_secrets(load_config(_config(tmp_path, "http://127.0.0.1:1")).config)
    assert {BEARER, PASSWORD, API_KEY, ADMIN, SECRET}.issubset(found)
    assert not any(value.startswith("http") for value in found)
    assert REDACTOR.scrub("nothing here") == "nothing here"
