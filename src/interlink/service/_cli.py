"""``interlink serve`` and ``interlink worker``: run a config file.

Both check the whole file first (the same checks as ``interlink
check-config``): a file with mistakes exits 2 listing every one, before
anything starts. ``serve`` runs the HTTP side and every queue's workers in
one process; ``worker`` runs workers alone (``--queue`` to pick some), so
receiving and processing scale apart, with health and ``/metrics`` on
``--listen`` (or ``service.worker_listen``) when given. SIGTERM or Ctrl-C
stops gracefully and exits 0.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from interlink.core.errors import ConfigError

if TYPE_CHECKING:
    from interlink.service._runtime import Service

__all__ = ["serve_command", "worker_command"]

_CONFIG = typer.Option(
    Path("interlink.yaml"), "--config", "-c", help="The service's config file (YAML)."
)
_LOG_LEVEL = typer.Option(
    None,
    "--log-level",
    help="debug, info, warning or error (default: observability.logging.level, info).",
)


def _logging(service: Service, level: str | None) -> None:
    """Structured logs on stderr as observability.logging says; ``--log-level`` wins."""
    from interlink.observability._logging import configure_logging

    configure_logging(service.config.observability.logging, level=level)


def _run(
    config: Path,
    log_level: str | None,
    *,
    http: bool,
    queues: list[str] | None,
    listen: str | None = None,
) -> None:
    from interlink.service._cli_config import report_issues
    from interlink.service._load import ConfigFileError, check_config
    from interlink.service._runtime import Service

    try:
        loaded = check_config(config)
        service = Service(loaded, http=http, queues=queues, listen=listen)
    except ConfigFileError as exc:
        raise report_issues(exc, config) from None
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _logging(service, log_level)
    try:
        asyncio.run(service.run())
    except ConfigError as exc:  # e.g. the listen address is taken
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def serve_command(
    config: Path = _CONFIG,
    listen: str | None = typer.Option(
        None,
        "--listen",
        help="host:port to serve on instead of service.listen (port 0: a free one, logged).",
    ),
    log_level: str | None = _LOG_LEVEL,
) -> None:
    """Run the service: webhooks in, health, metrics, admin, and every queue's workers."""
    _run(config, log_level, http=True, queues=None, listen=listen)


def worker_command(
    config: Path = _CONFIG,
    queue: list[str] | None = typer.Option(  # noqa: B008 - typer's way
        None, "--queue", "-q", help="Only this queue (repeat for several); default all."
    ),
    listen: str | None = typer.Option(
        None,
        "--listen",
        help="host:port for /livez, /readyz, /health and /metrics (port 0: a free one, logged)."
        " Default: service.worker_listen; neither set: no HTTP side.",
    ),
    log_level: str | None = _LOG_LEVEL,
) -> None:
    """Run the queues' workers alone (no webhooks, no admin; health and metrics with --listen)."""
    _run(config, log_level, http=False, queues=queue or None, listen=listen)
