"""``Pipeline``: the resilience policies of one dependency, composed in one fixed order.

Outside in (the first wraps all the others)::

    fallback > deadline > retry > hedge > throttle > breaker > bulkhead > rate_limiter > timeout > call

The order is the one Microsoft's standard HTTP resilience handler (Polly v8)
and gRPC A6 converge on, with interlink's extra parts slotted where each
one's decision belongs:

- ``fallback`` outermost: it replaces the final failure, whatever produced it
  (``RetryExhaustedError``, a rejection, a deadline);
- ``deadline`` around every attempt and every backoff sleep (gRPC: "the
  deadline spans all attempts"); the retry and the hedge read it to stop early;
- ``retry`` outside everything per attempt, so each attempt is throttled,
  counted by the breaker, admitted by the bulkhead and limiter, and timed out;
- ``hedge`` inside retry: one retry attempt may race a few hedged copies;
- ``throttle`` (adaptive, SRE book) before the breaker: it drops locally with
  a probability while the breaker is still closed;
- ``breaker`` outside the bulkhead and limiter, so an open circuit rejects
  without taking a slot or a token, and inside retry so it sees each attempt;
- ``bulkhead`` then ``rate_limiter``: a call waiting for concurrency does not
  hold a token it cannot use yet;
- ``timeout`` innermost: it bounds exactly the protected call, and a timeout
  reaches the breaker as a failure (Polly v8: a hung probe needs a timeout
  inside the breaker).

Composition costs no per-call closure: ``__init__`` lists the bound ``call``
methods once, and a call is ``chain[0](chain[1], ..., chain[-1], fn, *args)``
so that each policy's ``fn`` is the next policy's ``call``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, ParamSpec, TypeVar

from interlink.core.clock import Clock
from interlink.core.durations import parse_duration
from interlink.core.errors import ConfigError
from interlink.resilience import _validate as check
from interlink.resilience._breaker import CircuitBreaker
from interlink.resilience._budget import RetryBudget
from interlink.resilience._bulkhead import Bulkhead
from interlink.resilience._fallback import Fallback
from interlink.resilience._hedge import Hedge
from interlink.resilience._policy import Policy
from interlink.resilience._rate_limiter import RateLimiter
from interlink.resilience._retry import Retry
from interlink.resilience._throttle import AdaptiveThrottle
from interlink.resilience._timeout import Deadline, Timeout

__all__ = ["Pipeline"]

P = ParamSpec("P")
T = TypeVar("T")

ORDER = (
    "fallback",
    "deadline",
    "retry",
    "hedge",
    "throttle",
    "breaker",
    "bulkhead",
    "rate_limiter",
    "timeout",
)
"""The pipeline's parts, outside in."""

# from_dict: config key -> (Pipeline argument, policy class).
_SECTIONS: dict[str, tuple[str, type[Policy]]] = {
    "fallback": ("fallback", Fallback),
    "deadline": ("deadline", Deadline),
    "retry": ("retry", Retry),
    "retry_budget": ("budget", RetryBudget),
    "hedge": ("hedge", Hedge),
    "adaptive_throttle": ("throttle", AdaptiveThrottle),
    "circuit_breaker": ("breaker", CircuitBreaker),
    "bulkhead": ("bulkhead", Bulkhead),
    "rate_limit": ("rate_limiter", RateLimiter),
    "timeout": ("timeout", Timeout),
}
# Which constructor arguments are durations (config strings like "250ms").
# Their names are checked against the signatures by the tests, so they cannot drift.
_DURATIONS: dict[type[Policy], frozenset[str]] = {
    Deadline: frozenset({"seconds"}),
    Timeout: frozenset({"seconds"}),
    Retry: frozenset({"initial_delay", "max_delay", "max_retry_after"}),
    RetryBudget: frozenset({"ttl"}),
    Hedge: frozenset({"delay"}),
    AdaptiveThrottle: frozenset({"window"}),
    CircuitBreaker: frozenset(
        {"slow_call_duration", "open_for", "max_open_for", "max_wait_in_half_open"}
    ),
    Bulkhead: frozenset({"max_wait"}),
    RateLimiter: frozenset({"max_wait"}),
}
_SCALARS = (bool, int, float, str, type(None))


class Pipeline(Policy):
    """Compose resilience policies around a call in the documented order (see the module).

    Every part is optional (``None``); an empty pipeline just awaits the call.
    ``deadline`` and ``timeout`` also take seconds (a float), and then build a
    ``Deadline``/``Timeout`` named ``"<name>.deadline"``/``"<name>.timeout"``
    on the pipeline's clock.

    ``budget`` (a ``RetryBudget``) is handed to ``retry`` and ``hedge`` when
    they have none. The pipeline never changes a policy you pass in (it may be
    shared with other pipelines): it uses a copy that carries the budget, so
    ``pipeline.retry`` is then not the object you passed; the copy shares the
    original's event hub, so listeners still see its events. A ``retry`` or
    ``hedge`` that already has a different budget is a ``ConfigError``.
    Without a ``retry``, a hedge's budget sits in the chain at the retry's
    place to record one request per call (a hedge only spends).

    Attributes: each part by name (``pipeline.breaker``...), ``budget``,
    ``policies`` (the parts present, outside in), ``config`` (see ``from_dict``)
    and the class attribute ``order`` (the part names, outside in).
    """

    kind = "pipeline"
    order: ClassVar[tuple[str, ...]] = ORDER
    __slots__ = (
        "_head",
        "_rest",
        "breaker",
        "budget",
        "bulkhead",
        "config",
        "deadline",
        "fallback",
        "hedge",
        "policies",
        "rate_limiter",
        "retry",
        "throttle",
        "timeout",
    )

    def __init__(
        self,
        *,
        fallback: Fallback | None = None,
        deadline: Deadline | float | None = None,
        retry: Retry | None = None,
        budget: RetryBudget | None = None,
        hedge: Hedge | None = None,
        throttle: AdaptiveThrottle | None = None,
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: Timeout | float | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        part = functools.partial(check.instance_or_none, "Pipeline")
        self.fallback: Fallback | None = part("fallback", fallback, Fallback)
        self.deadline: Deadline | None = self._seconds_part("deadline", deadline, Deadline)
        self.budget: RetryBudget | None = part("budget", budget, RetryBudget)
        if budget is not None and retry is None and hedge is None:
            check.fail(
                "Pipeline",
                "budget",
                "given with a retry or a hedge to spend it (alone it limits nothing)",
                budget,
            )
        self.retry: Retry | None = _with_budget("retry", part("retry", retry, Retry), budget)
        self.hedge: Hedge | None = _with_budget("hedge", part("hedge", hedge, Hedge), budget)
        self.throttle: AdaptiveThrottle | None = part("throttle", throttle, AdaptiveThrottle)
        self.breaker: CircuitBreaker | None = part("breaker", breaker, CircuitBreaker)
        self.bulkhead: Bulkhead | None = part("bulkhead", bulkhead, Bulkhead)
        self.rate_limiter: RateLimiter | None = part("rate_limiter", rate_limiter, RateLimiter)
        self.timeout: Timeout | None = self._seconds_part("timeout", timeout, Timeout)
        self.config: dict[str, Any] | None = None
        at_retry: Policy | None = self.retry
        if at_retry is None and self.hedge is not None:
            at_retry = self.hedge.budget
        parts = (
            self.fallback,
            self.deadline,
            at_retry,
            self.hedge,
            self.throttle,
            self.breaker,
            self.bulkhead,
            self.rate_limiter,
            self.timeout,
        )
        self.policies: tuple[Policy, ...] = tuple(p for p in parts if p is not None)
        chain = [policy.call for policy in self.policies]
        self._head: Callable[..., Awaitable[Any]] | None = chain[0] if chain else None
        self._rest: tuple[Callable[..., Awaitable[Any]], ...] = tuple(chain[1:])

    def _seconds_part(
        self, what: str, value: Deadline | Timeout | float | None, kind: type[Deadline | Timeout]
    ) -> Any:
        if value is None or isinstance(value, kind):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            check.fail("Pipeline", what, f"a {kind.__name__}, a number of seconds or None", value)
        try:
            return kind(value, name=f"{self.name}.{what}", clock=self.clock)
        except ConfigError as exc:
            raise ConfigError(f"Pipeline {what}: {exc}") from None

    def call(  # a plain def returning the coroutine: one frame less
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]:
        """``await pipeline.call(fn, ...)`` runs ``fn`` through every part, outside in.

        A plain method that returns the outermost part's coroutine, rather
        than a coroutine of its own: every frame in an await chain is passed
        through again on each resume of the call, so one level fewer is
        measurable under concurrency (docs/performance.md).
        """
        head = self._head
        if head is None:
            return _awaited(fn(*args, **kwargs))
        # No typing.cast: it is a Python call on every request; the head policy's
        # ``call`` returns exactly this coroutine.
        return head(*self._rest, fn, *args, **kwargs)  # type: ignore[return-value]

    def replace(self, **parts: Any) -> Pipeline:
        """A new pipeline with the same parts (shared, not copied), but for those given.

        ``pipeline.replace(rate_limiter=limiter)``; a part given as ``None`` is
        dropped. The name, clock and ``config`` carry over.
        """
        unknown = sorted(set(parts) - set(ORDER) - {"budget"})
        if unknown:
            check.fail(
                "Pipeline.replace",
                unknown[0],
                f"one of {', '.join(ORDER)}, budget",
                parts[unknown[0]],
            )
        current: dict[str, Any] = {name: getattr(self, name) for name in (*ORDER, "budget")}
        current.update(parts)
        replaced = Pipeline(**current, name=self.name, clock=self.clock)
        replaced.config = self.config
        return replaced

    @classmethod
    def from_dict(
        cls, mapping: Mapping[str, Any], *, name: str | None = None, clock: Clock | None = None
    ) -> Pipeline:
        """Build a pipeline from config shaped like ``interlink.yaml``'s client section.

        Keys: ``timeout``, ``deadline`` (a duration, or a mapping of the
        constructor's arguments), ``retry``, ``retry_budget``,
        ``circuit_breaker``, ``bulkhead``, ``rate_limit``, ``hedge``,
        ``adaptive_throttle`` (mappings of the constructors' arguments) and
        ``fallback`` (the value to answer with). Durations are strings with
        units (``"250ms"``, ``"30s"``) or numbers of seconds; a breaker's
        ``window`` is a count of calls, or a duration with ``window_type:
        time``. Arguments that take Python objects (predicates, stores, a
        ``random.Random``) cannot come from config. Parts are named
        ``"<name>.<key>"``. An unknown key or a wrong value is a
        ``ConfigError`` naming the dotted key and what was expected.
        ``pipeline.config`` keeps the mapping with durations in seconds:
        ``from_dict(pipeline.config)`` builds the same pipeline again.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"pipeline config must be a mapping, got {mapping!r}")
        kwargs: dict[str, Any] = {}
        config: dict[str, Any] = {}
        for key, value in mapping.items():
            section = _SECTIONS.get(key)
            if section is None:
                raise ConfigError(_unknown(str(key), _SECTIONS, "a pipeline part"))
            argument, kind = section
            part_name = key if name is None else f"{name}.{key}"
            if kind is Fallback:
                kwargs[argument] = Fallback(value, name=part_name, clock=clock)
                config[key] = value
                continue
            settings = _settings(key, kind, value)
            try:
                kwargs[argument] = kind(**settings, name=part_name, clock=clock)
            except ConfigError as exc:
                raise ConfigError(f"{_blame(key, settings, str(exc))}: {exc}") from None
            config[key] = settings
        pipeline = cls(**kwargs, name=name, clock=clock)
        pipeline.config = config
        return pipeline

    def __repr__(self) -> str:
        parts = ", ".join(repr(policy) for policy in self.policies)
        return f"Pipeline(name={self.name!r}, policies=[{parts}])"


def _with_budget(what: str, policy: Any, budget: RetryBudget | None) -> Any:
    """``policy`` itself, or a copy of it spending from ``budget`` (the original stays as it was)."""
    if policy is None or budget is None or policy.budget is budget:
        return policy
    if policy.budget is not None:
        raise ConfigError(
            f"Pipeline {what} already has its own budget {policy.budget!r}; pass budget= "
            "to the pipeline or to the policy, not a different one to each"
        )
    if isinstance(policy, Hedge):
        return policy.with_budget(budget)
    twin = copy.copy(policy)  # shares the event hub, settings, clock and random
    twin.budget = budget
    return twin


def _configurable(kind: type[Policy]) -> dict[str, Any]:
    """The constructor arguments of ``kind`` that config can set, with their types.

    Taken from the signature, so a new argument needs no list kept in step:
    those whose type is built only of ``bool``, ``int``, ``float``, ``str``,
    ``None`` and ``Literal`` qualify; ``name`` and ``clock`` never do.
    """
    hints = typing.get_type_hints(kind.__init__)
    found: dict[str, Any] = {}
    for param in inspect.signature(kind.__init__).parameters.values():
        if param.name in ("self", "name", "clock") or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        hint = hints.get(param.name, Any)
        if all(_is_scalar(option) for option in _options(hint)):
            found[param.name] = hint
    return found


def _options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, _UnionType):
        return typing.get_args(hint)
    return (hint,)


_UnionType = type(int | None)


def _is_scalar(option: Any) -> bool:
    return option in _SCALARS or typing.get_origin(option) is typing.Literal


def _settings(key: str, kind: type[Policy], value: Any) -> dict[str, Any]:
    """Check a section's keys and values against ``kind``'s constructor; durations -> seconds."""
    allowed = _configurable(kind)
    if kind in (Deadline, Timeout) and not isinstance(value, Mapping):
        value = {"seconds": value}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key}: expected a mapping of {kind.__name__} settings "
            f"({', '.join(allowed)}), got {value!r}"
        )
    signature = inspect.signature(kind.__init__).parameters
    settings: dict[str, Any] = {}
    for arg, raw in value.items():
        dotted = f"{key}.{arg}"
        if arg not in allowed:
            if arg in signature and arg not in ("self", "name", "clock"):
                raise ConfigError(
                    f"{dotted}: cannot be set from config (it takes a Python object); "
                    f"build {kind.__name__}(...) in code to set it"
                )
            raise ConfigError(_unknown(dotted, allowed, f"a {kind.__name__} setting"))
        if kind is CircuitBreaker and arg == "window" and value.get("window_type") == "time":
            seconds = _value(dotted, raw, float, duration=True)
            if seconds != int(seconds):
                raise ConfigError(f"{dotted}: a time window is whole seconds, got {raw!r}")
            settings[arg] = int(seconds)
        else:
            duration = arg in _DURATIONS.get(kind, ())
            settings[arg] = _value(dotted, raw, allowed[arg], duration=duration)
    return settings


def _value(dotted: str, raw: Any, hint: Any, *, duration: bool) -> Any:
    options = _options(hint)
    if raw is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{dotted}: expected {_describe(options)}, got null")
    if duration:
        try:
            return parse_duration(raw)
        except ConfigError:
            raise ConfigError(
                f"{dotted}: expected a duration like '250ms', '30s' or a number of seconds, "
                f"got {raw!r}"
            ) from None
    for option in options:
        if typing.get_origin(option) is typing.Literal and raw in typing.get_args(option):
            return raw
        if option is bool and isinstance(raw, bool):
            return raw
        if isinstance(raw, bool):
            continue  # YAML's yes/no is no number and no string
        if option is int and isinstance(raw, int):
            return raw
        if option is float and isinstance(raw, int | float):
            return raw
        if option is str and isinstance(raw, str):
            return raw
    literals = [v for o in options if typing.get_origin(o) is typing.Literal for v in o.__args__]
    message = f"{dotted}: expected {_describe(options)}, got {raw!r}"
    close = difflib.get_close_matches(str(raw), [str(v) for v in literals], n=1)
    raise ConfigError(message + (f"; did you mean {close[0]!r}?" if close else ""))


def _describe(options: tuple[Any, ...]) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    said = []
    for option in options:
        if typing.get_origin(option) is typing.Literal:
            said.append("one of " + ", ".join(repr(v) for v in typing.get_args(option)))
        elif option is not type(None):
            said.append(words[option])
    if type(None) in options:
        said.append("null")
    return " or ".join(said)


def _blame(key: str, settings: Mapping[str, Any], message: str) -> str:
    """The dotted key a constructor's ``ConfigError`` is about, when its message names one."""
    named = [arg for arg in settings if f" {arg} " in f" {message} " or f" {arg}:" in message]
    return f"{key}.{named[0]}" if len(named) == 1 else key


def _unknown(key: str, known: Mapping[str, Any], what: str) -> str:
    leaf = key.rsplit(".", 1)[-1]
    message = f"unknown key {key!r}: expected {what}: {', '.join(known)}"
    close = difflib.get_close_matches(leaf, list(known), n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
