"""`interlink demo`: the whole service against a simulated provider, and what it must show.

The in-process tests run the demo with a short, early outage and poll its report
(with a deadline) until the story has happened: webhooks accepted, forged ones
rejected, payments forwarded, retries, the breaker opening and closing again, dead
letters. The subprocess tests run the command as a user does: with --duration
and a pipe (plain lines and a summary), and without it until SIGINT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console
from typer.testing import CliRunner

from interlink.cli import app
from interlink.client import parse_quota
from interlink.core.errors import ConfigError
from interlink.demo import OutagePlan, ServiceDemo
from interlink.demo._provider import PaymentProvider
from interlink.demo._service import default_config
from interlink.service._load import check_config
from interlink.transform import Mapping, TransformError
from tests.client.client_support import closed_port
from tests.polling import eventually

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = Path(sys.executable).parent / "interlink"


async def test_the_demo_shows_the_whole_flow_and_its_endpoints_answer() -> None:
    out = io.StringIO()
    demo = ServiceDemo(
        Console(file=out, width=200),
        rate=25.0,
        outage=OutagePlan(start=1.0, length=2.0),
        progress_every=1.0,
    )
    run = asyncio.create_task(demo.run())
    try:
        await eventually(
            lambda: bool(demo.report.urls), lambda: f"serving: {out.getvalue()}", within=20
        )
        report = demo.report
        await eventually(
            lambda: (
                report.accepted > 0
                and report.forwarded > 0
                and report.client_retries > 0
                and report.queue_retries > 0
                and report.dead_letters > 0
                and report.rejected_total > 0
                and report.duplicates > 0
                and ("closed", "open") in [(old, new) for _, old, new in report.transitions]
                and report.transitions[-1][2] == "closed"
            ),
            lambda: f"{report}\n{out.getvalue()}",
            within=45,
        )
        # While it runs, the endpoints the view points at answer.
        base = report.urls["health"].removesuffix("/health")
        auth = {"Authorization": f"Bearer {report.admin_token}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/livez") as response:
                assert response.status == 200
            async with session.get(report.urls["health"]) as response:
                assert response.status in (200, 503)
                health = await response.json(content_type=None)
                assert "queue:payments" in health["checks"]
            if report.urls["metrics"]:  # shown only when the service serves it
                async with session.get(report.urls["metrics"]) as response:
                    assert response.status == 200
                    metrics = await response.text()
                # The provider states its quota: the dashboard's quota panels have data.
                assert 'interlink_client_quota_limit{client="provider"} 300.0' in metrics
                assert 'interlink_client_quota_remaining{client="provider"}' in metrics
            async with session.get(report.urls["admin"], headers=auth) as response:
                assert response.status == 200, await response.text()
            async with session.get(report.urls["admin"]) as response:
                assert response.status == 401
            async with session.get(f"{base}/admin/dead-letters", headers=auth) as response:
                assert response.status == 200
                assert "unmapped value" in await response.text()
    finally:
        demo.stop()
        report = await asyncio.wait_for(run, 30)
    text = out.getvalue()

    assert report.rejected == {"no_matching_signature": report.rejected_total}
    assert report.sent_bad_signatures >= report.rejected_total
    # Every dead letter is a payment in a currency the mapping refuses.
    assert set(report.dead_letter_reasons) == {"currency: unmapped value (got 'xbt')"}
    # The internal service stored each payment once, transformed and enriched.
    stored = list(demo.internal.payments.values())
    assert len(stored) == report.forwarded
    first = stored[0]
    assert first["currency"] in {"EUR", "USD", "GBP"}
    assert first["net_amount"] == first["amount"] - first["fee"]
    assert first["reference"] == f"demo-pay/{first['payment_id']}"
    assert set(demo.internal.payments) <= {f"payments:msg_{n:06d}" for n in range(1, 10_000)}
    # The provider's faults all happened, and the outage was over when it stopped.
    assert {"ok", "error", "outage"} <= set(report.provider_answers)
    # Plain output: the URLs, events and progress as they happen, then the summary.
    assert "Authorization: Bearer" in text
    assert "breaker of provider: closed -> open" in text
    assert "provider API: outage begins" in text
    assert "dead letter payments:msg_" in text
    assert "] webhooks: " in text
    assert "Summary after" in text
    assert f"internal service: {report.forwarded} payments stored" in text
    # One webhook's trace, drawn as a tree: received, published, processed, the API called.
    assert report.trace[0].startswith("One webhook, one trace (")
    assert "\n".join(report.trace) in text
    tree = [(len(line) - len(line.lstrip()), line.split()[0:2]) for line in report.trace[1:]]
    assert tree[0] == (2, ["POST", "/webhooks/payments"])
    assert tree[1] == (4, ["publish", "payments"])
    processed = [depth for depth, words in tree if words == ["process", "payments"]]
    assert processed  # each attempt a child of the publish
    assert set(processed) == {6}
    assert any(words == ["GET", "client"] for _, words in tree)  # the provider's API


async def test_a_tracer_provider_set_before_the_demo_is_kept_and_no_trace_is_drawn() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    mine = TracerProvider()
    mine.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(mine)
    out = io.StringIO()
    demo = ServiceDemo(Console(file=out, width=200), duration=2.0, rate=20.0)
    report = await asyncio.wait_for(demo.run(), 60)
    assert report.accepted > 0
    assert report.trace == []
    assert "One webhook, one trace" not in out.getvalue()
    assert trace.get_tracer_provider() is mine
    # The application's provider got the spans instead.
    assert any(s.name == "POST /webhooks/payments" for s in exporter.get_finished_spans())
    mine.shutdown()


@pytest.mark.parametrize(
    ("variable", "kept"), [("otlp", False), ("console", False), ("none", True)]
)
def test_the_demo_keeps_traces_only_when_neither_file_nor_environment_exports_them(
    variable: str, kept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlink.demo._service import _keep_traces
    from interlink.observability import tracing_enabled
    from interlink.service._load import load_config

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", variable)
    path = tmp_path / "interlink.yaml"
    path.write_text(f'service: {{name: d}}\nbroker: {{url: "sqlite:///{tmp_path / "b.db"}"}}\n')
    keeper, stop = _keep_traces(load_config(path).config)
    assert (keeper is not None) is kept
    assert tracing_enabled() is kept  # else the service sets tracing up, as the variable says
    stop()


async def test_with_a_duration_it_stops_by_itself_and_drains_the_queue() -> None:
    out = io.StringIO()
    demo = ServiceDemo(Console(file=out, width=200), duration=6.0, rate=10.0)
    started = time.monotonic()
    report = await asyncio.wait_for(demo.run(), 40)
    assert time.monotonic() - started >= 6.0
    assert 6.0 <= report.elapsed < 8.0
    assert report.accepted > 0
    assert report.forwarded > 0
    assert "provider: stops sending webhooks" in out.getvalue()
    assert report.phase.startswith("Stopping")


async def test_with_listen_it_serves_where_it_is_told() -> None:
    """``--listen``: a Prometheus or a browser can be pointed at the demo before it starts."""
    for _ in range(3):  # the free port found may be taken before the demo binds it: another
        port = closed_port()
        if await serves_metrics_at(port):
            return
    raise AssertionError("no free port stayed free for the demo in three tries")


async def serves_metrics_at(port: int) -> bool:
    """A demo told to listen on ``port`` serves its metrics there; False if the port was taken."""
    demo = ServiceDemo(
        Console(file=io.StringIO(), width=200), rate=10.0, listen=f"127.0.0.1:{port}"
    )
    run = asyncio.create_task(demo.run())
    try:
        await eventually(lambda: bool(demo.report.urls) or run.done(), "serving", within=20)
        if run.done():
            assert "already in use" in str(run.exception())
            return False
        assert demo.report.urls["metrics"] == f"http://127.0.0.1:{port}/metrics"
        async with (
            aiohttp.ClientSession() as session,
            session.get(demo.report.urls["metrics"]) as response,
        ):
            assert response.status == 200
            assert "interlink_webhooks_received_total" in await response.text()
    finally:
        demo.stop()
        with contextlib.suppress(ConfigError):
            await asyncio.wait_for(run, 30)
    return True


async def test_a_listen_address_in_use_is_refused_and_nothing_keeps_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = ServiceDemo(Console(file=io.StringIO()), duration=5.0, listen=f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            await asyncio.wait_for(demo.run(), 30)
    assert demo.provider.url
    assert not await answers(demo.provider.url)
    assert not await answers(demo.internal.url)


async def answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status > 0
    except aiohttp.ClientError:
        return False


async def test_the_provider_states_its_quota_and_refuses_requests_past_it() -> None:
    provider = PaymentProvider(
        secret="whsec_" + base64.b64encode(b"k" * 24).decode(),
        token="t",
        rate=1.0,
        outage=OutagePlan(start=3600.0, length=1.0),
        quota_limit=4,
        quota_window=600.0,
    )
    url = await provider.start()
    auth = {"Authorization": "Bearer t"}
    try:
        async with aiohttp.ClientSession() as session:
            seen = []
            for _ in range(5):
                async with session.get(f"{url}/v1/payments/pay_x", headers=auth) as response:
                    seen.append((response.status, parse_quota(response.headers, now=time.time())))
                    retry_after = response.headers.get("Retry-After")
            async with session.get(f"{url}/v1/payments/pay_x") as response:
                assert response.status == 401  # no token: not counted, no quota stated
                assert "RateLimit-Remaining" not in response.headers
    finally:
        await provider.stop()
    assert [status for status, _ in seen] == [404, 404, 404, 404, 429]  # no such payment, then
    quotas = [quota for _, quota in seen]
    assert all(quota is not None and quota.limit == 4 for quota in quotas)
    assert [quota.remaining for quota in quotas if quota is not None] == [3, 2, 1, 0, 0]
    last = quotas[-1]
    assert last is not None
    assert last.reset is not None
    assert 0 < last.reset <= 600
    assert retry_after == str(round(last.reset))
    assert provider.api["quota_exhausted"] == 1


async def test_on_a_terminal_it_renders_the_live_view() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    report = await asyncio.wait_for(ServiceDemo(console, duration=3.0, rate=10.0).run(), 40)
    text = out.getvalue()
    assert "interlink service demo" in text
    assert "try it while it runs" in text
    assert f"Bearer {report.admin_token}" in text
    for panel in ("webhooks in", "queue payments", "provider API (flaky)", "internal service"):
        assert panel in text
    assert "Summary after" in text


async def test_on_a_narrow_terminal_the_panels_go_two_by_two() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    await asyncio.wait_for(ServiceDemo(console, duration=1.5, rate=5.0).run(), 40)
    lines = out.getvalue().splitlines()
    framed = [line for line in lines if "│" in line and "\x1b" not in line]
    assert framed
    assert all(len(line) <= 80 for line in framed)
    assert any("webhooks in" in line and "queue payments" in line for line in lines)
    assert not any("webhooks in" in line and "provider API" in line for line in lines)


def test_the_outage_plan_comes_once_or_every_period() -> None:
    once = OutagePlan(start=10.0, length=5.0)
    assert [once.down(t) for t in (0, 9.9, 10, 14.9, 15, 100)] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    periodic = OutagePlan(start=10.0, length=5.0, every=60.0)
    assert [periodic.down(t) for t in (9, 12, 16, 70, 74.9, 75, 130)] == [
        False,
        True,
        False,
        True,
        True,
        False,
        True,
    ]


def test_the_example_config_is_valid_as_shipped_and_is_the_default() -> None:
    loaded = check_config(EXAMPLES / "demo.yaml", environ={})
    assert loaded.config.service.listen == "127.0.0.1:8080"
    assert set(loaded.config.clients) == {"provider", "internal"}
    assert loaded.config.queues["payments"].handler == "interlink.demo.payments:enrich_and_forward"
    assert default_config() == EXAMPLES / "demo.yaml"


def test_a_wheel_carries_the_demo_config_and_finds_it_outside_a_checkout(tmp_path: Path) -> None:
    """``pip install interlink`` then ``interlink demo``: the examples come with the wheel."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = subprocess.run(
        [*pip_wheel, "-q", "-w", str(tmp_path / "dist"), str(EXAMPLES.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("interlink-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    packaged = site / "interlink" / "demo" / "examples"
    for name in ("demo.yaml", "payment_mapping.yaml", "payment_events.jsonl"):
        assert (packaged / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    elsewhere = tmp_path / "elsewhere"  # no checkout above it, no examples/ in it
    elsewhere.mkdir()
    found = subprocess.run(
        [sys.executable, "-c", _FIND_AND_CHECK],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    imported_from, config = found.stdout.split()
    assert Path(imported_from).is_relative_to(site)  # the wheel's interlink, not the checkout's
    assert Path(config) == packaged / "demo.yaml"


# Which interlink was imported, and the demo config it finds (checked as the demo would load it).
_FIND_AND_CHECK = """
import interlink
from interlink.demo._service import default_config
from interlink.service._load import check_config
path = default_config()
check_config(path, environ={})
print(interlink.__file__, path)
"""


def test_the_example_mapping_turns_the_sample_events_into_records() -> None:
    mapping = Mapping.load(EXAMPLES / "payment_mapping.yaml")
    events = [
        json.loads(line) for line in (EXAMPLES / "payment_events.jsonl").read_text().splitlines()
    ]
    assert mapping.transform(events[0]) == {
        "payment_id": "pay_000001",
        "event": "succeeded",
        "amount": 4250,
        "currency": "EUR",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "paid_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "reference": "demo-pay/pay_000001",
    }
    assert mapping.transform(events[1])["customer"] == {"name": "Alan Turing", "email": None}
    with pytest.raises(TransformError) as refused:
        mapping.transform(events[2])
    assert (refused.value.path, refused.value.reason) == ("currency", "unmapped value")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"duration": 0.0}, "duration must be a positive number of seconds, got 0.0"),
        ({"duration": -5.0}, "duration must be a positive number of seconds, got -5.0"),
        ({"rate": 0.0}, "rate must be a positive number of webhooks a second, got 0.0"),
        ({"rate": float("nan")}, "rate must be a positive number of webhooks a second, got nan"),
        ({"listen": "8080"}, "listen: expected host:port such as 127.0.0.1:8080, found '8080'"),
        (
            {"listen": "[::1]:99999"},
            "listen: expected host:port such as 127.0.0.1:8080, found '[::1]:99999'",
        ),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        ServiceDemo(Console(file=io.StringIO()), **options)  # type: ignore[arg-type]
    assert str(refused.value) == message


def copy_example(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    shutil.copy(EXAMPLES / "payment_mapping.yaml", tmp_path / "payment_mapping.yaml")
    path = tmp_path / "demo.yaml"
    path.write_text(edit((EXAMPLES / "demo.yaml").read_text()))
    return path


runner = CliRunner()


def test_the_command_refuses_a_config_that_is_not_there(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--duration", "5", "--config", str(tmp_path / "no.yaml")])
    assert result.exit_code == 2
    assert "no.yaml" in result.output
    assert "Traceback" not in result.output


def test_the_command_lists_the_mistakes_of_a_broken_config(tmp_path: Path) -> None:
    path = copy_example(
        tmp_path, lambda text: text.replace("max_attempts: 10", "max_attempts: many")
    )
    result = runner.invoke(app, ["demo", "--duration", "5", "--config", str(path)])
    assert result.exit_code == 2
    assert "queues.payments.max_attempts" in result.output
    assert "Summary" not in result.output


def test_the_command_refuses_a_config_without_the_demo_clients(tmp_path: Path) -> None:
    path = copy_example(
        tmp_path,
        lambda text: text.replace("  internal:\n", "  inside:\n").replace(
            'ctx.clients["provider"], ["internal"]', ""
        ),
    )
    result = runner.invoke(app, ["demo", "--duration", "5", "--config", str(path)])
    assert result.exit_code == 2
    assert "the demo's config needs clients named provider and internal" in result.output


@pytest.mark.parametrize(
    "args", [["--duration", "0"], ["--rate", "0"], ["--rate", "fast"], ["--listen", "localhost"]]
)
def test_the_command_refuses_bad_options(args: list[str]) -> None:
    result = runner.invoke(app, ["demo", *args])
    assert result.exit_code == 2


async def test_the_command_with_a_duration_prints_progress_and_a_summary() -> None:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "demo",
        "--duration",
        "4",
        "--rate",
        "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert text.startswith("interlink service demo: http://127.0.0.1:")
    assert "] webhooks: " in text
    assert "Summary after" in text
    assert "One webhook, one trace (" in text
    assert "\x1b[" not in text  # no live view, no colours, in a pipe


async def test_without_a_duration_it_runs_until_ctrl_c_then_stops_cleanly() -> None:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "demo",
        "--rate",
        "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"] webhooks: " not in seen:  # the first progress line: it is running
            left = deadline - time.monotonic()
            assert left > 0, seen.decode()
            line = await asyncio.wait_for(process.stdout.readline(), left)
            assert line, seen.decode()
            seen += line
        process.send_signal(signal.SIGINT)
        rest, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert "Summary after" in rest.decode()
