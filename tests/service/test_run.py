"""``Service.run``, the process owner's entry point: start, serve until SIGTERM, stop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path

from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.polling import eventually
from tests.service.ops_support import write_config


async def test_run_freezes_what_start_made_then_stops_on_sigterm(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """What start made is out of the collector's sight (gc.freeze) while the service serves."""
    service = Service(load_config(write_config(tmp_path, upstream.url)), workers=False)
    before = gc.get_freeze_count()
    running = asyncio.create_task(service.run())
    try:
        await eventually(
            lambda: service.started_at > 0 and gc.get_freeze_count() > before,
            "started with the start-up objects frozen",
        )
        app = service.app
        assert app is not None
        # Frozen objects belong to no generation the collector visits.
        assert not any(obj is app for obj in gc.get_objects())
        os.kill(os.getpid(), signal.SIGTERM)  # Service.run's own handler takes it
        await asyncio.wait_for(running, 30)
    finally:
        if not running.done():
            running.cancel()
        gc.unfreeze()  # the rest of the test session collects as usual
    assert service.receiver is not None
    assert not service.receiver.started  # run stopped it after SIGTERM
