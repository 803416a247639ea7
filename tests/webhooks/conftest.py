"""The messaging ``harness`` fixture, so that the receiver runs on every broker backend too."""

from tests.messaging.conftest import harness

__all__ = ["harness"]
