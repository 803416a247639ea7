"""Checkpoints off the commit path: a thread of its own copies the WAL into the database file.

In WAL mode every commit appends its pages to the ``-wal`` file, and a
*checkpoint* copies them back into the database file and syncs it. SQLite's
default (``wal_autocheckpoint=1000``) runs the checkpoint inside the commit
that takes the WAL past 1000 pages: on the broker's writer that was every
~28th batch of 100 publishes copying ~4 MB and syncing the database file
before its callers were answered, with the next batch waiting behind it.

So the writer turns that off and this thread runs ``PRAGMA
wal_checkpoint(PASSIVE)`` on a connection of its own, once commits pause
(none for ``IDLE``) and at the latest every ``MAX_DELAY`` while they keep
coming. A PASSIVE checkpoint takes no lock a writer needs, so it can run
beside the writer's transactions, but its writes and fsync share the disk
with theirs: checkpointing every 50 ms instead of waiting for a pause
measured ~9% slower publishing, ~14% slower consuming. Once a checkpoint has
copied every frame, the writer's next transaction starts the WAL over from
its beginning (SQLite does that by itself) and writes over blocks the file
already has, whose fsync is cheaper than one that grows the file.

Under load with no pause the thread still copies every ``MAX_DELAY``, but
never quite catches up (commits land while it copies), so the WAL would grow
without end. So ``Store`` watches the WAL file: once it passes
``WAL_LIMIT`` bytes, the writer asks for a checkpoint at once (``hurry``)
and, when one that started after that has finished, checkpoints inline,
between two batches, copying only what came since: its next transaction
starts the WAL over. ``journal_size_limit`` (the same limit) trims the file
back when it does, so the WAL stays near ``WAL_LIMIT`` whatever the load or
the size of one transaction. (A TRUNCATE or RESTART checkpoint would do the
same but waits for every reader and writer, other processes' included.)
Only a reader that keeps an old snapshot open in another process can hold
the WAL longer, as it would against SQLite's own checkpoints.

Durability is unchanged. The checkpoint connection uses the broker's
``synchronous`` level, so SQLite syncs the WAL before copying from it and
the database file before any writer may start over the copied frames; a
crash mid-checkpoint leaves the frames in the WAL, where the next open finds
them. On close the thread stops first and the writer checkpoints one last
time, so the database file holds everything and SQLite removes the WAL (when
no other process has the file open).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Final

__all__ = ["IDLE", "MAX_DELAY", "WAL_LIMIT", "Checkpointer", "checkpoint", "connect", "wal_size"]

_log = logging.getLogger("interlink.messaging.sqlite")

IDLE: Final = 0.01
"""Seconds without a commit after which the thread checkpoints: the writer paused."""

MAX_DELAY: Final = 0.5
"""Seconds of commits without such a pause after which it checkpoints anyway."""

WAL_LIMIT: Final = 64 * 1024 * 1024
"""Bytes of WAL past which the writer makes sure the WAL starts over (~16,000 4 KB pages).

Big enough that a burst of ~40,000 1 KB messages (publishes, leases and acks
alike write ~1.7 KB of WAL per message) never meets the inline checkpoint,
so the WAL starts over once the burst pauses; small enough to keep the file
and the recovery after a crash modest."""


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """``PRAGMA wal_checkpoint(PASSIVE)``: (busy, frames in the WAL, frames copied)."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(frames), int(copied)


def wal_size(path: str) -> int:
    """Bytes of ``path``'s WAL file (0 when there is none)."""
    try:
        return os.stat(path + "-wal").st_size
    except OSError:
        return 0


def connect(path: str, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """The checkpointer's connection: the writer's ``synchronous`` level, so it syncs alike."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except sqlite3.Error:  # pragma: no cover - the writer opened the same file just before
        conn.close()
        raise
    return conn


class Checkpointer:
    """The thread that checkpoints the file behind ``conn``; the writer ``nudge``s it.

    ``seen`` is the writer's commit count when the last checkpoint that
    finished had started, ``frames`` the WAL's length then, ``copied`` how
    many of those frames are in the database file, and ``checkpoints`` how
    many ran. Every commit up to ``seen`` is in the database file when
    ``copied == frames``. A reader's snapshot can hold a checkpoint back part
    way (the writer's own, taken in the instant a checkpoint resets a reader
    slot, or a reader in another process); until the next one copies the
    rest, the database file is meaningful only beside its WAL, as SQLite
    reads it. The writer's catch-up needs no more than a checkpoint that
    finished: its own copies the rest.
    """

    def __init__(
        self, conn: sqlite3.Connection, path: str, *, idle: float, max_delay: float
    ) -> None:
        self.seen = 0
        self.frames = 0
        self.copied = 0
        self.checkpoints = 0
        self._conn = conn
        self._idle = idle
        self._max_delay = max_delay
        self._commits = 0
        self._hurry = False
        self._stopping = False
        self._failing = False
        self._wake = threading.Event()  # a commit since the last checkpoint started
        self._kick = threading.Event()  # hurry or stop: cuts the waiting short
        self._thread = threading.Thread(
            target=self._main,
            name=f"interlink-sqlite-checkpoint:{os.path.basename(path)}",
            daemon=True,
        )

    @property
    def alive(self) -> bool:
        """Whether the thread runs (from ``start`` to ``stop``)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def nudge(self, commits: int) -> None:
        """The writer committed (``commits`` so far): checkpoint once commits pause.

        Cheap enough for every commit: the thread looks at ``commits`` every
        ``IDLE`` seconds rather than being woken by each of them.
        """
        self._commits = commits
        if not self._wake.is_set():
            self._wake.set()

    def hurry(self) -> None:
        """Checkpoint now, without waiting for a pause (the WAL passed its limit)."""
        self._hurry = True
        self._kick.set()
        self._wake.set()

    def stop(self) -> None:
        """End the thread (a checkpoint under way finishes first) and close its connection."""
        self._stopping = True
        self._kick.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._conn.close()

    def _main(self) -> None:
        wake, kick = self._wake, self._kick
        while True:
            wake.wait()  # a commit came since the last checkpoint started
            wake.clear()
            started = time.monotonic()
            seen = self._commits
            # Wait for a pause: a checkpoint's I/O slows the commits it runs beside.
            while not (self._hurry or self._stopping):
                waited = time.monotonic() - started
                kick.wait(max(0.0, min(self._idle, self._max_delay - waited)))
                if self._commits == seen or time.monotonic() - started >= self._max_delay:
                    break
                seen = self._commits
            kick.clear()
            if self._stopping:
                return
            self._hurry = False
            self._run()

    def _run(self) -> None:
        seen = self._commits
        try:
            busy, frames, copied = checkpoint(self._conn)
        except sqlite3.Error as exc:
            if not self._failing:  # once per streak of failures, not every time
                _log.warning("checkpoint of the SQLite broker's WAL failed: %s", exc)
            self._failing = True
        else:
            self._failing = False
            self.checkpoints += 1
            if not busy:  # another connection's checkpoint was under way: not ours to count
                self.seen, self.frames, self.copied = seen, frames, copied
