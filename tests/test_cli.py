from __future__ import annotations

from typer.testing import CliRunner

from interlink import __version__
from interlink.cli import app

runner = CliRunner()


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_demo_runs_the_four_acts_and_points_to_what_next() -> None:
    result = runner.invoke(app, ["demo-resilience", "--pace", "0", "--open-for", "0.2"])
    assert result.exit_code == 0, result.output
    assert "breaker went closed -> open -> half_open -> closed" in result.stdout
    assert "8 by the bulkhead" in result.stdout
    assert "docs/resilience.md" in result.stdout


def test_demo_refuses_a_negative_pace_with_a_clear_error() -> None:
    result = runner.invoke(app, ["demo-resilience", "--pace", "-1"])
    assert result.exit_code == 2
    assert "pace" in result.output


def test_no_command_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "demo" in result.output
