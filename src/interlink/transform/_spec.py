"""A mapping's specification, read from a dict or YAML and checked before anything runs.

Every mistake a user can make in a mapping file is found here, at load time,
and named with the file, the line and the dotted key: an unknown key or
converter (with a "did you mean"), a bad JMESPath expression, a template
placeholder that cannot be filled, settings that contradict each other. What
comes out is a tree of ``FieldSpec`` with the steps already built, ready for
``_compile`` to turn into code.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.parser

from interlink.core.errors import ConfigError
from interlink.transform._clean import KEY_CASES, make_cleaner
from interlink.transform._convert import make_converter
from interlink.transform._errors import MappingError
from interlink.transform._yaml import Located, line_of

__all__ = ["MISSING", "DocumentSpec", "FieldSpec", "Placeholder", "parse_document"]

Step = Callable[[Any], Any]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Marks a setting that was not given (``None`` is a value a user may mean)."""

DOCUMENT_KEYS = ("name", "output", "fields", "description")
FIELD_KEYS = (
    "source",
    "const",
    "template",
    "convert",
    "clean",
    "map",
    "default",
    "required",
    "fields",
    "items",
    "keys",
    "values",
    "description",
)
_STEPS = ("convert", "clean", "map", "template")
_FUNCTIONS = frozenset(jmespath.functions.Functions().FUNCTION_TABLE)


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{...}`` of a template: ``expr`` is ``None`` for ``{value}``."""

    text: str
    expr: Any  # a parsed JMESPath AST node (dict), or None for the field's own value
    compiled: Any  # jmespath.parser.ParsedResult, or None
    conversion: str | None
    spec: str


@dataclass(slots=True)
class FieldSpec:
    """One target field: where its value comes from and what happens to it."""

    name: str
    key: str  # dotted key in the document, for messages: fields.customer.fields.name
    line: int | None
    source: str | None = None  # a JMESPath expression; None: const or template only
    ast: Any = None
    compiled: Any = None
    const: Any = MISSING
    steps: list[tuple[str, Step]] = field(default_factory=list)  # (label, step), in order
    map_values: dict[Any, Any] | None = None
    map_default: Any = MISSING
    template: list[str | Placeholder] | None = None
    default: Any = MISSING
    required: bool = True
    fields: list[FieldSpec] | None = None
    items: FieldSpec | None = None
    keys_case: Callable[[str], str] | None = None
    keys_allow: frozenset[str] | None = None
    values: FieldSpec | None = None
    is_dict: bool = False


@dataclass(slots=True)
class DocumentSpec:
    """A whole mapping: its name, its output model (dotted, resolved later) and its fields."""

    source: str
    name: str | None
    output: str | None
    output_line: int | None
    fields: list[FieldSpec]


class _Reader:
    """Reads one document, raising ``MappingError`` with the place of each mistake."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, key: str, line: int | None) -> MappingError:
        return MappingError(message, source=self.source, line=line, key=key)

    def unknown_keys(
        self, raw: Mapping[Any, Any], known: tuple[str, ...], key: str, what: str
    ) -> None:
        for name in raw:
            if name in known:
                continue
            hint = ""
            if isinstance(name, str):
                close = difflib.get_close_matches(name, known, n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            raise self.fail(
                f"unknown key {name!r} in {what}{hint}; the keys are: {', '.join(known)}",
                f"{key}.{name}" if key else str(name),
                line_of(raw, name),
            )

    # -- the document --------------------------------------------------------------
    def document(self, raw: object) -> DocumentSpec:
        if not isinstance(raw, Mapping):
            raise self.fail(
                f"a mapping is a mapping with a 'fields' key, not {type(raw).__name__}",
                "",
                line_of(raw),
            )
        self.unknown_keys(raw, DOCUMENT_KEYS, "", "a mapping")
        name = raw.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise self.fail(
                f"expected a non-empty string, found {name!r}", "name", line_of(raw, "name")
            )
        output = raw.get("output")
        if output is not None and (not isinstance(output, str) or ":" not in output):
            raise self.fail(
                f"expected 'module:Model' (a pydantic model), found {output!r}",
                "output",
                line_of(raw, "output"),
            )
        if "fields" not in raw:
            raise self.fail("a mapping needs 'fields'", "fields", line_of(raw))
        fields = self.fields(raw["fields"], "fields", line_of(raw, "fields"))
        return DocumentSpec(self.source, name, output, line_of(raw, "output"), fields)

    def fields(self, raw: object, key: str, line: int | None) -> list[FieldSpec]:
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(
                f"expected a mapping of target field names to their specs, found {raw!r}",
                key,
                line,
            )
        out = []
        for name, spec in raw.items():
            if not isinstance(name, str) or not name:
                raise self.fail(
                    f"a target field name is a non-empty string, found {name!r}",
                    f"{key}.{name}",
                    line_of(raw, name),
                )
            out.append(self.field(name, spec, f"{key}.{name}", line_of(raw, name), name))
        return out

    # -- one field -------------------------------------------------------------------
    def field(
        self, name: str, raw: object, key: str, line: int | None, default_source: str
    ) -> FieldSpec:
        if raw is None:
            raw = {}
        elif isinstance(raw, str):  # the short form: just the source expression
            raw = {"source": raw}
        if not isinstance(raw, Mapping):
            raise self.fail(
                f"a field is a mapping of settings (or a source expression), found {raw!r}",
                key,
                line,
            )
        self.unknown_keys(raw, FIELD_KEYS, key, "a field")
        if line is None:
            line = line_of(raw)
        spec = FieldSpec(name=name, key=key, line=line)
        given = set(raw)
        self.conflicts(given, key, raw)

        if "const" in raw:
            spec.const = raw["const"]
        elif "source" in raw:
            spec.source = self.expression(raw["source"], f"{key}.source", line_of(raw, "source"))
        elif "template" not in raw:
            spec.source = default_source
        if spec.source is not None:
            spec.ast, spec.compiled = self.parse_expression(
                spec.source, f"{key}.source", line_of(raw, "source")
            )

        if "convert" in raw:
            spec.steps += self.steps(raw["convert"], f"{key}.convert", raw, "convert")
        if "clean" in raw:
            spec.steps += self.steps(raw["clean"], f"{key}.clean", raw, "clean")
        if "map" in raw:
            self.value_map(spec, raw["map"], f"{key}.map", line_of(raw, "map"))
        if "template" in raw:
            spec.template = self.template(
                raw["template"], f"{key}.template", line_of(raw, "template"), spec
            )
        if "default" in raw:
            spec.default = raw["default"]
        if "required" in raw:
            required = raw["required"]
            if not isinstance(required, bool):
                raise self.fail(
                    f"expected true or false, found {required!r}",
                    f"{key}.required",
                    line_of(raw, "required"),
                )
            if required and "default" in raw:
                raise self.fail(
                    "a field with a default is never missing: drop 'required: true' or the default",
                    f"{key}.required",
                    line_of(raw, "required"),
                )
            spec.required = required

        if "fields" in raw:
            spec.fields = self.fields(raw["fields"], f"{key}.fields", line_of(raw, "fields"))
        if "items" in raw:
            spec.items = self.field(name, raw["items"], f"{key}.items", line_of(raw, "items"), "@")
        if "keys" in raw or "values" in raw:
            spec.is_dict = True
            if "keys" in raw:
                self.keys(spec, raw["keys"], f"{key}.keys", line_of(raw, "keys"))
            if "values" in raw:
                spec.values = self.field(
                    name, raw["values"], f"{key}.values", line_of(raw, "values"), "@"
                )
        return spec

    def conflicts(self, given: set[Any], key: str, raw: Mapping[Any, Any]) -> None:
        def clash(a: str, b: str, why: str) -> MappingError:
            return self.fail(
                f"'{a}' and '{b}' cannot be used together: {why}", f"{key}.{b}", line_of(raw, b)
            )

        if "const" in given:
            for other in ("source", "template"):
                if other in given:
                    raise clash("const", other, "a constant has no source")
        shapes = [s for s in ("fields", "items") if s in given]
        if "keys" in given or "values" in given:
            shapes.append("keys" if "keys" in given else "values")
        if len(shapes) > 1:
            raise clash(shapes[0], shapes[1], "a field is an object, a list or a free-form mapping")
        if shapes:
            for step in (*_STEPS, "const"):
                if step in given:
                    where = "inside 'items'" if shapes[0] == "items" else "on the inner fields"
                    if shapes[0] in ("keys", "values"):
                        where = "inside 'values'"
                    raise clash(shapes[0], step, f"put '{step}' {where}")
        if "template" in given and "source" not in given:
            for step in ("convert", "clean", "map"):
                if step in given:
                    raise clash(
                        "template", step, "a field without a source has no value to convert"
                    )

    # -- parts of a field -----------------------------------------------------------------
    def expression(self, raw: object, key: str, line: int | None) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(f"expected a JMESPath expression (a string), found {raw!r}", key, line)
        return raw

    def parse_expression(self, text: str, key: str, line: int | None) -> tuple[Any, Any]:
        try:
            compiled = jmespath.compile(text)
        except jmespath.exceptions.JMESPathError as exc:
            detail = str(exc).replace("\n", " ")
            raise self.fail(f"not a valid JMESPath expression: {detail}", key, line) from None
        self.check_functions(compiled.parsed, key, line)
        return compiled.parsed, compiled

    def check_functions(self, node: Any, key: str, line: int | None) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "function_expression" and node.get("value") not in _FUNCTIONS:
            unknown = node.get("value")
            close = difflib.get_close_matches(str(unknown), sorted(_FUNCTIONS), n=1)
            hint = f" (did you mean {close[0]}()?)" if close else ""
            raise self.fail(f"unknown JMESPath function {unknown}(){hint}", key, line)
        for child in node.get("children", ()):
            self.check_functions(child, key, line)

    def steps(
        self, raw: object, key: str, owner: Mapping[Any, Any], kind: str
    ) -> list[tuple[str, Step]]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.fail("expected at least one step", key, line_of(owner, kind))
        make = make_converter if kind == "convert" else make_cleaner
        out = []
        for index, item in enumerate(items):
            where = f"{key}[{index}]" if isinstance(raw, list) else key
            line = line_of(item) or line_of(owner, kind)
            options: dict[str, Any] | None
            if isinstance(item, str):
                name, options = item, None
            elif isinstance(item, Mapping) and len(item) == 1:
                name, value = next(iter(item.items()))
                if value is None:
                    options = None
                elif isinstance(value, Mapping):
                    options = dict(value)
                else:
                    options = {"value": value}
            else:
                raise self.fail(
                    f"a step is a name or a mapping of one name to its options, found {item!r}",
                    where,
                    line,
                )
            if not isinstance(name, str):
                raise self.fail(f"a step name is a string, found {name!r}", where, line)
            try:
                out.append((name, make(name, options)))
            except ConfigError as exc:
                raise self.fail(str(exc), where, line) from None
        return out

    def value_map(self, spec: FieldSpec, raw: object, key: str, line: int | None) -> None:
        if not isinstance(raw, Mapping) or "values" not in raw:
            raise self.fail(
                "expected {values: {from: to, ...}, default: ...} (default optional)", key, line
            )
        self.unknown_keys(raw, ("values", "default"), key, "a value map")
        values = raw["values"]
        if not isinstance(values, Mapping) or not values:
            raise self.fail(
                f"expected a mapping of values to their replacements, found {values!r}",
                f"{key}.values",
                line_of(raw, "values"),
            )
        table = dict(values)
        if isinstance(values, Located):  # `yes:` was meant as the string "yes" too
            for resolved, text in values.texts.items():
                if isinstance(resolved, bool) or resolved is None:
                    table.setdefault(text, values[resolved])
        spec.map_values = table
        if "default" in raw:
            spec.map_default = raw["default"]

    def template(
        self, raw: object, key: str, line: int | None, spec: FieldSpec
    ) -> list[str | Placeholder]:
        if not isinstance(raw, str):
            raise self.fail(f"expected a string such as 'ext_{{id}}', found {raw!r}", key, line)
        parts: list[str | Placeholder] = []
        try:
            parsed = list(string.Formatter().parse(raw))
        except ValueError as exc:
            raise self.fail(f"not a valid template: {exc}", key, line) from None
        for literal, name, spec_text, conversion in parsed:
            if literal:
                parts.append(literal)
            if name is None:
                continue
            if not name.strip():
                raise self.fail(
                    "an empty {} in a template: name what goes there, e.g. {value} or {id}",
                    key,
                    line,
                )
            if spec_text and "{" in spec_text:
                raise self.fail("nested {} in a template's format spec", key, line)
            if conversion not in (None, "s", "r", "a"):
                raise self.fail(f"unknown conversion !{conversion}", key, line)
            if name == "value":
                if spec.source is None and spec.const is MISSING:
                    raise self.fail(
                        "{value} is the field's own value, but the field has no source", key, line
                    )
                parts.append(Placeholder(name, None, None, conversion, spec_text or ""))
            else:
                ast, compiled = self.parse_expression(name, key, line)
                parts.append(Placeholder(name, ast, compiled, conversion, spec_text or ""))
        if not any(isinstance(part, Placeholder) for part in parts):
            raise self.fail(
                "a template without a placeholder is a constant: use 'const'", key, line
            )
        return parts

    def keys(self, spec: FieldSpec, raw: object, key: str, line: int | None) -> None:
        if not isinstance(raw, Mapping):
            raise self.fail(
                "expected {case: camel|snake|pascal|kebab|none, allow: [key, ...]}", key, line
            )
        self.unknown_keys(raw, ("case", "allow"), key, "'keys'")
        if "case" in raw:
            case = raw["case"]
            if case not in KEY_CASES:
                close = difflib.get_close_matches(str(case), list(KEY_CASES), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(
                    f"unknown key case {case!r}{hint}; choose from {', '.join(KEY_CASES)}",
                    f"{key}.case",
                    line_of(raw, "case"),
                )
            spec.keys_case = None if case == "none" else KEY_CASES[case]
        if "allow" in raw:
            allow = raw["allow"]
            if not isinstance(allow, list) or not all(isinstance(k, str) for k in allow):
                raise self.fail(
                    f"expected a list of key names, found {allow!r}",
                    f"{key}.allow",
                    line_of(raw, "allow"),
                )
            spec.keys_allow = frozenset(allow)


def parse_document(raw: object, source: str) -> DocumentSpec:
    """Check a whole mapping document and build its field specs (``MappingError`` if wrong)."""
    return _Reader(source).document(raw)
