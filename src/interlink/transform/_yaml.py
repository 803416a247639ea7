"""A mapping file's YAML: ``interlink.core._yaml`` loading strictly, its errors as ``MappingError``.

The loader keeps where each key was written (``Located``, ``line_of``), so
that a mistake in a mapping names its line; a key written twice stops the load.
"""

from __future__ import annotations

from typing import Any

from interlink.core._yaml import Located, YamlError, line_of
from interlink.core._yaml import load_yaml as _load_yaml
from interlink.transform._errors import MappingError

__all__ = ["Located", "line_of", "load_yaml"]


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse ``text``: mappings come back as ``Located``; any problem is a ``MappingError``."""
    try:
        return _load_yaml(text, strict=True, locate_lists=False)
    except YamlError as exc:
        raise MappingError(exc.message, source=source, line=exc.line) from None
