"""A lean OpenTelemetry tracer provider: the API's spans, recorded cheaply, exported by the SDK's exporters.

``configure_tracing`` sets this provider up for the service. It implements
the OpenTelemetry *API* (``TracerProvider``, ``Tracer``, ``Span``), so every
span made in the process (interlink's own, and any instrumentation library's)
goes through it and joins the same traces, and it hands finished spans to the
SDK's exporters (OTLP, console, in-memory, or one of the application's own) as
the SDK's ``ReadableSpan``.

Why by hand: the SDK's span costs too much for the webhook ingest path.
Measured with callgrind on the receiver (docs/performance.md, "Tracing and
metrics on ingest"): a webhook costs 246k instructions untraced and 691k with
the SDK's two spans (the SERVER span and the ``publish`` PRODUCER span), that
is 86 us of server CPU per webhook on this machine against a budget of 11 us
(ingest keeping 85 % of its requests/s, issue 8). Most of it is the SDK's
mutable span: four locks, a ``BoundedAttributes`` that validates every
attribute as it is set, and at ``end`` a copy into the ``ReadableSpan`` the
processors get. No lighter implementation of the API exists for Python, so
this one records what a span needs in plain slots and a dict and does the
rest when, and only if, an exporter reads the span:

- ids, sampling (a new trace kept by trace-id ratio as the SDK's
  ``TraceIdRatioBased`` decides; a span with a parent follows it, unless the
  provider is not ``parent_based``), the ``SpanContext`` (made on first
  ``get_span_context``), status and exception events follow the SDK's rules;
- a finished, sampled span is appended to a bounded queue; a daemon thread
  hands batches to the exporter every ``OTEL_BSP_SCHEDULE_DELAY`` ms or when
  a batch is full (the SDK's ``BatchSpanProcessor`` defaults and variables),
  and ``force_flush``/``shutdown`` export what is left;
- an ended span *is* the ``ReadableSpan`` the exporter gets (its fields kept
  in the SDK's layout); the export thread completes it first: its
  ``SpanContext``, and attributes set through the API bounded and validated
  by the API's ``BoundedAttributes`` with the SDK's ``SpanLimits`` (interlink's
  own, plain by construction, are not checked again), not on the request path.

What it does not do: span processors other than the one batcher, tracer
configurators, or the SDK's self-metrics. An application that needs those sets
its own SDK ``TracerProvider`` before the service starts; interlink then uses
that one (``configure_tracing`` keeps a provider set earlier).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import random
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from types import TracebackType
from typing import Any, Final, cast, overload

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

from interlink.observability._tracing import (
    EMPTY_STATE,
    SPAN_KEY,
    SharedAttributes,
    get_context,
    register_lean,
    write_traceparent,
)

__all__ = ["LeanTracerProvider"]

_log = logging.getLogger("interlink.observability")

_getrandbits = random.getrandbits
_object_new = object.__new__
# Reusing finished spans needs to know that nothing refers to one any more: CPython's
# reference counts say so exactly; elsewhere no span is reused.
_getrefcount = getattr(sys, "getrefcount", None)
_time_ns = time.time_ns
_get_current_span = trace_api.get_current_span
# What the SDK's span processors set around an export, so that the exporter's own HTTP
# calls are not traced (an instrumented HTTP client would otherwise trace every export).
_SUPPRESS: Final = getattr(context_api, "_SUPPRESS_INSTRUMENTATION_KEY", None)
_Span = trace_api.Span

_SAMPLED: Final = TraceFlags.SAMPLED
_RANDOM: Final = TraceFlags.RANDOM_TRACE_ID
_LOWER_64: Final = (1 << 64) - 1
_UNSET: Final = Status(StatusCode.UNSET)
_INTERNAL: Final = SpanKind.INTERNAL
_KEYS: Final = frozenset({str})
_PLAIN: Final = frozenset({str, int, float, bool})  # attribute values that need no validation


def _plain(attributes: Mapping[str, Any]) -> bool:
    """Every value a str, int, float or bool: nothing to copy or check when set."""
    return _PLAIN.issuperset(map(type, attributes.values()))


_TRACE_FLAGS: Final = tuple(TraceFlags(flags) for flags in range(256))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        _log.warning("%s=%r is not an integer; using %d", name, raw, default)
        return default
    if value <= 0:
        _log.warning("%s=%r is not positive; using %d", name, raw, default)
        return default
    return value


# The fields the SDK's ReadableSpan keeps what its constructor is given in (its properties read
# them). LeanSpan keeps its own record in exactly those fields, so an ended LeanSpan *is* the
# ReadableSpan an exporter gets (the SDK's own span class does the same), instead of a copy
# built per span. ``_layout_matches`` checks it against the installed SDK at import; if a
# release ever keeps them otherwise, each span is copied into a ReadableSpan built with the
# public constructor instead (``LeanSpan.readable``).
_LAYOUT: Final = {
    "name": "_name",
    "context": "_context",
    "parent": "_parent",
    "resource": "_resource",
    "attributes": "_attributes",
    "events": "_events",
    "links": "_links",
    "kind": "_kind",
    "instrumentation_info": "_instrumentation_info",
    "status": "_status",
    "start_time": "_start_time",
    "end_time": "_end_time",
    "instrumentation_scope": "_instrumentation_scope",
}


def _layout_matches() -> bool:
    given: dict[str, Any] = {
        "name": "probe",
        "context": SpanContext(1, 2, False),
        "parent": SpanContext(1, 3, True),
        "resource": Resource.create({}),
        "attributes": {"a": 1},
        "events": (),
        "links": (),
        "kind": SpanKind.CLIENT,
        "instrumentation_info": None,
        "status": Status(StatusCode.OK),
        "start_time": 1,
        "end_time": 2,
        "instrumentation_scope": InstrumentationScope("probe"),
    }
    try:
        probe = ReadableSpan(**given)
        stored = vars(probe)
    except Exception:  # pragma: no cover - an SDK whose constructor differs
        return False
    return set(stored) == set(_LAYOUT.values()) and all(
        stored[field] is given[name] for name, field in _LAYOUT.items()
    )


_SHARED_LAYOUT: Final = _layout_matches()


def _tuple_context_matches() -> bool:
    """Whether ``SpanContext`` is still the tuple subclass whose fields ``_span_context`` fills.

    ``SpanContext.__new__`` checks both ids' ranges and builds the tuple
    ``(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)``;
    for ids this module made (or took from a valid parent) the checks cannot
    fail, and building the tuple directly costs a tenth as much (two
    ``SpanContext``s per webhook on the ingest path). Checked against the
    installed API here; if it ever differs, the constructor is used.
    """
    flags = TraceFlags(TraceFlags.SAMPLED)
    state = TraceState([("k", "v")])
    made = SpanContext(3, 4, False, flags, state)
    try:
        built = tuple.__new__(SpanContext, (3, 4, False, flags, state, True))
    except TypeError:  # pragma: no cover - an API whose SpanContext is no tuple
        return False
    return (
        tuple(made) == tuple(built)
        and (made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.trace_state)
        == (built.trace_id, built.span_id, built.is_remote, built.trace_flags, built.trace_state)
        and made.is_valid is built.is_valid is True
    )


_TUPLE_CONTEXT: Final = _tuple_context_matches()
_new_tuple = tuple.__new__


def _span_context(trace_id: int, span_id: int, flags: int, state: TraceState) -> SpanContext:
    """The local ``SpanContext`` of valid ids (``is_remote`` false), without re-checking them."""
    if _TUPLE_CONTEXT:
        return _new_tuple(SpanContext, (trace_id, span_id, False, _TRACE_FLAGS[flags], state, True))
    return SpanContext(trace_id, span_id, False, _TRACE_FLAGS[flags], state)  # pragma: no cover


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span that is also the ``ReadableSpan`` exporters get once it has ended.

    While it runs: ids, flags and trace state in plain fields, attributes in
    a dict, the ``SpanContext`` made on first ``get_span_context``. The
    fields the ``ReadableSpan`` properties read are filled as the SDK's span
    fills them; ``_prepare`` (in the export thread) completes what the
    request path left out: the context, and attributes that need validating.
    Made by ``_LeanTracer._span`` only (a span object may be a finished one
    that nothing referred to any more, reused: see ``_Batcher._recycle``).
    """

    _tracer: _LeanTracer
    _name: str
    trace_id: int
    span_id: int
    flags: int
    trace_state: TraceState
    _parent: SpanContext | None
    _kind: SpanKind
    _attributes: dict[str, Any]  # a BoundedAttributes once _prepare found values to check
    _start_time: int
    _resource: Resource
    _instrumentation_scope: InstrumentationScope

    # What most spans never change: _LeanTracer._span gives every new span these values
    # (on the object, where reading them is cheapest); _Batcher._recycle reuses a span only
    # while _touched says none of events, links, status, dropped attributes and the two
    # exception options changed.
    _context: SpanContext | None
    _events: BoundedList[Event] | tuple[()]
    _links: BoundedList[Link] | tuple[()]
    _status: Status
    _end_time: int | None
    _dropped_attributes: int
    _unchecked: bool  # an attribute came through the API, or was dropped: _prepare checks them
    _record_exception: bool
    _set_status_on_exception: bool
    _touched: bool  # set by each setter of those: the span is never reused (_recycle)
    _instrumentation_info = None  # the SDK's deprecated field: never set

    # -- the API ------------------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            # _span_context, inline: made for every sampled span (here or in the export thread).
            if _TUPLE_CONTEXT:
                context = _new_tuple(
                    SpanContext,
                    (
                        self.trace_id,
                        self.span_id,
                        False,
                        _TRACE_FLAGS[self.flags],
                        self.trace_state,
                        True,
                    ),
                )
            else:  # pragma: no cover - see _tuple_context_matches
                context = SpanContext(
                    self.trace_id, self.span_id, False, _TRACE_FLAGS[self.flags], self.trace_state
                )
            self._context = context
        return context

    def start_child(
        self, tracer: trace_api.Tracer, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> LeanSpan | None:
        """A child of this recording span, started now, without the tracer's general path.

        What ``start_span`` with this span's context would make (same trace,
        flags and state; a parent that records is sampled), for callers that
        hold the parent already (the ``publish`` span on the ingest path).
        ``tracer`` is the child's (its instrumentation scope). ``attributes``
        becomes the child's own: pass a fresh dict. ``None`` once this span
        has ended or when ``tracer`` is not a lean one (the caller then takes
        the general path).
        """
        if self._end_time is not None or type(tracer) is not _LeanTracer:
            return None
        span_id = _getrandbits(64) or 1  # never 0 (invalid): one chance in 2**64
        return tracer._span(
            name,
            self.trace_id,
            span_id,
            self.flags,
            self.trace_state,
            self.get_span_context(),
            kind,
            attributes,
            _time_ns(),
        )

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            self._after_end("set_attribute")
            return
        if not key or not isinstance(key, str):
            # What the SDK's span does with it: dropped (with its warning) and counted.
            _log.warning("invalid key `%s`. must be non-empty string.", key)
            self._dropped_attributes += 1
            self._unchecked = self._touched = True
            return
        if type(value) not in _PLAIN:
            self._unchecked = True  # validated in the export thread
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                value = tuple(value)  # the value as it is now, as the SDK keeps it
        attributes = self._attributes
        if type(attributes) is SharedAttributes:  # shared with other spans: this span's own copy
            attributes = self._attributes = dict(attributes)
        if key in attributes:
            del attributes[key]  # set again: now the newest, as in the SDK
        elif len(attributes) >= self._tracer.limits_attributes:
            self._dropped_attributes += 1
            self._unchecked = self._touched = True
            if not attributes:  # a limit of 0
                return
            del attributes[next(iter(attributes))]  # full: the oldest goes, as in the SDK
        attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            self._after_end("set_attributes")
            return
        mine = self._attributes
        if type(mine) is SharedAttributes:  # shared with other spans: this span's own copy
            mine = self._attributes = dict(mine)
        if (
            len(mine) + len(attributes) <= self._tracer.limits_attributes
            and _plain(attributes)
            and "" not in attributes
            and _KEYS.issuperset(map(type, attributes))
        ):
            mine.update(attributes)  # plain values under valid keys: nothing to check later
            return
        for key, value in attributes.items():
            if key and not isinstance(key, str):
                # The SDK's set_attributes keeps such a key as str(key) (its set_attribute drops it).
                _log.warning("Invalid type %s for attribute key %r, must be a str.", type(key), key)
                key = str(key)
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is not None:
            self._after_end("add_event")
            return
        events = self._events
        if type(events) is tuple:  # the span's first event: its list
            made: BoundedList[Event] = BoundedList(self._tracer.limits.max_events)
            # Again, after that call: another thread may have made one meanwhile (and with no
            # call from this check to the store, no thread can come in between, as in end).
            events = self._events
            if type(events) is tuple:
                events = self._events = made
            self._touched = True
        limits = self._tracer.limits
        cast("BoundedList[Event]", events).append(
            Event(
                name,
                BoundedAttributes(
                    limits.max_event_attributes,
                    attributes,
                    immutable=True,
                    max_value_len=limits.max_attribute_length,
                ),
                _time_ns() if timestamp is None else timestamp,
            )
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None:
            self._after_end("add_link")
            return
        link = self._tracer.link(context, attributes)
        if link is not None:
            links = self._links
            if type(links) is tuple:  # the span's first link: its list (as in add_event)
                made: BoundedList[Link] = BoundedList(self._tracer.limits.max_links)
                links = self._links
                if type(links) is tuple:
                    links = self._links = made
                self._touched = True
            cast("BoundedList[Link]", links).append(link)

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            self._after_end("update_name")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None:
            self._after_end("set_status")
            return
        # The SDK's rules: OK is final, UNSET is ignored, a description only with a code.
        if self._status.status_code is StatusCode.OK:
            return
        new: Status
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            new = status
        elif status is StatusCode.UNSET:
            return
        else:
            new = Status(status, description)
        # OK stays final when two threads set a status at once (the SDK's lock ensures it):
        # stored only if the status is still the one just read, with no call from that check
        # to the store; else read again.
        while True:
            current = self._status
            if current.status_code is StatusCode.OK:
                return
            if self._status is current:
                self._status = new
                self._touched = True
                return

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        recorded: dict[str, types.AnyValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def finish(self, attributes: Mapping[str, str | int | float | bool]) -> None:
        """``set_attributes(attributes)`` then ``end()``, in one call (the ingest path's).

        Only for interlink's own attributes: non-empty ``str`` keys and plain
        values, by the caller's construction (they are not checked again).
        """
        mine = self._attributes
        if self._end_time is None and len(mine) + len(attributes) <= self._tracer.limits_attributes:
            mine.update(attributes)  # (never a SharedAttributes: they refuse it)
            self.end()
            return
        self.set_attributes(attributes)
        self.end()

    def finish_shared(
        self, final: SharedAttributes, attributes: Mapping[str, str | int | float | bool]
    ) -> None:
        """End with ``final`` as the attributes: those shared ones it has, and ``attributes``.

        For a span whose attributes are still the ``SharedAttributes`` it was
        started with (the caller checked): the webhook SERVER span's end
        (``end_webhook``), without a dict per span. Past the attribute limit,
        what ``finish(attributes)`` does.
        """
        if self._end_time is None and len(final) <= self._tracer.limits_attributes:
            self._attributes = final
            self.end()
            return
        self.finish(attributes)

    def end(self, end_time: int | None = None) -> None:
        # The time first: with no call between the check and the store, two threads ending
        # the span at once cannot both pass the check (CPython, holding its GIL, switches
        # threads only at calls and backward jumps), so the span is queued once, as the
        # SDK's lock ensures.
        now = _time_ns() if end_time is None else end_time
        if self._end_time is not None:
            _log.warning("Calling end() on an ended span.")
            return
        self._end_time = now
        batcher = self._tracer.batcher
        queue = batcher.queue
        if len(queue) < batcher._room:  # no batch full yet, nothing to drop: the usual case
            queue.append(self)
        else:
            batcher.on_end(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self._end_time is None:
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def __repr__(self) -> str:
        return (
            f'LeanSpan(name="{self._name}", trace_id=0x{self.trace_id:032x},'
            f" span_id=0x{self.span_id:016x})"
        )

    def _after_end(self, what: str) -> None:
        _log.warning("Tried to %s on an ended span (%s).", what, self._name)

    # -- export ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Complete the ``ReadableSpan`` fields (export thread): context, checked attributes.

        ``_Batcher._export`` runs the same two steps inline.
        """
        if self._context is None:
            self.get_span_context()
        if self._unchecked or self._tracer.truncating:
            self._check_attributes()

    def _check_attributes(self) -> None:
        limits = self._tracer.limits
        attributes = self._attributes
        if (
            self._dropped_attributes
            or limits.max_span_attribute_length is not None
            or not _plain(attributes)
            or "" in attributes
            or not _KEYS.issuperset(map(type, attributes))
        ) and not isinstance(attributes, BoundedAttributes):
            # Validated (sequences checked, bad values dropped with the SDK's warning),
            # truncated and counted as the SDK does; plain values need none of it.
            bounded = BoundedAttributes(
                limits.max_span_attributes,
                attributes,
                immutable=True,
                max_value_len=limits.max_span_attribute_length,
            )
            bounded.dropped += self._dropped_attributes
            self._attributes = bounded  # type: ignore[assignment]

    def readable(self) -> ReadableSpan:
        """A ``ReadableSpan`` copy of this ended span, built with the public constructor."""
        self._prepare()
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._resource,
            attributes=self._attributes,
            events=tuple(self._events),
            links=tuple(self._links),
            kind=self._kind,
            status=self._status,
            start_time=self._start_time,
            end_time=self._end_time,
            instrumentation_scope=self._instrumentation_scope,
        )


_non_recording_init = NonRecordingSpan.__init__  # without super()'s proxy object per span


class UnsampledSpan(NonRecordingSpan):
    """What the lean tracer starts in a trace it does not sample: the API's ``NonRecordingSpan``.

    With the ids, flags and state at hand as plain fields, so that the
    webhook receiver writes its unsampled publish's ``traceparent``
    (``write_child``) without going through the ``SpanContext``'s properties
    or the traced publish: an unsampled webhook (nine in ten at a sampling
    ratio of 0.1) then costs less than a sampled one.
    """

    def __init__(self, trace_id: int, span_id: int, flags: int, trace_state: TraceState) -> None:
        _non_recording_init(self, _span_context(trace_id, span_id, flags, trace_state))
        self.trace_id = trace_id
        self.flags = flags
        self.trace_state = trace_state

    def write_child(self, headers: MutableMapping[str, str]) -> None:
        """Write the ``traceparent`` (and ``tracestate``) of an unsampled child into ``headers``.

        A new span id, this trace's id, flags and state: what the global
        propagator writes for the ``NonRecordingSpan`` a tracer makes as this
        span's child (parent-based sampling follows this span's decision).
        """
        span_id = _getrandbits(64) or 1  # never 0 (invalid): one chance in 2**64
        write_traceparent(headers, self.trace_id, span_id, self.flags, self.trace_state)


class _Readable(Sequence[ReadableSpan]):
    """A batch handed to an exporter: each ``ReadableSpan`` is built when it is read."""

    __slots__ = ("_spans",)

    def __init__(self, spans: list[LeanSpan]) -> None:
        self._spans = spans

    def __len__(self) -> int:
        return len(self._spans)

    @overload
    def __getitem__(self, index: int) -> ReadableSpan: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ReadableSpan]: ...

    def __getitem__(self, index: int | slice) -> ReadableSpan | Sequence[ReadableSpan]:
        if isinstance(index, slice):
            return [span.readable() for span in self._spans[index]]
        return self._spans[index].readable()

    def __iter__(self) -> Iterator[ReadableSpan]:
        for span in self._spans:
            yield span.readable()


# What refers to a batch in _recycle when nothing else does (_drain's ``batch``, _recycle's
# ``spans``, getrefcount's argument), and to a span of it (the list, the loop, the argument).
_BATCH_REFERENCES: Final = 3
_SPAN_REFERENCES: Final = 3
_HELD_REFERENCES: Final = _SPAN_REFERENCES + 1  # in _copy_if_held: and its own argument


def _copy_if_held(span: LeanSpan) -> None:
    """Give an ended span that something else still refers to a copy of its attributes.

    The export thread's, for a span whose attributes are a plain dict. Why:
    the API asks a span to be safe for concurrent use, and a thread may set an
    attribute just as another ends the span, past the check that it still
    runs. Its dict changing under the exporter would make the export fail and
    the whole batch be lost; the SDK's span takes a lock per span against it.
    A dict copies at once for other threads, so the exporter reads one that
    holds still, and the late change goes to the old dict, not exported, as
    the SDK would refuse it. A span nothing else refers to (the ingest path's)
    is not copied. Without reference counts (not CPython), every span is.
    """
    if (
        _getrefcount is None  # pragma: no cover - CPython has reference counts
        # The batch's list, the loop's variable, this call's argument and getrefcount's own.
        or _getrefcount(span) > _HELD_REFERENCES
        or weakref.getweakrefcount(span)
    ):
        span._attributes = span._attributes.copy()


class _Batcher:
    """Finished spans to the exporter: a bounded queue, batches, one daemon thread.

    ``batch=False`` exports each span as it ends, in the ending thread (what
    the SDK's ``SimpleSpanProcessor`` does): for tests and the console.
    """

    def __init__(self, exporter: SpanExporter, *, batch: bool, truncating: bool) -> None:
        self.exporter = exporter
        self.batch = batch
        # Values are cut to a length (SpanLimits): every span's attributes are checked.
        self.truncating = truncating
        self.schedule_delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.max_queue = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.batch_size = min(_env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self.max_queue)
        # Full: the oldest span gives way, as in the SDK's BatchSpanProcessor.
        self.queue: collections.deque[LeanSpan] = collections.deque(maxlen=self.max_queue)
        # Exported spans nothing else refers to, for the tracers to reuse (_recycle).
        self.reusable: collections.deque[LeanSpan] = collections.deque(maxlen=self.max_queue)
        self._start_lock = threading.Lock()
        self.dropped = 0
        # Spans handed to the exporter, by its answer (failed: FAILURE, or it raised). Written
        # under _export_lock only.
        self.exported = 0
        self.failed = 0
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._woken = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # LeanSpan.end appends without further ado while the queue is shorter than this: -1 (never)
        # until the thread runs, after shutdown, and without batching.
        self._room = -1
        forked = weakref.WeakMethod(self._forked)  # no reference kept from the fork hook
        os.register_at_fork(after_in_child=lambda: (hook := forked()) is not None and hook())

    def on_end(self, span: LeanSpan) -> None:
        """A span ended (``LeanSpan.end`` appends it itself while the queue has ``_room``)."""
        if self._closed:
            return
        if not self.batch:
            with self._export_lock:
                self._export([span])
            return
        queue = self.queue
        if len(queue) >= self.max_queue:  # the append below pushes the oldest out
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                _log.warning(
                    "tracing: the span queue is full (%d); %d spans dropped so far"
                    " (OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY)",
                    self.max_queue,
                    self.dropped,
                )
        queue.append(span)
        if self._thread is None:
            self._start()
        if len(queue) >= self.batch_size and not self._woken:
            # Once: until the thread runs, later spans must not pay for Event.set's lock again.
            self._woken = True
            self._wake.set()

    def _forked(self) -> None:
        # Threads and locks do not survive a fork: the child starts afresh with its first span.
        self._room = -1
        self._thread = None
        self._export_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._woken = False
        self.queue.clear()  # the parent's spans: the parent exports them
        self.reusable.clear()

    def _start(self) -> None:
        with self._start_lock:  # two threads ending the first spans at once start one thread
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="interlink-span-export", daemon=True)
            thread.start()
            self._thread = thread
            if not self._closed:  # shutdown sets _closed under this lock
                # Appending keeps the queue below a full batch: no wake-up or drop to note.
                # (Below the queue's bound by a margin too, for threads that pass the check
                # in LeanSpan.end at once: the deque drops without counting past its bound.)
                self._room = min(self.batch_size, self.max_queue - 16) - 1

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.schedule_delay)
            self._wake.clear()
            self._woken = False
            self._drain(until_empty=False)

    def _drain(self, *, until_empty: bool, deadline: float | None = None) -> bool:
        """Export batches; all of them when ``until_empty``, else while a full batch waits."""
        queue = self.queue
        while queue:
            if deadline is not None and time.monotonic() > deadline:
                return False
            with self._export_lock:
                popleft = queue.popleft
                batch = [popleft() for _ in range(min(len(queue), self.batch_size))]
                if batch:
                    self._export(batch)
                    if _SHARED_LAYOUT and _getrefcount is not None:
                        self._recycle(batch)
            if not until_empty and len(queue) < self.batch_size:
                break
        return True

    def _export(self, spans: list[LeanSpan]) -> None:
        token = (
            None
            if _SUPPRESS is None
            else context_api.attach(context_api.set_value(_SUPPRESS, True))
        )
        try:
            if _SHARED_LAYOUT:
                truncating = self.truncating
                for span in spans:  # LeanSpan._prepare, inline
                    if type(span._attributes) is dict:
                        _copy_if_held(span)
                    if span._context is None:
                        span.get_span_context()
                    if span._unchecked or truncating:
                        span._check_attributes()
                result = self.exporter.export(spans)
            else:  # an SDK that keeps a ReadableSpan's fields otherwise
                for span in spans:
                    if type(span._attributes) is dict:
                        _copy_if_held(span)
                result = self.exporter.export(_Readable(spans))
        except Exception:
            self.failed += len(spans)
            _log.exception("tracing: the exporter failed; %d spans lost", len(spans))
        else:
            # An exporter answering FAILURE has logged why (the SDK's do) and the SDK's
            # processor does nothing more; counted here, so that the metrics show the loss.
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        finally:
            if token is not None:
                context_api.detach(token)

    def _recycle(self, spans: list[LeanSpan]) -> None:
        """Keep the exported spans nothing else refers to, for ``_LeanTracer._span`` to reuse.

        Why: a webhook's two spans, made and freed per request, cost an
        allocation each, and freed by the batch (512 at once, in this thread)
        they made the collector run about three times as often on the ingest
        path (its count of new objects drops by each one freed only down to
        zero). A reused span is an old object the young collections skip.
        Reused only when nothing can tell: no reference but this batch's
        (the exporter kept neither the list nor the span, nor did the
        application), no weak reference, and nothing set beyond the fields
        ``_span`` sets again (``_touched``: no events, links, status, dropped
        attributes, exception options).
        """
        refcount = _getrefcount
        if refcount(spans) != _BATCH_REFERENCES:  # type: ignore[misc]
            return
        keep = self.reusable.append
        weakrefs = weakref.getweakrefcount
        for span in spans:
            if (
                refcount(span) == _SPAN_REFERENCES  # type: ignore[misc]
                and not span._touched
                and not weakrefs(span)
            ):
                if span._unchecked:  # its attributes were checked for this export
                    span._unchecked = False
                keep(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._closed:
            return False
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._drain(until_empty=True, deadline=deadline):
            return False
        # The thread may be exporting a batch it took before: done once the lock is free.
        if not self._export_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        self._export_lock.release()
        return True

    def shutdown(self) -> None:
        if self._closed:
            return
        with self._start_lock:  # not between _start's check of _closed and its _room
            self._room = -1  # first: an end from now on takes the path that sees _closed
            self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=self.schedule_delay + 30)
        self._drain(until_empty=True)
        self.exporter.shutdown()


class _LeanTracer(trace_api.Tracer):
    def __init__(self, provider: LeanTracerProvider, scope: InstrumentationScope) -> None:
        self.provider = provider
        self.scope = scope
        self.resource = provider.resource
        self.batcher = provider.batcher
        self._reuse = provider.batcher.reusable.pop
        self.limits = provider.limits
        limit = provider.limits.max_span_attributes  # None: no limit (SpanLimits.UNSET)
        self.limits_attributes = sys.maxsize if limit is None else limit
        self.truncating = provider.batcher.truncating  # the provider's limits cut values

    def link(self, context: SpanContext, attributes: types.Attributes) -> Link | None:
        """A link as the SDK keeps it (attributes bounded), or ``None`` for one it leaves out."""
        if not context or not (context.is_valid or attributes or context.trace_state):
            return None
        limits = self.limits
        return Link(
            context,
            BoundedAttributes(
                limits.max_link_attributes,
                attributes,
                immutable=True,
                max_value_len=limits.max_attribute_length,
            ),
        )

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        if SPAN_KEY is None:  # pragma: no cover - see _tracing._find_span_key
            current: object = _get_current_span(context)
        else:
            current = (context if context is not None else get_context()).get(SPAN_KEY)
        recorded: dict[str, Any] = {}
        if attributes and len(attributes) <= self.limits_attributes and _plain(attributes):
            recorded = dict(attributes)
        span = self._start(
            name, current, kind, recorded, _time_ns() if start_time is None else start_time
        )
        if type(span) is not LeanSpan:
            return span  # not sampled
        if attributes:
            span._unchecked = True  # the keys: checked in the export thread
            if not recorded:  # more than the limit: the SDK keeps the last ones
                for key, value in attributes.items():
                    span.set_attribute(key, value)
        if links:
            kept = [self.link(link.context, link.attributes) for link in links if link]
            span._links = BoundedList.from_seq(
                self.limits.max_links, [link for link in kept if link is not None]
            )
            span._touched = True
        if not record_exception:
            span._record_exception = False
            span._touched = True
        if not set_status_on_exception:
            span._set_status_on_exception = False
            span._touched = True
        return span

    def _start(
        self,
        name: str,
        current: object,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> trace_api.Span:
        """A span whose parent is ``current`` (the context's span, if any): sampled, or not.

        ``start_webhook`` calls it directly for the ingest path's SERVER span
        when the request brought a ``traceparent`` or the context holds
        something (else ``start_root``), with ``attributes`` it made itself: a
        ``SharedAttributes`` (copied by the span before any change), plain
        values under non-empty ``str`` keys, within the attribute limit (not
        checked again). Without a valid parent: ``start_root``.
        """
        trace_state = EMPTY_STATE
        parent: SpanContext | None
        if type(current) is LeanSpan:  # the usual case: a child of one of ours, in process
            trace_id = current.trace_id
            parent_flags = current.flags
            parent = current.get_span_context()
            trace_state = current.trace_state
            sampled = parent_flags & _SAMPLED
            flags = parent_flags & (_SAMPLED | _RANDOM)
        else:
            remote = (
                None
                if current is None or not isinstance(current, _Span)
                else current.get_span_context()
            )
            if remote is not None and remote.is_valid:
                trace_id = remote.trace_id
                parent_flags = remote.trace_flags
                parent = remote
                if remote.trace_state:  # else the shared empty one, which _inject recognises
                    trace_state = remote.trace_state
                provider = self.provider
                if provider.parent_based:
                    sampled = parent_flags & _SAMPLED
                    flags = parent_flags & (_SAMPLED | _RANDOM)
                else:  # the trace id decides, as for a new trace, whatever the parent's flag
                    sampled = (trace_id & _LOWER_64) < provider.bound
                    flags = (parent_flags & _RANDOM) | (_SAMPLED if sampled else 0)
            else:
                return self.start_root(name, kind, attributes, start_time)
        span_id = _getrandbits(64) or 1  # never 0 (invalid): one chance in 2**64
        if not sampled:
            return UnsampledSpan(trace_id, span_id, flags, trace_state)
        return self._span(
            name, trace_id, span_id, flags, trace_state, parent, kind, attributes, start_time
        )

    def start_root(
        self, name: str, kind: SpanKind, attributes: dict[str, Any], start_time: int
    ) -> trace_api.Span:
        """A span that starts a new trace: kept by the trace id's ratio (a ``LeanSpan``), or not.

        ``_start`` for a span without a valid parent, and ``start_webhook``
        directly for the SERVER span of a webhook that brought no
        ``traceparent`` (the ingest path). ``attributes`` as for ``_start``.
        """
        trace_id = _getrandbits(128) or 1  # never 0 (invalid): one chance in 2**128
        span_id = _getrandbits(64) or 1  # never 0 (invalid): one chance in 2**64
        if (trace_id & _LOWER_64) < self.provider.bound:
            return self._span(
                name,
                trace_id,
                span_id,
                _RANDOM | _SAMPLED,
                EMPTY_STATE,
                None,
                kind,
                attributes,
                start_time,
            )
        return UnsampledSpan(trace_id, span_id, _RANDOM, EMPTY_STATE)

    def _span(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        flags: int,
        trace_state: TraceState,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> LeanSpan:
        """A recording span: a finished one nothing refers to any more, reused, or a new one."""
        try:
            span = self._reuse()
        except IndexError:  # none to reuse (a new high of spans in flight)
            span = _object_new(LeanSpan)
            span._events = ()
            span._links = ()
            span._status = _UNSET
            span._dropped_attributes = 0
            span._unchecked = False
            span._record_exception = True
            span._set_status_on_exception = True
            span._touched = False
        span._context = None
        span._end_time = None
        span._tracer = self
        span._name = name
        span.trace_id = trace_id
        span.span_id = span_id
        span.flags = flags
        span.trace_state = trace_state
        span._parent = parent
        span._kind = kind
        span._attributes = attributes
        span._start_time = start_time
        span._resource = self.resource
        span._instrumentation_scope = self.scope
        return span

    @contextlib.contextmanager  # the API's own decorator is private; this one is equivalent
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace_api.TracerProvider):
    """The service's tracer provider (see the module's docstring).

    ``sampling_ratio`` keeps that share of new traces. With ``parent_based``
    (the default: the SDK's ``ParentBased(TraceIdRatioBased(ratio))``) a span
    with a parent follows the parent's sampled flag; without it (the SDK's
    ``TraceIdRatioBased``, ``ALWAYS_ON``, ``ALWAYS_OFF``) the trace id decides
    for every span, so a remote parent's flag is overruled. A local parent was
    decided the same way, by the same trace id, so only a parent from another
    process (an incoming or a message's ``traceparent``) can differ.
    ``batch=False`` exports each span as it ends. ``shutdown`` (also run at
    exit) exports what is queued and shuts the exporter down.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        resource: Resource | None = None,
        sampling_ratio: float = 1.0,
        parent_based: bool = True,
        batch: bool = True,
        limits: SpanLimits | None = None,
    ) -> None:
        if not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"sampling_ratio must be within [0, 1], got {sampling_ratio}")
        self.resource = resource if resource is not None else Resource.create({})
        self.sampling_ratio = sampling_ratio
        self.parent_based = parent_based
        # What the SDK's TraceIdRatioBased keeps: the trace id's lower 64 bits below the bound.
        self.bound = round(sampling_ratio * (_LOWER_64 + 1))
        self.limits = limits if limits is not None else SpanLimits()
        self.batcher = _Batcher(
            exporter, batch=batch, truncating=self.limits.max_span_attribute_length is not None
        )
        self._tracers: dict[tuple[str, str | None, str | None], _LeanTracer] = {}
        self._lock = threading.Lock()
        atexit.register(self.shutdown)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        with self._lock:
            tracer = self._tracers.get(key)
            if tracer is None or attributes:
                scope = InstrumentationScope(
                    instrumenting_module_name or "",
                    instrumenting_library_version,
                    schema_url,
                    attributes,
                )
                tracer = _LeanTracer(self, scope)
                if not attributes:
                    self._tracers[key] = tracer
        return tracer

    @property
    def dropped_spans(self) -> int:
        """Spans dropped because the export queue was full."""
        return self.batcher.dropped

    @property
    def exported_spans(self) -> int:
        """Spans the exporter took (it answered ``SUCCESS``)."""
        return self.batcher.exported

    @property
    def failed_spans(self) -> int:
        """Spans lost in export: the exporter answered ``FAILURE`` or raised."""
        return self.batcher.failed

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now; ``False`` when ``timeout_millis`` ran out first."""
        return self.batcher.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is queued, stop the export thread, shut the exporter down (once)."""
        self.batcher.shutdown()
        atexit.unregister(self.shutdown)


register_lean(LeanSpan, _LeanTracer, UnsampledSpan)
