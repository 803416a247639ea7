"""``interlink dlq``: list, show, replay and purge dead letters from the command line.

The same operations as ``broker.dead_letters`` (``DeadLetters``), for the
person on call. The broker comes from ``--broker``/``-b``, else the
``INTERLINK_BROKER_URL`` environment variable, else ``sqlite:///./interlink.db``.
A bad argument (unknown id, bad URL, a missing database file) prints one
clear line and exits with status 2; a broker that cannot be reached exits 1.
Never a traceback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from interlink.core.errors import ConfigError, DeadLetterNotFoundError, InterlinkError
from interlink.messaging._broker import Broker, open_broker
from interlink.messaging._dead_letters import DeadLetter
from interlink.messaging._message import show_body

__all__ = ["dlq_app"]

T = TypeVar("T")

DEFAULT_BROKER = "sqlite:///./interlink.db"
_WIDE = 200  # columns when the output is not a terminal, so lines are not cut

dlq_app = typer.Typer(
    help="Inspect, replay and purge dead letters.", no_args_is_help=True, add_completion=False
)

_BROKER = typer.Option(
    DEFAULT_BROKER,
    "--broker",
    "-b",
    envvar="INTERLINK_BROKER_URL",
    help="Broker URL (sqlite:///path.db, amqp://user:pass@host/vhost).",
    show_default=True,
)
_QUEUE = typer.Option(None, "--queue", "-q", help="Only dead letters from this source queue.")
_DLQ = typer.Option(None, "--dlq", help="Only dead letters in this dead-letter queue.")
_ERROR_TYPE = typer.Option(
    None, "--error-type", "-e", help="Only this error type (qualified name, e.g. ValueError)."
)
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


class _BadInput(Exception):
    """Exit 2 with this message."""


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=_WIDE, soft_wrap=True)
    return console


def _interactive() -> bool:
    """Whether someone can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _sqlite_file(url: str) -> Path | None:
    """The database path of a ``sqlite:///`` URL (``None`` for other schemes)."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    return Path(path[1:]) if path.startswith("/") and len(path) > 1 else None


async def _with_broker(url: str, work: Callable[[Broker], Awaitable[T]]) -> T:
    path = _sqlite_file(url)
    if path is not None and not path.is_file():
        raise _BadInput(
            f"no broker database at {str(path)!r}; pass --broker/-b or set INTERLINK_BROKER_URL"
        )
    broker = await open_broker(url)
    try:
        return await work(broker)
    finally:
        await broker.close()


def _run(url: str, work: Callable[[Broker], Awaitable[T]]) -> T:
    """Run ``work`` on the broker; turn every expected failure into a message and an exit code."""
    try:
        return asyncio.run(_with_broker(url, work))
    except (_BadInput, ConfigError, DeadLetterNotFoundError) as exc:
        raise _fail(str(exc), 2) from None
    except (InterlinkError, OSError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", 1) from None


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _body(dead: DeadLetter) -> dict[str, Any]:
    shown = show_body(dead.message.body, dead.message.content_type)
    if shown.is_json:
        return {"body": shown.json}
    if shown.text is not None:
        return {"body_text": shown.text}
    return {"body_base64": shown.base64}


def _as_dict(dead: DeadLetter) -> dict[str, Any]:
    m, f = dead.message, dead.failure
    return {
        "id": dead.id,
        "source_queue": dead.source_queue,
        "dead_letter_queue": dead.dead_letter_queue,
        "dead_lettered_at": dead.dead_lettered_at,
        "message": {
            "id": m.id,
            "headers": dict(m.headers),
            "content_type": m.content_type,
            "attempt": m.attempt,
            "delivery_count": m.delivery_count,
            "published_at": m.published_at,
            **_body(dead),
        },
        "failure": {
            "reason": f.reason,
            "error_type": f.error_type,
            "error_message": f.error_message,
            "handler": f.handler,
            "attempts": f.attempts,
            "first_failed_at": f.first_failed_at,
            "last_failed_at": f.last_failed_at,
            "traceback": f.traceback,
        },
    }


@dlq_app.command("list")
def list_dead_letters(
    queue: str | None = _QUEUE,
    dlq: str | None = _DLQ,
    error_type: str | None = _ERROR_TYPE,
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show at most this many."),
    as_json: bool = _JSON,
    broker: str = _BROKER,
) -> None:
    """List dead letters, oldest first."""

    async def work(b: Broker) -> tuple[list[DeadLetter], int]:
        found = await b.dead_letters.list(
            queue=queue, dead_letter_queue=dlq, error_type=error_type, limit=limit
        )
        total = await b.dead_letters.count(queue=queue, dead_letter_queue=dlq)
        return found, total

    found, total = _run(broker, work)
    if as_json:
        typer.echo(json.dumps([_as_dict(d) for d in found], indent=2))
        return
    console = _console()
    if not found:
        console.print("no dead letters")
        return
    table = Table("id", "queue", "error", "attempts", "reason", "dead-lettered (UTC)")
    for dead in found:
        error = f"{dead.failure.error_type}: {dead.failure.error_message}"
        if len(error) > 80:
            error = error[:77] + "..."
        table.add_row(
            dead.id,
            escape(dead.source_queue),
            escape(error),
            str(dead.failure.attempts),
            dead.failure.reason,
            _when(dead.dead_lettered_at),
        )
    console.print(table)
    if error_type is None and total > len(found):
        console.print(f"showing {len(found)} of {total}; raise --limit to see more")


@dlq_app.command("show")
def show_dead_letter(
    dead_letter_id: str = typer.Argument(..., metavar="ID", help="The dead letter's id."),
    as_json: bool = _JSON,
    broker: str = _BROKER,
) -> None:
    """Show one dead letter: the message, its headers and why it died, with the traceback."""
    dead = _run(broker, lambda b: b.dead_letters.get(dead_letter_id))
    data = _as_dict(dead)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console = _console()
    f = dead.failure
    lines = [
        ("dead letter", dead.id),
        ("message id", dead.message.id),
        ("queue", f"{dead.source_queue} -> {dead.dead_letter_queue}"),
        ("handler", f.handler),
        ("reason", f"{f.reason} after {f.attempts} attempt(s)"),
        ("error", f"{f.error_type}: {f.error_message}"),
        ("first failed", _when(f.first_failed_at)),
        ("last failed", _when(f.last_failed_at)),
        ("dead-lettered", _when(dead.dead_lettered_at)),
        ("content type", dead.message.content_type),
    ]
    for name, value in lines:
        console.print(f"[bold]{name:>14}[/bold]  {escape(value)}")
    console.print("[bold]       headers[/bold]")
    for name, value in sorted(dead.message.headers.items()):
        console.print(f"    {escape(name)}: {escape(value)}")
    body = {k: v for k, v in data["message"].items() if k.startswith("body")}
    console.print("[bold]          body[/bold]")
    console.print(escape(json.dumps(body, indent=2, ensure_ascii=False)))
    console.print("[bold]     traceback[/bold]")
    console.print(escape(f.traceback.rstrip()), highlight=False)


def _selected(
    ids: Sequence[str], all_: bool, queue: str | None, dlq: str | None, error_type: str | None
) -> Callable[[Broker], Awaitable[list[DeadLetter]]]:
    """The dead letters a replay or purge acts on: by id (all must exist) or by filter."""
    if ids and all_:
        raise _fail("give dead letter ids or --all, not both", 2)
    if not ids and not all_:
        raise _fail("give dead letter ids, or --all (with --queue/--dlq/--error-type filters)", 2)
    if ids and (queue or dlq or error_type):
        raise _fail("--queue, --dlq and --error-type filter --all; they do not apply to ids", 2)

    async def select(b: Broker) -> list[DeadLetter]:
        if ids:
            return [await b.dead_letters.get(i) for i in dict.fromkeys(ids)]
        total = await b.dead_letters.count(queue=queue, dead_letter_queue=dlq)
        return await b.dead_letters.list(
            queue=queue, dead_letter_queue=dlq, error_type=error_type, limit=max(total, 1)
        )

    return select


@dlq_app.command("replay")
def replay_dead_letters(
    ids: list[str] = typer.Argument(None, metavar="[ID]...", help="Dead letter ids."),  # noqa: B008
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter matching filters."),
    queue: str | None = _QUEUE,
    dlq: str | None = _DLQ,
    error_type: str | None = _ERROR_TYPE,
    broker: str = _BROKER,
) -> None:
    """Send dead letters back to their queues (same message id, fresh attempts).

    Each replayed message carries a ``replayed-from`` header with the dead
    letter's id. Unknown ids are refused before anything is replayed.
    """
    select = _selected(ids or [], all_, queue, dlq, error_type)
    console = _console()

    async def work(b: Broker) -> int:
        chosen = await select(b)
        if not chosen:
            return 0
        if console.is_terminal:
            with Progress(
                TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                task = progress.add_task("replay", total=len(chosen))
                for dead in chosen:
                    await b.dead_letters.replay([dead.id])
                    progress.advance(task)
        else:
            for dead in chosen:
                [sent] = await b.dead_letters.replay([dead.id])
                console.print(
                    f"replayed {dead.id} -> {escape(dead.source_queue)} (message {sent})",
                    highlight=False,
                )
        return len(chosen)

    done = _run(broker, work)
    console.print(f"replayed {done} dead letter{'s' if done != 1 else ''}", highlight=False)


@dlq_app.command("purge")
def purge_dead_letters(
    ids: list[str] = typer.Argument(None, metavar="[ID]...", help="Dead letter ids."),  # noqa: B008
    all_: bool = typer.Option(False, "--all", help="Purge every dead letter matching filters."),
    queue: str | None = _QUEUE,
    dlq: str | None = _DLQ,
    error_type: str | None = _ERROR_TYPE,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    broker: str = _BROKER,
) -> None:
    """Delete dead letters for good. Asks first unless --yes is given."""
    select = _selected(ids or [], all_, queue, dlq, error_type)
    chosen = _run(broker, select)
    if not chosen:
        typer.echo("no dead letters match; nothing purged")
        return
    if not yes:
        if not _interactive():
            raise _fail(f"refusing to purge {len(chosen)} dead letter(s) without --yes", 2)
        typer.confirm(f"Purge {len(chosen)} dead letter(s)? This cannot be undone", abort=True)
    doomed = [d.id for d in chosen]
    gone = _run(broker, lambda b: b.dead_letters.purge(doomed))
    typer.echo(f"purged {gone} dead letter{'s' if gone != 1 else ''}")
