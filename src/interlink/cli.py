"""The ``interlink`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="interlink: the integration layer of a Python service.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """interlink: the integration layer of a Python service."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from interlink import __version__

    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``interlink`` console script."""
    app()
