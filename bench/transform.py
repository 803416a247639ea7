"""What a declarative ``Mapping`` costs per record, against the same mapping written by hand.

Run with ``make bench`` (or ``.venv/bin/python bench/transform.py``). One
12-field mapping, loaded from a YAML string with ``Mapping.from_yaml``: nested
objects, value maps with a default, datetimes parsed from ISO 8601 with an
offset and from epoch seconds, a decimal from a string, a template, a list
mapped item by item, cleaning steps (strip, collapse spaces, case, a maximum
length). Beside it, the same mapping written by hand in plain Python the way a
careful user would: dict access, explicit conversions,
``datetime.fromisoformat(...).astimezone(UTC)``, a dict ``.get`` for each value
map. Before anything is timed, both are run over every sample record and must
produce equal outputs.

The input is a few thousand generated records (a fixed seed, so every run sees
the same ones). Each round times both over all of them, back to back, in
alternating order, with the garbage collected before each; after one warm-up
round, several rounds are timed. The clock is this process's CPU time, so a
round in which the scheduler gave the core to someone else is not counted as
slow (wall-clock records/s are reported beside). Reported for each: best and
median records/s.
The acceptance figure, ``mapping_fraction_of_hand_written`` (target >= 0.5),
is the mapping's records/s over the hand-written one's within each round, then
the median over the rounds, so a burst of other work on the machine cannot
fake a pass or a failure by hitting one side only.

JSON goes to stdout and to ``bench/results/transform.json``; progress goes
to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from _report import package_version, progress_bar
from _report import report as write_report
from interlink.transform import Mapping

RESULTS = Path(__file__).parent / "results" / "transform.json"
TARGET_FRACTION = 0.5
MAPPING = "mapping_from_yaml"
HAND = "hand_written"

MAPPING_YAML = """
name: bench_order
fields:
  id:          {source: id, template: "order-{value}"}
  status:
    source: status
    map: {values: {paid: PAID, pending: PENDING, refunded: REFUNDED, failed: FAILED}, default: OTHER}
  channel:
    source: channel
    map: {values: {web: ONLINE, app: ONLINE, pos: STORE}, default: UNKNOWN}
  placed_at:   {source: created_at, convert: datetime}
  updated_at:  {source: updated, convert: {datetime: {unit: s}}}
  total:       {source: total, convert: decimal}
  currency:    {source: currency, clean: [strip, upper]}
  weight_g:    {source: shipping.weight, convert: int}
  gift:        {source: shipping.gift, convert: bool}
  note:        {source: note, clean: [collapse_spaces, {max_length: 40}]}
  customer:
    source: customer
    fields:
      id:    {convert: str}
      name:  {clean: [collapse_spaces]}
      email: {clean: [strip, lower]}
  lines:
    source: items
    items:
      fields:
        sku:        {}
        quantity:   {source: qty, convert: int}
        unit_price: {source: price, convert: decimal}
"""

_STATUS = {"paid": "PAID", "pending": "PENDING", "refunded": "REFUNDED", "failed": "FAILED"}
_CHANNEL = {"web": "ONLINE", "app": "ONLINE", "pos": "STORE"}
_TRUE = {"true", "yes", "on", "1", "t", "y"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def hand_written(record: dict[str, Any]) -> dict[str, Any]:
    """The mapping above, written by hand: what a careful user would write instead."""
    customer = record["customer"]
    shipping = record["shipping"]
    return {
        "id": f"order-{record['id']}",
        "status": _STATUS.get(record["status"], "OTHER"),
        "channel": _CHANNEL.get(record["channel"], "UNKNOWN"),
        "placed_at": datetime.fromisoformat(record["created_at"]).astimezone(UTC),
        "updated_at": datetime.fromtimestamp(record["updated"], UTC),
        "total": Decimal(record["total"]),
        "currency": record["currency"].strip().upper(),
        "weight_g": int(shipping["weight"]),
        "gift": _bool(shipping["gift"]),
        "note": " ".join(record["note"].split())[:40],
        "customer": {
            "id": str(customer["id"]),
            "name": " ".join(customer["name"].split()),
            "email": customer["email"].strip().lower(),
        },
        "lines": [
            {"sku": item["sku"], "quantity": int(item["qty"]), "unit_price": Decimal(item["price"])}
            for item in record["items"]
        ],
    }


_NAMES = ["Ana  Lima", " Bo Chen", "Chidi Okafor ", "Dana\tMorales", "Eun-ji   Park", "Femi Ade"]
_NOTES = ["", "  leave at the door ", "gift   wrap,\nplease", "call on arrival " * 4, "ok"]


def records(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` order records, the same ones for the same seed."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for n in range(count):
        zone = timezone(timedelta(hours=rng.choice([-8, -5, -4, 0, 1, 2, 5.5, 9])))
        placed = (start + timedelta(seconds=rng.randrange(0, 365 * 86400))).astimezone(zone)
        name = rng.choice(_NAMES)
        out.append(
            {
                "id": f"{100000 + n}",
                "status": rng.choice(["paid", "paid", "paid", "pending", "refunded", "voided"]),
                "channel": rng.choice(["web", "app", "pos", "phone"]),
                "created_at": placed.isoformat(),
                "updated": int(placed.timestamp()) + rng.randrange(0, 86400),
                "total": f"{rng.randrange(100, 100000) / 100:.2f}",
                "currency": rng.choice(["usd", " eur", "GBP "]),
                "shipping": {"weight": rng.randrange(50, 5000), "gift": rng.choice([True, False])},
                "note": rng.choice(_NOTES),
                "customer": {
                    "id": rng.randrange(1, 10**9),
                    "name": name,
                    "email": f" {name.split()[0]}.{n}@Example.com",
                },
                "items": [
                    {
                        "sku": f"SKU-{rng.randrange(1000):04d}",
                        "qty": str(rng.randrange(1, 5)),
                        "price": f"{rng.randrange(100, 20000) / 100:.2f}",
                    }
                    for _ in range(rng.randrange(1, 5))
                ],
            }
        )
    return out


def check_equal(
    cases: dict[str, Callable[[dict[str, Any]], Any]], sample: list[dict[str, Any]]
) -> None:
    """Both produce equal outputs on every sample record, or the benchmark stops."""
    for number, record in enumerate(sample):
        ours, theirs = cases[MAPPING](record), cases[HAND](record)
        if ours != theirs:
            raise SystemExit(
                f"the mapping and the hand-written code differ on record {number}:\n"
                f"  mapping:      {ours!r}\n  hand-written: {theirs!r}"
            )


def time_once(
    transform: Callable[[dict[str, Any]], Any], sample: list[dict[str, Any]]
) -> tuple[float, float]:
    """Records per CPU second and per wall-clock second of one pass over ``sample``."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for record in sample:
        transform(record)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return len(sample) / cpu, len(sample) / wall


def measure(
    cases: dict[str, Callable[[dict[str, Any]], Any]],
    sample: list[dict[str, Any]],
    rounds: int,
    console: Console,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Records per CPU second and per wall second of each case, one figure per round; the
    order alternates between rounds."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    walls: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    with progress_bar(console) as progress:
        task = progress.add_task("warm-up", total=(rounds + 1) * len(names))
        for name in names:
            time_once(cases[name], sample)
            progress.advance(task)
        for r in range(rounds):
            progress.update(task, description=f"round {r + 1}/{rounds}")
            for name in names if r % 2 == 0 else reversed(names):
                cpu, wall = time_once(cases[name], sample)
                rates[name].append(cpu)
                walls[name].append(wall)
                progress.advance(task)
    return rates, walls


def summarize(
    rates: dict[str, list[float]], walls: dict[str, list[float]], count: int, rounds: int
) -> dict[str, Any]:
    def figures(name: str) -> dict[str, Any]:
        values = rates[name]
        median = statistics.median(values)
        return {
            "records_per_s_best": round(max(values)),
            "records_per_s_median": round(median),
            "us_per_record_median": round(1e6 / median, 2),
            "each_round": [round(v) for v in values],
            "wall_clock_records_per_s_median": round(statistics.median(walls[name])),
        }

    fractions = [m / h for m, h in zip(rates[MAPPING], rates[HAND], strict=True)]
    fraction = statistics.median(fractions)
    return {
        "benchmark": (
            "records/s of a 12-field interlink Mapping loaded from YAML, beside the same"
            " mapping written by hand in plain Python (equal outputs checked first)"
        ),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "packages": {
            "interlink": package_version("interlink"),
            "jmespath": package_version("jmespath"),
            "pyyaml": package_version("pyyaml"),
        },
        "records": count,
        "rounds": rounds,
        "clock": "this process's CPU time (time.process_time), so other work on the machine"
        " does not count; wall-clock medians beside",
        "cases": {MAPPING: figures(MAPPING), HAND: figures(HAND)},
        "mapping_fraction_of_hand_written": {
            "value": round(fraction, 3),
            "target": f">= {TARGET_FRACTION:g}",
            "passes": fraction >= TARGET_FRACTION,
            "method": "mapping records/s over hand-written records/s within each round, median",
            "each_round": [round(f, 3) for f in fractions],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000, help="records per round (5000)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (15)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the generated records (6)")
    args = parser.parse_args(argv)
    mapping = Mapping.from_yaml(MAPPING_YAML, source="<bench>")
    cases: dict[str, Callable[[dict[str, Any]], Any]] = {
        MAPPING: mapping.transform,
        HAND: hand_written,
    }
    sample = records(args.records, args.seed)
    check_equal(cases, sample)
    rates, walls = measure(cases, sample, args.rounds, Console(stderr=True))
    return write_report(summarize(rates, walls, args.records, args.rounds), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
