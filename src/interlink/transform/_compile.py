"""Compile a checked mapping into Python functions, once, so running it costs what hand code does.

An interpreter walking the spec for every record would pay for every decision
again on every field (is there a default? a value map? which converter?).
Instead each object of the spec becomes one generated function whose body is
the straight-line code a careful person would write: dict ``.get`` chains for
plain paths (JMESPath's own interpreter only for real expressions), the step
functions called directly, a value map as one dict lookup, a template as
string concatenation. ``try`` blocks cost nothing in Python 3.11 until
something is raised, so every field is wrapped in one to learn its path only
when it fails.

Nothing the user wrote is pasted into the generated source: names, keys,
values, literals and compiled expressions are passed in the function's
namespace as constants (``_c3``), and the source holds only identifiers and
integer indexes this module made. ``dataclasses`` and ``attrs`` build their
methods the same way; no library compiles JMESPath-plus-steps mappings, hence
this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interlink.transform._clean import STR_METHODS
from interlink.transform._convert import PASSTHROUGH
from interlink.transform._errors import Invalid, TransformError, excerpt, join_path
from interlink.transform._spec import MISSING, FieldSpec, Placeholder

__all__ = ["compile_fields"]


def _shown(value: object) -> str:
    return "" if value is MISSING else excerpt(value)


def _fail(name: str, error: Invalid) -> TransformError:
    return TransformError(name, error.reason, _shown(error.value))


def _nest(name: str, error: TransformError) -> TransformError:
    return TransformError(join_path(name, error.path), error.reason, error.value)


def _odd(name: str, error: Exception) -> TransformError:
    """An error no step meant to raise (a JMESPath function on the wrong type, say)."""
    return TransformError(name, f"{type(error).__name__}: {error}")


def _each(item: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    index = 0
    try:
        for value in values:
            append(item(value))
            index += 1
    except Invalid as exc:
        raise _fail(f"[{index}]", exc) from None
    except TransformError as exc:
        raise _nest(f"[{index}]", exc) from None
    except Exception as exc:
        raise _odd(f"[{index}]", exc) from exc
    return out


def _entries(
    values: dict[Any, Any],
    allow: frozenset[str] | None,
    case: Callable[[str], str] | None,
    each: Callable[[Any], Any] | None,
) -> dict[Any, Any]:
    """A free-form mapping (metadata): keys filtered and re-cased, each value mapped."""
    out: dict[Any, Any] = {}
    for key, value in values.items():
        if allow is not None and key not in allow:
            continue
        name = key
        if case is not None:
            if not isinstance(key, str):
                raise Invalid("expected text keys", key)
            name = case(key)
            if name in out:
                raise Invalid(f"two keys become {name!r}", key)
        if each is not None:
            try:
                value = each(value)
            except Invalid as exc:
                raise _fail(str(name), exc) from None
            except TransformError as exc:
                raise _nest(str(name), exc) from None
            except Exception as exc:
                raise _odd(str(name), exc) from exc
        out[name] = value
    return out


class _Generator:
    """Writes the functions of one mapping into one namespace."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "Invalid": Invalid,
            "TransformError": TransformError,
            "MISSING": MISSING,
            "_fail": _fail,
            "_nest": _nest,
            "_odd": _odd,
            "_each": _each,
            "_entries": _entries,
        }
        self.source: list[str] = []
        self.count = 0
        self.last_object = ""
        self.hoisted: dict[tuple[tuple[str, Any], ...], str] = {}  # path prefix -> local

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: object) -> str:
        name = self.name("_c")
        self.namespace[name] = value
        return name

    # -- reading a value ------------------------------------------------------------
    @staticmethod
    def chain(ast: Any) -> list[tuple[str, Any]] | None:
        """``a.b[0]`` as ``[("field", "a"), ("field", "b"), ("index", 0)]``; ``None`` if not
        a plain path (then JMESPath's interpreter reads it)."""
        kind = ast.get("type")
        if kind == "current":
            return []
        if kind == "field":
            return [("field", ast["value"])]
        if kind == "index":
            return [("index", ast["value"])]
        if kind in ("subexpression", "index_expression"):
            out: list[tuple[str, Any]] = []
            for child in ast["children"]:
                part = _Generator.chain(child)
                if part is None:
                    return None
                out += part
            return out
        return None

    def step(self, kind: str, value: Any, current: str, dst: str, current_is_dict: bool) -> str:
        """One step of a plain path: JMESPath's answer (``None``) where the step does not apply."""
        if kind == "field":
            key = self.const(value)
            if current_is_dict:
                return f"{dst} = {current}.get({key})"
            return f"{dst} = {current}.get({key}) if isinstance({current}, dict) else None"
        index = int(value)
        size = index + 1 if index >= 0 else -index
        return (
            f"{dst} = {current}[{index}] if isinstance({current}, list) "
            f"and len({current}) >= {size} else None"
        )

    def getter(self, ast: Any, compiled: Any, src: str, dst: str, src_is_dict: bool) -> list[str]:
        steps = self.chain(ast)
        if steps is None:
            return [f"{dst} = {self.const(compiled)}.search({src})"]
        start = 0
        if src == "obj":  # start from the longest prefix this object function computed once
            for length in range(len(steps), 0, -1):
                hoisted = self.hoisted.get(tuple(steps[:length]))
                if hoisted is not None:
                    src, src_is_dict, start = hoisted, False, length
                    break
        if start == len(steps):
            return [f"{dst} = {src}"]
        lines = []
        current = src
        for position in range(start, len(steps)):
            kind, value = steps[position]
            lines.append(self.step(kind, value, current, dst, position == 0 and src_is_dict))
            current = dst
        return lines

    def hoist(self, fields: list[FieldSpec]) -> list[str]:
        """Compute once, at the top of an object function, every path prefix that two or
        more of its fields read (``data.object`` in ``data.object.id``, ``data.object.amount``):
        a hand-written mapping would bind ``o = r["data"]["object"]`` once too."""
        chains: list[list[tuple[str, Any]]] = []
        for spec in fields:
            if spec.const is MISSING and spec.source is not None:
                chains.append(self.chain(spec.ast) or [])
            for part in spec.template or ():
                if isinstance(part, Placeholder) and part.expr is not None:
                    chains.append(self.chain(part.expr) or [])
        counts: dict[tuple[tuple[str, Any], ...], int] = {}
        for chain in chains:
            for length in range(1, len(chain) + 1):
                prefix = tuple(chain[:length])
                counts[prefix] = counts.get(prefix, 0) + 1
        lines = []
        for prefix in sorted((p for p, n in counts.items() if n >= 2), key=len):
            var = self.name("p")
            parent = self.hoisted.get(prefix[:-1], "obj")
            kind, value = prefix[-1]
            lines.append(self.step(kind, value, parent, var, parent == "obj"))
            self.hoisted[prefix] = var
        return lines

    # -- one field's value --------------------------------------------------------------
    def value(self, spec: FieldSpec, src_is_dict: bool) -> list[str]:
        """Lines that leave the field's final value in ``v``, reading from ``obj``."""
        lines: list[str] = []
        if spec.const is not MISSING:
            lines.append(f"v = {self.const(spec.const)}")
        elif spec.source is not None:
            lines += self.getter(spec.ast, spec.compiled, "obj", "v", src_is_dict)
        else:  # a template alone
            return self.template(spec)
        missing = self.missing(spec)
        if spec.fields is not None:
            inner = self.object_function(spec.fields)
            shape = [
                "elif isinstance(v, dict):",
                f"    v = {inner}(v)",
                "else:",
                "    raise Invalid('expected an object', v)",
            ]
        elif spec.items is not None:
            item = self.item_function(spec.items)
            fast = item
            per = spec.items
            if per.fields is not None and per.source == "@" and per.const is MISSING:
                fast = f"{item}_fields"  # straight to the object function
            shape = [
                "elif isinstance(v, list):",
                # The fast path maps every item in a comprehension; only when something
                # fails is the list mapped again, item by item, to learn which one.
                "    try:",
                f"        v = [{fast}(x) for x in v]",
                "    except Exception:",
                f"        v = _each({item}, v)",
                "else:",
                "    raise Invalid('expected a list', v)",
            ]
        elif spec.is_dict:
            each = "None" if spec.values is None else self.item_function(spec.values)
            allow = self.const(spec.keys_allow)
            case = self.const(spec.keys_case)
            shape = [
                "elif isinstance(v, dict):",
                f"    v = _entries(v, {allow}, {case}, {each})",
                "else:",
                "    raise Invalid('expected an object', v)",
            ]
        else:
            body = self.steps(spec)
            shape = ["else:", *(f"    {line}" for line in body)] if body else []
        lines.append("if v is None:")
        lines += [f"    {line}" for line in missing]
        lines += shape
        return lines

    def missing(self, spec: FieldSpec) -> list[str]:
        if spec.default is not MISSING:
            return [f"v = {self.const(spec.default)}"]
        if spec.required:
            return ["raise Invalid('missing', MISSING)"]
        return ["pass"]

    def steps(self, spec: FieldSpec) -> list[str]:
        lines = []
        for _, step in spec.steps:
            call = f"{self.const(step)}(v)"
            kind = PASSTHROUGH.get(step)
            method = STR_METHODS.get(step)
            if kind is not None:  # int on an int: nothing to do, so no call
                lines.append(f"v = v if type(v) is {self.const(kind)} else {call}")
            elif method is not None:  # str.strip on a str, as hand-written code would
                lines.append(f"v = v.{method}() if type(v) is str else {call}")
            else:
                lines.append(f"v = {call}")
        if spec.map_values is not None:
            table = self.const(spec.map_values)
            if spec.map_default is MISSING:
                otherwise = ["raise Invalid('unmapped value', v) from None"]
            else:
                otherwise = [f"v = {self.const(spec.map_default)}"]
            lines += [
                "try:",
                f"    v = {table}[v]",
                "except (KeyError, TypeError):",
                *(f"    {line}" for line in otherwise),
            ]
        if spec.template is not None:
            lines += self.template(spec)
        return lines

    def template(self, spec: FieldSpec) -> list[str]:
        assert spec.template is not None
        lines: list[str] = []
        terms: list[str] = []
        for part in spec.template:
            if isinstance(part, str):
                terms.append(self.const(part))
                continue
            if part.expr is None:
                var = "v"
            else:
                var = self.name("t")
                lines += self.getter(part.expr, part.compiled, "obj", var, False)
                lines += [
                    f"if {var} is None:",
                    f"    raise Invalid({self.const(f'missing {{{part.text}}} for the template')}"
                    ", MISSING)",
                ]
            terms.append(self.render(part, var))
        lines.append(f"v = {' + '.join(terms)}")
        return lines

    def render(self, part: Placeholder, var: str) -> str:
        text = var
        if part.conversion == "r":
            text = f"repr({var})"
        elif part.conversion == "a":
            text = f"ascii({var})"
        if part.spec:
            return f"format({text}, {self.const(part.spec)})"
        return text if part.conversion in ("r", "a") else f"str({text})"

    # -- functions ----------------------------------------------------------------------
    def object_function(self, fields: list[FieldSpec]) -> str:
        """``def _oN(obj) -> dict``: ``obj`` is a dict; every field guarded for its path."""
        name = self.name("_o")
        outer, self.hoisted = self.hoisted, {}
        body = [f"def {name}(obj):", *(f"    {line}" for line in self.hoist(fields))]
        results = []
        for spec in fields:
            key = self.const(spec.name)
            body.append("    try:")
            body += [f"        {line}" for line in self.value(spec, True)]
            result = self.name("f")
            body += [
                "    except Invalid as e:",
                f"        raise _fail({key}, e) from None",
                "    except TransformError as e:",
                f"        raise _nest({key}, e) from None",
                "    except Exception as e:",
                f"        raise _odd({key}, e) from e",
                f"    {result} = v",
            ]
            results.append(f"{key}: {result}")
        body.append(f"    return {{{', '.join(results)}}}")
        self.hoisted = outer
        self.source += [*body, ""]
        self.last_object = name
        return name

    def item_function(self, spec: FieldSpec) -> str:
        """``def _iN(obj)``: one list item or mapping value; errors carry no path of their own.

        For an item that is an object of fields, ``_iN_fields`` names the object
        function itself (``_iN`` adds only the checks for null and non-objects).
        """
        name = self.name("_i")
        lines = self.value(spec, False)
        body = [f"def {name}(obj):", *(f"    {line}" for line in lines), "    return v"]
        if spec.fields is not None:
            body.append(f"{name}_fields = {self.last_object}")
        self.source += [*body, ""]
        return name


def compile_fields(
    fields: list[FieldSpec], label: str
) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], str]:
    """The function mapping one input object to the output dict, and its generated source."""
    generator = _Generator()
    entry = generator.object_function(fields)
    source = "\n".join(generator.source)
    code = compile(source, f"<interlink mapping {label}>", "exec")
    exec(code, generator.namespace)  # the source holds only names this module made
    function: Callable[[dict[str, Any]], dict[str, Any]] = generator.namespace[entry]
    return function, source
