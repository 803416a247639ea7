"""Helpers for users' tests (and ours): time you control, upstreams you script.

``FakeClock`` implements ``interlink.core.Clock``: hand it to any policy as
``clock=`` and drive time with ``await clock.advance(seconds)`` or run a whole
scenario with ``await clock.run(coro)``. ``FakeUpstream`` is a real HTTP
server on 127.0.0.1 whose routes a test scripts with ``Reply`` values (faults
included) and which records every request it ``Received``.
"""

from interlink.testing._clock import FakeClock
from interlink.testing._reply import Received, Reply
from interlink.testing._upstream import FakeUpstream, Route

__all__ = ["FakeClock", "FakeUpstream", "Received", "Reply", "Route"]
