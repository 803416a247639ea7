"""``Mapping``: a declarative transformer, written as a dict or YAML and compiled once.

Loading checks everything (``_spec``) and generates the code (``_compile``);
``transform`` then runs that code, validates the output model if there is one,
and keeps the counters. A record that cannot be mapped raises
``TransformError`` naming the target field's dotted path; a batch reports
each bad record and goes on.
"""

from __future__ import annotations

import difflib
import importlib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pydantic

from interlink.transform._compile import compile_fields
from interlink.transform._errors import MappingError, TransformError, excerpt, from_validation
from interlink.transform._result import BatchResult, Counting
from interlink.transform._spec import DocumentSpec, FieldSpec, parse_document
from interlink.transform._yaml import load_yaml

__all__ = ["Mapping"]

Out = TypeVar("Out")


def _import_model(dotted: str, spec: DocumentSpec) -> type[pydantic.BaseModel]:
    module_name, _, attr = dotted.partition(":")

    def fail(message: str) -> MappingError:
        return MappingError(message, source=spec.source, line=spec.output_line, key="output")

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"cannot import {module_name!r} ({exc})") from None
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        raise fail(f"{dotted!r} is not a pydantic model")
    return model


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model inside ``Model``, ``Model | None``, ``list[Model]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _check_targets(fields: list[FieldSpec], model: type[pydantic.BaseModel], source: str) -> None:
    """Every target field exists in the output model (by name or alias), nested models too."""
    known: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        known[name] = info.annotation
        if info.alias:
            known[info.alias] = info.annotation
    for spec in fields:
        if spec.name not in known:
            close = difflib.get_close_matches(spec.name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MappingError(
                f"unknown target field {spec.name!r}: {model.__name__} has no such field{hint}",
                source=source,
                line=spec.line,
                key=spec.key,
            )
        inner = _model_in(known[spec.name])
        nested = (
            spec.fields
            if spec.fields is not None
            else (spec.items.fields if spec.items is not None else None)
        )
        if inner is not None and nested is not None:
            _check_targets(nested, inner, source)


class Mapping(Counting, Generic[Out]):
    """Maps external records to internal ones, as declared in a dict or a YAML document.

    Build it with ``Mapping.load(path)``, ``Mapping.from_yaml(text)`` or
    ``Mapping.from_dict(spec)``; every mistake in the spec is a ``MappingError``
    naming the file, line and key. ``transform(record)`` returns a dict, or an
    instance of the output model (``output: module:Model`` in the spec, or
    ``output=`` here); ``transform_batch(records)`` maps every record and
    reports each failure. ``source_code`` is the Python it was compiled into.
    """

    def __init__(
        self, spec: DocumentSpec, *, name: str | None = None, output: type[Any] | None = None
    ) -> None:
        label = name or spec.name or Path(spec.source).stem or "mapping"
        super().__init__(label)
        if output is None and spec.output is not None:
            output = _import_model(spec.output, spec)
        if output is not None:
            if not (isinstance(output, type) and issubclass(output, pydantic.BaseModel)):
                raise MappingError(f"output must be a pydantic model class, not {output!r}")
            _check_targets(spec.fields, output, spec.source)
        self.output: type[pydantic.BaseModel] | None = output
        self._map, self.source_code = compile_fields(spec.fields, label)
        self._validate = output.model_validate if output is not None else None

    # -- building ---------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        spec: typing.Mapping[str, Any],
        *,
        name: str | None = None,
        output: type[Any] | None = None,
        source: str = "<dict>",
    ) -> Mapping[Any]:
        """A mapping from a dict shaped like the YAML document (``fields``, ``name``, ``output``)."""
        return cls(parse_document(spec, source), name=name, output=output)

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        name: str | None = None,
        output: type[Any] | None = None,
        source: str = "<string>",
    ) -> Mapping[Any]:
        """A mapping from YAML text; ``source`` names it in error messages."""
        return cls(parse_document(load_yaml(text, source), source), name=name, output=output)

    @classmethod
    def load(
        cls, path: str | Path, *, name: str | None = None, output: type[Any] | None = None
    ) -> Mapping[Any]:
        """A mapping from a YAML file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingError(f"cannot read the mapping: {exc}", source=str(path)) from None
        return cls.from_yaml(text, name=name, output=output, source=str(path))

    # -- running ------------------------------------------------------------------------
    def transform(self, item: Any) -> Out:
        """Map one record; ``TransformError`` names the field that failed and why."""
        try:
            if not isinstance(item, dict):
                raise TransformError("", "expected an object", excerpt(item))
            out: Any = self._map(item)
            if self._validate is not None:
                try:
                    out = self._validate(out)
                except pydantic.ValidationError as exc:
                    raise from_validation(exc, "output") from exc
        except TransformError as exc:
            exc.transformer = self._name
            self._count_failure(exc)
            raise
        self._transformed += 1
        return typing.cast(Out, out)

    def transform_batch(self, items: Iterable[Any]) -> BatchResult[Out]:
        """Map every record; the failures are in ``errors``, the rest in ``ok``, in order."""
        return self._batch(self.transform, items)

    def __repr__(self) -> str:
        output = self.output.__name__ if self.output is not None else "dict"
        return f"<Mapping {self._name!r} -> {output}>"
