"""How ``bench/messaging.py`` turns its repeats into figures, targets and verdicts.

A case's figures are medians over its repeats. A comparison between two cases
is computed within each repeat (the two ran back to back, so a burst of other
work on the machine hits both or neither), then its median is compared to the
target. A target whose cases were skipped or failed has ``pass: null`` and says
why.
"""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

from _messaging_common import Case, Phase

TARGET_SQLITE_END_TO_END = 5_000.0
TARGET_SQLITE_PUBLISH_OVER_FLOOR = 10.0
TARGET_RABBITMQ_FRACTION_OF_AIO_PIKA = 0.80
TARGET_RABBITMQ_OVER_FASTSTREAM = 1.0
# One commit per message is one fsync per message: the floor is the disk's sync latency,
# and another process's writes to the same disk slow it (0.6-0.8k/s against 2.5-3.4k/s
# quiet, on the machine this was written on), which would fake a pass of the 10x target.
FLOOR_SPREAD_LIMIT = 50.0


def _phase_figures(phases: list[Phase]) -> dict[str, Any]:
    each = {
        "msgs_per_s": [round(p.rate) for p in phases],
        "process_cpu_us_per_msg": [round(p.cpu_seconds / p.messages * 1e6, 1) for p in phases],
        "process_cpu_busy_fraction": [round(p.cpu_seconds / p.seconds, 2) for p in phases],
    }
    if all(p.commits for p in phases):
        each["msgs_per_commit"] = [round(p.messages / (p.commits or 1), 1) for p in phases]
    servers = [p for p in phases if p.server_cpu_seconds is not None]
    if servers:
        each["server_cpu_busy_fraction"] = [
            round((p.server_cpu_seconds or 0.0) / p.seconds, 2) for p in servers
        ]
    out: dict[str, Any] = {
        key: round(statistics.median(values), 0 if key == "msgs_per_s" else 2)
        for key, values in each.items()
    }
    rates = each["msgs_per_s"]
    out["spread_percent"] = (
        round((max(rates) - min(rates)) / statistics.median(rates) * 100, 1)
        if len(rates) > 1
        else 0.0
    )
    out["each_repeat"] = each
    return out


def summarize(case: Case) -> dict[str, Any]:
    summary: dict[str, Any] = {"group": case.group, "messages_per_phase": case.messages}
    if case.skipped is not None:
        summary["skipped"] = case.skipped
        return summary
    if case.repeats:
        for phase in case.repeats[0]:
            summary[phase] = _phase_figures([each[phase] for each in case.repeats])
    summary.update(case.facts)
    if case.errors:
        summary["errors"] = case.errors
    return summary


def _rates(case: Case | None, phase: str) -> list[float | None]:
    if case is None:
        return []
    return [each[phase].rate if phase in each else None for each in case.repeats]


def _target(
    values: list[float], op: str, limit: float, digits: int, **extra: Any
) -> dict[str, Any]:
    if not values:
        return {"target": f"{op} {limit:g}", "pass": None, **extra}
    value = statistics.median(values)
    passed = value >= limit if op == ">=" else value > limit
    return {
        "value": round(value, digits),
        "target": f"{op} {limit:g}",
        "pass": passed,
        "each_repeat": [round(v, digits) for v in values],
        **extra,
    }


def _ratio(
    ours: Case | None, ours_phase: str, theirs: Case | None, theirs_phase: str
) -> list[float]:
    """ours / theirs for each repeat both completed (the repeats ran back to back)."""
    if ours is None or theirs is None or ours.errors or theirs.errors:
        return []
    pairs = zip(_rates(ours, ours_phase), _rates(theirs, theirs_phase), strict=False)
    return [a / b for a, b in pairs if a is not None and b is not None]


def _sides(ours: Case | None, theirs: Case | None, phase: str) -> dict[str, Any]:
    """The median msgs/s of both sides of a ratio, for the reader."""
    out: dict[str, Any] = {}
    for case in (ours, theirs):
        rates = [r for r in _rates(case, phase) if r is not None]
        if case is not None and rates:
            out[f"{case.name}_{phase}_msgs_per_s"] = round(statistics.median(rates))
    return {"medians": out} if out else {}


def _why_missing(*cases: Case | None) -> str | None:
    for case in cases:
        if case is None:
            return "a case it needs was not selected (--cases)"
        if case.skipped:
            return f"{case.name} skipped: {case.skipped}"
        if case.errors:
            return f"{case.name} failed: {case.errors[0]}"
    return None


def targets(cases: dict[str, Case]) -> dict[str, Any]:
    sqlite = cases.get("interlink_sqlite")
    worker = cases.get("interlink_sqlite_worker")
    floor = cases.get("raw_sqlite3_commit_each")
    rabbit = cases.get("interlink_rabbitmq")
    pika = cases.get("aio_pika_quorum")
    fast = cases.get("faststream")

    def skipped(*needed: Case | None) -> dict[str, Any]:
        why = _why_missing(*needed)
        return {"skipped": why} if why else {}

    e2e = [r for r in _rates(sqlite, "end_to_end") if r is not None]
    result: dict[str, Any] = {
        "method": (
            "ratios are computed within each repeat (both sides ran back to back), then the"
            " median over the repeats is compared to the target"
        ),
        "sqlite_end_to_end_msgs_per_s": _target(
            [] if sqlite is None or sqlite.errors else e2e,
            ">=",
            TARGET_SQLITE_END_TO_END,
            0,
            measured_with=(
                "interlink_sqlite: the Broker API (publish; consume with prefetch 100; ack), the"
                " issue's 'publish, consume, ack', shaped like every RabbitMQ case; the Worker"
                " runtime's figure is interlink_sqlite_worker_end_to_end_msgs_per_s"
            ),
            **skipped(sqlite),
        ),
        "sqlite_publish_over_raw_sqlite3_commit_each": _target(
            _ratio(sqlite, "publish", floor, "publish"),
            ">=",
            TARGET_SQLITE_PUBLISH_OVER_FLOOR,
            2,
            **_sides(sqlite, floor, "publish"),
            **skipped(sqlite, floor),
        ),
        "rabbitmq_end_to_end_fraction_of_aio_pika_quorum": _target(
            _ratio(rabbit, "end_to_end", pika, "end_to_end"),
            ">=",
            TARGET_RABBITMQ_FRACTION_OF_AIO_PIKA,
            3,
            **_sides(rabbit, pika, "end_to_end"),
            **skipped(rabbit, pika),
        ),
        "rabbitmq_end_to_end_over_faststream": _target(
            _ratio(rabbit, "end_to_end", fast, "end_to_end"),
            ">",
            TARGET_RABBITMQ_OVER_FASTSTREAM,
            2,
            **_sides(rabbit, fast, "end_to_end"),
            **skipped(rabbit, fast),
        ),
    }
    informational: dict[str, Any] = {}
    worker_e2e = [r for r in _rates(worker, "end_to_end") if r is not None]
    if worker_e2e:
        informational["interlink_sqlite_worker_end_to_end_msgs_per_s"] = round(
            statistics.median(worker_e2e)
        )
    pairs = {
        "interlink_sqlite_publish_fraction_of_raw_sqlite3_batch_100": (
            "interlink_sqlite",
            "publish",
            "raw_sqlite3_batch_100",
            "publish",
        ),
        "interlink_rabbitmq_publish_fraction_of_aio_pika_quorum": (
            "interlink_rabbitmq",
            "publish",
            "aio_pika_quorum",
            "publish",
        ),
        "interlink_rabbitmq_consume_fraction_of_aio_pika_quorum": (
            "interlink_rabbitmq",
            "consume",
            "aio_pika_quorum",
            "consume",
        ),
        "interlink_rabbitmq_worker_end_to_end_fraction_of_aio_pika_quorum": (
            "interlink_rabbitmq_worker",
            "end_to_end",
            "aio_pika_quorum",
            "end_to_end",
        ),
        "faststream_end_to_end_fraction_of_aio_pika_quorum": (
            "faststream",
            "end_to_end",
            "aio_pika_quorum",
            "end_to_end",
        ),
        "aio_pika_classic_end_to_end_over_quorum": (
            "aio_pika_classic",
            "end_to_end",
            "aio_pika_quorum",
            "end_to_end",
        ),
    }
    for key, (a, pa, b, pb) in pairs.items():
        values = _ratio(cases.get(a), pa, cases.get(b), pb)
        if values:
            informational[key] = round(statistics.median(values), 3)
    floor_rates = [r for r in _rates(floor, "publish") if r is not None]
    ratio = result["sqlite_publish_over_raw_sqlite3_commit_each"]
    if len(floor_rates) > 1 and "value" in ratio:
        spread = (max(floor_rates) - min(floor_rates)) / statistics.median(floor_rates) * 100
        ratio["floor_spread_percent"] = round(spread, 1)
        ratio["conclusive"] = spread <= FLOOR_SPREAD_LIMIT
        if spread > FLOOR_SPREAD_LIMIT:
            ratio["note"] = (
                "the floor (one fsync per message) varied by more than"
                f" {FLOOR_SPREAD_LIMIT:g}% over the repeats: another process's disk writes"
                " slowed some of its fsyncs (see machine.pressure_at_*), which inflates the"
                " ratio; rerun on a quiet machine"
            )
    verdicts = [entry["pass"] for entry in result.values() if isinstance(entry, dict)]
    result["all_pass"] = None if None in verdicts else all(verdicts)
    result["informational"] = informational
    return result


def verdict_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for key, entry in result.items():
        if not isinstance(entry, dict) or "target" not in entry:
            continue
        word = "SKIP" if entry.get("pass") is None else "PASS" if entry["pass"] else "FAIL"
        value = entry.get("value", "-")
        why = f"  ({entry['skipped']})" if entry.get("skipped") else ""
        if entry.get("conclusive") is False:
            why += f"  NOT CONCLUSIVE: the floor varied {entry['floor_spread_percent']:g}%"
        lines.append(f"{word:4}  {key}: {value} (target {entry['target']}){why}")
    return lines


def print_summary(console: Console, result: dict[str, Any]) -> None:
    """The machine, each case's medians and the verdicts, on stderr (the JSON has it all)."""
    facts = result["machine"]
    packages = facts["packages"]
    console.print(
        f"{facts['cpu_count']} CPUs ({facts['usable_cpus']} usable), Python {facts['python']},"
        f" SQLite {facts['sqlite_version']}, RabbitMQ {facts['rabbitmq_server_version']},"
        f" aio-pika {packages['aio-pika']}, FastStream {packages['faststream']},"
        f" load {facts['load_average_at_start'][0]}",
        highlight=False,
    )
    table = Table(title=f"msgs/s, median of {result['repeats']} (spread %)", title_justify="left")
    table.add_column("case")
    for phase in ("publish", "consume", "end_to_end"):
        table.add_column(phase, justify="right")
    for name, case in result["cases"].items():
        if "skipped" in case:
            table.add_row(name, "skipped", "", "")
            continue
        cells = []
        for phase in ("publish", "consume", "end_to_end"):
            figures = case.get(phase)
            cells.append(
                f"{figures['msgs_per_s']:,.0f} ({figures['spread_percent']:.0f}%)"
                if figures
                else ""
            )
        table.add_row(name, *cells)
    console.print(table)
    for line in verdict_lines(result["targets"]):
        console.print(line, highlight=False)
