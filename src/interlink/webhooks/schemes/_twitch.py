"""Twitch EventSub (``twitch``): HMAC-SHA256 over ``message id + timestamp + raw body``, hex.

Headers: ``Twitch-Eventsub-Message-Id``, ``Twitch-Eventsub-Message-Timestamp``
(RFC 3339 with up to nanoseconds, e.g. ``2019-11-16T10:11:12.634234626Z``;
parsed strictly, and hashed exactly as received) and
``Twitch-Eventsub-Message-Signature: sha256=<hex>``. The key is the
subscription's secret as UTF-8; configure the old and the new secret while
moving subscriptions between them (either passes). Tolerance: 600 s either
way, Twitch's "drop anything older than 10 minutes".
``VerifiedWebhook.timestamp`` is the whole unix seconds of the header. The id
is the message id header: the same on every retry of one message, which is
what Twitch says to deduplicate on.

Handshake: Twitch's ``webhook_callback_verification`` message is answered with
``200 text/plain`` and the ``challenge`` from the body. It is recognised by
the ``Twitch-Eventsub-Message-Type`` header when the caller passes the
headers (the receiver does), and by its body in any case: a JSON object with
a ``subscription`` and a string ``challenge`` (notifications carry ``event``,
revocations no ``challenge``). The body is signed, so nobody without the
secret can make an ordinary delivery look like one.
"""

from __future__ import annotations

import binascii
import hmac
import json
from collections.abc import Mapping
from typing import ClassVar

from interlink.webhooks._scheme import (
    Handshake,
    Scheme,
    VerifiedWebhook,
    check_time,
    fail,
    hmac_digest,
    register_scheme,
    require,
)

_TYPE_HEADER = "twitch-eventsub-message-type"
_VERIFICATION = "webhook_callback_verification"

__all__ = ["TwitchWebhooks", "parse_rfc3339"]


_ID = "twitch-eventsub-message-id"
_TIMESTAMP = "twitch-eventsub-message-timestamp"
_SIGNATURE = "twitch-eventsub-message-signature"
_PREFIX = "sha256="
_MAX_FRACTION = 9
_SHORTEST = len("2019-11-16T10:11:12Z")
_LONGEST = len("2019-11-16T10:11:12.123456789+00:00")
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_rfc3339(value: str) -> int | None:
    """Whole unix seconds of an RFC 3339 date-time (``T``, ``Z`` or ``±HH:MM``), else ``None``."""
    if not (_SHORTEST <= len(value) <= _LONGEST and value.isascii()):
        return None
    if (
        value[4] != "-"
        or value[7] != "-"
        or value[10] not in "Tt"
        or value[13] != ":"
        or value[16] != ":"
    ):
        return None
    if not (
        value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19]
    ).isdigit():
        return None
    year, month, day = int(value[0:4]), int(value[5:7]), int(value[8:10])
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    if not (year and 1 <= month <= 12 and hour < 24 and minute < 60 and second < 60):
        return None
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _MONTH_DAYS[month - 1] + leap:
        return None
    rest = value[19:]
    if rest[:1] == ".":
        fraction = rest[1:]
        rest = fraction.lstrip("0123456789")
        if not 1 <= len(fraction) - len(rest) <= _MAX_FRACTION:
            return None
    if rest in ("Z", "z"):
        offset = 0
    elif (
        len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and (rest[1:3] + rest[4:6]).isdigit()
    ):
        hours, minutes = int(rest[1:3]), int(rest[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * 60 * (1 if rest[0] == "+" else -1)
    else:
        return None
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


def _header_bytes(value: str) -> bytes:
    """The header's bytes as sent: servers decode header bytes as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


@register_scheme
class TwitchWebhooks(Scheme):
    """``twitch``: Twitch EventSub webhook transport."""

    name: ClassVar[str] = "twitch"
    tolerance: ClassVar[float | None] = 600.0

    def check(
        self, headers: Mapping[str, str], body: bytes, url: str | None, now: float
    ) -> VerifiedWebhook:
        message_id = require(headers, _ID, self.name)
        stamp = require(headers, _TIMESTAMP, self.name)
        signature = require(headers, _SIGNATURE, self.name)
        if not signature.startswith(_PREFIX):
            raise fail(
                self.name, "malformed_header", f"the {_SIGNATURE} header is not sha256=<hex>"
            )
        candidate = signature[len(_PREFIX) :].encode("ascii", "replace")
        timestamp = parse_rfc3339(stamp)
        if timestamp is None:
            raise fail(
                self.name, "malformed_header", f"the {_TIMESTAMP} header is not an RFC 3339 time"
            )
        window = self.window
        if window is not None:
            check_time(timestamp, now, window, self.name)
        content = _header_bytes(message_id) + stamp.encode("ascii") + body
        found = False
        for key in self.keys:
            if hmac.compare_digest(
                binascii.hexlify(hmac_digest(key, content, "sha256")), candidate
            ):
                found = True
        if not found:
            raise fail(self.name, "no_matching_signature", "the signature matches no secret")
        return VerifiedWebhook(message_id, timestamp, self.name, body)

    def handshake(
        self, webhook: VerifiedWebhook, headers: Mapping[str, str] | None = None
    ) -> Handshake | None:
        """The ``challenge`` of a verified callback-verification message, else ``None``."""
        if headers is not None and headers.get(_TYPE_HEADER, _VERIFICATION) != _VERIFICATION:
            return None  # the message type header says it is no verification
        if b'"challenge"' not in webhook.body:
            return None
        try:
            payload = json.loads(webhook.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("subscription"), dict):
            return None
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            return None
        return Handshake(200, "text/plain", challenge.encode("utf-8", "surrogatepass"))
