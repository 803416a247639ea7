"""The error hierarchy: everything interlink raises on purpose derives from one root.

A caller can catch exactly as much as it means to::

    InterlinkError
    ├── ConfigError                      a setting is malformed or out of range
    │   └── MappingError                 a transform mapping cannot be loaded (file, line, key)
    ├── ClientError                      an outbound HTTP call failed (``method``, ``url``)
    │   ├── HttpStatusError              the upstream answered an error status
    │   ├── ClientTimeoutError           no (complete) answer in time (also a ``TimeoutError``)
    │   ├── ConnectError                 could not connect: the request never left
    │   ├── ConnectionLostError          the connection broke after the request was sent
    │   └── ResponseValidationError      the body did not match the expected model
    ├── ResilienceError                  a resilience policy decided, not the callee
        ├── RejectedError                refused locally, the protected call never ran
        │   ├── CircuitOpenError         the breaker is open, or half-open with no probe free
        │   │   └── CircuitForcedOpenError   an operator forced it open
        │   ├── BulkheadFullError        no concurrency slot free within the wait
        │   ├── RateLimitedError         no token within the wait
        │   └── ThrottledLocallyError    adaptive client-side throttling dropped it
        ├── RetryExhaustedError          every attempt failed; ``__cause__`` is the last error
        ├── DeadlineExceededError        the overall deadline passed (also a ``TimeoutError``)
        └── AttemptTimeoutError          one attempt ran too long (also a ``TimeoutError``)
    └── MessagingError                   a broker or worker operation failed (``queue``)
        ├── PublishError                 the message is not known to be durable: never "sent"
        ├── DeliveryError                a delivery could not be settled; it stays unacked
        └── DeadLetterNotFoundError      no dead letter has that id (also a ``KeyError``)
    └── WebhookError                     a webhook could not be received
        └── SignatureError               it failed verification (``reason``, ``scheme``)
    └── TransformError                   a record could not be transformed (``path``, ``reason``)

Every ``ResilienceError`` carries ``retry_after``: the seconds after which trying
again may succeed, or ``None`` when nobody knows.
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeoutError",
    "BulkheadFullError",
    "CircuitForcedOpenError",
    "CircuitOpenError",
    "ClientError",
    "ClientTimeoutError",
    "ConfigError",
    "ConnectError",
    "ConnectionLostError",
    "DeadLetterNotFoundError",
    "DeadlineExceededError",
    "DeliveryError",
    "HttpStatusError",
    "InterlinkError",
    "MappingError",
    "MessagingError",
    "PublishError",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "ResponseValidationError",
    "RetryExhaustedError",
    "SignatureError",
    "ThrottledLocallyError",
    "TransformError",
    "WebhookError",
]


class InterlinkError(Exception):
    """The root of every error interlink raises on purpose."""


class ConfigError(InterlinkError, ValueError):
    """A setting is malformed or out of range; the message names it and what was expected."""


class ResilienceError(InterlinkError):
    """A resilience policy made this decision.

    ``retry_after`` is the number of seconds after which a new try may succeed,
    or ``None`` when it is not known. ``policy`` names the policy that decided.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, policy: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.policy = policy


class RejectedError(ResilienceError):
    """A policy refused the call locally: the protected function was not called."""


class CircuitOpenError(RejectedError):
    """The circuit breaker is open (or half-open with every probe taken)."""


class CircuitForcedOpenError(CircuitOpenError):
    """An operator forced the breaker open; it stays so until reset or closed by hand."""


class BulkheadFullError(RejectedError):
    """Every concurrency slot was busy and none freed up within the wait."""


class RateLimitedError(RejectedError):
    """The rate limiter had no token for this call within the wait."""


class ThrottledLocallyError(RejectedError):
    """Adaptive throttling dropped the call on the client, without asking the server."""


class RetryExhaustedError(ResilienceError):
    """Every attempt failed. ``__cause__`` is the last attempt's error.

    ``attempts`` is how many attempts ran; ``elapsed`` the seconds from the first
    attempt's start to giving up; ``last_result`` the last unwanted result when
    the retry was on a result rather than an exception.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        elapsed: float,
        retry_after: float | None = None,
        policy: str = "",
        last_result: object = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, policy=policy)
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_result = last_result


class DeadlineExceededError(ResilienceError, TimeoutError):
    """The overall deadline passed before the work finished."""


class AttemptTimeoutError(ResilienceError, TimeoutError):
    """A single attempt ran longer than its timeout and was cancelled."""


class ClientError(InterlinkError):
    """An outbound HTTP call failed.

    ``method`` and ``url`` (with secrets in the query and userinfo redacted)
    say which call; ``attempts`` how many attempts were made (1 unless a
    retry ran); ``request_sent`` whether the request may have reached the
    upstream (``False`` only when it certainly did not: a retry of a
    non-idempotent call is safe then); ``retryable`` whether trying again can
    help (``Retry`` never retries an error that says ``False``); ``retry_after``
    the upstream's hint in seconds, or ``None``; ``committed`` whether a
    streamed body had started (then nothing retries it, whatever the method).
    """

    retryable: bool = True
    request_sent: bool = True
    committed: bool = False

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.retry_after = retry_after
        self.attempts = attempts


class HttpStatusError(ClientError):
    """The upstream answered with an error status.

    ``status``; ``body_excerpt``, the start of the body (capped, decoded
    leniently); ``request_id``, the upstream's id for the request when it sent
    one back (``X-Request-Id`` and the like); ``headers``, the response headers.
    ``retryable`` is true for 408, 429, 500, 502, 503 and 504: the answers where
    trying again may help.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        url: str = "",
        body_excerpt: str = "",
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            message, method=method, url=url, retry_after=retry_after, attempts=attempts
        )
        self.status = status
        self.body_excerpt = body_excerpt
        self.request_id = request_id
        self.headers = headers or {}
        self.retryable = retryable


class ClientTimeoutError(ClientError, TimeoutError):
    """No complete answer arrived in time (connect, headers or body)."""


class ConnectError(ClientError):
    """The connection could not be made (refused, DNS, TLS): the request never left."""

    request_sent = False


class ConnectionLostError(ClientError):
    """The connection broke after the request was sent (reset, truncated body)."""


class ResponseValidationError(ClientError):
    """The response body did not match ``response_model``.

    ``errors`` lists each problem as ``(dotted field path, what was expected,
    what was found)``; the message names the first ones.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        errors: list[tuple[str, str, str]],
        method: str = "",
        url: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message, method=method, url=url, attempts=attempts)
        self.errors = errors


class MessagingError(InterlinkError):
    """A broker or worker operation failed. ``queue`` names the queue, or ``""``."""

    def __init__(self, message: str, *, queue: str = "") -> None:
        super().__init__(message)
        self.queue = queue


class PublishError(MessagingError):
    """A publish did not become durable, so it must not be treated as sent.

    ``reason`` is one of ``"nack"`` (the broker refused it), ``"timeout"`` (no
    confirmation in time), ``"unroutable"`` (no queue took it),
    ``"disconnected"`` (no connection within the wait) or ``"refused"`` (the
    storage rejected the write). ``message_id`` is the id the message carried.
    """

    def __init__(self, message: str, *, queue: str = "", message_id: str = "", reason: str) -> None:
        super().__init__(message, queue=queue)
        self.message_id = message_id
        self.reason = reason


class DeliveryError(MessagingError):
    """Settling a delivery (ack, retry, dead-letter) could not be confirmed.

    The message stays unacknowledged, so the broker delivers it again: nothing
    is lost, at the price of a possible duplicate. ``message_id`` names it.
    """

    def __init__(self, message: str, *, queue: str = "", message_id: str = "") -> None:
        super().__init__(message, queue=queue)
        self.message_id = message_id


class DeadLetterNotFoundError(MessagingError, KeyError):
    """No dead letter has this id (it was replayed, purged, or never existed)."""

    def __init__(self, dead_letter_id: str, *, queue: str = "") -> None:
        super().__init__(f"no dead letter with id {dead_letter_id!r}", queue=queue)
        self.dead_letter_id = dead_letter_id

    def __str__(self) -> str:  # KeyError would quote the message again
        return str(self.args[0])


class WebhookError(InterlinkError):
    """A webhook could not be received (see ``SignatureError``)."""


class SignatureError(WebhookError):
    """A webhook failed verification; ``reason`` says how, ``scheme`` names the scheme.

    ``reason`` is one of ``"missing_header"`` (a header the scheme needs is
    absent), ``"malformed_header"`` (present but not in the scheme's shape),
    ``"timestamp_out_of_tolerance"`` (too old or too far in the future),
    ``"no_matching_signature"`` (no signature matches any secret) or
    ``"bad_secret"`` (a configured secret cannot be used by this scheme). The
    message never contains a secret or a computed signature.
    """

    def __init__(self, message: str, *, reason: str, scheme: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.scheme = scheme


class MappingError(ConfigError):
    """A transform mapping cannot be loaded: the message names the file, line and key.

    ``source`` is the file name (or ``"<dict>"``/``"<string>"``), ``line`` the
    1-based line in it when known, ``key`` the dotted key that is wrong
    (``fields.status.convert``).
    """

    def __init__(
        self, message: str, *, source: str = "", line: int | None = None, key: str = ""
    ) -> None:
        where = source if line is None else f"{source}:{line}"
        parts = [part for part in (where, key) if part]
        super().__init__(": ".join([*parts, message]))
        self.source = source
        self.line = line
        self.key = key
        self.detail = message


class TransformError(InterlinkError, ValueError):
    """A record could not be transformed; permanent: the same record fails the same way again.

    ``path`` is the dotted path of the target field (``customer.email``,
    ``lines[2].quantity``; ``""`` for the record as a whole), ``reason`` what
    was wrong, ``value`` a short excerpt of the offending value (``""`` when
    there is none), ``transformer`` the name of the mapping or transformer.
    """

    def __init__(self, path: str, reason: str, value: str = "", *, transformer: str = "") -> None:
        shown = f" (got {value})" if value else ""
        super().__init__(f"{path or '(record)'}: {reason}{shown}")
        self.path = path
        self.reason = reason
        self.value = value
        self.transformer = transformer
