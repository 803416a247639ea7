"""Per-key order while a message waits for its retry (``ordering="block"``): a small resequencer.

When message A1 of key A fails and is retried in 10 s, A2 and A3 must not
run before it. Holding them in this process until then would put the delay
back in RAM, unacknowledged (Celery's ETA trap, RabbitMQ's consumer timeout),
so they are *released* to the broker instead, to come back just after A1 is
due. Brokers are not exact about delays (the RabbitMQ backend rounds a delay
up by up to 4.7 % to a level of its delay-queue grid), so timing alone cannot
keep A2 before A3 or both after A1. This keeps the order itself, per key,
the way Camel's Resequencer does:

- while A1 is in retry, any other message of A is released until A1 is due
  plus ``slack`` times its place in line (slack: 5 % of A1's delay, at least
  10 ms), and remembered in line;
- once A1 is settled, only the head of the line may run; a message that comes
  back out of turn is released again for ``slack`` times its place;
- if the line makes no progress for ``grace`` seconds past the due time (A1
  or the head went to another worker process), the key is let go.

The order holds within one worker process (see ``Worker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KeyHolds"]

_MIN_SLACK = 0.01
_SLACK_SHARE = 0.05
_DEFAULT_GRACE = 60.0
_SWEEP_ABOVE = 1000


@dataclass(slots=True)
class _Hold:
    retrying: str | None  # the message in retry; None once it was settled
    due: float
    slack: float
    progress: float  # wall time of the last step forward
    waiting: list[str] = field(default_factory=list)  # later messages, in order


class KeyHolds:
    """The keys that have a message in retry, and the messages lined up behind it."""

    def __init__(self, grace: float = _DEFAULT_GRACE) -> None:
        self.grace = grace
        self._holds: dict[str, _Hold] = {}

    def __len__(self) -> int:
        return len(self._holds)

    def check(self, key: str, message_id: str, now: float) -> float | None:
        """``None``: handle the message now; else release it for that many seconds."""
        hold = self._holds.get(key)
        if hold is None:
            return None
        if now >= max(hold.due, hold.progress) + self.grace:
            del self._holds[key]  # the line is stuck on a message another process took
            return None
        if message_id == hold.retrying:
            return None
        if hold.retrying is None and hold.waiting and hold.waiting[0] == message_id:
            hold.waiting.pop(0)
            hold.progress = now
            if not hold.waiting:
                del self._holds[key]
            return None
        if message_id not in hold.waiting:
            hold.waiting.append(message_id)
        place = hold.waiting.index(message_id) + 1
        return max(hold.due - now, 0.0) + hold.slack * place

    def retrying(self, key: str, message_id: str, now: float, delay: float) -> None:
        """``message_id`` of ``key`` goes to retry for ``delay`` seconds: hold the key."""
        if len(self._holds) > _SWEEP_ABOVE:
            self._sweep(now)
        slack = max(_MIN_SLACK, _SLACK_SHARE * delay)
        hold = self._holds.get(key)
        if hold is None:
            self._holds[key] = _Hold(message_id, now + delay, slack, now)
            return
        hold.retrying, hold.due, hold.slack, hold.progress = message_id, now + delay, slack, now
        if message_id in hold.waiting:
            hold.waiting.remove(message_id)

    def settled(self, key: str, message_id: str, now: float) -> None:
        """``message_id`` was acked or dead-lettered: its line may move on."""
        hold = self._holds.get(key)
        if hold is None or hold.retrying != message_id:
            return
        hold.retrying = None
        hold.progress = now
        if not hold.waiting:
            del self._holds[key]

    def _sweep(self, now: float) -> None:
        stale = [k for k, h in self._holds.items() if now >= max(h.due, h.progress) + self.grace]
        for key in stale:
            del self._holds[key]
