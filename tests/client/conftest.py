"""Fixtures every client test module shares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from interlink.client import AiohttpTransport, HttpxTransport, Send
from interlink.testing import FakeUpstream
from tests.client.client_support import TRANSPORTS


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each test runs once per transport: the same behaviour on aiohttp and httpx."""
    return str(request.param)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """A started FakeUpstream with nothing scripted."""
    async with FakeUpstream() as up:
        yield up


@pytest.fixture(params=TRANSPORTS)
async def send(request: pytest.FixtureRequest) -> AsyncIterator[Send]:
    """The raw ``send`` the client hands to auth: a real transport, without the pipeline."""
    made = AiohttpTransport() if request.param == "aiohttp" else HttpxTransport()
    yield made.send
    await made.aclose()
