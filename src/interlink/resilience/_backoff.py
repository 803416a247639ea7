"""How long to wait before the next attempt: jittered exponential backoff and ``Retry-After``.

The delay before retry ``n`` (``n = 1`` is the wait after the first attempt)
starts as ``initial * multiplier ** (n - 1)``, is capped at ``cap`` and only
then jittered, following AWS's "Exponential Backoff and Jitter" (Brooker,
2015) and gRPC A6. Capping first is the point: resilience4j, stamina, Polly's
``MaxDelay`` and tenacity's ``wait_exponential_jitter`` cap after jittering,
so every client that reaches the cap sleeps exactly ``cap`` and they retry in
lock step (resilience4j #1044).

``parse_retry_after`` reads an HTTP ``Retry-After`` value (RFC 9110 §10.2.3):
seconds, or an HTTP-date relative to a wall-clock ``now``.
"""

from __future__ import annotations

import email.utils
import random
import re
from datetime import UTC

__all__ = ["JITTERS", "capped_exponential", "jittered_delay", "parse_retry_after"]

JITTERS = ("none", "full", "equal", "decorrelated")
"""The jitter modes ``Retry`` accepts."""

# Decorrelated jitter grows the upper bound by this factor per retry (AWS's formula).
_DECORRELATED_GROWTH = 3.0

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def capped_exponential(retry: int, initial: float, multiplier: float, cap: float) -> float:
    """``min(cap, initial * multiplier ** (retry - 1))``, without overflowing for huge ``retry``."""
    if initial == 0.0:
        return 0.0
    try:
        raw = initial * multiplier ** (retry - 1)
    except OverflowError:
        return cap
    return raw if raw < cap else cap


def jittered_delay(
    jitter: str,
    retry: int,
    *,
    initial: float,
    multiplier: float,
    cap: float,
    rng: random.Random,
    previous: float,
) -> float:
    """Seconds to sleep before retry ``retry`` (1-based).

    With ``c = capped_exponential(retry, initial, multiplier, cap)``:

    - ``"none"``: ``c``
    - ``"full"``: ``U(0, c)`` (AWS "full jitter", gRPC A6)
    - ``"equal"``: ``c / 2 + U(0, c / 2)``
    - ``"decorrelated"``: ``U(initial, min(cap, previous * 3))``, where
      ``previous`` is this call's previous sleep (``initial`` before the first).
      AWS writes ``min(cap, U(initial, previous * 3))``; we cap the range
      before drawing so that sleeps at the cap stay spread instead of 2/3 of
      them landing exactly on ``cap``. ``multiplier`` does not apply.
    """
    if jitter == "decorrelated":
        upper = previous * _DECORRELATED_GROWTH
        return rng.uniform(initial, upper if upper < cap else cap)
    base = capped_exponential(retry, initial, multiplier, cap)
    if jitter == "full":
        return rng.uniform(0.0, base)
    if jitter == "equal":
        half = base / 2.0
        return half + rng.uniform(0.0, half)
    return base


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait according to an HTTP ``Retry-After`` value, or ``None``.

    ``value`` is either a number of seconds (``"120"``; a decimal such as
    ``"1.5"`` is accepted too) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00
    GMT"``), which is turned into seconds after ``now``, a wall-clock Unix
    time in seconds (``clock.wall()``). A date in the past, a negative number
    or anything malformed gives ``None``: the caller then falls back to its
    computed backoff, as httpx-retries does (#13).
    """
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 5322's "-0000" zone means "UTC, origin unknown"; HTTP-dates are GMT.
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return seconds if seconds >= 0 else None
