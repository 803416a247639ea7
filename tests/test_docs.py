"""The documentation's examples run, and docs/resilience.md covers what the code offers.

Convention: a fenced block opened with exactly ```python that contains
``asyncio.run(`` is a runnable example; it is written to a file and run in a
fresh interpreter (a fresh namespace, event loop and event hub; Python's dev
mode, warnings as errors), and must exit 0. Any other block (```python without ``asyncio.run(``, ```yaml, ```mermaid,
bare ```) is a fragment and is not executed.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import interlink.resilience
from interlink.resilience import Policy

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "docs" / "resilience.md",
    ROOT / "docs" / "testing.md",
    ROOT / "docs" / "client.md",
    ROOT / "docs" / "messaging.md",
    ROOT / "docs" / "webhooks.md",
    ROOT / "docs" / "transform.md",
    ROOT / "docs" / "performance.md",
    ROOT / "README.md",
]
RESILIENCE_DOC = ROOT / "docs" / "resilience.md"
RESILIENCE_SRC = ROOT / "src" / "interlink" / "resilience"

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_TIMEOUT_SECONDS = 60


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """Every ```python block of ``path``, as (line of the opening fence, code)."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def runnable_examples() -> list[pytest.ParameterSet]:
    cases = []
    for path in DOCS:
        for line, code in python_blocks(path):
            if "asyncio.run(" in code:
                label = f"{path.relative_to(ROOT)}:{line}"
                cases.append(pytest.param(code, id=label))
    return cases


@pytest.mark.parametrize("code", runnable_examples())
def test_example_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"example failed:\n{done.stdout}\n{done.stderr}"


def test_examples_are_found() -> None:
    # Guards the extraction itself: a broken pattern must not pass by finding nothing.
    assert len(runnable_examples()) >= 10
    assert any("README.md" in case.id for case in runnable_examples() if case.id)


def test_every_python_block_parses() -> None:
    """Fragments are not run, but they must still be valid Python (top-level await allowed)."""
    for path in DOCS:
        for line, code in python_blocks(path):
            try:
                compile(code, f"{path.name}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            except SyntaxError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{path.name}:{line}: {exc}")


def policy_classes() -> list[str]:
    return [
        name
        for name in interlink.resilience.__all__
        if isinstance(value := getattr(interlink.resilience, name), type)
        and issubclass(value, Policy)
    ]


def test_every_policy_class_is_documented() -> None:
    text = RESILIENCE_DOC.read_text(encoding="utf-8")
    assert len(policy_classes()) >= 11
    missing = [name for name in policy_classes() if not re.search(rf"`{name}\b", text)]
    assert missing == []


def _event_kinds(module: str, class_name: str) -> set[str]:
    """The ``kind`` of a policy class, or of every policy built on a base class that emits."""
    cls = getattr(importlib.import_module(module), class_name)
    if "kind" in vars(cls):
        return {cls.kind}
    found: set[str] = set()
    pending = list(cls.__subclasses__())
    while pending:
        sub = pending.pop()
        pending.extend(sub.__subclasses__())
        if "kind" in vars(sub):
            found.add(sub.kind)
    return found


def _literal_event_names(cls: ast.ClassDef) -> set[str]:
    """The literal first arguments of ``self._emit*(...)`` calls in a class body."""
    names: set[str] = set()
    for call in ast.walk(cls):
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr.startswith("_emit")
            and call.args
        ):
            continue
        first = call.args[0]
        options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
        for option in options:
            if isinstance(option, ast.Constant) and isinstance(option.value, str):
                names.add(option.value)
    return names


def emitted_events() -> set[str]:
    """``<kind>.<what>`` for every literal event name a policy emits (``self._emit*("what")``)."""
    found: set[str] = set()
    for path in sorted(RESILIENCE_SRC.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef):
                continue
            names = _literal_event_names(cls)
            if names:
                kinds = _event_kinds(f"interlink.resilience.{path.stem}", cls.name)
                assert kinds, f"{path.name}: {cls.name} emits events but has no kind"
                found |= {f"{kind}.{name}" for kind in kinds for name in names}
    return found


def test_every_emitted_event_is_documented() -> None:
    text = RESILIENCE_DOC.read_text(encoding="utf-8")
    events = emitted_events()
    assert "retry.gave_up" in events
    assert "circuit_breaker.ignored" in events  # emitted through _emit_outcome
    assert "circuit_breaker.transition" in events  # emitted by a base class
    missing = sorted(event for event in events if f"`{event}`" not in text)
    assert missing == []
