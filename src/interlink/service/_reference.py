"""The config file described from its models: the JSON Schema for editors, the Markdown reference.

Both come from ``_config.py`` alone, so neither can drift from what the
loader accepts. ``json_schema()`` is pydantic's schema of ``ServiceConfig``,
widened where the loader is wider than the models: any string may be written
``{secret_file: PATH}``, and a number or boolean may be a ``${VAR}`` string.
``reference()`` is the table of every section and key that
docs/configuration.md carries between its ``GENERATED`` markers;
``python -m interlink.service._reference [docs/configuration.md]`` rewrites
that part of the file (``--check`` exits 1 when it is out of date instead).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from interlink.service._config import ServiceConfig

__all__ = ["BEGIN", "END", "json_schema", "reference", "update_document"]

BEGIN = "<!-- BEGIN GENERATED: python -m interlink.service._reference -->"
END = "<!-- END GENERATED -->"

_SCALARS = {"integer", "number", "boolean"}
_LITERAL_MARKUP = re.compile(r"``([^`]+)``")


# -- JSON Schema --------------------------------------------------------------------------
def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``interlink.yaml``, as editors take it."""
    schema = ServiceConfig.model_json_schema()
    widened = _widen(schema)
    assert isinstance(widened, dict)
    widened["$defs"]["SecretFile"] = {
        "type": "object",
        "description": "The content of a file, its trailing newline stripped.",
        "properties": {"secret_file": {"type": "string", "description": "The file's path."}},
        "required": ["secret_file"],
        "additionalProperties": False,
    }
    widened["$defs"]["Interpolated"] = {
        "type": "string",
        "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
        "description": "${VAR} or ${VAR:-default}, read from the environment.",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **widened,
        "title": "interlink.yaml",
    }


def _widen(node: Any) -> Any:
    """Let each string be a ``{secret_file: PATH}`` and each number or boolean a ``${VAR}``."""
    if isinstance(node, list):
        return [_widen(item) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")  # in a "properties" mapping, "type" may be a key's schema
    if not isinstance(kind, str):
        kind = None
    if kind == "string" and "enum" not in node:
        return {"anyOf": [node, {"$ref": "#/$defs/SecretFile"}]}
    if kind in _SCALARS:
        return {"anyOf": [node, {"$ref": "#/$defs/Interpolated"}]}
    return {
        key: value if key in ("default", "enum") else _widen(value) for key, value in node.items()
    }


# -- Markdown reference -------------------------------------------------------------------
def reference() -> str:
    """Every section and key of the file: type, default and description, as Markdown."""
    out = [
        "| section | what |",
        "|---|---|",
    ]
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, info in ServiceConfig.model_fields.items():
        model, named = _section_model(info.annotation)
        title = f"{name}.<name>" if named else name
        out.append(f"| [`{name}:`](#{_anchor(title)}) | {_summary(model)} |")
        sections.append((title, model))
    for title, model in sections:
        out.extend(_model_tables(title, model))
    return "\n".join(out) + "\n"


def _section_model(annotation: Any) -> tuple[type[BaseModel], bool]:
    """The model of a top-level section, and whether the section maps names to it."""
    if typing.get_origin(annotation) is dict:
        model = typing.get_args(annotation)[1]
        assert issubclass(model, BaseModel)
        return model, True
    assert isinstance(annotation, type)
    assert issubclass(annotation, BaseModel)
    return annotation, False


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading ``title:`` written as code."""
    return re.sub(r"[^a-z0-9_\- ]", "", f"{title}:".lower()).replace(" ", "-")


def _summary(model: type[BaseModel]) -> str:
    """The model's docstring without its ``key:`` prefix: what the section is for."""
    doc = _text((model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "))
    return re.sub(r"^(One of )?`[^`]+`: ", "", doc)


def _text(text: str) -> str:
    return _LITERAL_MARKUP.sub(r"`\1`", text).replace("|", "\\|").replace("<", "&lt;")


def _model_tables(title: str, model: type[BaseModel]) -> list[str]:
    out = ["", f"## `{title}:`", "", _text(" ".join((model.__doc__ or "").split())), ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        inner = _unwrap(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            nested.append((f"{title}.{name}", inner))
            kind = f"mapping ([below](#{_anchor(f'{title}.{name}')}))"
        else:
            kind = _type_name(info.annotation)
        out.append(f"| `{name}` | {kind} | {_default(info)} | {_text(info.description or '')} |")
    for sub_title, sub_model in nested:
        out.extend(_model_tables(sub_title, sub_model))
    return out


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_duration(annotation: Any) -> bool:
    return set(typing.get_args(_unwrap(annotation))) == {str, float}


def _type_name(annotation: Any) -> str:
    if _is_duration(annotation):
        return "duration"
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(_type_name(member) for member in members)
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        value = typing.get_args(annotation)[1]
        return "mapping" if value is Any else f"mapping of {_type_name(value)}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        if isinstance(made, BaseModel):
            return "its defaults"
        return f"`{made!r}`" if made else ("`{}`" if isinstance(made, dict) else "`[]`")
    value = info.default
    if isinstance(value, BaseModel):
        return "its defaults"
    if value is PydanticUndefined:
        return "**required**"
    if value is None:
        return "unset"
    if _is_duration(info.annotation) and isinstance(value, int | float):
        return f"`{_duration_text(float(value))}`"
    return f"`{value}`"


def _duration_text(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


# -- the document -------------------------------------------------------------------------
def update_document(text: str) -> str:
    """``text`` (docs/configuration.md) with the part between the markers regenerated."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n\n{reference()}\n{text[end:]}"


def main(argv: list[str]) -> int:
    """Rewrite the document's generated part (``--check``: only compare); 1 when out of date."""
    paths = [arg for arg in argv if arg != "--check"] or ["docs/configuration.md"]
    document = Path(paths[0])
    text = document.read_text(encoding="utf-8")
    updated = update_document(text)
    if updated == text:
        return 0
    if "--check" in argv:
        print(f"{document} is out of date: run python -m interlink.service._reference")
        return 1
    document.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
