"""What every benchmark shares: its progress bar, its name lists, its figures as JSON.

The figures go to stdout and to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


def progress_bar(console: Console) -> Progress:
    """The bar a benchmark shows while it measures: on a terminal only, gone when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def chosen(
    parser: argparse.ArgumentParser, text: str, known: Sequence[str], what: str
) -> list[str]:
    """The comma-separated names in ``text``; a usage error unless each is one of ``known``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        parser.error(f"unknown {what} {unknown}; choose from {list(known)}")
    return names


def report(result: dict[str, Any], path: Path) -> int:
    """Write ``result`` as JSON to ``path`` and to stdout; the exit code of a benchmark."""
    text = json.dumps(result, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or ``None``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def pressure() -> dict[str, float] | None:
    """Linux PSI, "some" avg10: the % of the last 10 s that tasks waited for CPU / for I/O."""
    out: dict[str, float] = {}
    for resource in ("cpu", "io"):
        try:
            line = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        out[f"{resource}_some_avg10_percent"] = float(fields["avg10"])
    return out


def machine_facts(
    load: tuple[float, float, float], pressure_before: Any, packages: Sequence[str]
) -> dict[str, Any]:
    """What every benchmark reports about where it ran: CPUs, Python, SQLite, load, pressure,
    the versions of ``packages``."""
    import os
    import platform
    import sqlite3

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": platform.system(),
        "sqlite_version": sqlite3.sqlite_version,
        "load_average_at_start": [round(value, 2) for value in load],
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "pressure_at_start": pressure_before,
        "pressure_at_end": pressure(),
        "packages": {package: package_version(package) for package in packages},
    }
