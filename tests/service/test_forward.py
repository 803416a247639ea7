"""A queue's ``forward:``: each message sent on through a client, JSON as JSON, other bodies as received."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream, Received
from tests.polling import eventually
from tests.webhooks.signing import SECRET, standard_headers

CONFIG = """
service: {{listen: "127.0.0.1:0"}}
broker: {{url: "sqlite:///{db}"}}
clients:
  internal: {{base_url: "{upstream}", retry: {{max_attempts: 1}}}}
webhooks:
  sms: {{path: /hooks/sms, scheme: standard, secrets: ["{secret}"], publish_to: sms{headers}}}
queues:
  sms:
    forward: {{client: internal, path: /messages}}
    max_attempts: 1
"""

FORM = b"From=%2B15551234567&Body=hello+there&NumMedia=0"


async def _forward(
    tmp_path: Path, sent: list[tuple[bytes, str]], headers: str = ""
) -> list[Received]:
    async with FakeUpstream() as upstream:
        route = upstream.route("POST", "/messages").reply(201)
        path = tmp_path / "interlink.yaml"
        path.write_text(
            CONFIG.format(
                db=tmp_path / "i.db", upstream=upstream.url, secret=SECRET, headers=headers
            )
        )
        async with Service(load_config(path)) as service, aiohttp.ClientSession() as session:
            for n, (body, content_type) in enumerate(sent):
                signed = standard_headers(f"m{n}", int(time.time()), body)
                signed["content-type"] = content_type
                async with session.post(f"{service.url}/hooks/sms", data=body, headers=signed) as r:
                    assert r.status == 200, await r.text()
            await eventually(
                lambda: route.calls == len(sent), lambda: f"{route.calls} forwarded", 10, 0.05
            )
            return sorted(route.requests, key=lambda r: r.headers["Idempotency-Key"])


async def test_a_form_encoded_webhook_is_forwarded_as_received_and_json_as_json(
    tmp_path: Path,
) -> None:
    payment = {"id": "p1", "amount": 5}
    received = await _forward(
        tmp_path,
        [
            (FORM, "application/x-www-form-urlencoded"),
            (json.dumps(payment).encode(), "application/json"),
        ],
    )
    form, as_json = received
    # Twilio and Slack commands post forms: the body goes on byte for byte, with its type.
    assert form.body == FORM
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.headers["Idempotency-Key"] == "sms:m0"
    assert json.loads(as_json.body) == payment
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.headers["Idempotency-Key"] == "sms:m1"


async def test_a_body_stored_without_its_content_type_is_forwarded_as_octet_stream(
    tmp_path: Path,
) -> None:
    (form,) = await _forward(
        tmp_path,
        [(FORM, "application/x-www-form-urlencoded")],
        headers=", forward_headers: [user-agent]",  # the content type is not kept
    )
    assert form.body == FORM
    assert form.headers["Content-Type"] == "application/octet-stream"


async def test_bytes_published_by_code_go_on_with_the_content_type_in_their_headers(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        route = upstream.route("POST", "/messages").reply(201)
        path = tmp_path / "interlink.yaml"
        path.write_text(
            CONFIG.format(db=tmp_path / "i.db", upstream=upstream.url, secret=SECRET, headers="")
        )
        async with Service(load_config(path)) as service:
            csv = b"id,amount\np1,5\n"
            # Header names as code writes them: the content type is found whatever their case.
            await service.broker.publish("sms", csv, headers={"Content-Type": "text/csv"})
            await eventually(lambda: route.calls == 1, lambda: f"{route.calls} forwarded", 10, 0.05)
    (sent,) = route.requests
    assert sent.body == csv
    assert sent.headers["Content-Type"] == "text/csv"
