"""Upstream quotas: what the server says about its rate limits, read from response headers.

``parse_quota`` understands every header family in use, newest first:

* ``RateLimit: "default";r=50;t=30`` with ``RateLimit-Policy: "default";q=100;w=60``
  (draft-ietf-httpapi-ratelimit-headers-08 and later: named policies, ``r``
  remaining, ``t`` seconds to reset, ``q`` quota, ``w`` window);
* ``RateLimit: limit=100, remaining=50, reset=30`` with ``RateLimit-Policy: 100;w=60``
  (draft-07, one Dictionary field);
* ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (drafts 00-06; the
  limit may carry the policy too: ``RateLimit-Limit: 100, 100;w=60``);
* ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (GitHub,
  Twitter, Discord and most others) and Discord's ``X-RateLimit-Reset-After``.

Each of limit, remaining and reset is taken from the most standard header that
carries a well-formed value, so one malformed field falls back to the next
family instead of losing the quota. The anchor for the formats is the IETF
draft; the parser is hand-written because the fields are Structured Fields
(RFC 8941) that servers in the wild get slightly wrong (unquoted names, spaces,
decimals), and a strict parser would drop the whole quota over one of those.

Reset is "seconds from now" in the drafts, but GitHub and others send a Unix
timestamp in ``X-RateLimit-Reset``: a value above 10^9 (2001 in epoch seconds,
31 years as a delta) is read as epoch seconds, above 10^12 as epoch
milliseconds, and turned into seconds after ``now``; an HTTP-date is accepted
too. Nothing here raises on what a server sent: a malformed field is skipped.
The values are reported as the server said them (``remaining`` may exceed
``limit``; that is the server's business).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from interlink.resilience import parse_retry_after

__all__ = ["Quota", "parse_quota"]

_INTEGER = re.compile(r"[0-9]{1,15}")
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
_EPOCH_SECONDS = 1e9
_EPOCH_MILLISECONDS = 1e12
_ESCAPE = re.compile(r"\\(.)")

_NAMES = frozenset(
    {
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-reset-after",
    }
)


@dataclass(frozen=True, slots=True)
class Quota:
    """The upstream's rate-limit quota as its latest response described it.

    ``limit``: requests allowed in the window; ``remaining``: requests left in
    it; ``reset``: seconds from ``observed_at`` until the window resets (0.0
    when the reset time already passed); each ``None`` when the server did not
    say. ``policy``: the ``RateLimit-Policy`` member that applies, as sent
    (``100;w=60``, ``"default";q=100;w=60``), or the policy's name alone when
    only ``RateLimit`` names it; ``None`` when no policy was announced.
    ``observed_at``: the wall-clock Unix time (seconds) the headers were read.
    """

    limit: int | None
    remaining: int | None
    reset: float | None
    policy: str | None
    observed_at: float

    @property
    def resets_at(self) -> float | None:
        """The wall-clock Unix time (seconds) the window resets, or ``None`` when unknown."""
        return None if self.reset is None else self.observed_at + self.reset


@dataclass(frozen=True, slots=True)
class _Member:
    """One member of a Structured Field list or dictionary, read leniently."""

    text: str
    key: str | None
    item: str
    params: dict[str, str]


def parse_quota(headers: Mapping[str, str], *, now: float) -> Quota | None:
    """The quota the response ``headers`` describe, or ``None`` when they describe none.

    ``now`` is the wall-clock Unix time in seconds (``clock.wall()``): epoch
    and HTTP-date resets become seconds after it, and it is the quota's
    ``observed_at``. Header names match case-insensitively; a repeated header
    is read as its values joined by commas (RFC 9110 §5.3). Never raises on
    header contents.
    """
    fields = _collect(headers)
    if not fields:
        return None
    policies = _members(fields.get("ratelimit-policy", ""))
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    policy: str | None = None

    combined = _members(fields.get("ratelimit", ""))
    if any(member.key is not None for member in combined):
        entries = {m.key.lower(): m.item for m in combined if m.key is not None}
        limit = _integer(entries.get("limit"))
        remaining = _integer(entries.get("remaining"))
        reset = _reset(entries.get("reset"), now)
    elif combined:
        current = _most_constrained(combined, now)
        if current is not None:
            name, remaining, reset = current
            named = next((p for p in policies if p.key is None and p.item == name), None)
            if named is not None:
                limit = _integer(named.params.get("q"))
                policy = named.text
            else:
                policy = name

    if limit is None:
        limit = _first_integer(fields, "ratelimit-limit", "x-ratelimit-limit")
    if remaining is None:
        remaining = _first_integer(fields, "ratelimit-remaining", "x-ratelimit-remaining")
    for name in ("ratelimit-reset", "x-ratelimit-reset-after", "x-ratelimit-reset"):
        if reset is None and name in fields:
            reset = _reset(fields[name], now)

    if policy is None:
        policy = _matching_policy(policies or _limit_policies(fields), limit)
    if limit is None and remaining is None and reset is None and policy is None:
        return None
    return Quota(limit=limit, remaining=remaining, reset=reset, policy=policy, observed_at=now)


def _collect(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers by lower-case name; repeated ones joined with ``, ``."""
    fields: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _NAMES:
            earlier = fields.get(lowered)
            fields[lowered] = value if earlier is None else f"{earlier}, {value}"
    return fields


def _most_constrained(
    members: Sequence[_Member], now: float
) -> tuple[str, int | None, float | None] | None:
    """(name, remaining, reset) of the newest-draft policy with the fewest requests left.

    Ties go to the later reset: that policy keeps the client waiting longest.
    Members with neither a well-formed ``r`` nor ``t`` are skipped.
    """
    best: tuple[str, int | None, float | None] | None = None
    best_key: tuple[float, float] = (0.0, 0.0)
    for member in members:
        remaining = _integer(member.params.get("r"))
        reset = _reset(member.params.get("t"), now)
        if remaining is None and reset is None:
            continue
        key = (
            float("inf") if remaining is None else float(remaining),
            -(reset if reset is not None else 0.0),
        )
        if best is None or key < best_key:
            best, best_key = (member.item, remaining, reset), key
    return best


def _first_integer(fields: dict[str, str], *names: str) -> int | None:
    """The integer of the first well-formed header among ``names`` (its first list member)."""
    for name in names:
        text = fields.get(name)
        if text is None:
            continue
        value = _integer(text)
        if value is None:
            members = _members(text)
            value = _integer(members[0].item) if members else None
        if value is not None:
            return value
    return None


def _limit_policies(fields: dict[str, str]) -> Sequence[_Member]:
    """Policies announced inside a limit header (``RateLimit-Limit: 100, 100;w=60``)."""
    for name in ("ratelimit-limit", "x-ratelimit-limit"):
        text = fields.get(name, "")
        described = [m for m in _members(text) if "w" in m.params] if ";" in text else []
        if described:
            return described
    return []


def _matching_policy(policies: Sequence[_Member], limit: int | None) -> str | None:
    """The policy whose quota is ``limit``, else the first one; ``None`` when there are none."""
    for member in policies:
        quota = member.params.get("q", member.item)
        if limit is not None and _integer(quota) == limit:
            return member.text
    return policies[0].text if policies else None


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def _reset(text: str | None, now: float) -> float | None:
    """Seconds from ``now`` until the reset: delta seconds, epoch (s or ms), or an HTTP-date."""
    if text is None:
        return None
    text = text.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
        if value >= _EPOCH_MILLISECONDS:
            return max(0.0, value / 1000.0 - now)
        if value > _EPOCH_SECONDS:
            return max(0.0, value - now)
        return value
    if not any(char.isalpha() for char in text):
        # Not a date, and not a number we accept (too long, signed): malformed.
        return None
    # Relative to the epoch, parse_retry_after gives the date's Unix time; a
    # date already past then means "reset already", as an epoch in the past does.
    when = parse_retry_after(text, now=0.0)
    return None if when is None else max(0.0, when - now)


# Servers repeat the same policy (and often the same counters) on every response.
@functools.lru_cache(maxsize=256)
def _members(value: str) -> tuple[_Member, ...]:
    """The members of a Structured Field list or dictionary, empty ones dropped.

    Cached, so the members are shared: read them, never change them.
    """
    members = []
    for text in _split(value, ","):
        if not text:
            continue
        head, *params = _split(text, ";")
        key: str | None = None
        if "=" in head and not head.startswith('"'):
            key, _, head = head.partition("=")
            key = key.strip()
        parsed: dict[str, str] = {}
        for param in params:
            name, _, raw = param.partition("=")
            parsed[name.strip().lower()] = _unquote(raw.strip())
        members.append(_Member(text=text, key=key, item=_unquote(head.strip()), params=parsed))
    return tuple(members)


def _split(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` outside double quotes, each part stripped."""
    if '"' not in value:
        return [part.strip() for part in value.split(separator)]
    parts = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(value[start:index].strip())
            start = index + 1
    parts.append(value[start:].strip())
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _ESCAPE.sub(r"\1", text[1:-1])
    return text
