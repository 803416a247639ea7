"""``interlink dlq``: the operator's view of dead letters, against a real SQLite broker file.

Each test fills a broker file through the Python API (a worker dead-letters
real failures), then runs the CLI in-process with typer's ``CliRunner``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from interlink.cli import app
from interlink.messaging import (
    HEADER_REPLAYED_FROM,
    MessageContext,
    SqliteBroker,
    Worker,
    _cli,
    open_broker,
)
from interlink.testing import FakeClock

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

runner = CliRunner()


class PaymentDeclined(Exception):
    pass


async def _fill(url: str) -> dict[str, str]:
    """Dead-letter three messages: two from ``orders`` (two error types), one from ``emails``."""
    clock = FakeClock()
    broker = await open_broker(url, clock=clock)
    worker = Worker(broker)

    async def orders(body: Any, ctx: MessageContext) -> None:
        if body["n"] == 1:
            raise PaymentDeclined(f"card declined for order {body['n']}")
        raise ValueError("no such product")

    async def emails(body: Any, ctx: MessageContext) -> None:
        raise ConnectionError("smtp down")

    worker.add_handler("orders", orders, name="orders", max_attempts=1)
    worker.add_handler("emails", emails, name="emails", max_attempts=1)
    ids = {
        "declined": await broker.publish("orders", {"n": 1}, headers={"traceparent": TRACEPARENT}),
        "product": await broker.publish("orders", {"n": 2}),
        "smtp": await broker.publish("emails", b"\xff\x00 binary"),
    }
    await worker.start()
    for _ in range(200):
        await clock.advance(0.05)
        await asyncio.sleep(0.002)
        if await broker.dead_letters.count() == 3:
            break
    await worker.stop()
    by_message = {d.message.id: d.id for d in await broker.dead_letters.list()}
    await broker.close()
    return {name: by_message[message_id] for name, message_id in ids.items()}


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """A broker file with three dead letters; INTERLINK_BROKER_URL points at it."""
    url = f"sqlite:///{tmp_path}/broker.db"
    dead = asyncio.run(_fill(url))
    monkeypatch.setenv("INTERLINK_BROKER_URL", url)
    return url, dead


def dlq(*args: str) -> Result:
    result = runner.invoke(app, ["dlq", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the CLI raised: {result.exception!r}\n{result.output}")
    return result


async def _queue_messages(url: str, queue: str) -> list[tuple[str, dict[str, str]]]:
    broker = await open_broker(url)
    try:
        ready = (await broker.stats(queue)).ready or 0
        consumer = broker.consume(queue, prefetch=10)
        found: list[tuple[str, dict[str, str]]] = []
        deliveries = aiter(consumer)
        for _ in range(ready):
            delivery = await anext(deliveries)
            found.append((delivery.message.id, dict(delivery.message.headers)))
            await delivery.ack()
        await consumer.cancel()
        return found
    finally:
        await broker.close()


def test_list_shows_every_dead_letter_with_its_error(filled: tuple[str, dict[str, str]]) -> None:
    _, dead = filled
    result = dlq("list")
    assert result.exit_code == 0, result.output
    for dead_id in dead.values():
        assert dead_id in result.output
    assert "test_dlq_cli.PaymentDeclined: card declined for order 1" in result.output
    assert "ValueError: no such product" in result.output
    assert "exhausted" in result.output


def test_list_filters_and_limits(filled: tuple[str, dict[str, str]]) -> None:
    _, dead = filled
    only_emails = dlq("list", "--queue", "emails")
    assert dead["smtp"] in only_emails.output
    assert dead["declined"] not in only_emails.output
    by_type = dlq("list", "--error-type", "ValueError")
    assert dead["product"] in by_type.output
    assert dead["declined"] not in by_type.output
    by_dlq = dlq("list", "--dlq", "orders.dlq", "--limit", "1")
    assert dead["declined"] in by_dlq.output
    assert dead["product"] not in by_dlq.output
    assert "showing 1 of 2; raise --limit to see more" in by_dlq.output
    assert dlq("list", "--queue", "nothing-here").output.strip() == "no dead letters"


def test_list_as_json(filled: tuple[str, dict[str, str]]) -> None:
    _, dead = filled
    result = dlq("list", "--json", "--queue", "orders")
    rows = json.loads(result.output)
    assert [row["id"] for row in rows] == [dead["declined"], dead["product"]]
    assert rows[0]["message"]["body"] == {"n": 1}
    assert rows[0]["message"]["headers"]["traceparent"] == TRACEPARENT
    assert rows[0]["failure"]["reason"] == "exhausted"
    assert rows[0]["failure"]["handler"] == "orders"


def test_show_prints_the_message_and_the_traceback(filled: tuple[str, dict[str, str]]) -> None:
    _, dead = filled
    result = dlq("show", dead["declined"])
    assert result.exit_code == 0, result.output
    assert f"traceparent: {TRACEPARENT}" in result.output
    assert '"n": 1' in result.output
    assert "raise PaymentDeclined" in result.output
    assert "exhausted after 1 attempt(s)" in result.output
    binary = json.loads(dlq("show", dead["smtp"], "--json").output)
    assert binary["message"]["body_base64"] == "/wAgYmluYXJ5"
    assert binary["failure"]["error_type"] == "ConnectionError"


def test_replay_by_id_sends_it_back_with_its_lineage(filled: tuple[str, dict[str, str]]) -> None:
    url, dead = filled
    result = dlq("replay", dead["declined"])
    assert result.exit_code == 0, result.output
    assert f"replayed {dead['declined']} -> orders" in result.output
    assert "replayed 1 dead letter" in result.output
    [(_, headers)] = asyncio.run(_queue_messages(url, "orders"))
    assert headers[HEADER_REPLAYED_FROM] == dead["declined"]
    assert headers["traceparent"] == TRACEPARENT
    assert dead["declined"] not in dlq("list").output


def test_replay_all_of_a_queue_with_a_progress_bar_on_a_terminal(
    filled: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, dead = filled
    with monkeypatch.context() as patched:
        patched.setattr(_cli, "_console", lambda: Console(force_terminal=True, width=100))
        result = dlq("replay", "--all", "--queue", "orders")
    assert result.exit_code == 0, result.output
    assert "2/2" in result.output
    assert "replayed 2 dead letters" in result.output
    assert len(asyncio.run(_queue_messages(url, "orders"))) == 2
    assert dead["smtp"] in dlq("list").output  # the other queue's dead letter stays


def test_replay_with_an_unknown_id_replays_nothing(filled: tuple[str, dict[str, str]]) -> None:
    url, dead = filled
    result = dlq("replay", dead["declined"], "no-such-id")
    assert result.exit_code == 2
    assert "no dead letter with id 'no-such-id'" in result.output
    assert "Traceback" not in result.output
    assert dead["declined"] in dlq("list").output
    assert asyncio.run(_queue_messages(url, "orders")) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["replay"], "give dead letter ids, or --all"),
        (["replay", "x", "--all"], "ids or --all, not both"),
        (["replay", "x", "--queue", "orders"], "they do not apply to ids"),
        (["purge"], "give dead letter ids, or --all"),
        (["show", "no-such-id"], "no dead letter with id 'no-such-id'"),
        (["purge", "no-such-id", "--yes"], "no dead letter with id 'no-such-id'"),
        (["list", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    filled: tuple[str, dict[str, str]], args: list[str], words: str
) -> None:
    result = dlq(*args)
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output


def test_purge_needs_yes_and_deletes_for_good(filled: tuple[str, dict[str, str]]) -> None:
    _, dead = filled
    refused = dlq("purge", dead["smtp"])
    assert refused.exit_code == 2
    assert "refusing to purge 1 dead letter(s) without --yes" in refused.output
    assert dead["smtp"] in dlq("list").output
    done = dlq("purge", dead["smtp"], "--yes")
    assert done.exit_code == 0, done.output
    assert "purged 1 dead letter" in done.output
    assert dead["smtp"] not in dlq("list").output
    assert "nothing purged" in dlq("purge", "--all", "--queue", "emails", "--yes").output
    everything = dlq("purge", "--all", "--error-type", "ValueError", "-y")
    assert "purged 1 dead letter" in everything.output
    assert [r["id"] for r in json.loads(dlq("list", "--json").output)] == [dead["declined"]]


def test_purge_asks_on_a_terminal(
    filled: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, dead = filled
    monkeypatch.setattr(_cli, "_interactive", lambda: True)
    kept = runner.invoke(app, ["dlq", "purge", dead["smtp"]], input="n\n")
    assert kept.exit_code == 1  # typer's Abort
    assert dead["smtp"] in dlq("list").output
    gone = runner.invoke(app, ["dlq", "purge", dead["smtp"]], input="y\n")
    assert gone.exit_code == 0, gone.output
    assert "purged 1 dead letter" in gone.output


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("nope", 2, "a broker URL looks like scheme://"),
        ("kafka://localhost", 2, "unknown broker scheme 'kafka'"),
        ("sqlite:///does/not/exist.db", 2, "no broker database at 'does/not/exist.db'"),
        ("amqp://guest:guest@127.0.0.1:1/", 1, "cannot connect to RabbitMQ"),
    ],
)
def test_a_bad_or_unreachable_broker_is_a_message_not_a_traceback(
    url: str, code: int, words: str
) -> None:
    result = dlq("list", "--broker", url)
    assert result.exit_code == code
    assert words in result.output
    assert "Traceback" not in result.output


def test_the_default_broker_is_interlink_db_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERLINK_BROKER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    missing = dlq("list")
    assert missing.exit_code == 2
    assert "no broker database at 'interlink.db'" in missing.output

    async def create() -> None:
        broker = await open_broker("sqlite:///./interlink.db")
        assert isinstance(broker, SqliteBroker)
        await broker.close()

    asyncio.run(create())
    assert dlq("list").output.strip() == "no dead letters"


def test_dlq_without_a_command_shows_help() -> None:
    result = runner.invoke(app, ["dlq"])
    for command in ("list", "show", "replay", "purge"):
        assert command in result.output


def test_bodies_show_as_json_text_or_base64_and_long_errors_are_cut() -> None:
    from interlink.messaging import DeadLetter, Failure, Message

    def dead(body: bytes, content_type: str, error: str = "short") -> DeadLetter:
        failure = Failure("E", error, "", "h", 1, 0.0, 0.0)
        message = Message(id="m", queue="q", body=body, content_type=content_type)
        return DeadLetter("d", message, failure, "q", "q.dlq", 0.0)

    assert _cli._body(dead(b'{"a": 1}', "application/json")) == {"body": {"a": 1}}
    assert _cli._body(dead(b"{broken", "application/json")) == {"body_text": "{broken"}
    assert _cli._body(dead(b"plain", "application/octet-stream")) == {"body_text": "plain"}
    # As the admin API shows them (show_body): a charset is no reason to doubt JSON, and
    # NaN is not JSON (printed with --json, it would make the output invalid).
    charset = "application/json; charset=utf-8"
    assert _cli._body(dead(b'{"a": 1}', charset)) == {"body": {"a": 1}}
    nan = b'{"total": NaN}'
    assert _cli._body(dead(nan, "application/json")) == {"body_text": '{"total": NaN}'}
    assert _cli._body(dead(b"\xff", "application/octet-stream")) == {"body_base64": "/w=="}


def test_long_errors_are_cut_in_the_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"

    async def fill() -> None:
        broker = await open_broker(url)
        worker = Worker(broker)

        async def fail(body: Any, ctx: MessageContext) -> None:
            raise RuntimeError("x" * 300)

        worker.add_handler("q", fail, name="h", max_attempts=1)
        await broker.publish("q", {"n": 1})
        await worker.start()
        for _ in range(500):
            if await broker.dead_letters.count():
                break
            await asyncio.sleep(0.01)
        await worker.stop()
        await broker.close()

    asyncio.run(fill())
    result = dlq("list", "-b", url)
    assert "RuntimeError: " + "x" * 63 + "..." in result.output
    assert "x" * 100 not in result.output
    empty = dlq("replay", "--all", "--queue", "other", "-b", url)
    assert empty.exit_code == 0
    assert "replayed 0 dead letters" in empty.output


def test_a_terminal_gets_the_terminals_width(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(Console):
        def __init__(self, **options: Any) -> None:
            super().__init__(force_terminal=True, **options)

    monkeypatch.setattr(_cli, "Console", Terminal)
    assert _cli._console().is_terminal
