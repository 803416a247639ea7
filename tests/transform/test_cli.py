"""``interlink transform``: JSON lines in, JSON lines out, one error line per bad record.

Most tests run the command in-process with typer's ``CliRunner``; the last
ones run the installed ``interlink`` console script in a real process: a batch
with two bad records, a bad mapping, a stream read record by record, and a
reader that goes away.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from rich.console import Console
from typer.testing import CliRunner, Result

from interlink.cli import app
from interlink.transform import Mapping, TransformError, _cli
from tests.transform.test_fixtures import SHOPIFY_ORDER

FIXTURES = Path(__file__).parent / "fixtures"
SHOPIFY_MAPPING = FIXTURES / "shopify_order.yaml"
SCRIPT = Path(sys.executable).parent / "interlink"
TIMEOUT = 60

runner = CliRunner()


def shopify_order() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "shopify_order.json").read_text())
    return data


def batch() -> list[dict[str, Any]]:
    """Ten Shopify orders numbered 1001 to 1010; the 3rd and the 7th cannot be mapped."""
    base = shopify_order()
    records = []
    for n in range(1, 11):
        order = copy.deepcopy(base)
        order["order_number"] = 1000 + n
        records.append(order)
    records[2]["line_items"][2]["quantity"] = "lots"
    records[6]["created_at"] = "not a date"
    return records


def jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def expected_error(record: dict[str, Any]) -> TransformError:
    """What the mapping itself says about ``record``: the CLI must report the same."""
    with pytest.raises(TransformError) as caught:
        Mapping.load(SHOPIFY_MAPPING).transform(record)
    return caught.value


def lines_of(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def invoke(*args: str, input: str | bytes | None = None) -> Result:
    return runner.invoke(app, ["transform", *args], input=input)


def as_json(value: Any) -> Any:
    """The JSON form the command promises: datetimes as ISO 8601, decimals as strings."""
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# The first output: the fixture test's expected order, as JSON, numbered by batch().
FIRST_OUTPUT = {**as_json(SHOPIFY_ORDER), "number": "SHOP-1001"}

GOOD_NUMBERS = [f"SHOP-{1000 + n}" for n in (1, 2, 4, 5, 6, 8, 9, 10)]


def assert_the_two_errors(errors: list[Any], records: list[dict[str, Any]]) -> None:
    quantity, date = expected_error(records[2]), expected_error(records[6])
    assert errors == [
        {
            "line": 3,
            "index": 2,
            "path": "lines[2].quantity",
            "reason": quantity.reason,
            "value": "'lots'",
        },
        {
            "line": 7,
            "index": 6,
            "path": "placed_at",
            "reason": date.reason,
            "value": "'not a date'",
        },
    ]
    assert quantity.reason
    assert date.reason


# -- in-process ------------------------------------------------------------------------


def test_all_good_records_exit_0_with_one_output_line_each() -> None:
    records = [r for i, r in enumerate(batch()) if i not in (2, 6)]
    result = invoke("--mapping", str(SHOPIFY_MAPPING), input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    outputs = lines_of(result.stdout)
    assert outputs[0] == FIRST_OUTPUT
    assert [o["number"] for o in outputs] == GOOD_NUMBERS
    assert result.stderr == ""  # not a terminal: no progress bar, no summary


def test_bad_records_go_to_stderr_with_their_path_and_the_rest_still_out() -> None:
    records = batch()
    result = invoke("-m", str(SHOPIFY_MAPPING), input=jsonl(records))
    assert result.exit_code == 1
    assert [o["number"] for o in lines_of(result.stdout)] == GOOD_NUMBERS
    assert_the_two_errors(lines_of(result.stderr), records)


def test_blank_lines_are_skipped_and_line_numbers_still_count_them() -> None:
    good = shopify_order()
    text = "\n" + json.dumps(good) + "\n   \n{not json\n\r\n" + json.dumps(good) + "\r\n"
    result = invoke("-m", str(SHOPIFY_MAPPING), input=text)
    assert result.exit_code == 1
    assert len(lines_of(result.stdout)) == 2
    [error] = lines_of(result.stderr)
    assert error["line"] == 4
    assert error["index"] == 1
    assert error["path"] == ""
    assert error["reason"].startswith("invalid JSON: Expecting property name")
    assert error["value"] == "'{not json'"


def test_a_line_that_is_not_utf8_or_not_an_object_is_an_error_for_that_line() -> None:
    good = json.dumps(shopify_order()).encode()
    data = b"\xff\xfe{}\n" + b"[1, 2]\n" + good + b"\n"
    result = invoke("-m", str(SHOPIFY_MAPPING), input=data)
    assert result.exit_code == 1
    assert len(lines_of(result.stdout)) == 1
    first, second = lines_of(result.stderr)
    assert (first["line"], first["path"]) == (1, "")
    assert first["reason"].startswith("invalid JSON: ")
    assert (second["line"], second["path"], second["value"]) == (2, "", "[1, 2]")
    assert second["reason"] == "expected an object"


def test_json_nested_too_deeply_is_an_error_for_that_line() -> None:
    result = invoke("-m", str(SHOPIFY_MAPPING), input="[" * 100_000 + "\n")
    assert result.exit_code == 1
    [error] = lines_of(result.stderr)
    assert error["reason"] == "invalid JSON: nested too deeply"
    assert error["value"].endswith("[[...")
    assert len(error["value"]) == 80


def test_input_and_output_files(tmp_path: Path) -> None:
    records = batch()
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(jsonl(records))
    result = invoke("-m", str(SHOPIFY_MAPPING), "--input", str(source), "--output", str(target))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert [o["number"] for o in lines_of(target.read_text(encoding="utf-8"))] == GOOD_NUMBERS
    assert_the_two_errors(lines_of(result.stderr), records)


def test_non_ascii_text_is_written_as_utf8_to_a_file(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields:\n  name: {clean: [collapse_spaces]}\n")
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"name": "José   Müller 東京"}\n', encoding="utf-8")
    result = invoke("-m", str(mapping), "-i", str(source), "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_text(encoding="utf-8") == '{"name": "José Müller 東京"}\n'


def test_an_output_json_cannot_hold_is_an_error_for_that_record(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields:\n  score: {}\n")
    result = invoke("-m", str(mapping), input='{"score": NaN}\n{"score": 1.5}\n')
    assert result.exit_code == 1
    assert lines_of(result.stdout) == [{"score": 1.5}]
    [error] = lines_of(result.stderr)
    assert error["line"] == 1
    assert error["reason"].startswith("output cannot be written as JSON: ")


def test_constants_from_yaml_are_written_as_json_or_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields:\n  id: {}\n  since: {const: 2024-05-01}\n")
    result = invoke("-m", str(mapping), input='{"id": 1}\n')
    assert result.exit_code == 0, result.stderr
    assert lines_of(result.stdout) == [{"id": 1, "since": "2024-05-01"}]  # a YAML date

    mapping.write_text("fields:\n  id: {}\n  blob: {const: !!binary aGk=}\n")
    result = invoke("-m", str(mapping), input='{"id": 1}\n')
    assert result.exit_code == 1
    assert result.stdout == ""
    assert lines_of(result.stderr) == [
        {
            "line": 1,
            "index": 0,
            "path": "",
            "reason": "output cannot be written as JSON: a bytes cannot be written as JSON",
            "value": "",
        }
    ]


class Charge(BaseModel):
    id: str
    amount: int
    created: Any


def test_a_pydantic_output_is_written_as_its_json_dump(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"output: {__name__}:Charge\n"
        "fields:\n"
        "  id: {}\n"
        "  amount: {convert: int}\n"
        "  created: {convert: datetime}\n"
    )
    result = invoke("-m", str(mapping), input='{"id": "ch_1", "amount": "12", "created": 0}\n')
    assert result.exit_code == 0, result.stderr
    assert lines_of(result.stdout) == [
        {"id": "ch_1", "amount": 12, "created": "1970-01-01T00:00:00Z"}
    ]


def test_a_bad_mapping_exits_2_with_one_line_naming_file_and_line(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("fields:\n  id: {}\n  created:\n    convert: datetim\n")
    result = invoke("-m", str(mapping), input="{}\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {mapping}:4: fields.created.convert: ")
    assert "datetime" in line


@pytest.mark.parametrize("which", ["mapping", "input"])
def test_a_missing_file_exits_2(tmp_path: Path, which: str) -> None:
    missing = str(tmp_path / "nope")
    args = ["-m", missing] if which == "mapping" else ["-m", str(SHOPIFY_MAPPING), "-i", missing]
    result = invoke(*args, input="")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert missing in line
    assert "Traceback" not in result.output


def test_an_output_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    result = invoke("-m", str(SHOPIFY_MAPPING), "-o", str(tmp_path / "no" / "such" / "dir"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write output ")


def test_a_reader_that_goes_away_stops_the_run_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(_cli, "_stdout_write", gone)
    result = invoke("-m", str(SHOPIFY_MAPPING), input=jsonl(batch()[:2]))
    assert result.exit_code == 1
    assert result.stderr == ""


def test_an_output_that_fails_midway_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(text: str) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cli, "_stdout_write", full)
    result = invoke("-m", str(SHOPIFY_MAPPING), input=jsonl(batch()[:2]))
    assert result.exit_code == 2
    assert result.stderr == "error: stopped: No space left on device\n"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a terminal: the progress bar, the error lines and the summary go here."""
    screen = io.StringIO()
    monkeypatch.setattr(
        _cli, "_console", lambda: Console(file=screen, force_terminal=True, width=100)
    )
    return screen


def test_on_a_terminal_a_summary_closes_the_run(terminal: io.StringIO, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(batch()))
    result = invoke("-m", str(SHOPIFY_MAPPING), "-i", str(source))
    assert result.exit_code == 1
    assert [o["number"] for o in lines_of(result.stdout)] == GOOD_NUMBERS  # not on the screen
    screen = terminal.getvalue()
    assert '"path": "lines[2].quantity"' in screen
    assert '"path": "placed_at"' in screen
    summary = "transformed 8 of 10 records; 2 failed (lines[].quantity: 1, placed_at: 1)"
    assert summary in screen


def test_on_a_terminal_stdin_shows_a_count_and_all_good_says_so(terminal: io.StringIO) -> None:
    records = batch()[:2]
    result = invoke("-m", str(SHOPIFY_MAPPING), input=jsonl(records))
    assert result.exit_code == 0
    assert len(lines_of(result.stdout)) == 2
    assert "transformed 2 of 2 records" in terminal.getvalue()
    assert "failed" not in terminal.getvalue()


def test_on_a_terminal_a_long_stream_advances_the_bar(
    terminal: io.StringIO, tmp_path: Path
) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields:\n  n: {convert: int}\n")
    text = "".join(f'{{"n": "{n}"}}\n' for n in range(600)) + "\n" + '{"n": "x"}\n'
    result = invoke("-m", str(mapping), input=text)
    assert result.exit_code == 1
    assert [o["n"] for o in lines_of(result.stdout)] == list(range(600))
    screen = terminal.getvalue()
    assert '{"line": 602, "index": 600, "path": "n"' in screen
    assert "transformed 600 of 601 records; 1 failed (n: 1)" in screen


def test_on_a_terminal_outputs_to_the_same_screen_print_above_the_bar(
    terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli, "_stdout_is_screen", lambda: True)
    result = invoke("-m", str(SHOPIFY_MAPPING), input=jsonl(batch()[:3]))
    assert result.exit_code == 1
    assert result.stdout == ""
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # cursor moves
    shown = [line for line in re.split(r"[\r\n]", screen) if line.startswith("{")]
    assert [json.loads(line).get("number") for line in shown] == ["SHOP-1001", "SHOP-1002", None]
    assert json.loads(shown[2])["path"] == "lines[2].quantity"  # each line whole, never wrapped


def test_the_summary_counts_list_items_as_one_field_and_is_bounded() -> None:
    run = _cli._Run(Mapping.load(SHOPIFY_MAPPING), write=len, flush=None, ascii_output=True)
    run.write_error = len
    for n in range(_cli._MAX_FIELDS + 5):
        run.error(n + 1, n, f"lines[{n}].quantity", "expected a whole number", "'x'")
        run.error(n + 1, n, f"field_{n}", "missing", "")
    assert run.counts.failed == 2 * (_cli._MAX_FIELDS + 5)
    assert run.counts.by_field["lines[].quantity"] == _cli._MAX_FIELDS + 5
    assert len(run.counts.by_field) == _cli._MAX_FIELDS


def test_the_summary_names_the_five_most_failing_fields() -> None:
    counts = _cli._Counts(transformed=1, failed=8)
    for n, path in enumerate(["a", "b", "c", "d", "e", "f", ""]):
        counts.by_field[path] += 1 + (n == 6)
    assert _cli._summary(counts) == (
        "transformed 1 of 9 records; 8 failed ((record): 2, a: 1, b: 1, c: 1, d: 1, 2 more fields)"
    )


# -- a real process ----------------------------------------------------------------------


def run_script(*args: str, input: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "transform", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_console_script_reports_records_3_and_7_and_outputs_the_rest() -> None:
    records = batch()
    done = run_script("--mapping", str(SHOPIFY_MAPPING), input=jsonl(records))
    assert done.returncode == 1, done.stderr
    outputs = lines_of(done.stdout)
    assert [o["number"] for o in outputs] == GOOD_NUMBERS
    assert outputs[0] == FIRST_OUTPUT
    assert_the_two_errors(lines_of(done.stderr), records)


def test_the_console_script_refuses_a_bad_mapping_with_exit_2(tmp_path: Path) -> None:
    mapping = tmp_path / "orders.yaml"
    mapping.write_text("name: orders\nfields:\n  total:\n    source: total\n    convert: decimel\n")
    done = run_script("--mapping", str(mapping), input=jsonl(batch()[:2]))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {mapping}:5: fields.total.convert: ")
    assert "decimal" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_the_console_script_streams_each_output_before_the_input_ends() -> None:
    records = batch()[:3]
    proc = subprocess.Popen(
        [str(SCRIPT), "transform", "-m", str(SHOPIFY_MAPPING)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # a hang fails the test, never blocks it
    watchdog.start()
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        got = []
        for record in (records[0], records[1]):
            proc.stdin.write(json.dumps(record) + "\n")
            proc.stdin.flush()
            # the output arrives while the input is still open
            got.append(json.loads(proc.stdout.readline())["number"])
        assert got == ["SHOP-1001", "SHOP-1002"]
        out, err = proc.communicate(json.dumps(records[2]) + "\n", timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert out == ""
    assert [(e["line"], e["path"]) for e in lines_of(err)] == [(3, "lines[2].quantity")]


def test_the_console_script_stops_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    good = json.dumps(shopify_order()) + "\n"
    source.write_text(good * 3000)  # far more output than a pipe buffer holds
    proc = subprocess.Popen(
        [str(SCRIPT), "transform", "-m", str(SHOPIFY_MAPPING), "-i", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["number"] == "SHOP-1042"
        proc.stdout.close()  # like `| head -1`
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert err == b""
