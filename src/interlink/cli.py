"""The ``interlink`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from interlink.messaging._cli import dlq_app
from interlink.service._cli import serve_command, worker_command
from interlink.service._cli_config import check_config_command, config_schema_command
from interlink.transform._cli import transform_command

app = typer.Typer(
    help="interlink: the integration layer of a Python service.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
app.command(name="transform")(transform_command)
app.command(name="serve")(serve_command)
app.command(name="worker")(worker_command)
app.command(name="check-config")(check_config_command)
app.command(name="config-schema")(config_schema_command)


@app.callback()
def _root() -> None:
    """interlink: the integration layer of a Python service."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from interlink import __version__

    typer.echo(__version__)


@app.command()
def demo(
    duration: float | None = typer.Option(
        None, min=1.0, help="Stop after this many seconds (default: run until Ctrl-C)."
    ),
    rate: float = typer.Option(
        5.0, min=0.5, max=200.0, help="Webhooks the provider sends a second."
    ),
    config: Path | None = typer.Option(  # noqa: B008 - typer's way
        None, "--config", "-c", help="The service's config (default: examples/demo.yaml)."
    ),
    listen: str | None = typer.Option(
        None,
        metavar="HOST:PORT",
        help="Where the service listens (default: a free port on 127.0.0.1).",
    ),
) -> None:
    """Run the service live: a provider's webhooks in, a flaky API, a breaker, a DLQ."""
    import asyncio

    from interlink.core.errors import ConfigError
    from interlink.demo import run_service_demo

    try:
        asyncio.run(
            run_service_demo(
                duration=duration, rate=rate, config=config, listen=listen, handle_signals=True
            )
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command(name="demo-resilience")
def demo_resilience(
    pace: float = typer.Option(1.0, min=0.0, help="Scale the pauses between calls."),
    open_for: float = typer.Option(2.0, min=0.1, help="Seconds the breaker stays open."),
) -> None:
    """Show the resilience pipeline live against a local, misbehaving upstream."""
    import asyncio

    from interlink.demo import run_resilience_demo

    asyncio.run(run_resilience_demo(pace=pace, open_for=open_for))


def main() -> None:
    """Entry point of the ``interlink`` console script."""
    app()
