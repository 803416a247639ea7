"""schemathesis against /admin/openapi.json of a running Service: no 5xx, and the answers
conform to the document (status codes, content types, bodies, headers, the token).

The service runs in process on SQLite, with dead letters to find; schemathesis runs as a
real process (its CLI) against the service's port, with a fixed seed so a run is repeatable.
Every check runs (schemathesis's default), on valid and invalid requests, except that
``DELETE /dead-letters`` with no id, filter or ``all=true`` is refused on purpose (a purge
needs a target), which OpenAPI cannot say of query parameters.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.polling import eventually
from tests.service.ops_support import TOKEN, write_config

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = """
[[operations]]
include-name = "DELETE /dead-letters"
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async with (
        FakeUpstream() as upstream,
        Service(load_config(write_config(tmp_path, upstream.url))) as running,
    ):
        for n in range(5):
            await running.broker.publish("orders", {"id": n, "fail": True})

        async def dead_lettered() -> bool:
            return await running.broker.dead_letters.count() == 5

        await eventually(dead_lettered, "dead-lettered")
        yield running


async def test_schemathesis_finds_no_server_error_and_no_deviation_from_the_document(
    service: Service, tmp_path: Path
) -> None:
    if not SCHEMATHESIS.exists():  # pragma: no cover - it is a dev dependency
        pytest.skip("schemathesis is not installed")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        f"{service.url}/admin/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        "25",
        "--seed",
        "20261126",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--warnings",
        "off",
        "--output-truncate",
        "true",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"NO_COLOR": "1", "PATH": str(SCHEMATHESIS.parent), "HOME": str(tmp_path)},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "13 passed" in text or "Tested: 13" in text, text[-3000:]
