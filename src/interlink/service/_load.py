"""Reading ``interlink.yaml``: every mistake named with its file, line, column and dotted key.

``load_config(path)`` reads the file in five passes and reports what all of
them found at once, ordered by place in the file:

1. YAML, keeping the line and column of every key and value
   (``interlink.core._yaml``); a key written twice is an issue.
2. ``${VAR}`` and ``${VAR:-default}`` in any string value are replaced from
   the environment (``:-``: the default when VAR is unset or empty; ``$${``
   writes a literal ``${``); a value written ``{secret_file: PATH}`` is the
   file's content without its trailing newline. A relative ``PATH`` is read
   from the config file's folder, like a queue's mapping file; SQLite URLs
   are not rewritten and resolve against the working directory, as with any
   other tool.
3. The pydantic models of ``_config.py``, each error turned into what was
   expected and what was found; an unknown key gets a "did you mean".
4. Checks across sections: a queue's ``forward.client`` is one of
   ``clients:``; two webhook sources do not share a path.
5. (``check_config`` only) every builder of ``_build.py``, run without a
   network, on the sections that passed 1-4.

A file with any issue raises ``ConfigFileError``, whose message lists every
issue, one per line: ``interlink.yaml:12:14: clients.payments.timeout:
invalid duration 'soon': ...``. Values that are secrets (tokens, passwords,
signing secrets, anything read from a ``secret_file``) are never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from interlink.core._yaml import Located, LocatedList, Mark, YamlError, load_yaml
from interlink.core.errors import ConfigError
from interlink.service._config import ServiceConfig
from interlink.service._load_messages import (
    Loc,
    close_match,
    model_message,
    shown,
    union_message,
)

__all__ = ["ConfigFileError", "ConfigIssue", "LoadedConfig", "check_config", "load_config"]

_SECRET_KEYS = frozenset({"admin_token", "token", "key", "password", "client_secret", "secrets"})
_ENTRY_SECTIONS = ("clients", "webhooks", "queues")  # sections that are mappings of named entries
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_LITERAL = "(write $${ for a literal ${)"


@dataclass(frozen=True)
class ConfigIssue:
    """One mistake in a config file: where it is, which key, what was expected and found.

    ``line`` and ``column`` are 1-based, ``None`` when the mistake has no place
    (the file cannot be read). ``key`` is dotted (``clients.payments.retry``,
    ``queues.orders.retry_delays[1]``); ``""`` for the file as a whole.
    """

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class ConfigFileError(ConfigError):
    """A config file has mistakes: ``issues`` lists every one; the message, one per line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class LoadedConfig:
    """A config file read and validated.

    ``path`` is the file as given, ``base_dir`` its folder (absolute): a
    queue's mapping file and a relative ``secret_file`` are read from there.
    ``locate`` and ``issue`` turn a dotted key back into its place in the file.
    """

    config: ServiceConfig
    path: Path
    base_dir: Path
    tree: Located = field(default_factory=Located, repr=False, compare=False)

    def locate(self, key: str) -> Mark | None:
        """Where ``key`` (dotted, as in an issue) is written; the nearest written parent if not."""
        return _locate_dotted(self.tree, key)

    def issue(self, key: str, message: str) -> ConfigIssue:
        """A ``ConfigIssue`` about ``key``, placed where the key is written in the file."""
        mark = self.locate(key)
        return ConfigIssue(
            str(self.path),
            None if mark is None else mark.line,
            None if mark is None else mark.column,
            key,
            message,
        )


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, interpolate and validate ``path``; ``ConfigFileError`` lists every issue.

    ``environ`` is where ``${VAR}`` is looked up (default: ``os.environ``).
    Only the file is checked: ``check_config`` also runs the builders.
    """
    loading = _Loading(Path(path), os.environ if environ is None else environ)
    loaded = loading.run()
    if loading.issues or loaded is None:
        raise ConfigFileError(loading.sorted_issues())
    return loaded


def check_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """``load_config`` and every builder (clients, webhook sources, queue handlers and transforms).

    Nothing is started and no connection is made, but queue handlers, models
    and transforms are imported. ``ConfigFileError`` lists every issue of
    every pass at once: builders run on the sections that passed the others.
    """
    loading = _Loading(Path(path), os.environ if environ is None else environ)
    loaded = loading.run()
    partial = loading.partial() if loading.read_ok else None
    if partial is not None:
        loading.add_built(partial)
    if loading.issues or loaded is None:
        raise ConfigFileError(loading.sorted_issues())
    return loaded


# -- dotted keys and places ---------------------------------------------------------------
def dotted(loc: Iterable[str | int]) -> str:
    """``("queues", "orders", "retry_delays", 1)`` -> ``queues.orders.retry_delays[1]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else part
    return text


@dataclass
class _Place:
    """What walking a location through the tree found: how far it went and the marks there."""

    depth: int  # how many parts of the location exist in the file
    key_mark: Mark | None  # where the last found key (or list item) is written
    value_mark: Mark | None  # where its value starts
    value: Any  # the value there


def _walk(tree: Any, loc: Iterable[str | int]) -> _Place:
    root_mark = tree.mark if isinstance(tree, Located | LocatedList) else None
    place = _Place(0, root_mark, root_mark, tree)
    node = tree
    for part in loc:
        if isinstance(node, Located) and isinstance(part, str) and part in node:
            place = _Place(place.depth + 1, node.keys_at[part], node.values_at[part], node[part])
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            at = node.items_at[part]
            place = _Place(place.depth + 1, at, at, node[part])
        else:
            break
        node = place.value
    return place


def _split_dotted(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in key.split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        for index in indexes:
            number = index.rstrip("]")
            parts.append(int(number) if number.isdigit() else f"[{index}")
    return parts


def _locate_dotted(tree: Any, key: str) -> Mark | None:
    """The place of a dotted key; names may hold dots (``queues.payments.events.handler``)."""
    parts = _split_dotted(key)
    node, mark = tree, (tree.mark if isinstance(tree, Located) else None)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            mark, node, i = node.items_at[part], node[part], i + 1
            continue
        if not isinstance(node, Located):
            break
        for j in range(len(parts), i, -1):  # the longest run of parts that is one key
            run = parts[i:j]
            if all(isinstance(p, str) for p in run) and ".".join(map(str, run)) in node:
                name = ".".join(map(str, run))
                written = isinstance(node[name], Located | LocatedList)
                mark = node.keys_at[name] if written else node.values_at[name]
                node, i = node[name], j
                break
        else:
            break
    return mark


def _overlaps(key: str, other: str) -> bool:
    """One key is the other or lies under it (``queues.a`` and ``queues.a.handler``)."""
    short, long = sorted((key, other), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


# -- the passes ---------------------------------------------------------------------------
class _Loading:
    """One reading of a config file: the tree, the issues found so far, the result."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.file = str(path)
        self.base_dir = path.absolute().parent
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self.tree = Located(Mark(1, 1))
        self.read_ok = False
        self.plain: dict[str, Any] = {}
        self.spoiled: list[Loc] = []  # values that could not be read: pydantic's word is moot
        self.hidden: set[Loc] = set()  # values read from a secret_file
        self.broken: set[Loc] = set()  # entries or sections with an issue: no builder for them

    # issues
    def add(self, mark: Mark | None, key: str, message: str) -> None:
        line = None if mark is None else mark.line
        column = None if mark is None else mark.column
        issue = ConfigIssue(self.file, line, column, key, message)
        if issue not in self.issues:
            self.issues.append(issue)

    def sorted_issues(self) -> list[ConfigIssue]:
        return sorted(
            self.issues,
            key=lambda i: (i.line is not None, i.line or 0, i.column or 0),
        )

    def spoil(self, loc: Loc) -> None:
        self.spoiled.append(loc)
        self.break_entry(loc)

    def break_entry(self, loc: Loc) -> None:
        """No builder runs for the entry (``clients.x``) or the section ``loc`` lies in."""
        if loc:  # () is the file's own mapping: a key it could not take was never added
            self.broken.add(loc[:2] if loc[0] in _ENTRY_SECTIONS and len(loc) >= 2 else loc[:1])

    # the whole reading
    def run(self) -> LoadedConfig | None:
        tree = self.read()
        if tree is None:
            return None
        self.tree, self.read_ok = tree, True
        self.plain = self.plain_of(tree)
        self.cross_checks()
        config = self.validate()
        if config is None:
            return None
        return LoadedConfig(config, self.path, self.base_dir, self.tree)

    # 1. YAML
    def read(self) -> Located | None:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            self.add(None, "", "no such file")
            return None
        except UnicodeDecodeError as exc:
            self.add(None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            return None
        except OSError as exc:
            self.add(None, "", f"cannot read the file: {exc.strerror or exc}")
            return None
        try:
            data = load_yaml(text, strict=False)
        except YamlError as exc:
            self.add(exc.mark, "", exc.message)
            return None
        if data is None:  # an empty file: every section takes its defaults
            return Located(Mark(1, 1))
        if not isinstance(data, Located):
            sections = ", ".join(ServiceConfig.model_fields)
            self.add(
                Mark(1, 1),
                "",
                f"expected a mapping of sections ({sections}), found {shown(_plain(data))}",
            )
            return None
        return self.resolve(data, ())

    # 2. keys as written, ${VAR}, secret_file; duplicate keys
    def resolve(self, node: Located, loc: Loc) -> Located:
        out = Located(node.mark)
        for at, key, message in node.problems:
            name = None if key is None else self.key_text(node, key)
            self.add(at, dotted(loc if name is None else (*loc, name)), message)
            self.break_entry(loc if name is None else (*loc, name))
        for key, value in node.items():
            name = self.key_text(node, key)
            out[name] = self.value(value, (*loc, name), node.values_at[key])
            out.keys_at[name] = node.keys_at[key]
            out.values_at[name] = node.values_at[key]
        return out

    @staticmethod
    def key_text(node: Located, key: object) -> str:
        """Every key of the service file is a name: ``1:`` or ``on:`` are the text written."""
        if isinstance(key, str):
            return key
        return node.texts.get(key, str(key))

    def value(self, value: Any, loc: Loc, mark: Mark) -> Any:
        if isinstance(value, str):
            return self.interpolate(value, loc, mark)
        if isinstance(value, Located):
            if "secret_file" in value:
                return self.secret_file(value, loc, mark)
            return self.resolve(value, loc)
        if isinstance(value, LocatedList):
            out = LocatedList(value.mark)
            for index, (item, at) in enumerate(zip(value, value.items_at, strict=True)):
                out.append(self.value(item, (*loc, index), at))
                out.items_at.append(at)
            return out
        return value

    def interpolate(self, text: str, loc: Loc, mark: Mark) -> str:
        if "$" not in text:
            return text
        problems: list[str] = []

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            inside = match.group(1)
            if inside is None:
                problems.append(f"'${{' without a closing '}}' {_LITERAL}")
                return whole
            variable = _VARIABLE.fullmatch(inside)
            if variable is None:
                problems.append(f"{whole!r} is not ${{VAR}} or ${{VAR:-default}} {_LITERAL}")
                return whole
            name, default = variable.group(1), variable.group(2)
            found = self.environ.get(name)
            if default is not None and not found:
                return default
            if found is None:
                problems.append(f"environment variable {name} is not set")
                return whole
            return found

        result = _REFERENCE.sub(replace, text)
        for problem in problems:
            self.add(mark, dotted(loc), problem)
        if problems:
            self.spoil(loc)
        return result

    def secret_file(self, node: Located, loc: Loc, mark: Mark) -> str:
        others = [self.key_text(node, key) for key in node if key != "secret_file"]
        if others:
            self.add(
                mark,
                dotted(loc),
                f"{{secret_file: PATH}} stands alone, found other keys: {', '.join(others)}",
            )
            self.spoil(loc)
            return ""
        where = node.values_at["secret_file"]
        raw = node["secret_file"]
        if not isinstance(raw, str) or not raw:
            self.add(
                where, dotted((*loc, "secret_file")), f"expected a file path, found {shown(raw)}"
            )
            self.spoil(loc)
            return ""
        name = self.interpolate(raw, (*loc, "secret_file"), where)
        path = Path(name)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.add(where, dotted((*loc, "secret_file")), f"{path} is not UTF-8 text")
            self.spoil(loc)
            return ""
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.add(where, dotted((*loc, "secret_file")), f"cannot read {path}: {reason}")
            self.spoil(loc)
            return ""
        self.hidden.add(loc)
        return content.removesuffix("\n").removesuffix("\r")

    @staticmethod
    def plain_of(tree: Located) -> dict[str, Any]:
        plain = _plain(tree)
        assert isinstance(plain, dict)
        return plain

    # 3. the models
    def validate(self) -> ServiceConfig | None:
        try:
            config = ServiceConfig.model_validate(self.plain)
        except pydantic.ValidationError as exc:
            self.model_issues(exc.errors())
            return None
        return None if self.issues else config

    def model_issues(self, errors: list[Any]) -> None:
        unions: dict[Loc, list[Any]] = {}
        for error in errors:
            loc: Loc = tuple(error["loc"])
            place = _walk(self.tree, loc)
            if error["type"] == "missing":
                place = _walk(self.tree, loc[:-1])
                found = loc
            else:
                found = loc[: place.depth]
            if any(_overlaps(dotted(found), dotted(bad)) for bad in self.spoiled):
                continue
            self.break_entry(found)
            if error["type"] not in ("missing", "extra_forbidden") and len(found) < len(loc):
                unions.setdefault(found, []).append(error)  # loc ends in the branch's name
                continue
            mark = self.mark_for(error, place)
            self.add(mark, dotted(found), model_message(error, found, self.secret(found)))
        for loc, branches in unions.items():
            place = _walk(self.tree, loc)
            message = union_message(
                [branch["type"] for branch in branches], branches[0].get("input"), self.secret(loc)
            )
            self.add(self.mark_for(branches[0], place), dotted(loc), message)

    @staticmethod
    def mark_for(error: Any, place: _Place) -> Mark | None:
        """An unknown key, a missing one or a wrong mapping: the key; a wrong scalar: the value."""
        if error["type"] in ("missing", "extra_forbidden"):
            return place.key_mark
        if isinstance(place.value, Located | LocatedList):
            return place.key_mark
        return place.value_mark

    def secret(self, loc: Loc) -> bool:
        names = [part for part in loc if isinstance(part, str)]
        return bool(names and names[-1] in _SECRET_KEYS) or any(
            loc[: len(hidden)] == hidden for hidden in self.hidden
        )

    # 4. across sections
    def cross_checks(self) -> None:
        clients = self.tree.get("clients")
        names = [str(name) for name in clients] if isinstance(clients, Located) else []
        queues = self.tree.get("queues")
        for queue, settings in _entries(queues):
            forward = settings.get("forward")
            if not isinstance(forward, Located):
                continue
            client = forward.get("client")
            if not isinstance(client, str) or client in names:
                continue
            close = close_match(client, names)
            if close is not None:
                hint = f" (did you mean {close!r}?)"
            elif names:
                hint = f" (clients: {', '.join(names)})"
            else:
                hint = " (clients: is empty)"
            loc: Loc = ("queues", queue, "forward", "client")
            self.add(forward.values_at["client"], dotted(loc), f"no client named {client!r}{hint}")
            self.spoil(loc)
        paths: dict[str, str] = {}
        for source, settings in _entries(self.tree.get("webhooks")):
            path = settings.get("path")
            if not isinstance(path, str):
                continue
            if path in paths:
                loc = ("webhooks", source, "path")
                self.add(
                    settings.values_at["path"],
                    dotted(loc),
                    f"{path!r} is already the path of webhooks.{paths[path]}",
                )
                self.break_entry(loc)
            else:
                paths[path] = source

    # 5. the builders, on what passed
    def partial(self) -> LoadedConfig | None:
        """The sections and entries without issues, as a config the builders can run on."""
        plain = _plain(self.tree)
        assert isinstance(plain, dict)
        broken = set(self.broken)
        for queue, settings in _entries(self.tree.get("queues")):  # a broken client's queues
            forward = settings.get("forward")
            if isinstance(forward, Located) and ("clients", forward.get("client")) in broken:
                broken.add(("queues", queue))
        for loc in broken:
            if len(loc) == 2 and isinstance(plain.get(loc[0]), dict):
                plain[loc[0]].pop(loc[1], None)
            else:
                plain.pop(str(loc[0]), None)
        try:
            config = ServiceConfig.model_validate(plain)
        except pydantic.ValidationError:  # pragma: no cover - every issue's entry is cut out
            return None
        return LoadedConfig(config, self.path, self.base_dir, self.tree)

    def add_built(self, partial: LoadedConfig) -> None:
        from interlink.service._build import check_built

        # The builders see no entry with an issue already (``partial``): nothing is said twice.
        for key, message in check_built(partial.config, partial.base_dir):
            self.issues.append(partial.issue(key, message))


def _entries(section: object) -> Iterator[tuple[str, Located]]:
    if isinstance(section, Located):
        for name, settings in section.items():
            if isinstance(settings, Located):
                yield str(name), settings


def _plain(value: Any) -> Any:
    """The tree as plain dicts and lists, for pydantic and for messages."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
