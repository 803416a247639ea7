"""Durations as people write them in config: ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``.

Python code passes seconds as floats; configuration passes strings with units.
``parse_duration`` accepts both so that config loaders can hand values through.
"""

from __future__ import annotations

import math
import re

from interlink.core.errors import ConfigError

__all__ = ["parse_duration"]

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# One or more <number><unit> parts, e.g. "1m30s" or "1.5s".
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(us|µs|ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:us|µs|ms|s|m|h|d))+")


def parse_duration(value: str | float | int, *, allow_zero: bool = True) -> float:
    """Return ``value`` in seconds.

    Strings need a unit: ``us``, ``ms``, ``s``, ``m``, ``h`` or ``d``, and parts
    may be combined (``"1m30s"``). Numbers are taken as seconds. Negative, NaN or
    infinite values, a missing unit, and (with ``allow_zero=False``) zero raise
    ``ConfigError`` naming the value.
    """
    if isinstance(value, bool):
        raise ConfigError(
            f"invalid duration {value!r}: expected a number of seconds or a string like '250ms'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if not _WHOLE.fullmatch(text):
            raise ConfigError(
                f"invalid duration {value!r}: expected a number with a unit "
                "(us, ms, s, m, h, d), e.g. '250ms', '5s', '2m', '1h'"
            )
        seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))
    else:
        raise ConfigError(
            f"invalid duration {value!r}: expected a number of seconds or a string like '250ms'"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ConfigError(f"invalid duration {value!r}: must be a finite, non-negative time")
    if not allow_zero and seconds == 0:
        raise ConfigError(f"invalid duration {value!r}: must be greater than zero")
    return seconds
