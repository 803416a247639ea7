"""``interlink transform``: run a mapping over JSON lines, one record per line.

``interlink transform --mapping m.yaml [--input FILE|-] [--output FILE|-]``
reads JSON records one per line (stdin by default), transforms each with the
mapping and writes each output as one JSON line (stdout by default): a
``datetime`` as ISO 8601, a ``Decimal`` as a string, a pydantic model as its
``model_dump(mode="json")``. Blank lines are skipped.

A record that fails does not stop the others: it becomes one JSON line on
stderr, ``{"line": 3, "index": 2, "path": "amount", "reason": "...", "value":
"..."}``, where ``line`` is the 1-based line of the input and ``index`` the
0-based position of the record among the non-blank lines. A line that is not
JSON fails with path ``""`` and reason ``invalid JSON: ...``.

The input is streamed, never held in memory; when it comes from a pipe or a
terminal each output line is flushed as soon as it is written, so the command
works at the end of ``tail -f``. On a terminal, stderr also shows a progress
bar and a closing summary.

Exit status: 0 when every record was transformed, 1 when any failed, 2 when
the mapping is bad (``error: m.yaml:12: ...`` on stderr, no traceback) or a
file cannot be read or written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from interlink.core.errors import ConfigError
from interlink.transform import Mapping
from interlink.transform._errors import TransformError, excerpt

__all__ = ["transform_command"]

_PROGRESS_EVERY = 256  # records between two progress bar updates
_SUMMARY_FIELDS = 5  # failing fields named in the closing summary
_MAX_FIELDS = 1000  # distinct failing fields counted for the summary
_LIST_INDEX = re.compile(r"\[\d+\]")

_MAPPING = typer.Option(..., "--mapping", "-m", help="The mapping file (YAML).", show_default=False)
_INPUT = typer.Option(
    "-", "--input", "-i", help="JSON lines to transform; '-' reads stdin.", show_default=True
)
_OUTPUT = typer.Option(
    "-", "--output", "-o", help="Where the outputs go, one JSON line each; '-' is stdout."
)


def _console() -> Console:
    """Where the progress bar and the summary go: stderr."""
    return Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _json_default(value: object) -> object:
    """What ``json`` cannot write by itself, as JSON: used for every output."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


def _utf8(stream: object) -> bool:
    encoding = str(getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "")
    return encoding in ("utf8", "utf8sig")


def _encoder(ascii_only: bool) -> Callable[[object], str]:
    return json.JSONEncoder(default=_json_default, allow_nan=False, ensure_ascii=ascii_only).encode


@dataclass
class _Counts:
    """What happened to the records of one run."""

    transformed: int = 0
    failed: int = 0
    by_field: Counter[str] = field(default_factory=Counter)


class _Run:
    """One pass over the input: the mapping, where outputs and errors go, the counts."""

    def __init__(
        self,
        mapping: Mapping[Any],
        write: Callable[[str], object],
        flush: Callable[[], object] | None,
        ascii_output: bool,
    ) -> None:
        self.transform = mapping.transform
        self.write = write
        self.flush = flush
        self.encode_output = _encoder(ascii_output)
        self.encode_error = _encoder(not _utf8(sys.stderr))
        self.write_error: Callable[[str], object] = _stderr_write
        self.counts = _Counts()

    def error(self, line: int, index: int, path: str, reason: str, value: str) -> None:
        self.counts.failed += 1
        key = _LIST_INDEX.sub("[]", path)  # lines[3].qty -> lines[].qty: a bounded set of keys
        by_field = self.counts.by_field
        if key in by_field or len(by_field) < _MAX_FIELDS:
            by_field[key] += 1
        self.write_error(
            self.encode_error(
                {"line": line, "index": index, "path": path, "reason": reason, "value": value}
            )
            + "\n"
        )

    def record(self, number: int, index: int, raw: bytes) -> None:
        """Transform the record on input line ``number`` and write its output or its error."""
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.error(number, index, "", f"invalid JSON: {reason}", excerpt(text))
            return
        try:
            out = self.transform(record)
        except TransformError as exc:
            self.error(number, index, exc.path, exc.reason, exc.value)
            return
        try:
            text = self.encode_output(out)
        except (TypeError, ValueError) as exc:  # a NaN, or a value JSON has no form for
            self.error(number, index, "", f"output cannot be written as JSON: {exc}", "")
            return
        self.write(text + "\n")
        if self.flush is not None:
            self.flush()
        self.counts.transformed += 1

    def lines(self, source: IO[bytes]) -> None:
        """Every line of ``source``, streamed."""
        index = 0
        for number, raw in enumerate(source, start=1):
            if raw.isspace() or not raw:
                continue
            self.record(number, index, raw)
            index += 1

    def lines_with_progress(self, source: IO[bytes], progress: Progress, total: int | None) -> None:
        """Every line of ``source``, streamed, advancing ``progress`` by the bytes read."""
        task = progress.add_task("transforming", total=total, records=0)
        index = done = 0
        for number, raw in enumerate(source, start=1):
            done += len(raw)
            if number % _PROGRESS_EVERY == 0:
                progress.update(task, completed=done, records=index)
            if raw.isspace() or not raw:
                continue
            self.record(number, index, raw)
            index += 1
        progress.update(task, completed=done, records=index)


def _regular_size(stream: IO[bytes]) -> int | None:
    """The size of ``stream`` when it is a regular file (a total for the bar), else ``None``."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (tests, wrappers)
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _progress(console: Console, total: int | None) -> Progress:
    """The bar on stderr: bytes read of a file, or a pulse and a count for a pipe."""
    return Progress(
        TextColumn("transforming"),
        BarColumn(),
        DownloadColumn() if total is not None else TextColumn(""),
        TextColumn("{task.fields[records]} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _above(progress: Progress) -> Callable[[str], object]:
    """Print a line above the live bar, unwrapped (the terminal wraps it, copies stay whole)."""
    print_ = progress.console.print

    def show(text: str) -> None:
        print_(text.rstrip("\n"), soft_wrap=True, markup=False, highlight=False, emoji=False)

    return show


def _summary(counts: _Counts) -> str:
    total = counts.transformed + counts.failed
    line = f"transformed {counts.transformed} of {total} record{'s' if total != 1 else ''}"
    if counts.failed:
        shown = ", ".join(
            f"{path or '(record)'}: {n}" for path, n in counts.by_field.most_common(_SUMMARY_FIELDS)
        )
        more = len(counts.by_field) - _SUMMARY_FIELDS
        line += f"; {counts.failed} failed ({shown}{f', {more} more fields' if more > 0 else ''})"
    return line


def _broken_pipe() -> typer.Exit:
    """The reader of stdout went away (``| head``): stop quietly, without a flush error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (in-process tests)
        pass
    return typer.Exit(1)


def _open_input(stack: ExitStack, path: str) -> IO[bytes]:
    """The input, stdin for ``-``; an ``OSError`` when it cannot be opened."""
    if path == "-":
        return sys.stdin.buffer
    return stack.enter_context(open(path, "rb"))


def _stdout_write(text: str) -> object:
    return sys.stdout.write(text)


def _stdout_is_screen() -> bool:
    return sys.stdout.isatty()


def _stderr_write(text: str) -> object:
    written = sys.stderr.write(text)
    sys.stderr.flush()
    return written


def _stdout_flush() -> object:
    return sys.stdout.flush()


def transform_command(
    mapping: str = _MAPPING,
    input_: str = _INPUT,
    output: str = _OUTPUT,
) -> None:
    """Transform JSON lines with a mapping: one output line per record, errors on stderr.

    Exit status 0 when every record was transformed, 1 when any failed (each as
    a JSON line on stderr with its input line and field path), 2 when the
    mapping is bad or a file cannot be read.
    """
    try:
        loaded = Mapping.load(mapping)
    except ConfigError as exc:  # MappingError: names the file, line and key (or why unreadable)
        raise _fail(str(exc), 2) from None

    console = _console()
    with ExitStack() as stack:
        try:
            source = _open_input(stack, input_)
        except OSError as exc:
            raise _fail(f"cannot read input {input_!r}: {exc.strerror or exc}", 2) from None
        write: Callable[[str], object] = _stdout_write
        flush: Callable[[], object] = _stdout_flush
        ascii_output = not _utf8(sys.stdout)
        if output != "-":
            try:
                sink = stack.enter_context(open(output, "w", encoding="utf-8", newline="\n"))
            except OSError as exc:
                raise _fail(f"cannot write output {output!r}: {exc.strerror or exc}", 2) from None
            write, flush, ascii_output = sink.write, sink.flush, False
        total = _regular_size(source)
        # Records that trickle in (a pipe, a terminal) go out as soon as they are done.
        run = _Run(loaded, write, None if total is not None else flush, ascii_output)
        try:
            if console.is_terminal:
                with _progress(console, total) as progress:
                    # The error lines, and the outputs when they go to the screen too, are
                    # printed above the bar; outputs to a file or a pipe are left alone.
                    run.write_error = _above(progress)
                    if output == "-" and _stdout_is_screen():
                        run.write = run.write_error
                    run.lines_with_progress(source, progress, total)
            else:
                run.lines(source)
            flush()
        except BrokenPipeError:
            raise _broken_pipe() from None
        except OSError as exc:
            raise _fail(f"stopped: {exc.strerror or exc}", 2) from None
    if console.is_terminal:
        console.print(_summary(run.counts), highlight=False)
    if run.counts.failed:
        raise typer.Exit(1)
