"""A worker process's HTTP side: health and its own metrics on an address of its own, or none.

``interlink worker`` is ``Service(http=False)``: no webhooks and no admin,
but whoever runs it needs its probes and a scrape of what its handlers and
clients count. The address comes from ``listen`` (the ``--listen`` option),
else ``service.worker_listen``; with neither the process listens nowhere.
``interlink serve --listen`` overrides ``service.listen`` the same way.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from interlink.cli import app
from interlink.core.errors import ConfigError
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.observability.metrics_support import scrape, total
from tests.polling import eventually
from tests.service.ops_support import HANDLED, admin, write_config


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port something listens on, for as long as the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def with_worker_listen(path: Path, address: str) -> Path:
    text = path.read_text().replace("  listen: 127.0.0.1:0\n", f"  worker_listen: {address}\n")
    path.write_text(text)
    return path


async def test_a_worker_serves_its_probes_and_its_own_metrics_and_nothing_else(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    config = load_config(write_config(tmp_path, upstream.url))
    async with (
        Service(config, http=False, listen="127.0.0.1:0") as service,
        aiohttp.ClientSession() as session,
    ):
        assert service.url.startswith("http://127.0.0.1:")
        await service.broker.publish("orders", json.dumps({"id": "w1"}).encode(), message_id="w1")
        await eventually(lambda: "w1" in HANDLED, "the worker handled the order")

        async def counted() -> bool:
            found = await scrape(session, service)
            return total(found, "interlink_messages_total", queue="orders", outcome="acked") == 1

        await eventually(counted, "the worker's /metrics counts the order it acked")
        for probe in ("/livez", "/readyz", "/health"):
            async with session.get(f"{service.url}{probe}") as response:
                assert response.status == 200, probe
        # What only `interlink serve` answers: webhooks and the admin API.
        async with session.post(f"{service.url}/webhooks/shop", data=b"{}") as response:
            assert response.status == 404
        async with session.get(f"{service.url}/admin/queues", headers=admin()) as response:
            assert response.status == 404
        found = await scrape(session, service)
    names = [name for name, _ in found]
    assert "interlink_webhooks_received_total" not in names  # no receiver, nothing counted
    # What the dashboard's job variable lists, and the clients the handlers call.
    assert names.count("interlink_build_info") == 1
    called = {
        dict(labels)["client"]
        for name, labels in found
        if name.startswith("interlink_client_calls")
    }
    assert called == {"upstream", "plain"}


async def test_the_address_comes_from_service_worker_listen_when_not_given(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    path = with_worker_listen(write_config(tmp_path, upstream.url), "127.0.0.1:0")
    async with Service(load_config(path), http=False) as service:
        assert service.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(f"{service.url}/livez") as r:
            assert r.status == 200


async def test_a_worker_without_an_address_listens_nowhere(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with Service(load_config(write_config(tmp_path, upstream.url)), http=False) as service:
        assert service.worker is not None
        assert service.url == ""
        assert service.app is None
        # Nothing could scrape it, so nothing counts: no recorder on the clients or the worker.
        assert service.metrics is None


def test_a_listen_address_that_is_not_host_port_is_refused_before_anything_starts(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    config = load_config(write_config(tmp_path, upstream.url))
    with pytest.raises(ConfigError, match=r"listen: expected host:port .* found 'nowhere'"):
        Service(config, http=False, listen="nowhere")


async def test_a_taken_worker_address_names_the_setting_and_stops_the_start(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    with taken_port() as port:
        path = with_worker_listen(write_config(tmp_path, upstream.url), f"127.0.0.1:{port}")
        service = Service(load_config(path), http=False)
        with pytest.raises(
            ConfigError, match=rf"service.worker_listen: cannot listen on 127.0.0.1:{port}"
        ):
            await service.start()
        # Nothing is left running: the worker that had started was stopped again.
        assert service.worker is not None
        assert not service.worker.running


async def test_listen_overrides_service_listen_for_serve_too(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    path = write_config(tmp_path, upstream.url)
    with taken_port() as port:  # service.listen names a port already taken...
        path.write_text(
            path.read_text().replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}")
        )
        # ...and the override is used instead: the service starts, on another port.
        async with Service(load_config(path), listen="127.0.0.1:0") as service:
            assert service.url.startswith("http://127.0.0.1:")
            assert not service.url.endswith(f":{port}")
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{service.url}/webhooks/shop", data=b"{}") as r,
            ):
                assert r.status == 401  # the webhooks are there: unsigned, refused


@pytest.mark.parametrize(("command", "value"), [("worker", "8080"), ("serve", "localhost")])
def test_both_commands_refuse_a_bad_listen_option_with_exit_2(
    tmp_path: Path, upstream: FakeUpstream, command: str, value: str
) -> None:
    path = write_config(tmp_path, upstream.url)
    result = CliRunner().invoke(app, [command, "-c", str(path), "--listen", value])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: listen: expected host:port such as 127.0.0.1:8080, found {value!r}"
    )
