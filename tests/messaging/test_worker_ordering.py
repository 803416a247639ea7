"""The per-key resequencer behind ``ordering="block"``, step by step (no broker needed).

The behaviour on real backends is in ``test_worker_flow.py``; this pins down
the cases a broker makes hard to reproduce: messages coming back out of turn
or before the retry they wait for, a retry failing again, and a line whose
head went to another process.
"""

from __future__ import annotations

import pytest

from interlink.messaging._ordering import KeyHolds


def test_a_key_without_a_retry_is_never_held() -> None:
    holds = KeyHolds()
    assert holds.check("A", "a2", now=0.0) is None
    holds.settled("A", "a1", now=0.0)  # nothing to settle
    assert len(holds) == 0


def test_later_messages_wait_for_the_retry_then_run_in_their_order() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=100.0, delay=10.0)
    # a2 and a3 come along while a1 waits: each released until after a1 is due,
    # a3 one slack (5 % of 10 s) further back than a2.
    assert holds.check("A", "a2", now=101.0) == pytest.approx(9.5)
    assert holds.check("A", "a3", now=101.0) == pytest.approx(10.0)
    assert holds.check("A", "a1", now=110.0) is None  # the retry itself runs
    holds.settled("A", "a1", now=110.0)
    # a3 comes back first (a broker's delays are not exact): not its turn.
    assert holds.check("A", "a3", now=110.4) == pytest.approx(1.0)
    assert holds.check("A", "a2", now=110.6) is None
    assert holds.check("A", "a3", now=111.4) is None
    assert len(holds) == 0  # the line is done; the key runs freely again
    assert holds.check("A", "a4", now=112.0) is None


def test_a_message_back_before_the_retry_is_due_waits_again() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=100.0)
    assert holds.check("A", "a2", now=1.0) == pytest.approx(104.0)
    # a2 is back at 102 (a1 is late): still a1's turn.
    assert holds.check("A", "a2", now=102.0) == pytest.approx(5.0)


def test_a_retry_that_fails_again_keeps_the_line_behind_it() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=1.0)
    assert holds.check("A", "a2", now=0.5) is not None
    holds.retrying("A", "a1", now=1.0, delay=2.0)  # second attempt failed too
    assert holds.check("A", "a2", now=1.06) == pytest.approx(1.94 + 0.1)
    holds.settled("A", "a1", now=3.0)
    assert holds.check("A", "a2", now=3.1) is None


def test_a_waiting_message_that_fails_takes_the_head_of_the_line() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=1.0)
    holds.check("A", "a2", now=0.1)
    holds.check("A", "a3", now=0.1)
    holds.settled("A", "a1", now=1.0)
    assert holds.check("A", "a2", now=1.1) is None
    holds.retrying("A", "a2", now=1.2, delay=1.0)  # a2 fails: a3 waits for it
    assert holds.check("A", "a3", now=1.3) is not None
    holds.settled("A", "a2", now=2.2)
    assert holds.check("A", "a3", now=2.3) is None
    assert len(holds) == 0


def test_a_new_message_lines_up_behind_those_already_waiting() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=1.0)
    holds.check("A", "a2", now=0.1)
    holds.settled("A", "a1", now=1.0)
    assert holds.check("A", "a4", now=1.0) is not None  # published later: after a2
    assert holds.check("A", "a2", now=1.1) is None
    assert holds.check("A", "a4", now=1.2) is None


def test_a_line_stuck_past_the_grace_lets_the_key_go() -> None:
    holds = KeyHolds(grace=60.0)
    holds.retrying("A", "a1", now=0.0, delay=10.0)
    assert holds.check("A", "a2", now=69.0) is not None
    assert holds.check("A", "a2", now=70.0) is None  # a1 went to another process
    assert len(holds) == 0
    holds.retrying("B", "b1", now=0.0, delay=1.0)
    holds.settled("B", "b0", now=0.5)  # not the one in retry: nothing changes
    assert len(holds) == 1


def test_stale_holds_are_swept_when_many_keys_pile_up() -> None:
    holds = KeyHolds(grace=60.0)
    for n in range(1001):
        holds.retrying(f"k{n}", "m", now=0.0, delay=1.0)
    holds.retrying("fresh", "m", now=100.0, delay=1.0)
    assert len(holds) == 1


def test_a_settled_retry_with_nobody_waiting_frees_the_key() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=1.0)
    holds.settled("A", "a1", now=1.0)
    assert len(holds) == 0


def test_a_message_in_line_that_goes_to_retry_leaves_the_line() -> None:
    holds = KeyHolds()
    holds.retrying("A", "a1", now=0.0, delay=1.0)
    holds.check("A", "a2", now=0.1)
    holds.retrying("A", "a2", now=0.2, delay=1.0)  # a2 ran elsewhere in the process and failed
    holds.settled("A", "a2", now=1.2)
    assert len(holds) == 0
