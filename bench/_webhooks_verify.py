"""``bench/webhooks.py``, part 1: verification alone, in this process (see its docstring)."""

from __future__ import annotations

import base64
import gc
import hmac
import statistics
import time
import timeit
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import Progress

from _webhooks_load import (
    json_body,
    sign,
)

if TYPE_CHECKING:
    from webhooks import Settings

# Each repeat times each candidate in this many interleaved slices and keeps its best
# (timeit's rule: the fastest slice is the one least disturbed by other work).
VERIFY_SLICES = 5
BODY_SIZES = {"1KB": 1024, "64KB": 65536}


def _signed(secret: str, body: bytes) -> tuple[str, str, str]:
    msg_id = "msg_2Lb8q9bench0verify"
    stamp = str(int(time.time()))
    return (
        msg_id,
        stamp,
        "v1," + sign(base64.b64decode(secret.removeprefix("whsec_")), msg_id, stamp, body),
    )


def verify_timers(secret: str, body: bytes) -> dict[str, timeit.Timer]:
    """One ``timeit.Timer`` per candidate, each verifying the same signed webhook."""
    import standardwebhooks.webhooks
    import svix.webhooks

    from interlink.webhooks import build_scheme, verify

    msg_id, stamp, signature = _signed(secret, body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    svix_headers = {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": signature}
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64decode(signature.removeprefix("v1,"))
    names: dict[str, Any] = {
        "verify": verify,
        "secrets": [secret],
        "headers": headers,
        "svix_headers": svix_headers,
        "body": body,
        "scheme": build_scheme("standard", [secret]),
        "standard": standardwebhooks.webhooks.Webhook(secret),
        "svix": svix.webhooks.Webhook(secret),
        "compare_digest": hmac.compare_digest,
        "digest": hmac.digest,
        "key": key,
        "expected": expected,
        "msg_id": msg_id,
        "stamp": stamp,
    }
    statements = {
        "interlink_verify": 'verify("standard", secrets=secrets, headers=headers, body=body)',
        "interlink_prebuilt_scheme": "scheme.verify(headers, body)",
        "standardwebhooks": "standard.verify(body, headers)",
        "svix": "svix.verify(body, svix_headers)",
        "bare_hmac": (
            'compare_digest(digest(key, f"{msg_id}.{stamp}.".encode() + body, "sha256"), expected)'
        ),
    }
    timers = {name: timeit.Timer(stmt, globals=names) for name, stmt in statements.items()}
    # Each must verify the webhook (one raises, the floor returns False, on a mistake here).
    for name, timer in timers.items():
        timer.timeit(1)
        if name == "bare_hmac" and not eval(statements[name], names):
            raise RuntimeError("the bare HMAC floor does not match its own signature")
    return timers


def measure_verification(
    settings: Settings, secret: str, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Calls/s of each candidate: per repeat, the best of ``VERIFY_SLICES`` interleaved slices."""
    out: dict[str, dict[str, Any]] = {}
    task = progress.add_task("verify", total=len(BODY_SIZES) * (settings.verify_repeats + 1))
    for label, size in BODY_SIZES.items():
        progress.update(task, description=f"verify {label}: calibrating")
        timers = verify_timers(secret, json_body(size))
        slice_seconds = settings.verify_seconds / VERIFY_SLICES
        loops = {name: _calibrate(timer, slice_seconds) for name, timer in timers.items()}
        progress.advance(task)
        rates: dict[str, list[float]] = {name: [] for name in timers}
        names = list(timers)
        stall = CpuStall()
        for r in range(settings.verify_repeats):
            progress.update(task, description=f"verify {label}: repeat {r + 1}")
            best = dict.fromkeys(names, float("inf"))
            gc.collect()
            for s in range(VERIFY_SLICES):
                # Slices interleaved (the order reversed every other one): a burst of other
                # work on the machine slows one slice of each candidate, not one candidate.
                for name in names if (r + s) % 2 == 0 else reversed(names):
                    best[name] = min(best[name], timers[name].timeit(loops[name]))
            for name in names:
                rates[name].append(loops[name] / best[name])
            progress.advance(task)
        out[label] = {
            "body_bytes": size,
            "cpu_pressure_percent": stall.percent(),
            "cases": {
                name: {
                    "calls_per_s": round(statistics.median(values)),
                    "us_per_call": round(1e6 / statistics.median(values), 2),
                    "loops_per_slice": loops[name],
                    "each_repeat": [round(v) for v in values],
                }
                for name, values in rates.items()
            },
        }
    return out


class CpuStall:
    """The share of wall time (%) some task on this machine waited for a CPU (Linux PSI)."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), _psi_cpu_total())

    def percent(self) -> float | None:
        began, total = self._start
        now = _psi_cpu_total()
        if total is None or now is None:
            return None
        return round((now - total) / 1e6 / (time.monotonic() - began) * 100, 1)


def _psi_cpu_total() -> int | None:
    """Microseconds some task waited for a CPU since boot (``/proc/pressure/cpu``)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(dict(part.split("=", 1) for part in line.split()[1:])["total"])


def _calibrate(timer: timeit.Timer, seconds: float) -> int:
    """Loops for about ``seconds`` of one candidate (after ``autorange``'s own warm-up)."""
    number, taken = timer.autorange()
    return max(1, int(number * seconds / max(taken, 1e-9)))
