"""Transform external payloads into internal models: declared in YAML or a dict, or as a class.

``Mapping`` is the declarative form (JMESPath sources, converters, cleaners,
value maps, templates, nested objects and lists, free-form keys re-cased),
compiled once into plain Python functions. ``ModelTransformer`` is the
class-based form around pydantic models. Both follow ``Transformer``: one
record in, one out or a ``TransformError`` naming the field; a batch never
stops at a bad record (``BatchResult``).
"""

from interlink.core.errors import MappingError, TransformError
from interlink.transform._clean import CLEANERS, KEY_CASES, make_cleaner
from interlink.transform._convert import CONVERTERS, make_converter
from interlink.transform._mapping import Mapping
from interlink.transform._model import ModelTransformer
from interlink.transform._result import BatchResult, ItemError, Transformer, TransformStats

__all__ = [
    "CLEANERS",
    "CONVERTERS",
    "KEY_CASES",
    "BatchResult",
    "ItemError",
    "Mapping",
    "MappingError",
    "ModelTransformer",
    "TransformError",
    "TransformStats",
    "Transformer",
    "make_cleaner",
    "make_converter",
]
