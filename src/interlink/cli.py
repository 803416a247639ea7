"""The ``interlink`` command line."""

from __future__ import annotations

import typer

from interlink.messaging._cli import dlq_app
from interlink.transform._cli import transform_command

app = typer.Typer(
    help="interlink: the integration layer of a Python service.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
app.command(name="transform")(transform_command)


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
