"""What every transformer shares: the protocol, the batch result, and the counters.

``Transformer`` is the one shape the worker runtime, the CLI and users rely
on: ``transform(item)`` returns the output or raises ``TransformError``;
``transform_batch(items)`` never stops at a bad record and says which ones
failed, where and why. ``Counting`` is the bookkeeping both built-in forms (the
declarative ``Mapping`` and the class-based ``ModelTransformer``) inherit, so
that failures are counted per transformer and per field in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from interlink.transform._errors import TransformError

__all__ = ["BatchResult", "Counting", "ItemError", "TransformStats", "Transformer"]

In_contra = TypeVar("In_contra", contravariant=True)
Out = TypeVar("Out")


@dataclass(frozen=True, slots=True)
class ItemError:
    """One record of a batch that failed: its ``index`` in the input, the dotted ``path`` of
    the field, the ``reason`` and a short excerpt of the offending ``value``."""

    index: int
    path: str
    reason: str
    value: str = ""

    @classmethod
    def of(cls, index: int, error: TransformError) -> ItemError:
        return cls(index, error.path, error.reason, error.value)

    def __str__(self) -> str:
        shown = f" (got {self.value})" if self.value else ""
        return f"record {self.index}: {self.path or '(record)'}: {self.reason}{shown}"


@dataclass(slots=True)
class BatchResult(Generic[Out]):
    """The outcome of a batch: ``ok`` holds ``(input index, output)`` pairs in input order,
    ``errors`` one ``ItemError`` per failed record, also in input order."""

    ok: list[tuple[int, Out]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)

    @property
    def outputs(self) -> list[Out]:
        """The outputs of the records that succeeded, in input order."""
        return [out for _, out in self.ok]

    @property
    def failed(self) -> bool:
        """Whether any record failed."""
        return bool(self.errors)

    def __len__(self) -> int:
        return len(self.ok) + len(self.errors)


@dataclass(frozen=True, slots=True)
class TransformStats:
    """Counters of one transformer since it was built: records ``transformed``, records
    that ``failed``, and the failures per field path (list indexes folded: ``lines[].qty``)."""

    name: str
    transformed: int = 0
    failed: int = 0
    failures_by_field: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Transformer(Protocol[In_contra, Out]):
    """Turns one external record into an internal one.

    ``transform`` raises ``TransformError`` (and nothing else on bad data);
    ``transform_batch`` runs every record and reports each failure instead.
    """

    @property
    def name(self) -> str: ...

    def transform(self, item: In_contra) -> Out: ...

    def transform_batch(self, items: Iterable[In_contra]) -> BatchResult[Out]: ...


def _fold(path: str) -> str:
    """``lines[3].qty`` -> ``lines[].qty``: a bounded set of keys for the counters."""
    if "[" not in path:
        return path
    out: list[str] = []
    skipping = False
    for char in path:
        if char == "[":
            skipping = True
            out.append("[]")
        elif char == "]":
            skipping = False
        elif not skipping:
            out.append(char)
    return "".join(out)


class Counting:
    """Counts records and failures per field for a transformer named ``name``."""

    _MAX_FIELDS = 1000  # a bound on distinct failure paths kept (paths come from the mapping)

    def __init__(self, name: str) -> None:
        self._name = name
        self._transformed = 0
        self._failed = 0
        self._by_field: dict[str, int] = {}

    @property
    def name(self) -> str:
        """The transformer's name (in errors, counters and dead letters)."""
        return self._name

    @property
    def stats(self) -> TransformStats:
        """A snapshot of the counters."""
        return TransformStats(self._name, self._transformed, self._failed, dict(self._by_field))

    def _count_failure(self, error: TransformError) -> None:
        self._failed += 1
        key = _fold(error.path)
        by_field = self._by_field
        if key in by_field or len(by_field) < self._MAX_FIELDS:
            by_field[key] = by_field.get(key, 0) + 1

    def _batch(self, run: Callable[[object], Out], items: Iterable[object]) -> BatchResult[Out]:
        result: BatchResult[Out] = BatchResult()
        ok, errors = result.ok, result.errors
        for index, item in enumerate(items):
            try:
                ok.append((index, run(item)))
            except TransformError as exc:
                errors.append(ItemError.of(index, exc))
        return result
