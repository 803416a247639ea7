"""Real services on loopback: skip a test when one is absent, fail instead under CI.

``INTERLINK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns "RabbitMQ is not
running" from a skip into a failure, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest

RABBITMQ_URL = os.environ.get("INTERLINK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

_PORTS = {
    "rabbitmq": ("127.0.0.1", 5672),
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
}


def service_up(name: str) -> bool:
    """Whether the service's port accepts a TCP connection on loopback."""
    host, port = _PORTS[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip the calling test when ``name`` is down, or fail when services are required."""
    if service_up(name):
        return
    host, port = _PORTS[name]
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("INTERLINK_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and INTERLINK_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)
