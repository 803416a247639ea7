"""``interlink check-config`` and ``interlink config-schema``: the config file without the service.

``interlink check-config -c FILE`` runs every check ``interlink serve`` runs
before it starts (the file, the environment it reads, the builders of
clients, webhook sources and queue handlers; nothing is started, no
connection made) and prints ``ok: FILE (2 clients, 1 webhook source, 3
queues)``, exit 0; or every issue on stderr, one per line, and exit 2.

``interlink config-schema`` prints the JSON Schema of the file, for editors
(``# yaml-language-server: $schema=interlink.schema.json`` at the top of the
file); ``--format markdown`` prints the reference table of docs/configuration.md.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from interlink.service._load import ConfigFileError

__all__ = ["check_config_command", "config_schema_command", "report_issues"]


class SchemaFormat(StrEnum):
    """What ``config-schema`` prints."""

    json = "json"
    markdown = "markdown"


_CONFIG = typer.Option(
    Path("interlink.yaml"), "--config", "-c", help="The service's config file (YAML)."
)
_FORMAT = typer.Option(
    SchemaFormat.json, "--format", "-f", help="json: the JSON Schema; markdown: the reference."
)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


def report_issues(error: ConfigFileError, config: Path) -> typer.Exit:
    """Every issue on stderr, one per line, then their count: the ``Exit(2)`` to raise."""
    for issue in error.issues:
        typer.echo(str(issue), err=True)
    typer.echo(f"{config}: {_count(len(error.issues), 'problem')}, nothing started", err=True)
    return typer.Exit(2)


def check_config_command(config: Path = _CONFIG) -> None:
    """Check a config file without starting anything: exit 0 when it is good, 2 otherwise."""
    from interlink.service._load import ConfigFileError, check_config

    try:
        loaded = check_config(config)
    except ConfigFileError as exc:
        raise report_issues(exc, config) from None
    settings = loaded.config
    typer.echo(
        f"ok: {config} ({_count(len(settings.clients), 'client')}, "
        f"{_count(len(settings.webhooks), 'webhook source')}, "
        f"{_count(len(settings.queues), 'queue')})"
    )


def config_schema_command(output_format: SchemaFormat = _FORMAT) -> None:
    """Print the JSON Schema of the config file (for editors), or its Markdown reference."""
    from interlink.service._reference import json_schema, reference

    if output_format is SchemaFormat.markdown:
        typer.echo(reference(), nl=False)
    else:
        typer.echo(json.dumps(json_schema(), indent=2))
