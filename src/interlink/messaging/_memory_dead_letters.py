"""Dead letters of ``MemoryBroker``: records kept in its store, oldest first.

The records live in the store (``_Store.dead_letters``), so every broker on
one named store sees the same ones. Queries scan them, which suits
inspection, not hot paths. A replay looks every record up and checks that
every source queue accepts writes before it moves any: it moves them all or
none.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from interlink.core.errors import DeadLetterNotFoundError
from interlink.messaging._dead_letters import (
    DeadLetter,
    DeadLetters,
    check_id_list,
    check_limit,
    matches,
)
from interlink.messaging._memory_store import _Entry
from interlink.messaging._message import HEADER_REPLAYED_FROM

if TYPE_CHECKING:
    from interlink.messaging._memory import MemoryBroker

# Everything here is private to the memory broker's modules.
__all__: list[str] = []

_List = list  # ``DeadLetters.list`` shadows the builtin inside the class


class _MemoryDeadLetters(DeadLetters):
    """Dead letters kept in the store, oldest first."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    def _matching(
        self, queue: str | None, dead_letter_queue: str | None, error_type: str | None = None
    ) -> Iterator[DeadLetter]:
        self._broker._require_open()
        for record in self._broker._store.dead_letters.values():
            if matches(record, queue, dead_letter_queue, error_type):
                yield record

    async def list(
        self,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> _List[DeadLetter]:
        check_limit(limit)
        return list(itertools.islice(self._matching(queue, dead_letter_queue, error_type), limit))

    async def get(self, dead_letter_id: str) -> DeadLetter:
        self._broker._require_open()
        record = self._broker._store.dead_letters.get(dead_letter_id)
        if record is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        return record

    async def count(self, *, queue: str | None = None, dead_letter_queue: str | None = None) -> int:
        return sum(1 for _ in self._matching(queue, dead_letter_queue))

    async def replay(self, dead_letter_ids: Sequence[str]) -> _List[str]:
        check_id_list(dead_letter_ids, "replay")
        self._broker._require_open()
        store = self._broker._store
        records = [await self.get(dl_id) for dl_id in dict.fromkeys(dead_letter_ids)]
        for record in records:
            store.refuse(record.source_queue, record.message.id)
        sent: _List[str] = []
        now = self._broker.clock.wall()
        for record in records:
            original = record.message
            entry = _Entry(
                queue=record.source_queue,
                message_id=original.id,
                body=original.body,
                headers={**original.headers, HEADER_REPLAYED_FROM: record.id},
                content_type=original.content_type,
                published_at=now,
                available_at=now,
            )
            store.queue(record.source_queue).push(entry)
            del store.dead_letters[record.id]
            sent.append(original.id)
        return sent

    async def purge(
        self,
        dead_letter_ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> int:
        check_id_list(dead_letter_ids, "purge")
        wanted = None if dead_letter_ids is None else set(dead_letter_ids)
        doomed = [
            record.id
            for record in self._matching(queue, dead_letter_queue)
            if wanted is None or record.id in wanted
        ]
        for dl_id in doomed:
            del self._broker._store.dead_letters[dl_id]
        return len(doomed)
