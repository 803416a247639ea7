"""``WebhookSource``: one provider's endpoint (path, scheme, secrets, target queue), checked once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError, SignatureError
from interlink.core.secrets import Secret
from interlink.messaging._message import validate_queue_name
from interlink.webhooks._scheme import Scheme
from interlink.webhooks._verify import build_scheme

__all__ = ["DEFAULT_FORWARDED_HEADERS", "DEFAULT_MAX_BODY", "WebhookSource", "sources_from_config"]

DEFAULT_MAX_BODY: Final = 1024 * 1024
"""Bytes a webhook body may have before the receiver answers 413 (1 MiB)."""

DEFAULT_FORWARDED_HEADERS: Final = (
    "content-type",
    "user-agent",
    # the event type or topic, where a provider sends it in a header
    "x-github-event",
    "x-github-hook-id",
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-api-version",
    "x-slack-retry-num",
    "x-slack-retry-reason",
    "twitch-eventsub-message-type",
    "twitch-eventsub-subscription-type",
)
"""Request headers stored with every webhook (signature headers never are)."""

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


class WebhookSource:
    """One provider's webhooks: where they arrive, how they are verified, where they go.

    - ``name``: the source's name (letters, digits, ``_.-``); message ids are
      ``"<name>:<webhook id>"``.
    - ``path``: the URL path the receiver answers on (``/webhooks/stripe``).
    - ``scheme``, ``secrets``, ``tolerance``, ``options``: as for ``verify``;
      ``secrets`` is a list so that a rotation can list the old and the new.
    - ``queue``: where verified webhooks are published, durably, before the 2xx.
    - ``max_body``: bytes (default 1 MiB); a larger body gets 413.
    - ``public_url``: the URL the provider calls, for the schemes that sign it
      (``twilio``, ``square``) when the receiver sits behind a proxy that
      changes scheme, host or port; default: rebuilt from the request.
    - ``forward_headers``: request headers stored with the webhook (lower-case
      names; default ``DEFAULT_FORWARDED_HEADERS``).

    A bad value raises ``ConfigError`` naming the source, at construction.
    """

    __slots__ = (
        "forward_headers",
        "forwarded",
        "max_body",
        "name",
        "path",
        "public_url",
        "queue",
        "scheme",
        "verifier",
    )

    def __init__(
        self,
        name: str,
        *,
        path: str,
        scheme: str,
        secrets: Sequence[str | bytes | Secret],
        queue: str,
        tolerance: float | None = None,
        options: Mapping[str, Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        public_url: str | None = None,
        forward_headers: Sequence[str] = DEFAULT_FORWARDED_HEADERS,
    ) -> None:
        if not isinstance(name, str) or _NAME.match(name) is None:
            raise ConfigError(
                f"webhook source name {name!r}: use 1-100 letters, digits, '_', '.' or '-'"
            )
        where = f"webhook source {name!r}"
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ConfigError(f"{where}: path must start with '/' and hold no query, got {path!r}")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ConfigError(f"{where}: max_body must be a positive number of bytes")
        if public_url is not None and not (
            isinstance(public_url, str) and public_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"{where}: public_url must be an http(s) URL, got {public_url!r}")
        if isinstance(forward_headers, str) or not all(
            isinstance(h, str) and h for h in forward_headers
        ):
            raise ConfigError(f"{where}: forward_headers must be a list of header names")
        try:
            queue = validate_queue_name(queue)
            verifier: Scheme = build_scheme(
                scheme, secrets, tolerance=tolerance, **dict(options or {})
            )
        except (ConfigError, SignatureError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self.name = name
        self.path = path
        self.scheme = verifier.name
        self.verifier = verifier
        """The built ``Scheme`` that checks this source's webhooks."""
        self.queue = queue
        self.max_body = max_body
        self.public_url = public_url
        self.forward_headers = tuple(sorted({h.lower() for h in forward_headers}))
        self.forwarded = frozenset(self.forward_headers)
        """``forward_headers`` as a set, for the receiver's per-request lookups."""

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> WebhookSource:
        """A source from its config mapping (the ``webhooks:`` entries of the service file).

        Keys: ``path``, ``scheme``, ``secrets``, ``publish_to`` (or ``queue``),
        and optionally ``tolerance`` (a duration: ``"5m"``, ``300``),
        ``options``, ``max_body`` (bytes), ``public_url``, ``forward_headers``.
        An unknown key is a ``ConfigError`` with the closest known one.
        """
        where = f"webhooks.{name}"
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"{where}: expected a mapping of settings, got {type(config).__name__}"
            )
        unknown = [key for key in config if key not in _CONFIG_KEYS]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, _CONFIG_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint}; keys: {', '.join(sorted(_CONFIG_KEYS))}"
            )
        settings = dict(config)
        if "publish_to" in settings and "queue" in settings:
            raise ConfigError(f"{where}: give publish_to or queue, not both")
        queue = settings.pop("publish_to", settings.pop("queue", None))
        for required in ("path", "scheme", "secrets"):
            if required not in settings:
                raise ConfigError(f"{where}: {required} is required")
        if queue is None:
            raise ConfigError(f"{where}: publish_to is required (the queue webhooks go to)")
        tolerance = settings.pop("tolerance", None)
        if tolerance is not None:
            try:
                tolerance = parse_duration(tolerance, allow_zero=False)
            except ConfigError as exc:
                raise ConfigError(f"{where}.tolerance: {exc}") from None
        return cls(name, queue=queue, tolerance=tolerance, **settings)

    def __repr__(self) -> str:
        return (
            f"WebhookSource({self.name!r}, path={self.path!r}, scheme={self.scheme!r},"
            f" queue={self.queue!r}, secrets={len(self.verifier.keys)})"
        )


_CONFIG_KEYS: Final = (
    "path",
    "scheme",
    "secrets",
    "publish_to",
    "queue",
    "tolerance",
    "options",
    "max_body",
    "public_url",
    "forward_headers",
)


def sources_from_config(config: Mapping[str, Mapping[str, Any]]) -> list[WebhookSource]:
    """Every source of a ``webhooks:`` mapping (name to settings; see ``from_config``)."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"webhooks: expected a mapping of source names, got {type(config).__name__}"
        )
    return [WebhookSource.from_config(str(name), settings) for name, settings in config.items()]
