"""Helpers for users' tests (and ours): time you control, upstreams you script.

``FakeClock`` implements ``interlink.core.Clock``: hand it to any policy as
``clock=`` and drive time with ``await clock.advance(seconds)`` or run a whole
scenario with ``await clock.run(coro)``.
"""

from interlink.testing._clock import FakeClock

__all__ = ["FakeClock"]
