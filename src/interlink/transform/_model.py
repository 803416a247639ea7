"""``ModelTransformer``: the class-based form, for mappings that are easier to write as code.

Subclass it, name the input and output pydantic models, and write ``map``:
the input is validated before ``map`` sees it, the output after, and any
failure (invalid input, an exception in ``map``, invalid output) becomes one
``TransformError`` with the field's path, counted like a ``Mapping``'s::

    class ChargeToPayment(ModelTransformer[Charge, Payment]):
        input_model = Charge
        output_model = Payment

        def map(self, charge: Charge) -> dict[str, object]:
            return {"id": f"ch_{charge.id}", "amount": charge.amount}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar, cast

import pydantic

from interlink.transform._errors import Invalid, TransformError, excerpt, from_validation
from interlink.transform._result import BatchResult, Counting

__all__ = ["ModelTransformer"]

In = TypeVar("In")
Out = TypeVar("Out")


class ModelTransformer(Counting, ABC, Generic[In, Out]):
    """Validate the input with ``input_model``, ``map`` it, validate with ``output_model``.

    Either model may be ``None`` (no validation on that side). ``name`` defaults
    to the class name. ``map`` may return the output model or anything
    ``output_model`` validates (a dict); it may raise ``TransformError`` itself
    to name a field, and any other exception it raises on bad data becomes a
    ``TransformError`` for the record as a whole.
    """

    input_model: ClassVar[type[pydantic.BaseModel] | None] = None
    output_model: ClassVar[type[pydantic.BaseModel] | None] = None

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or type(self).__name__)

    @abstractmethod
    def map(self, item: In) -> Any:
        """The output for one validated input."""

    def transform(self, item: Any) -> Out:
        """Validate, map and validate one record; ``TransformError`` if any step fails."""
        try:
            out = self._transform(item)
        except TransformError as exc:
            exc.transformer = self._name
            self._count_failure(exc)
            raise
        self._transformed += 1
        return out

    def _transform(self, item: Any) -> Out:
        model_in, model_out = self.input_model, self.output_model
        if model_in is not None and not isinstance(item, model_in):
            try:
                item = model_in.model_validate(item)
            except pydantic.ValidationError as exc:
                raise from_validation(exc, "input") from exc
        try:
            out = self.map(cast(In, item))
        except TransformError:
            raise
        except Invalid as exc:  # one of interlink's steps (make_converter) refused a value
            raise TransformError("", exc.reason, excerpt(exc.value)) from None
        except Exception as exc:  # bad data met by user code: this record fails, not the batch
            raise TransformError("", f"{type(exc).__name__}: {exc}") from exc
        if model_out is not None and not isinstance(out, model_out):
            try:
                out = model_out.model_validate(out)
            except pydantic.ValidationError as exc:
                raise from_validation(exc, "output") from exc
        return cast(Out, out)

    def transform_batch(self, items: Iterable[Any]) -> BatchResult[Out]:
        """Transform every record; the failures are in ``errors``, the rest in ``ok``."""
        return self._batch(self.transform, items)
